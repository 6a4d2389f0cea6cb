#pragma once
// The Anthropic Messages API wire format (POST /v1/messages, non-streaming) for the agent's
// conversation types (conversation.h). Pure functions: no I/O, safe from any thread.

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "agent/conversation.h"
#include "common/result.h"

namespace sb::agent::anthropic {

inline constexpr std::string_view kDefaultModel = "claude-sonnet-4-5";
inline constexpr std::string_view kTarget = "/v1/messages";
inline constexpr std::string_view kApiVersion = "2023-06-01";  // the anthropic-version header

// The request body: model (request.model, else default_model, else kDefaultModel),
// max_tokens, system (when not empty), tools [{name, description, input_schema}] (when any),
// and messages whose content is a list of blocks: text, tool_use {id, name, input},
// tool_result {tool_use_id, content, is_error}. Consecutive messages of one role are merged,
// empty text blocks dropped, tool results put first in their user turn, and invalid UTF-8 in
// texts replaced, so that the API accepts whatever the conversation holds.
boost::json::object encode(const ModelRequest& request, std::string_view default_model);

// The assistant message, stop reason, model and usage of a 2xx response body. Text and
// tool_use blocks are kept in order; other block types (thinking, …) are skipped. A tool_use
// without an id gets one; one whose input is not an object gets input {} and input_error.
// stop_reason end_turn/stop_sequence → end_turn, tool_use, max_tokens and
// model_context_window_exceeded → max_tokens, anything else → other (stop_detail keeps the
// word). Usage input = input_tokens + cache_creation_input_tokens + cache_read_input_tokens.
// Unknown fields are ignored. Error "the model provider's answer could not be read: <why>"
// when the body is not JSON, lacks content or has fields of the wrong type; "the model
// provider answered with an error: <describe_error>" for an error body.
Result<ModelResponse> decode(std::string_view body);

// "authentication_error: invalid x-api-key" for an error body ({"type": "error", "error":
// {"type", "message"}}), else an excerpt of at most ~500 bytes of the body; "" when empty.
std::string describe_error(std::string_view body);

}  // namespace sb::agent::anthropic

#pragma once
// The OpenAI chat completions wire format (POST /v1/chat/completions, non-streaming), which
// OpenAI-compatible servers (OpenRouter, vLLM, llama.cpp, Ollama, …) speak too, for the
// agent's conversation types (conversation.h). Pure functions: no I/O, safe from any thread.

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "agent/conversation.h"
#include "common/result.h"

namespace sb::agent::openai {

inline constexpr std::string_view kDefaultModel = "gpt-4o-mini";
inline constexpr std::string_view kTarget = "/v1/chat/completions";

// The request body: model (request.model, else default_model, else kDefaultModel),
// max_tokens, "stream": false, tools [{type: function, function: {name, description,
// parameters}}] (when any), and messages: the system prompt first, then per turn (merged as
// for Anthropic) an assistant message {content (text or null), tool_calls [{id, type:
// function, function: {name, arguments: <input as a JSON string>}}]}, or for a user turn one
// {role: tool, tool_call_id, content} per tool result (an error's content starts with
// "Error: ") followed by the user's text, if any. Text blocks of one turn are joined with a
// blank line; invalid UTF-8 in texts is replaced.
boost::json::object encode(const ModelRequest& request, std::string_view default_model);

// The first choice's message (text, then its tool calls), stop reason, model and usage of a
// 2xx response body. A tool call without an id gets one; one whose arguments are not a JSON
// object (not JSON, or another type) gets input {} and input_error; empty arguments are {}.
// finish_reason stop → end_turn (tool_use when the message has tool calls: some compatible
// servers say "stop" there), tool_calls → tool_use, length → max_tokens, content_filter and
// anything else → other (stop_detail keeps the word). Usage input = prompt_tokens, output =
// completion_tokens; absent usage is zero. Unknown fields are ignored. Error "the model
// provider's answer could not be read: <why>" when the body is not JSON, has no choice or
// message, or has fields of the wrong type; "the model provider answered with an error:
// <describe_error>" for an error body.
Result<ModelResponse> decode(std::string_view body);

// "invalid_api_key: <message>" for an error body ({"error": {"message", "type", "code"}}:
// the code, else the type; or the simpler shapes compatible servers use), else an excerpt of
// at most ~500 bytes of the body; "" when empty.
std::string describe_error(std::string_view body);

}  // namespace sb::agent::openai

#pragma once
// What the provider codecs (anthropic_codec.h, openai_codec.h) share: turning the
// conversation into the turns a provider accepts, reading a provider's JSON defensively, and
// quoting a provider's text in an error message without flooding it. Pure functions.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/conversation.h"
#include "common/result.h"
#include "common/utf8.h"

namespace sb::agent::codec {

// The first max_bytes of `text` for an error message: one line (control characters become
// spaces), valid UTF-8, and when cut, "…" and the full size appended.
std::string excerpt(std::string_view text, std::size_t max_bytes = 500);

// The conversation as alternating turns: empty text blocks dropped, messages left without
// blocks dropped, consecutive messages of one role merged, and in user turns the tool results
// moved before the other blocks (providers want the results right after the calls).
std::vector<Message> merged_turns(const std::vector<Message>& messages);

// request.model, else default_model, else the codec's own default.
std::string choose_model(const ModelRequest& request, std::string_view default_model,
                         std::string_view codec_default);

// "the model provider's answer could not be read: <why>".
Error unreadable(std::string_view why);

// The body as a JSON object. Error (unreadable) when it is not JSON or not an object, with an
// excerpt of the body.
Result<boost::json::object> parse_object(std::string_view body);

// The member `key`, or nullptr when it is absent or null.
const boost::json::value* find(const boost::json::object& object, std::string_view key);

// "a string", "an array", … for messages about wrong types.
std::string_view kind_of(const boost::json::value& value);

// The token count `usage.<key>`: 0 when absent or null. Error (unreadable) when it is not a
// non-negative integer.
Result<std::int64_t> token_count(const boost::json::object& usage, std::string_view key);

// "<label>: <message>" from an error body shaped {"error": {"type", "code", "message"}} (both
// providers; the label is the code when prefer_code and there is one, else the type),
// {"error": "text"}, {"message": …} or {"detail": …}; otherwise an excerpt of the body; ""
// for an empty body. The message is capped as excerpt() does.
std::string describe_error_body(std::string_view body, bool prefer_code);

// A fresh tool-call id for a provider answer that gave none: "<prefix>-<12 hex digits>".
std::string make_call_id(std::string_view prefix);

}  // namespace sb::agent::codec

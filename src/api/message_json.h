#pragma once
// The JSON form of messages in the API. Field names of the seed's message schema (id,
// timestamp, source, subject, content, read) are kept so its callers keep working.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/message.h"
#include "common/result.h"
#include "store/store.h"

namespace sb::api {

// Parses a request body as JSON, for every route that takes one. Error ("malformed JSON:
// …", answered 400) for text that is not JSON (nested deeper than 32 levels included) and
// for a number beyond the range of a double (1e400): it would be stored as infinity, which
// JSON cannot write back.
Result<boost::json::value> parse_request_json(std::string_view body);

// Appends {"id", "timestamp", "source", "subject", "content", "read", "status", "chat",
// "sender", "sender_name", "from_assistant", "metadata", "stored_at", "external_id"};
// absent optional fields are null. Written directly, without a JSON tree: this is the hot
// path of GET /messages. `metadata_json` is copied as it is: the store only holds valid
// JSON objects there.
void append_message_json(std::string& out, const Message& message);

// A JSON array of messages.
std::string messages_json(const std::vector<Message>& messages);

// Validates a POST /messages body: `source` and `content` strings are required;
// `subject`, `sender`, `sender_name`, `chat` ("<channel>:<address>"), `timestamp`
// (ISO-8601, normalised to UTC), `metadata` (object) and `idempotency_key` are optional
// (null counts as absent). Unknown fields are ignored. The error names the field.
Result<NewMessage> new_message_from_json(const boost::json::object& body);

// An outbox row: {"id", "chat", "channel", "kind", "payload", "state", "attempts",
// "next_attempt_at", "last_error", "created_at", "sent_at"}.
boost::json::object outbox_item_json(const OutboxItem& item);

}  // namespace sb::api

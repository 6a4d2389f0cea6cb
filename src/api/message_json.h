#pragma once
// The JSON form of messages in the API. Field names of the seed's message schema (id,
// timestamp, source, subject, content, read) are kept so its callers keep working.

#include <boost/json/object.hpp>

#include "common/message.h"
#include "common/result.h"

namespace sb::api {

// {"id", "timestamp", "source", "subject", "content", "read", "status", "chat", "sender",
//  "sender_name", "from_assistant", "metadata", "stored_at", "external_id"}; absent optional
// fields are null.
boost::json::object message_to_json(const Message& message);

// Validates a POST /messages body: `source` and `content` strings are required;
// `subject`, `sender`, `sender_name`, `chat` ("<channel>:<address>"), `timestamp`
// (ISO-8601, normalised to UTC), `metadata` (object) and `idempotency_key` are optional
// (null counts as absent). Unknown fields are ignored. The error names the field.
Result<NewMessage> new_message_from_json(const boost::json::object& body);

}  // namespace sb::api

#include "api/message_json.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/time.h"

namespace sb::api {
namespace json = boost::json;

namespace {

json::value optional_string(const std::optional<std::string>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

constexpr std::size_t kMaxShortField = 4096;  // source, sender, subject, chat, keys

// Reads an optional string field; an error names the field.
Result<std::optional<std::string>> string_field(const json::object& body, const char* name,
                                                bool required) {
  auto it = body.find(name);
  if (it == body.end() || it->value().is_null()) {
    if (required) return make_error(std::string("missing field '") + name + "'");
    return std::optional<std::string>{};
  }
  if (!it->value().is_string()) return make_error(std::string("'") + name + "' must be a string");
  return std::optional<std::string>(std::string(it->value().get_string()));
}

}  // namespace

json::object message_to_json(const Message& m) {
  json::object o;
  o.reserve(14);
  o["id"] = m.id;
  o["timestamp"] = m.timestamp;
  o["source"] = m.source;
  o["subject"] = optional_string(m.subject);
  o["content"] = m.content;
  o["read"] = m.read();
  o["status"] = std::string(to_string(m.status));
  o["chat"] = optional_string(m.chat);
  o["sender"] = optional_string(m.sender);
  o["sender_name"] = optional_string(m.sender_name);
  o["from_assistant"] = m.from_assistant;
  boost::system::error_code ec;
  auto metadata = json::parse(m.metadata_json, ec);
  o["metadata"] = ec ? json::value(json::object()) : std::move(metadata);
  o["stored_at"] = m.stored_at;
  o["external_id"] = optional_string(m.external_id);
  return o;
}

Result<NewMessage> new_message_from_json(const json::object& body) {
  NewMessage m;
  auto source = string_field(body, "source", true);
  if (!source) return source.error();
  if (source.value()->empty()) return make_error("'source' must not be empty");
  m.source = std::move(*source.value());

  auto content = string_field(body, "content", true);
  if (!content) return content.error();
  m.content = std::move(*content.value());

  for (auto [name, target] : {std::pair{"subject", &m.subject}, std::pair{"sender", &m.sender},
                              std::pair{"sender_name", &m.sender_name}}) {
    auto field = string_field(body, name, false);
    if (!field) return field.error();
    *target = std::move(field.value());
  }
  if (m.source.size() > kMaxShortField || (m.subject && m.subject->size() > kMaxShortField) ||
      (m.sender && m.sender->size() > kMaxShortField) ||
      (m.sender_name && m.sender_name->size() > kMaxShortField)) {
    return make_error("'source', 'subject', 'sender' and 'sender_name' are limited to " +
                      std::to_string(kMaxShortField) + " bytes");
  }

  auto chat = string_field(body, "chat", false);
  if (!chat) return chat.error();
  if (chat.value()) {
    auto parsed = parse_chat_id(*chat.value());
    if (!parsed) {
      return make_error(
          "'chat' must be '<channel>:<address>' (channel: 1-32 of a-z, 0-9, '-'; "
          "got '" +
          *chat.value() + "')");
    }
    m.chat = parsed->str();
  }

  auto timestamp = string_field(body, "timestamp", false);
  if (!timestamp) return timestamp.error();
  if (timestamp.value()) {
    auto t = parse_iso8601(*timestamp.value());
    if (!t) return make_error("'timestamp' must be an ISO-8601 date-time");
    m.timestamp = format_iso8601(*t);
  }

  if (auto it = body.find("metadata"); it != body.end() && !it->value().is_null()) {
    if (!it->value().is_object()) return make_error("'metadata' must be a JSON object");
    m.metadata_json = json::serialize(it->value());
  }

  auto key = string_field(body, "idempotency_key", false);
  if (!key) return key.error();
  if (key.value()) {
    if (key.value()->empty() || key.value()->size() > kMaxShortField)
      return make_error("'idempotency_key' must be 1-4096 bytes");
    m.external_id = "api:" + *key.value();
  }
  return m;
}

}  // namespace sb::api

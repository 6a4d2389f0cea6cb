#include "api/message_json.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>

#include "common/json_text.h"
#include "common/time.h"

namespace sb::api {
namespace json = boost::json;

namespace {

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

// The first number in `value` that is not finite, or nullptr. Depth is bounded by the
// parser's (32).
const boost::json::value* non_finite_number(const json::value& value) {
  if (const double* d = value.if_double()) return std::isfinite(*d) ? nullptr : &value;
  if (const json::object* object = value.if_object()) {
    for (const auto& item : *object) {
      if (const auto* found = non_finite_number(item.value())) return found;
    }
  } else if (const json::array* array = value.if_array()) {
    for (const auto& item : *array) {
      if (const auto* found = non_finite_number(item)) return found;
    }
  }
  return nullptr;
}

}  // namespace

Result<json::value> parse_request_json(std::string_view body) {
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec) return make_error("malformed JSON: " + ec.message());
  if (non_finite_number(parsed)) {
    return make_error(
        "malformed JSON: a number is out of range (beyond ±1.8e308, the range of a double)");
  }
  return parsed;
}

void append_message_json(std::string& out, const Message& m) {
  out += "{\"id\":";
  append_json_int(out, m.id);
  out += ",\"timestamp\":";
  append_json_string(out, m.timestamp);
  out += ",\"source\":";
  append_json_string(out, m.source);
  out += ",\"subject\":";
  append_json_string_or_null(out, m.subject);
  out += ",\"content\":";
  append_json_string(out, m.content);
  out += m.read() ? ",\"read\":true" : ",\"read\":false";
  out += ",\"status\":";
  append_json_string(out, to_string(m.status));
  out += ",\"chat\":";
  append_json_string_or_null(out, m.chat);
  out += ",\"sender\":";
  append_json_string_or_null(out, m.sender);
  out += ",\"sender_name\":";
  append_json_string_or_null(out, m.sender_name);
  out += m.from_assistant ? ",\"from_assistant\":true" : ",\"from_assistant\":false";
  out += ",\"metadata\":";
  out += m.metadata_json.empty() ? std::string_view("{}") : std::string_view(m.metadata_json);
  out += ",\"stored_at\":";
  append_json_string(out, m.stored_at);
  out += ",\"external_id\":";
  append_json_string_or_null(out, m.external_id);
  out += '}';
}

std::string messages_json(const std::vector<Message>& messages) {
  std::string out;
  std::size_t size = 2;
  for (const auto& m : messages) size += m.content.size() + m.metadata_json.size() + 320;
  out.reserve(size);
  out += '[';
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i) out += ',';
    append_message_json(out, messages[i]);
  }
  out += ']';
  return out;
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

json::object outbox_item_json(const OutboxItem& item) {
  auto text_or_null = [](const std::optional<std::string>& text) {
    return text ? json::value(*text) : json::value(nullptr);
  };
  boost::system::error_code ec;
  json::value payload = json::parse(item.payload_json, ec);
  return json::object{{"id", item.id},
                      {"chat", item.chat_jid},
                      {"channel", item.channel},
                      {"kind", item.kind},
                      {"payload", ec ? json::value(nullptr) : payload},
                      {"state", to_string(item.state)},
                      {"attempts", item.attempts},
                      {"next_attempt_at", text_or_null(item.next_attempt_at)},
                      {"last_error", text_or_null(item.last_error)},
                      {"created_at", item.created_at},
                      {"sent_at", text_or_null(item.sent_at)}};
}

}  // namespace sb::api

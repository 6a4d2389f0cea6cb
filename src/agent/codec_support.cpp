#include "agent/codec_support.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cmath>
#include <limits>

#include "common/ids.h"
#include "common/json_text.h"

namespace sb::agent::codec {

namespace json = boost::json;

namespace {

std::string string_member(const json::object& object, std::string_view key) {
  const json::value* v = find(object, key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace

std::string excerpt(std::string_view text, std::size_t max_bytes) {
  const std::size_t end = utf8_prefix(text, max_bytes).size();
  std::string out = to_valid_utf8(text.substr(0, end));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = ' ';
  }
  if (end < text.size()) out += "… (" + std::to_string(text.size()) + " bytes)";
  return out;
}

std::vector<Message> merged_turns(const std::vector<Message>& messages) {
  std::vector<Message> turns;
  for (const Message& message : messages) {
    std::vector<Block> blocks;
    for (const Block& block : message.blocks) {
      if (block.kind == Block::Kind::text && block.text.empty()) continue;
      blocks.push_back(block);
    }
    if (blocks.empty()) continue;
    if (!turns.empty() && turns.back().role == message.role) {
      auto& into = turns.back().blocks;
      into.insert(into.end(), std::make_move_iterator(blocks.begin()),
                  std::make_move_iterator(blocks.end()));
    } else {
      turns.push_back(Message{message.role, std::move(blocks)});
    }
  }
  for (Message& turn : turns) {
    if (turn.role != Role::user) continue;
    std::stable_partition(turn.blocks.begin(), turn.blocks.end(),
                          [](const Block& b) { return b.kind == Block::Kind::tool_result; });
  }
  return turns;
}

std::string choose_model(const ModelRequest& request, std::string_view default_model,
                         std::string_view codec_default) {
  if (!request.model.empty()) return request.model;
  if (!default_model.empty()) return std::string(default_model);
  return std::string(codec_default);
}

Error unreadable(std::string_view why) {
  return make_error("the model provider's answer could not be read: " + std::string(why));
}

Result<json::object> parse_object(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return unreadable("the body is empty");
  }
  json::parse_options options;
  options.max_depth = 64;
  boost::system::error_code ec;
  json::value value = json::parse(body, ec, {}, options);
  if (ec) {
    return unreadable("it is not JSON (" + ec.message() + "): '" + excerpt(body) + "'");
  }
  if (!value.is_object()) {
    return unreadable("it is " + std::string(kind_of(value)) + ", not a JSON object");
  }
  return std::move(value.get_object());
}

const json::value* find(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v && !v->is_null() ? v : nullptr;
}

std::string_view kind_of(const json::value& value) {
  switch (value.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a JSON value";
}

Result<std::int64_t> token_count(const json::object& usage, std::string_view key) {
  const json::value* v = find(usage, key);
  if (!v) return std::int64_t{0};
  if (v->is_int64() && v->get_int64() >= 0) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= std::numeric_limits<std::int64_t>::max()) {
    return static_cast<std::int64_t>(v->get_uint64());
  }
  if (v->is_double()) {
    const double d = v->get_double();
    if (d >= 0 && d < 9e18 && std::floor(d) == d) return static_cast<std::int64_t>(d);
  }
  return unreadable("'usage." + std::string(key) + "' is " + std::string(kind_of(*v)) +
                    ", not a token count");
}

std::string describe_error_body(std::string_view body, bool prefer_code) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return {};
  boost::system::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec || !value.is_object()) return excerpt(body);
  const json::object& root = value.get_object();
  if (const json::value* error = find(root, "error")) {
    if (error->is_string()) return excerpt(error->get_string());
    if (error->is_object()) {
      const std::string type = string_member(error->get_object(), "type");
      const std::string code = string_member(error->get_object(), "code");
      const std::string& label = (prefer_code && !code.empty()) || type.empty() ? code : type;
      const std::string message = string_member(error->get_object(), "message");
      if (!label.empty() && !message.empty()) return excerpt(label, 100) + ": " + excerpt(message);
      if (!message.empty()) return excerpt(message);
      if (!label.empty()) return excerpt(label, 100);
    }
  }
  for (std::string_view key : {"message", "detail"}) {
    const std::string text = string_member(root, key);
    if (!text.empty()) return excerpt(text);
  }
  return excerpt(body);
}

std::string make_call_id(std::string_view prefix) { return random_id(prefix); }

}  // namespace sb::agent::codec

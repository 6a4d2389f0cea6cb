#include "agent/anthropic_codec.h"

#include <algorithm>

#include "agent/codec_support.h"

namespace sb::agent::anthropic {

namespace json = boost::json;
using codec::find;
using codec::kind_of;
using codec::unreadable;

namespace {

json::object encode_block(const Block& block) {
  switch (block.kind) {
    case Block::Kind::text:
      return {{"type", "text"}, {"text", to_valid_utf8(block.text)}};
    case Block::Kind::tool_call:
      return {{"type", "tool_use"},
              {"id", block.call.id},
              {"name", block.call.name},
              {"input", block.call.input}};
    case Block::Kind::tool_result: {
      json::object result{{"type", "tool_result"}, {"tool_use_id", block.result.call_id}};
      // The API rejects empty text, so an empty result is sent without content.
      if (!block.result.content.empty()) {
        result["content"] = to_valid_utf8(block.result.content);
      }
      if (block.result.is_error) result["is_error"] = true;
      return result;
    }
  }
  return {};
}

std::string where(std::size_t index) { return "content[" + std::to_string(index) + "]"; }

Result<ToolCall> decode_tool_use(const json::object& block, std::size_t index) {
  ToolCall call;
  const json::value* id = find(block, "id");
  if (id && !id->is_string()) {
    return unreadable("'" + where(index) + ".id' is " + std::string(kind_of(*id)) +
                      ", not a string");
  }
  call.id = id && !id->get_string().empty() ? std::string(id->get_string())
                                            : codec::make_call_id("toolu");
  const json::value* name = find(block, "name");
  if (!name || !name->is_string() || name->get_string().empty()) {
    return unreadable("the tool call " + where(index) + " has no name");
  }
  call.name = name->get_string();
  if (const json::value* input = find(block, "input")) {
    if (input->is_object()) {
      call.input = input->get_object();
    } else {
      call.input_error =
          "the tool input is " + std::string(kind_of(*input)) + ", not a JSON object";
    }
  }
  return call;
}

StopReason stop_reason(std::string_view word) {
  if (word == "end_turn" || word == "stop_sequence") return StopReason::end_turn;
  if (word == "tool_use") return StopReason::tool_use;
  if (word == "max_tokens" || word == "model_context_window_exceeded") {
    return StopReason::max_tokens;
  }
  return StopReason::other;
}

}  // namespace

json::object encode(const ModelRequest& request, std::string_view default_model) {
  json::object body;
  body["model"] = codec::choose_model(request, default_model, kDefaultModel);
  body["max_tokens"] = request.max_tokens;
  if (!request.system.empty()) body["system"] = to_valid_utf8(request.system);
  if (!request.tools.empty()) {
    json::array tools;
    for (const ToolSpec& tool : request.tools) {
      json::object schema = tool.input_schema;
      if (schema.empty()) schema["type"] = "object";  // the API requires a schema type
      tools.push_back(json::object{{"name", tool.name},
                                   {"description", to_valid_utf8(tool.description)},
                                   {"input_schema", std::move(schema)}});
    }
    body["tools"] = std::move(tools);
  }
  json::array messages;
  for (const Message& turn : codec::merged_turns(request.messages)) {
    json::array content;
    for (const Block& block : turn.blocks) content.push_back(encode_block(block));
    messages.push_back(json::object{{"role", turn.role == Role::user ? "user" : "assistant"},
                                    {"content", std::move(content)}});
  }
  body["messages"] = std::move(messages);
  return body;
}

Result<ModelResponse> decode(std::string_view body) {
  auto parsed = codec::parse_object(body);
  if (!parsed) return parsed.error();
  const json::object& root = parsed.value();
  if (const json::value* type = find(root, "type");
      type && type->is_string() && type->get_string() == "error") {
    return make_error("the model provider answered with an error: " + describe_error(body));
  }

  ModelResponse response;
  response.message.role = Role::assistant;
  const json::value* content = find(root, "content");
  if (!content) return unreadable("it has no 'content'");
  if (!content->is_array()) {
    return unreadable("'content' is " + std::string(kind_of(*content)) + ", not an array");
  }
  const json::array& blocks = content->get_array();
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    if (!blocks[i].is_object()) {
      return unreadable("'" + where(i) + "' is " + std::string(kind_of(blocks[i])) +
                        ", not an object");
    }
    const json::object& block = blocks[i].get_object();
    const json::value* type = find(block, "type");
    if (!type || !type->is_string()) return unreadable("'" + where(i) + "' has no type");
    if (type->get_string() == "text") {
      const json::value* text = find(block, "text");
      if (!text || !text->is_string()) {
        return unreadable("the text block " + where(i) + " has no text");
      }
      response.message.blocks.push_back(Block::make_text(std::string(text->get_string())));
    } else if (type->get_string() == "tool_use") {
      auto call = decode_tool_use(block, i);
      if (!call) return call.error();
      response.message.blocks.push_back(Block::make_call(std::move(call.value())));
    }
  }

  if (const json::value* stop = find(root, "stop_reason")) {
    if (!stop->is_string()) {
      return unreadable("'stop_reason' is " + std::string(kind_of(*stop)) + ", not a string");
    }
    response.stop_detail = stop->get_string();
    response.stop = stop_reason(response.stop_detail);
  } else {
    const bool calls = std::any_of(response.message.blocks.begin(), response.message.blocks.end(),
                                   [](const Block& b) { return b.kind == Block::Kind::tool_call; });
    response.stop = calls ? StopReason::tool_use : StopReason::end_turn;
  }

  if (const json::value* model = find(root, "model"); model && model->is_string()) {
    response.model = model->get_string();
  }

  if (const json::value* usage = find(root, "usage")) {
    if (!usage->is_object()) {
      return unreadable("'usage' is " + std::string(kind_of(*usage)) + ", not an object");
    }
    std::int64_t input = 0;
    for (std::string_view key :
         {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}) {
      auto count = codec::token_count(usage->get_object(), key);
      if (!count) return count.error();
      input += count.value();
    }
    auto output = codec::token_count(usage->get_object(), "output_tokens");
    if (!output) return output.error();
    response.usage = Usage{input, output.value()};
  }
  return response;
}

std::string describe_error(std::string_view body) {
  return codec::describe_error_body(body, false);
}

}  // namespace sb::agent::anthropic

#include "agent/openai_codec.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "agent/codec_support.h"

namespace sb::agent::openai {

namespace json = boost::json;
using codec::find;
using codec::kind_of;
using codec::unreadable;

namespace {

void append_paragraph(std::string& into, std::string_view text) {
  if (!into.empty()) into += "\n\n";
  into += text;
}

void encode_user_turn(const Message& turn, json::array& messages) {
  std::string text;
  for (const Block& block : turn.blocks) {
    if (block.kind == Block::Kind::tool_result) {
      const std::string content = to_valid_utf8(block.result.content);
      messages.push_back(
          json::object{{"role", "tool"},
                       {"tool_call_id", block.result.call_id},
                       {"content", block.result.is_error ? "Error: " + content : content}});
    } else if (block.kind == Block::Kind::text) {
      append_paragraph(text, block.text);
    }
  }
  if (!text.empty()) {
    messages.push_back(json::object{{"role", "user"}, {"content", to_valid_utf8(text)}});
  }
}

void encode_assistant_turn(const Message& turn, json::array& messages) {
  std::string text;
  json::array calls;
  for (const Block& block : turn.blocks) {
    if (block.kind == Block::Kind::text) {
      append_paragraph(text, block.text);
    } else if (block.kind == Block::Kind::tool_call) {
      calls.push_back(json::object{
          {"id", block.call.id},
          {"type", "function"},
          {"function", json::object{{"name", block.call.name},
                                    {"arguments", json::serialize(block.call.input)}}}});
    }
  }
  json::object message{{"role", "assistant"}};
  if (text.empty()) {
    message["content"] = nullptr;
  } else {
    message["content"] = to_valid_utf8(text);
  }
  if (!calls.empty()) message["tool_calls"] = std::move(calls);
  messages.push_back(std::move(message));
}

std::string where(std::size_t index) { return "tool_calls[" + std::to_string(index) + "]"; }

// The arguments OpenAI sends as a JSON string (some compatible servers send the object).
void decode_arguments(const json::value* arguments, ToolCall& call) {
  if (!arguments) return;
  if (arguments->is_object()) {
    call.input = arguments->get_object();
    return;
  }
  if (!arguments->is_string()) {
    call.input_error =
        "the arguments are " + std::string(kind_of(*arguments)) + ", not a JSON string";
    return;
  }
  const std::string_view text = arguments->get_string();
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return;
  json::parse_options options;
  options.max_depth = 64;
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec, {}, options);
  if (ec) {
    call.input_error = "the arguments are not valid JSON (" + ec.message() + "): '" +
                       codec::excerpt(text, 200) + "'";
  } else if (!parsed.is_object()) {
    call.input_error = "the arguments are " + std::string(kind_of(parsed)) + ", not a JSON object";
  } else {
    call.input = std::move(parsed.get_object());
  }
}

Result<ToolCall> decode_tool_call(const json::value& value, std::size_t index) {
  if (!value.is_object()) {
    return unreadable("'" + where(index) + "' is " + std::string(kind_of(value)) +
                      ", not an object");
  }
  const json::object& entry = value.get_object();
  ToolCall call;
  const json::value* id = find(entry, "id");
  if (id && !id->is_string()) {
    return unreadable("'" + where(index) + ".id' is " + std::string(kind_of(*id)) +
                      ", not a string");
  }
  call.id =
      id && !id->get_string().empty() ? std::string(id->get_string()) : codec::make_call_id("call");
  const json::value* function = find(entry, "function");
  if (!function || !function->is_object()) {
    return unreadable("the tool call " + where(index) + " has no function");
  }
  const json::value* name = find(function->get_object(), "name");
  if (!name || !name->is_string() || name->get_string().empty()) {
    return unreadable("the tool call " + where(index) + " has no name");
  }
  call.name = name->get_string();
  decode_arguments(find(function->get_object(), "arguments"), call);
  return call;
}

// The message's text: a string, or (some compatible servers) a list of text parts.
Result<std::string> decode_content(const json::value* content) {
  if (!content) return std::string();
  if (content->is_string()) return std::string(content->get_string());
  if (!content->is_array()) {
    return unreadable("'message.content' is " + std::string(kind_of(*content)) + ", not a string");
  }
  std::string text;
  for (const json::value& part : content->get_array()) {
    if (!part.is_object()) continue;
    const json::value* type = find(part.get_object(), "type");
    const json::value* part_text = find(part.get_object(), "text");
    if (type && type->is_string() && type->get_string() == "text" && part_text &&
        part_text->is_string()) {
      text += part_text->get_string();
    }
  }
  return text;
}

StopReason stop_reason(std::string_view word) {
  if (word == "stop") return StopReason::end_turn;
  if (word == "tool_calls" || word == "function_call") return StopReason::tool_use;
  if (word == "length") return StopReason::max_tokens;
  return StopReason::other;
}

}  // namespace

json::object encode(const ModelRequest& request, std::string_view default_model) {
  json::object body;
  body["model"] = codec::choose_model(request, default_model, kDefaultModel);
  body["max_tokens"] = request.max_tokens;
  body["stream"] = false;
  json::array messages;
  if (!request.system.empty()) {
    messages.push_back(
        json::object{{"role", "system"}, {"content", to_valid_utf8(request.system)}});
  }
  for (const Message& turn : codec::merged_turns(request.messages)) {
    if (turn.role == Role::user) {
      encode_user_turn(turn, messages);
    } else {
      encode_assistant_turn(turn, messages);
    }
  }
  body["messages"] = std::move(messages);
  if (!request.tools.empty()) {
    json::array tools;
    for (const ToolSpec& tool : request.tools) {
      json::object schema = tool.input_schema;
      if (schema.empty()) schema["type"] = "object";
      tools.push_back(json::object{
          {"type", "function"},
          {"function", json::object{{"name", tool.name},
                                    {"description", to_valid_utf8(tool.description)},
                                    {"parameters", std::move(schema)}}}});
    }
    body["tools"] = std::move(tools);
  }
  return body;
}

Result<ModelResponse> decode(std::string_view body) {
  auto parsed = codec::parse_object(body);
  if (!parsed) return parsed.error();
  const json::object& root = parsed.value();
  const json::value* choices = find(root, "choices");
  if (!choices && find(root, "error")) {
    return make_error("the model provider answered with an error: " + describe_error(body));
  }
  if (!choices) return unreadable("it has no 'choices'");
  if (!choices->is_array()) {
    return unreadable("'choices' is " + std::string(kind_of(*choices)) + ", not an array");
  }
  if (choices->get_array().empty()) return unreadable("'choices' is empty");
  const json::value& first = choices->get_array().front();
  if (!first.is_object()) {
    return unreadable("'choices[0]' is " + std::string(kind_of(first)) + ", not an object");
  }
  const json::object& choice = first.get_object();
  const json::value* message = find(choice, "message");
  if (!message) return unreadable("'choices[0]' has no 'message'");
  if (!message->is_object()) {
    return unreadable("'choices[0].message' is " + std::string(kind_of(*message)) +
                      ", not an object");
  }
  const json::object& answer = message->get_object();

  ModelResponse response;
  response.message.role = Role::assistant;
  auto text = decode_content(find(answer, "content"));
  if (!text) return text.error();
  if (text->empty()) {
    if (const json::value* refusal = find(answer, "refusal"); refusal && refusal->is_string()) {
      text = std::string(refusal->get_string());
    }
  }
  if (!text->empty()) response.message.blocks.push_back(Block::make_text(std::move(*text)));

  if (const json::value* calls = find(answer, "tool_calls")) {
    if (!calls->is_array()) {
      return unreadable("'message.tool_calls' is " + std::string(kind_of(*calls)) +
                        ", not an array");
    }
    const json::array& list = calls->get_array();
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto call = decode_tool_call(list[i], i);
      if (!call) return call.error();
      response.message.blocks.push_back(Block::make_call(std::move(call.value())));
    }
  }
  const bool has_calls =
      std::any_of(response.message.blocks.begin(), response.message.blocks.end(),
                  [](const Block& b) { return b.kind == Block::Kind::tool_call; });

  if (const json::value* finish = find(choice, "finish_reason")) {
    if (!finish->is_string()) {
      return unreadable("'finish_reason' is " + std::string(kind_of(*finish)) + ", not a string");
    }
    response.stop_detail = finish->get_string();
    response.stop = stop_reason(response.stop_detail);
    if (response.stop == StopReason::end_turn && has_calls) response.stop = StopReason::tool_use;
  } else {
    response.stop = has_calls ? StopReason::tool_use : StopReason::end_turn;
  }

  if (const json::value* model = find(root, "model"); model && model->is_string()) {
    response.model = model->get_string();
  }

  if (const json::value* usage = find(root, "usage")) {
    if (!usage->is_object()) {
      return unreadable("'usage' is " + std::string(kind_of(*usage)) + ", not an object");
    }
    auto input = codec::token_count(usage->get_object(), "prompt_tokens");
    if (!input) return input.error();
    auto output = codec::token_count(usage->get_object(), "completion_tokens");
    if (!output) return output.error();
    response.usage = Usage{input.value(), output.value()};
  }
  return response;
}

std::string describe_error(std::string_view body) { return codec::describe_error_body(body, true); }

}  // namespace sb::agent::openai

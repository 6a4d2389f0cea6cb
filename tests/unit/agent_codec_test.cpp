// The provider codecs (src/agent/anthropic_codec.h, src/agent/openai_codec.h) against
// response bodies shaped after the providers' documented examples (tests/data/providers/,
// see its README), malformed bodies, and round trips of encoded conversations.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/anthropic_codec.h"
#include "agent/codec_support.h"
#include "agent/openai_codec.h"

namespace sb::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const fs::path kSamples = fs::path(__FILE__).parent_path().parent_path() / "data" / "providers";
constexpr std::string_view kUnreadable = "the model provider's answer could not be read: ";

std::string sample(const std::string& name) {
  std::ifstream in(kSamples / name, std::ios::binary);
  EXPECT_TRUE(in) << "missing sample " << (kSamples / name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::vector<ToolCall> calls_of(const ModelResponse& response) {
  std::vector<ToolCall> calls;
  for (const Block& block : response.message.blocks) {
    if (block.kind == Block::Kind::tool_call) calls.push_back(block.call);
  }
  return calls;
}

std::string text_of(const ModelResponse& response) {
  std::string text;
  for (const Block& block : response.message.blocks) {
    if (block.kind == Block::Kind::text) text += block.text;
  }
  return text;
}

ToolSpec weather_tool() {
  return {"get_weather", "The weather in a city",
          json::object{{"type", "object"},
                       {"properties", json::object{{"location", json::object{{"type", "string"}}}}},
                       {"required", json::array{"location"}}}};
}

Message user_text(std::string text) { return {Role::user, {Block::make_text(std::move(text))}}; }

// A conversation with every kind of block: question, text and a call, its result, follow-up.
ModelRequest conversation() {
  ModelRequest request;
  request.system = "You are helpful.";
  request.tools = {weather_tool()};
  request.max_tokens = 1024;
  request.messages = {
      user_text("Weather in Paris?"),
      {Role::assistant,
       {Block::make_text("Checking."),
        Block::make_call({"toolu_1", "get_weather", json::object{{"location", "Paris"}}})}},
      {Role::user, {Block::make_result({"toolu_1", "18 C, sunny", false})}},
      {Role::assistant, {Block::make_text("It is 18 C and sunny.")}},
      user_text("Thanks"),
  };
  return request;
}

void expect_same_blocks(const std::vector<Block>& got, const std::vector<Block>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].kind, want[i].kind) << "block " << i;
    EXPECT_EQ(got[i].text, want[i].text) << "block " << i;
    EXPECT_EQ(got[i].call.id, want[i].call.id) << "block " << i;
    EXPECT_EQ(got[i].call.name, want[i].call.name) << "block " << i;
    EXPECT_EQ(got[i].call.input, want[i].call.input) << "block " << i;
    EXPECT_EQ(got[i].call.input_error, want[i].call.input_error) << "block " << i;
  }
}

// Anthropic: decoding --------------------------------------------------------------------------

TEST(AnthropicCodec, DecodesTextAnswerCountingCacheTokensAsInput) {
  auto response = anthropic::decode(sample("anthropic_text.json"));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->message.role, Role::assistant);
  ASSERT_EQ(response->message.blocks.size(), 1u);
  EXPECT_EQ(response->message.blocks[0].kind, Block::Kind::text);
  EXPECT_EQ(response->message.blocks[0].text, "Hello! How can I help you today?");
  EXPECT_EQ(response->stop, StopReason::end_turn);
  EXPECT_EQ(response->stop_detail, "end_turn");
  EXPECT_EQ(response->model, "claude-sonnet-4-5-20250929");
  EXPECT_EQ(response->usage.input_tokens, 12 + 100 + 2000);
  EXPECT_EQ(response->usage.output_tokens, 9);
}

TEST(AnthropicCodec, DecodesToolUseAfterItsPreface) {
  auto response = anthropic::decode(sample("anthropic_tool_use.json"));
  ASSERT_TRUE(response) << response.error().message;
  ASSERT_EQ(response->message.blocks.size(), 2u);
  EXPECT_EQ(response->message.blocks[0].text,
            "I'll check the current weather in San Francisco for you.");
  const ToolCall& call = response->message.blocks[1].call;
  EXPECT_EQ(response->message.blocks[1].kind, Block::Kind::tool_call);
  EXPECT_EQ(call.id, "toolu_01A09q90qw90lq917835lq9");
  EXPECT_EQ(call.name, "get_weather");
  EXPECT_EQ(call.input, (json::object{{"location", "San Francisco, CA"}, {"unit", "celsius"}}));
  EXPECT_TRUE(call.input_error.empty());
  EXPECT_EQ(response->stop, StopReason::tool_use);
  EXPECT_EQ(response->usage.input_tokens, 384);
  EXPECT_EQ(response->usage.output_tokens, 74);
}

TEST(AnthropicCodec, SkipsThinkingAndKeepsParallelCallsInOrder) {
  auto response = anthropic::decode(sample("anthropic_tool_uses.json"));
  ASSERT_TRUE(response) << response.error().message;
  ASSERT_EQ(response->message.blocks.size(), 3u);
  EXPECT_EQ(response->message.blocks[0].text, "Let me look both up.");
  auto calls = calls_of(*response);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].name, "get_weather");
  EXPECT_EQ(calls[0].id, "toolu_01PQ3ct8c4mWS1Ma2N9Hbh5M");
  EXPECT_EQ(calls[1].name, "get_time");
  EXPECT_EQ(calls[1].input, (json::object{{"timezone", "Europe/Paris"}}));
}

TEST(AnthropicCodec, MaxTokensStopIsReported) {
  auto response = anthropic::decode(sample("anthropic_max_tokens.json"));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->stop, StopReason::max_tokens);
  EXPECT_EQ(text_of(*response), "Here is the first part of a very long");
}

TEST(AnthropicCodec, OtherStopReasonsKeepTheProvidersWord) {
  auto with_stop = [](std::string_view stop) {
    return anthropic::decode(R"({"content": [{"type": "text", "text": "x"}], "stop_reason": ")" +
                             std::string(stop) + R"("})");
  };
  auto refusal = with_stop("refusal");
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->stop, StopReason::other);
  EXPECT_EQ(refusal->stop_detail, "refusal");
  EXPECT_EQ(with_stop("stop_sequence")->stop, StopReason::end_turn);
  EXPECT_EQ(with_stop("pause_turn")->stop, StopReason::other);
  EXPECT_EQ(with_stop("model_context_window_exceeded")->stop, StopReason::max_tokens);
}

TEST(AnthropicCodec, UnknownFieldsAndBlockTypesAreIgnored) {
  auto response = anthropic::decode(R"({
    "type": "message", "content": [
      {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
      {"type": "redacted_thinking", "data": "abc"},
      {"type": "text", "text": "done", "citations": null, "future_field": {"a": 1}}],
    "stop_reason": "end_turn", "container": {"id": "c"}, "brand_new": [1, 2, 3],
    "usage": {"input_tokens": 3, "output_tokens": 1,
              "server_tool_use": {"web_search_requests": 1}}})");
  ASSERT_TRUE(response) << response.error().message;
  ASSERT_EQ(response->message.blocks.size(), 1u);
  EXPECT_EQ(response->message.blocks[0].text, "done");
  EXPECT_EQ(response->usage.input_tokens, 3);
}

TEST(AnthropicCodec, ToolUseWithoutIdGetsAFreshOne) {
  auto response = anthropic::decode(R"({"content": [
      {"type": "tool_use", "name": "a", "input": {}},
      {"type": "tool_use", "id": "", "name": "b", "input": {}}], "stop_reason": "tool_use"})");
  ASSERT_TRUE(response) << response.error().message;
  auto calls = calls_of(*response);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_FALSE(calls[0].id.empty());
  EXPECT_FALSE(calls[1].id.empty());
  EXPECT_NE(calls[0].id, calls[1].id);
}

TEST(AnthropicCodec, ToolUseWhoseInputIsNotAnObjectIsKeptAndMarked) {
  auto response = anthropic::decode(R"({"content": [
      {"type": "tool_use", "id": "toolu_9", "name": "send", "input": "text"}]})");
  ASSERT_TRUE(response) << response.error().message;
  auto calls = calls_of(*response);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].id, "toolu_9");
  EXPECT_TRUE(calls[0].input.empty());
  EXPECT_EQ(calls[0].input_error, "the tool input is a string, not a JSON object");
  EXPECT_EQ(response->stop, StopReason::tool_use);  // no stop_reason: inferred from the calls
}

TEST(AnthropicCodec, RejectsABodyThatIsNotJsonQuotingItsStart) {
  auto response = anthropic::decode(sample("not_json.html"));
  ASSERT_FALSE(response);
  EXPECT_TRUE(starts_with(response.error().message, kUnreadable)) << response.error().message;
  EXPECT_NE(response.error().message.find("502 Bad Gateway"), std::string::npos);
  EXPECT_EQ(response.error().message.find('\n'), std::string::npos);
}

TEST(AnthropicCodec, RejectsAnEmptyBody) {
  auto response = anthropic::decode("");
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message, std::string(kUnreadable) + "the body is empty");
}

TEST(AnthropicCodec, RejectsAnswerWithoutContent) {
  auto response = anthropic::decode(sample("anthropic_missing_content.json"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message, std::string(kUnreadable) + "it has no 'content'");
}

TEST(AnthropicCodec, RejectsContentOfTheWrongType) {
  auto response = anthropic::decode(sample("anthropic_wrong_types.json"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            std::string(kUnreadable) + "'content' is a string, not an array");
}

TEST(AnthropicCodec, RejectsTextBlockWithoutText) {
  auto response = anthropic::decode(sample("anthropic_bad_block.json"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            std::string(kUnreadable) + "the text block content[0] has no text");
}

TEST(AnthropicCodec, RejectsToolUseWithoutName) {
  auto response =
      anthropic::decode(R"({"content": [{"type": "tool_use", "id": "t", "input": {}}]})");
  ASSERT_FALSE(response);
  EXPECT_NE(response.error().message.find("has no name"), std::string::npos);
}

TEST(AnthropicCodec, RejectsTokenCountsThatAreNotNumbers) {
  auto response =
      anthropic::decode(R"({"content": [], "usage": {"input_tokens": "12", "output_tokens": 1}})");
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            std::string(kUnreadable) + "'usage.input_tokens' is a string, not a token count");
  EXPECT_FALSE(anthropic::decode(R"({"content": [], "usage": {"output_tokens": -1}})"));
  EXPECT_FALSE(anthropic::decode(R"({"content": [], "usage": [1]})"));
}

TEST(AnthropicCodec, RejectsAJsonValueThatIsNotAnObject) {
  auto response = anthropic::decode("[1, 2]");
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            std::string(kUnreadable) + "it is an array, not a JSON object");
}

TEST(AnthropicCodec, ErrorBodyDecodesToAnErrorNamingIt) {
  auto response = anthropic::decode(sample("anthropic_error_529.json"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            "the model provider answered with an error: overloaded_error: Overloaded");
}

TEST(AnthropicCodec, DescribesErrorBodiesByTypeAndMessage) {
  EXPECT_EQ(anthropic::describe_error(sample("anthropic_error_401.json")),
            "authentication_error: invalid x-api-key");
  EXPECT_EQ(anthropic::describe_error(""), "");
  EXPECT_EQ(anthropic::describe_error("upstream connect error\r\n"), "upstream connect error  ");
  EXPECT_EQ(anthropic::describe_error(R"({"detail": "Not Found"})"), "Not Found");
}

TEST(AnthropicCodec, DescriptionOfAHugeBodyIsCapped) {
  const std::string huge(1 << 20, 'x');
  const std::string described = anthropic::describe_error(huge);
  EXPECT_LT(described.size(), 600u);
  EXPECT_NE(described.find("(1048576 bytes)"), std::string::npos);

  const std::string huge_message =
      R"({"type": "error", "error": {"type": "api_error", "message": ")" + huge + R"("}})";
  EXPECT_LT(anthropic::describe_error(huge_message).size(), 700u);
}

// Anthropic: encoding --------------------------------------------------------------------------

TEST(AnthropicCodec, EncodesSystemToolsAndEveryKindOfBlock) {
  const json::object body = anthropic::encode(conversation(), "");
  const json::value expected = json::parse(R"({
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": "You are helpful.",
    "tools": [{"name": "get_weather", "description": "The weather in a city",
               "input_schema": {"type": "object",
                                "properties": {"location": {"type": "string"}},
                                "required": ["location"]}}],
    "messages": [
      {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
      {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
         "input": {"location": "Paris"}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C, sunny"}]},
      {"role": "assistant", "content": [{"type": "text", "text": "It is 18 C and sunny."}]},
      {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}]})");
  EXPECT_EQ(json::value(body), expected) << json::serialize(body);
}

TEST(AnthropicCodec, MergesSameRoleMessagesWithToolResultsFirst) {
  ModelRequest request;
  request.messages = {
      user_text("go"),
      {Role::assistant, {Block::make_call({"t1", "a", {}})}},
      {Role::assistant, {Block::make_call({"t2", "b", {}})}},
      user_text("also this"),
      {Role::user,
       {Block::make_result({"t1", "one", false}), Block::make_result({"t2", "boom", true})}},
  };
  const json::object body = anthropic::encode(request, "");
  const json::array& messages = body.at("messages").as_array();
  ASSERT_EQ(messages.size(), 3u) << json::serialize(body);
  EXPECT_EQ(messages[1].at("content").as_array().size(), 2u);
  const json::array& last = messages[2].at("content").as_array();
  ASSERT_EQ(last.size(), 3u);
  EXPECT_EQ(last[0].at("type"), "tool_result");
  EXPECT_EQ(last[0].at("tool_use_id"), "t1");
  EXPECT_FALSE(last[0].as_object().contains("is_error"));
  EXPECT_EQ(last[1].at("tool_use_id"), "t2");
  EXPECT_EQ(last[1].at("is_error"), true);
  EXPECT_EQ(last[2].at("text"), "also this");
}

TEST(AnthropicCodec, DropsEmptyTextAndMessagesLeftEmpty) {
  ModelRequest request;
  request.messages = {user_text("hi"),
                      {Role::assistant, {Block::make_text("")}},
                      user_text("again"),
                      {Role::user, {Block::make_result({"t", "", false})}}};
  const json::object body = anthropic::encode(request, "");
  const json::array& messages = body.at("messages").as_array();
  ASSERT_EQ(messages.size(), 1u) << json::serialize(body);
  const json::array& content = messages[0].at("content").as_array();
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[0].at("type"), "tool_result");
  EXPECT_FALSE(content[0].as_object().contains("content"));  // the API rejects empty text
  EXPECT_EQ(content[1].at("text"), "hi");
  EXPECT_EQ(content[2].at("text"), "again");
  EXPECT_FALSE(body.contains("system"));
  EXPECT_FALSE(body.contains("tools"));
}

TEST(AnthropicCodec, ChoosesTheRequestsModelThenTheDefaultThenItsOwn) {
  ModelRequest request;
  request.messages = {user_text("hi")};
  EXPECT_EQ(anthropic::encode(request, "").at("model"), "claude-sonnet-4-5");
  EXPECT_EQ(anthropic::encode(request, "claude-x").at("model"), "claude-x");
  request.model = "claude-y";
  EXPECT_EQ(anthropic::encode(request, "claude-x").at("model"), "claude-y");
}

TEST(AnthropicCodec, ToolWithoutSchemaGetsAnObjectSchema) {
  ModelRequest request;
  request.tools = {{"ping", "Pings", {}}};
  EXPECT_EQ(anthropic::encode(request, "").at("tools").at(0).at("input_schema"),
            json::parse(R"({"type": "object"})"));
}

TEST(AnthropicCodec, ReplacesInvalidUtf8SoTheBodyStaysValidJson) {
  ModelRequest request;
  request.messages = {{Role::user,
                       {Block::make_result({"t",
                                            "bin\xff\xfe"
                                            "ary",
                                            false})}}};
  const std::string text = json::serialize(anthropic::encode(request, ""));
  boost::system::error_code ec;
  const json::value reparsed = json::parse(text, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(reparsed.at("messages").at(0).at("content").at(0).at("content"),
            "bin\xEF\xBF\xBD\xEF\xBF\xBD"
            "ary");
}

TEST(AnthropicCodec, AssistantTurnRoundTripsThroughEncodeAndDecode) {
  const ModelRequest request = conversation();
  const json::object body = anthropic::encode(request, "");
  json::object response{{"type", "message"},
                        {"role", "assistant"},
                        {"content", body.at("messages").at(1).at("content")},
                        {"stop_reason", "tool_use"}};
  auto decoded = anthropic::decode(json::serialize(response));
  ASSERT_TRUE(decoded) << decoded.error().message;
  expect_same_blocks(decoded->message.blocks, request.messages[1].blocks);
}

// OpenAI: decoding -----------------------------------------------------------------------------

TEST(OpenAiCodec, DecodesTextAnswer) {
  auto response = openai::decode(sample("openai_text.json"));
  ASSERT_TRUE(response) << response.error().message;
  ASSERT_EQ(response->message.blocks.size(), 1u);
  EXPECT_EQ(response->message.blocks[0].text, "Hello! How can I assist you today?");
  EXPECT_EQ(response->stop, StopReason::end_turn);
  EXPECT_EQ(response->stop_detail, "stop");
  EXPECT_EQ(response->model, "gpt-4o-mini-2024-07-18");
  EXPECT_EQ(response->usage.input_tokens, 19);
  EXPECT_EQ(response->usage.output_tokens, 10);
}

TEST(OpenAiCodec, DecodesToolCallParsingItsArgumentString) {
  auto response = openai::decode(sample("openai_tool_call.json"));
  ASSERT_TRUE(response) << response.error().message;
  ASSERT_EQ(response->message.blocks.size(), 1u);  // content null: no text block
  const ToolCall& call = response->message.blocks[0].call;
  EXPECT_EQ(call.id, "call_abc123");
  EXPECT_EQ(call.name, "get_current_weather");
  EXPECT_EQ(call.input, (json::object{{"location", "Boston, MA"}}));
  EXPECT_TRUE(call.input_error.empty());
  EXPECT_EQ(response->stop, StopReason::tool_use);
}

TEST(OpenAiCodec, DecodesParallelCallsAfterTextAndNamesTheOneWithoutId) {
  auto response = openai::decode(sample("openai_tool_calls.json"));
  ASSERT_TRUE(response) << response.error().message;
  ASSERT_EQ(response->message.blocks.size(), 3u);
  EXPECT_EQ(response->message.blocks[0].text, "Checking both cities.");
  auto calls = calls_of(*response);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].id, "call_Paris01");
  EXPECT_EQ(calls[1].input, (json::object{{"location", "Tokyo"}}));
  EXPECT_FALSE(calls[1].id.empty());
  EXPECT_NE(calls[1].id, calls[0].id);
}

TEST(OpenAiCodec, ArgumentsThatAreNotJsonKeepTheCallMarked) {
  auto response = openai::decode(sample("openai_bad_arguments.json"));
  ASSERT_TRUE(response) << response.error().message;
  auto calls = calls_of(*response);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].id, "call_broken");
  EXPECT_EQ(calls[0].name, "send_message");
  EXPECT_TRUE(calls[0].input.empty());
  EXPECT_TRUE(starts_with(calls[0].input_error, "the arguments are not valid JSON"))
      << calls[0].input_error;
  EXPECT_NE(calls[0].input_error.find(R"({"text": "hello)"), std::string::npos);
  EXPECT_EQ(response->stop, StopReason::tool_use);
}

TEST(OpenAiCodec, ArgumentsOfOtherShapes) {
  auto with_arguments = [](std::string_view arguments) {
    auto response = openai::decode(
        R"({"choices": [{"message": {"tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": )" +
        std::string(arguments) + "}}]}}]}");
    EXPECT_TRUE(response) << response.error().message;
    return calls_of(response.value()).at(0);
  };
  const ToolCall empty = with_arguments(R"("")");
  EXPECT_TRUE(empty.input.empty());
  EXPECT_TRUE(empty.input_error.empty());
  EXPECT_EQ(with_arguments(R"("[1]")").input_error,
            "the arguments are an array, not a JSON object");
  EXPECT_EQ(with_arguments(R"({"a": 1})").input, (json::object{{"a", 1}}));
  EXPECT_EQ(with_arguments("7").input_error, "the arguments are a number, not a JSON string");
}

TEST(OpenAiCodec, LengthStopIsMaxTokens) {
  auto response = openai::decode(sample("openai_length.json"));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->stop, StopReason::max_tokens);
  EXPECT_EQ(response->stop_detail, "length");
}

TEST(OpenAiCodec, FinishReasonsMapToTheLoopsStops) {
  auto with_finish = [](std::string_view finish, bool call) {
    std::string message = call ? R"({"tool_calls": [{"id": "c", "function": {"name": "f"}}]})"
                               : R"({"content": "x"})";
    return openai::decode(R"({"choices": [{"message": )" + message + R"(, "finish_reason": ")" +
                          std::string(finish) + R"("}]})");
  };
  auto filtered = with_finish("content_filter", false);
  ASSERT_TRUE(filtered);
  EXPECT_EQ(filtered->stop, StopReason::other);
  EXPECT_EQ(filtered->stop_detail, "content_filter");
  EXPECT_EQ(with_finish("tool_calls", true)->stop, StopReason::tool_use);
  // Some compatible servers say "stop" even when the message carries calls.
  EXPECT_EQ(with_finish("stop", true)->stop, StopReason::tool_use);
  EXPECT_EQ(with_finish("stop", false)->stop, StopReason::end_turn);
}

TEST(OpenAiCodec, ContentAsListOfPartsAndUnknownFieldsAreAccepted) {
  auto response = openai::decode(R"({"choices": [{"message": {"role": "assistant",
      "content": [{"type": "text", "text": "Hel"}, {"type": "image_url"},
                  {"type": "text", "text": "lo"}],
      "reasoning_content": "hmm", "audio": null}, "finish_reason": "stop", "extra": 1}],
      "brand_new": {"x": true}})");
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(text_of(*response), "Hello");
  EXPECT_EQ(response->usage.input_tokens, 0);  // no usage: zero
}

TEST(OpenAiCodec, RefusalBecomesTheText) {
  auto response = openai::decode(
      R"({"choices": [{"message": {"content": null, "refusal": "I can't help with that."},
          "finish_reason": "stop"}]})");
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(text_of(*response), "I can't help with that.");
}

TEST(OpenAiCodec, RejectsABodyThatIsNotJson) {
  auto response = openai::decode(sample("not_json.html"));
  ASSERT_FALSE(response);
  EXPECT_TRUE(starts_with(response.error().message, kUnreadable)) << response.error().message;
}

TEST(OpenAiCodec, RejectsAnswerWithoutChoices) {
  auto response = openai::decode(sample("openai_missing_choices.json"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message, std::string(kUnreadable) + "it has no 'choices'");
  auto empty = openai::decode(R"({"choices": []})");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, std::string(kUnreadable) + "'choices' is empty");
}

TEST(OpenAiCodec, RejectsMessageOfTheWrongType) {
  auto response = openai::decode(sample("openai_wrong_types.json"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            std::string(kUnreadable) + "'choices[0].message' is a string, not an object");
  EXPECT_FALSE(openai::decode(R"({"choices": [{"message": {"content": 5}}]})"));
  EXPECT_FALSE(openai::decode(R"({"choices": [{"message": {"tool_calls": {}}}]})"));
  EXPECT_FALSE(openai::decode(R"({"choices": [{"message": {}, "finish_reason": 1}]})"));
  EXPECT_FALSE(
      openai::decode(R"({"choices": [{"message": {}}], "usage": {"prompt_tokens": 1.5}})"));
}

TEST(OpenAiCodec, RejectsToolCallWithoutFunctionName) {
  auto response = openai::decode(
      R"({"choices": [{"message": {"tool_calls": [{"id": "c", "function": {}}]}}]})");
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            std::string(kUnreadable) + "the tool call tool_calls[0] has no name");
}

TEST(OpenAiCodec, ErrorBodyDecodesToAnErrorNamingIt) {
  auto response = openai::decode(sample("openai_error_429.json"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            "the model provider answered with an error: insufficient_quota: You exceeded your "
            "current quota, please check your plan and billing details.");
}

TEST(OpenAiCodec, DescribesErrorBodiesByCodeAndMessage) {
  EXPECT_EQ(openai::describe_error(sample("openai_error_401.json")),
            "invalid_api_key: Incorrect API key provided: sk-abc. You can find your API key at "
            "https://platform.openai.com/account/api-keys.");
  EXPECT_EQ(openai::describe_error(
                R"({"error": {"message": "m", "type": "server_error", "code": null}})"),
            "server_error: m");
  EXPECT_EQ(openai::describe_error(R"({"error": "model not loaded"})"), "model not loaded");
}

// OpenAI: encoding -----------------------------------------------------------------------------

TEST(OpenAiCodec, EncodesSystemFirstToolsCallsAndResults) {
  ModelRequest request = conversation();
  request.model = "gpt-test";
  const json::object body = openai::encode(request, "");
  const json::value expected = json::parse(R"({
    "model": "gpt-test",
    "max_tokens": 1024,
    "stream": false,
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "toolu_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C, sunny"},
      {"role": "assistant", "content": "It is 18 C and sunny."},
      {"role": "user", "content": "Thanks"}],
    "tools": [{"type": "function", "function": {
      "name": "get_weather", "description": "The weather in a city",
      "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                     "required": ["location"]}}}]})");
  EXPECT_EQ(json::value(body), expected) << json::serialize(body);
}

TEST(OpenAiCodec, EachToolResultIsItsOwnMessageBeforeTheUsersText) {
  ModelRequest request;
  request.messages = {
      user_text("go"),
      {Role::assistant, {Block::make_call({"c1", "a", {}}), Block::make_call({"c2", "b", {}})}},
      user_text("and hurry"),
      {Role::user,
       {Block::make_result({"c1", "fine", false}),
        Block::make_result({"c2", "no such file", true})}},
  };
  const json::object body = openai::encode(request, "");
  const json::array& messages = body.at("messages").as_array();
  ASSERT_EQ(messages.size(), 5u) << json::serialize(body);
  EXPECT_TRUE(messages[1].at("content").is_null());
  EXPECT_EQ(messages[1].at("tool_calls").as_array().size(), 2u);
  EXPECT_EQ(messages[1].at("tool_calls").at(0).at("function").at("arguments"), "{}");
  EXPECT_EQ(messages[2],
            json::parse(R"({"role": "tool", "tool_call_id": "c1", "content": "fine"})"));
  EXPECT_EQ(messages[3].at("content"), "Error: no such file");
  EXPECT_EQ(messages[4], json::parse(R"({"role": "user", "content": "and hurry"})"));
  EXPECT_EQ(body.at("model"), "gpt-4o-mini");
  EXPECT_FALSE(body.contains("tools"));
}

TEST(OpenAiCodec, TextBlocksOfOneTurnAreJoined) {
  ModelRequest request;
  request.messages = {user_text("one"), user_text("two")};
  const json::object body = openai::encode(request, "local-model");
  EXPECT_EQ(body.at("model"), "local-model");
  ASSERT_EQ(body.at("messages").as_array().size(), 1u);
  EXPECT_EQ(body.at("messages").at(0).at("content"), "one\n\ntwo");
}

TEST(OpenAiCodec, AssistantTurnRoundTripsThroughEncodeAndDecode) {
  ModelRequest request = conversation();
  const json::object body = openai::encode(request, "");
  json::object response{{"choices", json::array{json::object{{"message", body.at("messages").at(2)},
                                                             {"finish_reason", "tool_calls"}}}}};
  auto decoded = openai::decode(json::serialize(response));
  ASSERT_TRUE(decoded) << decoded.error().message;
  expect_same_blocks(decoded->message.blocks, request.messages[1].blocks);
  EXPECT_EQ(decoded->stop, StopReason::tool_use);
}

// Shared helpers ---------------------------------------------------------------------------------

TEST(CodecSupport, ExcerptCutsOnACharacterBoundary) {
  const std::string text =
      "ab\xC3\xA9"
      "cd";  // "abécd"
  EXPECT_EQ(codec::excerpt(text, 3), "ab… (6 bytes)");
  EXPECT_EQ(codec::excerpt(text, 4), "ab\xC3\xA9… (6 bytes)");
  EXPECT_EQ(codec::excerpt(text, 6), text);
  EXPECT_EQ(codec::excerpt("a\tb\nc"), "a b c");
}

}  // namespace
}  // namespace sb::agent

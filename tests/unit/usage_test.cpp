#include "host/usage.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb::host {
namespace {

// Feeds `body` in pieces of `step` bytes (1 splits every CRLF and every JSON token).
std::optional<TokenUsage> scan(ModelProvider provider, BodyFormat format, std::string_view body,
                               std::size_t step, UsageScanner* out = nullptr) {
  UsageScanner own(provider, format);
  UsageScanner& scanner = out != nullptr ? *out : own;
  for (std::size_t i = 0; i < body.size(); i += step) scanner.feed(body.substr(i, step));
  return scanner.finish();
}

const std::vector<std::size_t> kSteps = {1, 2, 3, 7, 64, 100000};

const std::string kAnthropicJson = R"({
  "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
  "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
  "usage": {"input_tokens": 12, "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000, "output_tokens": 34}
})";

// As Anthropic sends it: CRLF line ends, event lines, ping, cumulative message_delta usage.
const std::string kAnthropicSse =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-haiku-4-5\",\"usage\":{"
    "\"input_tokens\":25,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\r\n"
    "\r\n"
    "event: ping\r\n"
    "data: {\"type\": \"ping\"}\r\n"
    "\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"usage: {\\\"output_tokens\\\": 999}\"}}\r\n"
    "\r\n"
    "event: message_delta\r\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{"
    "\"output_tokens\":7}}\r\n"
    "\r\n"
    "event: message_delta\r\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{"
    "\"output_tokens\":15}}\r\n"
    "\r\n"
    "event: message_stop\r\n"
    "data: {\"type\":\"message_stop\"}\r\n"
    "\r\n";

const std::string kOpenAiJson = R"({"id":"chatcmpl-1","object":"chat.completion",
  "model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},
  "finish_reason":"stop"}],"usage":{"prompt_tokens":41,"completion_tokens":9,"total_tokens":50,
  "prompt_tokens_details":{"cached_tokens":32}}})";

const std::string kOpenAiSse =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],"
    "\"usage\":null}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":18,\"completion_tokens\":3,"
    "\"total_tokens\":21}}\n\n"
    "data: [DONE]\n\n";

TEST(UsageScanner, AnthropicJsonCountsCacheTokensAsInputAtAnySplit) {
  for (std::size_t step : kSteps) {
    auto usage = scan(ModelProvider::anthropic, BodyFormat::json, kAnthropicJson, step);
    ASSERT_TRUE(usage) << "step " << step;
    EXPECT_EQ(usage->input_tokens, 1112);
    EXPECT_EQ(usage->output_tokens, 34);
    EXPECT_EQ(usage->model, "claude-sonnet-4-5");
  }
}

TEST(UsageScanner, AnthropicStreamTakesStartInputAndLastDeltaOutputAtAnySplit) {
  for (std::size_t step : kSteps) {
    auto usage = scan(ModelProvider::anthropic, BodyFormat::sse, kAnthropicSse, step);
    ASSERT_TRUE(usage) << "step " << step;
    EXPECT_EQ(usage->input_tokens, 30);
    EXPECT_EQ(usage->output_tokens, 15) << "step " << step;
    EXPECT_EQ(usage->model, "claude-haiku-4-5");
  }
}

TEST(UsageScanner, AnthropicStreamWithBareLfAndCrLineEnds) {
  std::string lf, cr;
  for (char c : kAnthropicSse) {
    if (c != '\r') lf += c;
    if (c != '\n') cr += c;
  }
  for (const std::string& body : {lf, cr}) {
    auto usage = scan(ModelProvider::anthropic, BodyFormat::sse, body, 5);
    ASSERT_TRUE(usage);
    EXPECT_EQ(usage->input_tokens, 30);
    EXPECT_EQ(usage->output_tokens, 15);
  }
}

TEST(UsageScanner, AnthropicDeltaRepeatingInputCountsReplacesThem) {
  const std::string body =
      "data: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{"
      "\"input_tokens\":10,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\n\n"
      "data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":11,\"output_tokens\":9}}\n\n";
  auto usage = scan(ModelProvider::anthropic, BodyFormat::sse, body, 3);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->input_tokens, 15);  // 11 replaces 10; the cache count stays
  EXPECT_EQ(usage->output_tokens, 9);
}

TEST(UsageScanner, OpenAiJsonAtAnySplit) {
  for (std::size_t step : kSteps) {
    auto usage = scan(ModelProvider::openai, BodyFormat::json, kOpenAiJson, step);
    ASSERT_TRUE(usage) << "step " << step;
    EXPECT_EQ(usage->input_tokens, 41);  // cached tokens are already inside prompt_tokens
    EXPECT_EQ(usage->output_tokens, 9);
    EXPECT_EQ(usage->model, "gpt-4o-mini");
  }
}

TEST(UsageScanner, OpenAiStreamTakesTheUsageChunkAtAnySplit) {
  for (std::size_t step : kSteps) {
    auto usage = scan(ModelProvider::openai, BodyFormat::sse, kOpenAiSse, step);
    ASSERT_TRUE(usage) << "step " << step;
    EXPECT_EQ(usage->input_tokens, 18);
    EXPECT_EQ(usage->output_tokens, 3);
    EXPECT_EQ(usage->model, "gpt-4o-mini");
  }
}

TEST(UsageScanner, OpenAiStreamWithoutIncludeUsageHasNoUsageAndSaysWhy) {
  std::string body = kOpenAiSse;
  body.erase(body.find("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\","
                       "\"model\":\"gpt-4o-mini\",\"choices\":[],"),
             std::string::npos);
  body += "data: [DONE]\n\n";
  UsageScanner scanner(ModelProvider::openai, BodyFormat::sse);
  EXPECT_FALSE(scan(ModelProvider::openai, BodyFormat::sse, body, 4, &scanner));
  EXPECT_NE(scanner.note().find("include_usage"), std::string::npos);
}

TEST(UsageScanner, OpenAiStreamIgnoresEventsAfterDone) {
  std::string body =
      kOpenAiSse + "data: {\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":1000}}\n\n";
  auto usage = scan(ModelProvider::openai, BodyFormat::sse, body, 9);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->input_tokens, 18);
}

TEST(UsageScanner, StreamWithoutFinalBlankLineStillCountsLastEvent) {
  std::string body =
      "data: {\"model\":\"x\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}";
  auto usage = scan(ModelProvider::openai, BodyFormat::sse, body, 10);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->output_tokens, 6);
}

TEST(UsageScanner, MultiLineDataIsJoinedIntoOneEvent) {
  std::string body =
      "data: {\"type\":\"message_start\",\n"
      "data: \"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n";
  auto usage = scan(ModelProvider::anthropic, BodyFormat::sse, body, 2);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->input_tokens, 3);
}

TEST(UsageScanner, MalformedJsonBodyGivesNoUsageAndANote) {
  for (std::string body :
       {std::string("{\"usage\": {\"input_tokens\": 3"), std::string("[1,2]"), std::string(""),
        std::string("\xff\xfe garbage"), std::string(R"({"usage": {"input_tokens": "many"}})"),
        std::string(R"({"usage": "none"})")}) {
    UsageScanner scanner(ModelProvider::anthropic, BodyFormat::json);
    scanner.feed(body);
    EXPECT_FALSE(scanner.finish()) << body;
    EXPECT_FALSE(scanner.note().empty()) << body;
  }
}

TEST(UsageScanner, NegativeOrWrongTypedCountsAreIgnored) {
  auto usage = scan(ModelProvider::openai, BodyFormat::json,
                    R"({"usage":{"prompt_tokens":-5,"completion_tokens":7.0}})", 100);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->input_tokens, 0);
  EXPECT_EQ(usage->output_tokens, 7);
}

TEST(UsageScanner, MalformedStreamEventsAreSkippedAndCounted) {
  std::string body = "data: {not json\n\ndata: [DONE\n\n: a comment\nevent: x\n\n" + kOpenAiSse;
  UsageScanner scanner(ModelProvider::openai, BodyFormat::sse);
  auto usage = scan(ModelProvider::openai, BodyFormat::sse, body, 3, &scanner);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->input_tokens, 18);
  EXPECT_NE(scanner.note().find("2 SSE events not JSON"), std::string::npos) << scanner.note();
}

TEST(UsageScanner, JsonBodyOverTheCapIsNotParsed) {
  UsageScanner scanner(ModelProvider::anthropic, BodyFormat::json, /*max_json_bytes=*/64);
  std::string body = kAnthropicJson;  // longer than 64 bytes
  for (std::size_t i = 0; i < body.size(); i += 10)
    scanner.feed(std::string_view(body).substr(i, 10));
  EXPECT_FALSE(scanner.finish());
  EXPECT_NE(scanner.note().find("over 64 bytes"), std::string::npos);
}

TEST(UsageScanner, OversizedStreamLinesAreSkippedAndTheRestStillCounts) {
  UsageScanner scanner(ModelProvider::anthropic, BodyFormat::sse,
                       UsageScanner::kDefaultMaxJsonBytes,
                       /*max_line_bytes=*/400);
  std::string huge = "data: {\"type\":\"content_block_delta\",\"text\":\"" +
                     std::string(5000, 'x') + "\"}\r\n\r\n";
  std::string body = huge + kAnthropicSse + huge;
  auto usage = scan(ModelProvider::anthropic, BodyFormat::sse, body, 13, &scanner);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->output_tokens, 15);
  EXPECT_NE(scanner.note().find("2 SSE events over 400 bytes skipped"), std::string::npos)
      << scanner.note();
}

TEST(UsageScanner, ManySmallDataLinesCannotGrowOneEventPastTheCap) {
  UsageScanner scanner(ModelProvider::openai, BodyFormat::sse, UsageScanner::kDefaultMaxJsonBytes,
                       /*max_line_bytes=*/400);
  for (int i = 0; i < 1000; ++i) scanner.feed("data: 0123456789\n");
  scanner.feed("\n");
  scanner.feed(kOpenAiSse);
  auto usage = scanner.finish();
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->output_tokens, 3);
  EXPECT_NE(scanner.note().find("1 SSE events over 400 bytes"), std::string::npos);
}

TEST(UsageScanner, ErrorBodiesHaveNoUsage) {
  UsageScanner scanner(ModelProvider::anthropic, BodyFormat::json);
  scanner.feed(R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  EXPECT_FALSE(scanner.finish());
  EXPECT_EQ(scanner.note(), "no usage in the response");
}

}  // namespace
}  // namespace sb::host

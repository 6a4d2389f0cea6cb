#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/auth.h"
#include "api/message_json.h"
#include "common/metrics.h"

namespace sb::api {
namespace {
namespace json = boost::json;

Result<NewMessage> from(const char* text) {
  return new_message_from_json(json::parse(text).as_object());
}

TEST(MessageJson, RequiresSourceAndContentAndNamesTheMissingField) {
  auto no_source = from(R"({"content":"c"})");
  ASSERT_FALSE(no_source);
  EXPECT_NE(no_source.error().message.find("'source'"), std::string::npos);
  auto no_content = from(R"({"source":"s"})");
  ASSERT_FALSE(no_content);
  EXPECT_NE(no_content.error().message.find("'content'"), std::string::npos);
  EXPECT_FALSE(from(R"({"source":"","content":"c"})"));
}

TEST(MessageJson, NullOptionalFieldsCountAsAbsentAndUnknownFieldsAreIgnored) {
  auto m = from(R"({"source":"s","content":"c","subject":null,"chat":null,"extra":[1]})");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_FALSE(m->subject);
  EXPECT_FALSE(m->chat);
}

TEST(MessageJson, WrongTypesAreRefused) {
  EXPECT_FALSE(from(R"({"source":"s","content":"c","subject":3})"));
  EXPECT_FALSE(from(R"({"source":"s","content":"c","metadata":"x"})"));
  EXPECT_FALSE(from(R"({"source":1,"content":"c"})"));
}

TEST(MessageJson, TimestampIsNormalisedToUtcWithZ) {
  auto m = from(R"({"source":"s","content":"c","timestamp":"2026-01-02T03:04:05+01:00"})");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->timestamp, "2026-01-02T02:04:05.000Z");
}

TEST(MessageJson, IdempotencyKeyBecomesANamespacedExternalId) {
  auto m = from(R"({"source":"s","content":"c","idempotency_key":"abc"})");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->external_id, "api:abc");
}

TEST(MessageJson, OutputCarriesTheSeedFieldNames) {
  Message m;
  m.id = 7;
  m.source = "email";
  m.content = "hi";
  m.timestamp = "2026-01-01T00:00:00.000Z";
  m.status = MessageStatus::read;
  m.metadata_json = R"({"a":true})";
  std::string text;
  append_message_json(text, m);
  auto o = json::parse(text).as_object();
  for (auto key : {"id", "timestamp", "source", "subject", "content", "read"})
    EXPECT_TRUE(o.contains(key)) << key;
  EXPECT_EQ(o.at("read"), true);
  EXPECT_TRUE(o.at("subject").is_null());
  EXPECT_EQ(o.at("metadata").at("a"), true);
}

// Issue 16: 1e400 in a message's metadata was parsed as infinity, serialized as "Infinity"
// and refused by the store with an exception: a 500.
TEST(RequestJson, ANumberBeyondADoubleIsMalformedWhereverItIs) {
  for (const char* text : {R"({"metadata":{"n":1e400}})", R"({"a":[1,2,[-1e400]]})", "1e999",
                           R"({"m":{"deep":{"deeper":[{"x":-2e308}]}}})"}) {
    auto parsed = parse_request_json(text);
    ASSERT_FALSE(parsed) << text;
    EXPECT_NE(parsed.error().message.find("malformed JSON: a number is out of range"),
              std::string::npos)
        << parsed.error().message;
  }
}

TEST(RequestJson, LargeButFiniteNumbersAndTinyOnesAreKept) {
  auto parsed =
      parse_request_json(R"({"big":1.7e308,"int":123456789012345678901234567890,"tiny":1e-400})");
  ASSERT_TRUE(parsed) << parsed.error().message;
  const std::string text = json::serialize(*parsed);
  EXPECT_FALSE(json::parse(text).as_object().empty()) << text;  // what is stored reads back
}

TEST(RequestJson, TextThatIsNotJsonIsMalformed) {
  auto parsed = parse_request_json("{\"a\":");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().message.rfind("malformed JSON: ", 0), 0u);
  EXPECT_FALSE(parse_request_json(std::string(100, '[') + std::string(100, ']')));
}

TEST(BearerToken, MatchesOnlyTheExactTokenWithTheBearerScheme) {
  EXPECT_TRUE(bearer_token_matches("Bearer abc", "abc"));
  EXPECT_TRUE(bearer_token_matches("bearer abc", "abc"));
  EXPECT_FALSE(bearer_token_matches("Bearer abcd", "abc"));
  EXPECT_FALSE(bearer_token_matches("Bearer ab", "abc"));
  EXPECT_FALSE(bearer_token_matches("Basic abc", "abc"));
  EXPECT_FALSE(bearer_token_matches("", "abc"));
  EXPECT_FALSE(bearer_token_matches("Bearer ", ""));
}

TEST(Metrics, RenderFollowsThePrometheusTextFormat) {
  MetricsRegistry registry;
  registry.counter("x_total", "Things.").inc(3);
  auto& family = registry.counter_family("req_total", "Requests.", {"route", "status"});
  family.with({"/a\"b", "200"}).inc();
  auto& h = registry.histogram("lat_seconds", "Latency.", {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5.0);
  auto text = registry.render();
  EXPECT_NE(text.find("# TYPE x_total counter\nx_total 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(req_total{route="/a\"b",status="200"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_count 3\n"), std::string::npos) << text;
}

TEST(MessageJson, ListIsAValidJsonArrayEvenForControlCharactersAndBrokenUtf8) {
  Message a;
  a.id = 1;
  a.content = std::string("tab\t quote\" nul") + '\0' + " bell\a é \xff\xc3";
  a.subject = "line\nbreak";
  Message b;
  b.id = 2;
  b.content = "😀";
  auto parsed = json::parse(messages_json({a, b})).as_array();
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(json::value_to<std::string>(parsed[0].at("content")),
            std::string("tab\t quote\" nul") + '\0' + " bell\a é \xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(parsed[0].at("subject"), "line\nbreak");
  EXPECT_EQ(parsed[1].at("content"), "😀");
  EXPECT_EQ(messages_json({}), "[]");
}

}  // namespace
}  // namespace sb::api

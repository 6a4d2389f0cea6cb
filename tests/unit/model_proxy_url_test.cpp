#include <gtest/gtest.h>

#include "host/model_proxy.h"

namespace sb::host {
namespace {

TEST(ModelProxyUrl, BaseUrlGivesSchemeHostPortAndPrefix) {
  auto anthropic = parse_base_url("https://api.anthropic.com");
  ASSERT_TRUE(anthropic);
  EXPECT_TRUE(anthropic->tls);
  EXPECT_EQ(anthropic->host, "api.anthropic.com");
  EXPECT_EQ(anthropic->port, 443);
  EXPECT_EQ(anthropic->prefix, "");

  auto local = parse_base_url("http://127.0.0.1:8080/llm/v1/");
  ASSERT_TRUE(local);
  EXPECT_FALSE(local->tls);
  EXPECT_EQ(local->port, 8080);
  EXPECT_EQ(local->prefix, "/llm/v1");

  auto v6 = parse_base_url("http://[::1]:9000");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(parse_base_url("http://localhost")->port, 80);
}

TEST(ModelProxyUrl, BadBaseUrlsSayWhatIsWrong) {
  EXPECT_NE(parse_base_url("api.anthropic.com").error().message.find("not a URL"),
            std::string::npos);
  EXPECT_NE(parse_base_url("ftp://x.org").error().message.find("http or https"), std::string::npos);
  EXPECT_NE(parse_base_url("https://user:key@x.org").error().message.find("user info"),
            std::string::npos);
  EXPECT_NE(parse_base_url("https://x.org/?a=b").error().message.find("query"), std::string::npos);
  EXPECT_NE(parse_base_url("http://x.org:0").error().message.find("port"), std::string::npos);
  EXPECT_FALSE(parse_base_url("http://x.org:99999"));
  // Boost.URL takes "x" for the path here (found by fuzzing the HTTP client's redirects).
  EXPECT_NE(parse_base_url("http://x.org:80x").error().message.find("invalid host or port"),
            std::string::npos);
  EXPECT_FALSE(parse_base_url("http://[::1]v1"));
}

TEST(ModelProxyUrl, TargetIsAppendedToThePrefixSharingAV1Segment) {
  EXPECT_EQ(upstream_target("", "/v1/messages"), "/v1/messages");
  EXPECT_EQ(upstream_target("/v1", "/v1/messages"), "/v1/messages");
  EXPECT_EQ(upstream_target("/api/v1", "/v1/chat/completions"), "/api/v1/chat/completions");
  EXPECT_EQ(upstream_target("/api", "/v1/chat/completions"), "/api/v1/chat/completions");
  EXPECT_EQ(upstream_target("/v1", "/v1?x=1"), "/v1?x=1");
  EXPECT_EQ(upstream_target("/v1", "/v10/models"), "/v1/v10/models");
  EXPECT_EQ(upstream_target("/v1", "/models"), "/v1/models");
}

using Verdict = RequestCheck::Verdict;
constexpr auto kAnthropic = ModelProvider::anthropic;
constexpr auto kOpenAi = ModelProvider::openai;

Verdict verdict(ModelProvider provider, std::string_view method, std::string_view target) {
  return check_request(provider, method, target).verdict;
}

TEST(ModelProxyRequestCheck, AnthropicApiPathsAreForwarded) {
  EXPECT_EQ(verdict(kAnthropic, "POST", "/v1/messages"), Verdict::forward);
  EXPECT_EQ(verdict(kAnthropic, "POST", "/v1/messages/count_tokens"), Verdict::forward);
  EXPECT_EQ(verdict(kAnthropic, "GET", "/v1/models"), Verdict::forward);
  EXPECT_EQ(verdict(kAnthropic, "GET", "/v1/models/claude-sonnet-4-5"), Verdict::forward);
  EXPECT_EQ(verdict(kAnthropic, "GET", "/v1/models/claude-3-5-sonnet@20240620"), Verdict::forward);
}

TEST(ModelProxyRequestCheck, OpenAiCompatiblePathsAreForwarded) {
  EXPECT_EQ(verdict(kOpenAi, "POST", "/v1/chat/completions"), Verdict::forward);
  EXPECT_EQ(verdict(kOpenAi, "POST", "/v1/completions"), Verdict::forward);
  EXPECT_EQ(verdict(kOpenAi, "POST", "/v1/embeddings"), Verdict::forward);
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models"), Verdict::forward);
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models/gpt-4o-mini"), Verdict::forward);
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models/llama3.1:8b"), Verdict::forward);  // Ollama
}

TEST(ModelProxyRequestCheck, OneProvidersPathsAreNotFoundForTheOther) {
  EXPECT_EQ(verdict(kOpenAi, "POST", "/v1/messages"), Verdict::not_found);
  EXPECT_EQ(verdict(kOpenAi, "POST", "/v1/messages/count_tokens"), Verdict::not_found);
  EXPECT_EQ(verdict(kAnthropic, "POST", "/v1/chat/completions"), Verdict::not_found);
  EXPECT_EQ(verdict(kAnthropic, "POST", "/v1/embeddings"), Verdict::not_found);
}

TEST(ModelProxyRequestCheck, UnlistedPathsAreNotFoundAndTheMessageListsTheForwardedOnes) {
  for (std::string_view target :
       {"/", "/v1", "/team-b/v1/messages", "/v1/messages/batches", "/v1/files", "/v2/messages",
        "/V1/messages", "/v1/models/a/b", "/v1/models/%41", "/v1/messages;x"}) {
    EXPECT_EQ(verdict(kAnthropic, "POST", target), Verdict::not_found) << target;
  }
  const auto check = check_request(kAnthropic, "POST", "/v1/files");
  EXPECT_NE(check.reason.find("POST /v1/files"), std::string::npos) << check.reason;
  EXPECT_NE(check.reason.find("POST /v1/messages, POST /v1/messages/count_tokens"),
            std::string::npos)
      << check.reason;
}

TEST(ModelProxyRequestCheck, ModelIdMustBeOnePlainSegment) {
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models/openai/gpt-4o"), Verdict::not_found);
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models/.hidden"), Verdict::not_found);
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models/..."), Verdict::not_found);
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models/a%2eb"), Verdict::not_found);
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models/" + std::string(257, 'a')), Verdict::not_found);
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models/" + std::string(256, 'a')), Verdict::forward);
}

TEST(ModelProxyRequestCheck, MethodsOtherThanGetAndPostAreRefusedWith405) {
  for (std::string_view method :
       {"CONNECT", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "BREW", "post"}) {
    const auto check = check_request(kAnthropic, method, "/v1/messages");
    EXPECT_EQ(check.verdict, Verdict::method_not_allowed) << method;
    EXPECT_EQ(check.allow, "POST") << method;
  }
  // On an unlisted path there is no method to name.
  const auto made_up = check_request(kOpenAi, "FROB", "/v1/assistants");
  EXPECT_EQ(made_up.verdict, Verdict::method_not_allowed);
  EXPECT_EQ(made_up.allow, "");
  EXPECT_NE(made_up.reason.find("FROB /v1/assistants"), std::string::npos) << made_up.reason;
}

TEST(ModelProxyRequestCheck, ListedPathWithTheOtherMethodIsRefusedWith405NamingItsMethod) {
  const auto get_messages = check_request(kAnthropic, "GET", "/v1/messages");
  EXPECT_EQ(get_messages.verdict, Verdict::method_not_allowed);
  EXPECT_EQ(get_messages.allow, "POST");
  const auto post_models = check_request(kOpenAi, "POST", "/v1/models/gpt-4o");
  EXPECT_EQ(post_models.verdict, Verdict::method_not_allowed);
  EXPECT_EQ(post_models.allow, "GET");
}

TEST(ModelProxyRequestCheck, TargetsThatAreNotPathsAreBadTargets) {
  for (std::string_view target :
       {"*", "http://gw.example/team-b/v1/messages", "https://api.anthropic.com/v1/messages",
        "gw.example:443", "api.anthropic.com:443", "v1/messages", ""}) {
    EXPECT_EQ(verdict(kAnthropic, "POST", target), Verdict::bad_target) << target;
    EXPECT_EQ(verdict(kAnthropic, "CONNECT", target), Verdict::bad_target) << target;
  }
  EXPECT_NE(check_request(kAnthropic, "CONNECT", "gw.example:443").reason.find("authority-form"),
            std::string::npos);
}

TEST(ModelProxyRequestCheck, DotSegmentsAreRefusedAlsoWhenPercentEncoded) {
  for (std::string_view target :
       {"/v1/../../team-b/v1/messages", "/v1/./messages", "/v1/messages/..", "/v1/models/.",
        "/./v1/messages", "/v1/%2e%2e/x", "/v1/%2E%2E/x", "/v1/.%2E/x", "/v1/%2e./x",
        "/v1/%2E/messages", "/v1/models/%2e%2e", "/.."}) {
    const auto check = check_request(kAnthropic, "POST", target);
    EXPECT_EQ(check.verdict, Verdict::bad_target) << target;
    EXPECT_NE(check.reason.find("dot segment"), std::string::npos) << check.reason;
  }
  // Refused for its form, not because the path happens not to be listed: a GET on a
  // listed prefix is a 400 too.
  EXPECT_EQ(verdict(kOpenAi, "GET", "/v1/models/../models"), Verdict::bad_target);
}

TEST(ModelProxyRequestCheck, EncodedSlashesBackslashesAndEmptySegmentsAreRefused) {
  for (std::string_view target :
       {"/v1%2fmessages", "/v1/%2F..%2Fteam-b", "/v1%5cmessages", "/v1/%5C..", "/v1\\messages",
        "/v1\\..\\team-b", "//v1/messages", "/v1//messages", "/v1/messages/", "//gw.example/v1"}) {
    EXPECT_EQ(verdict(kAnthropic, "POST", target), Verdict::bad_target) << target;
  }
}

TEST(ModelProxyRequestCheck, ControlCharactersNulAndStrayBytesAreRefused) {
  using namespace std::string_view_literals;
  for (std::string_view target :
       {"/v1/messages\0/x"sv, "/v1/mess\rages"sv, "/v1/messages\n"sv, "/v1/\tmessages"sv,
        "/v1/mes\x7fsages"sv, "/v1/messages%00"sv, "/v1/%0d%0aX-Injected:%201"sv,
        "/v1/messages#frag"sv, "/v1/mess ages"sv, "/v1/m\xc3\xa9ssages"sv, "/v1/messages%"sv,
        "/v1/messages%4"sv, "/v1/messages%zz"sv, "/v1/<messages>"sv}) {
    EXPECT_EQ(verdict(kAnthropic, "POST", target), Verdict::bad_target) << loggable(target);
  }
}

TEST(ModelProxyRequestCheck, QueryStringsAreRefused) {
  for (std::string_view target : {"/v1/models?limit=5", "/v1/messages?beta=true", "/v1/models?"}) {
    const auto check = check_request(kAnthropic, "GET", target);
    EXPECT_EQ(check.verdict, Verdict::bad_target) << target;
    EXPECT_NE(check.reason.find("query"), std::string::npos) << check.reason;
  }
}

TEST(ModelProxyRequestCheck, ReasonShowsTheTargetOnlyInPrintableShortenedForm) {
  const std::string target = "/v1/\x01\x1b[31m" + std::string(500, 'a');
  const auto check = check_request(kAnthropic, "POST", target);
  EXPECT_EQ(check.verdict, Verdict::bad_target);
  EXPECT_LT(check.reason.size(), 400u);
  EXPECT_NE(check.reason.find("\\x01\\x1b[31m"), std::string::npos) << check.reason;
  for (char c : check.reason) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << check.reason;
}

TEST(ModelProxyRequestCheck, LoggableEscapesAndCountsWhatItCuts) {
  EXPECT_EQ(loggable("/v1/messages"), "/v1/messages");
  EXPECT_EQ(loggable(std::string_view("a\0b\\ c\xff", 7)), "a\\x00b\\x5c\\x20c\\xff");
  EXPECT_EQ(loggable("abcdef", 3), "abc...(3 more bytes)");
}

}  // namespace
}  // namespace sb::host

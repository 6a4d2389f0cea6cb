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

}  // namespace
}  // namespace sb::host

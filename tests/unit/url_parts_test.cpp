#include "common/url_parts.h"

#include <gtest/gtest.h>

#include <boost/url/parse.hpp>

namespace sb {
namespace {

Result<HttpEndpoint> endpoint_of(std::string_view text) {
  auto url = boost::urls::parse_uri(text);
  if (!url) return make_error("not a URL");
  return http_endpoint(*url);
}

TEST(HttpEndpoint, GivesHostPortHostHeaderAndOriginFormTarget) {
  auto endpoint = endpoint_of("https://[::1]:8443/jmap/session?x=1");
  ASSERT_TRUE(endpoint) << endpoint.error().message;
  EXPECT_TRUE(endpoint->tls);
  EXPECT_EQ(endpoint->host, "::1");
  EXPECT_EQ(endpoint->port, "8443");
  EXPECT_EQ(endpoint->host_header, "[::1]:8443");
  EXPECT_EQ(endpoint->request_target, "/jmap/session?x=1");
  EXPECT_EQ(endpoint_of("http://example.org")->request_target, "/");
  EXPECT_EQ(endpoint_of("http://example.org")->port, "80");
}

// Found by fuzzing (fuzz/corpus/http_client_response_fuzz/crash-port-followed-by-path.http):
// Boost.URL 1.81 reads what follows the port digits as a path without its '/', which made
// "a%20/b" the request target of a redirect to "https://[::1]:8443a%20/b".
TEST(HttpEndpoint, JunkAfterThePortOrTheAddressIsRefusedNotTakenAsThePath) {
  for (const char* url : {"https://user:pass@[::1]:8443a%20/b?q=1", "http://example.org:80x/y",
                          "http://example.org:84x", "http://[::1]x/y"}) {
    auto endpoint = endpoint_of(url);
    ASSERT_FALSE(endpoint) << url << " gave target " << endpoint->request_target;
    EXPECT_EQ(endpoint.error().message, "has an invalid host or port") << url;
  }
}

TEST(HttpEndpoint, ARedirectToJunkAfterThePortResolvesButHasNoEndpoint) {
  auto next = resolve_location("https://jmap.example.org/jmap/session", "https://h:8443a/b");
  ASSERT_TRUE(next);
  EXPECT_FALSE(endpoint_of(*next));
}

}  // namespace
}  // namespace sb

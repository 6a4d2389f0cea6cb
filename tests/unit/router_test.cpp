#include "api/router.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>

namespace sb::api {
namespace {

Handler answering(int status) {
  return [status](Request&) -> boost::asio::awaitable<Response> {
    Response r;
    r.status = status;
    co_return r;
  };
}

Router message_router() {
  Router router;
  router.add("POST", "/messages", answering(201));
  router.add("GET", "/messages", answering(200));
  router.add("GET", "/messages/unread", answering(202));
  router.add("GET", "/messages/{id}", answering(203));
  router.add("POST", "/messages/{id}/read", answering(204));
  router.add("GET", "/health", answering(205));
  return router;
}

int run_match(const Router& router, const std::string& method, const std::string& path) {
  auto outcome = router.match(method, path);
  auto* match = std::get_if<Router::Match>(&outcome);
  if (!match) return -1;
  boost::asio::io_context io;
  Request request;
  request.params = match->params;
  auto future = boost::asio::co_spawn(io, (*match->handler)(request), boost::asio::use_future);
  io.run();
  return future.get().status;
}

TEST(Router, SameMethodAndPathReachTheirHandler) {
  auto router = message_router();
  EXPECT_EQ(run_match(router, "POST", "/messages"), 201);
  EXPECT_EQ(run_match(router, "GET", "/messages"), 200);
  EXPECT_EQ(run_match(router, "GET", "/health"), 205);
}

TEST(Router, LiteralRouteAddedFirstWinsOverCapture) {
  auto router = message_router();
  EXPECT_EQ(run_match(router, "GET", "/messages/unread"), 202);
  EXPECT_EQ(run_match(router, "GET", "/messages/42"), 203);
}

TEST(Router, CapturesArePassedAsParams) {
  auto router = message_router();
  auto outcome = router.match("POST", "/messages/17/read");
  auto* match = std::get_if<Router::Match>(&outcome);
  ASSERT_NE(match, nullptr);
  EXPECT_EQ(match->params.at("id"), "17");
  EXPECT_EQ(match->pattern, "/messages/{id}/read");
}

TEST(Router, UnknownPathIsNotFound) {
  auto router = message_router();
  EXPECT_TRUE(std::holds_alternative<Router::NotFound>(router.match("GET", "/nope")));
  EXPECT_TRUE(std::holds_alternative<Router::NotFound>(router.match("GET", "/messages/1/x")));
  EXPECT_TRUE(std::holds_alternative<Router::NotFound>(router.match("GET", "/messages/")));
}

TEST(Router, KnownPathWithOtherMethodIsMethodNotAllowedListingAllowedMethods) {
  auto router = message_router();
  auto outcome = router.match("DELETE", "/messages");
  auto* na = std::get_if<Router::MethodNotAllowed>(&outcome);
  ASSERT_NE(na, nullptr);
  EXPECT_EQ(na->allow, "POST, GET");
  auto on_read = router.match("GET", "/messages/3/read");
  ASSERT_TRUE(std::holds_alternative<Router::MethodNotAllowed>(on_read));
  EXPECT_EQ(std::get<Router::MethodNotAllowed>(on_read).allow, "POST");
}

TEST(Router, EmptySegmentsDoNotMatchCaptures) {
  auto router = message_router();
  // "//read" has no id segment: it must not reach the mark-read handler with an empty id.
  EXPECT_FALSE(std::holds_alternative<Router::Match>(router.match("POST", "/messages//read")));
}

TEST(RequestTarget, PathAndQueryAreDecodedAndTheLastRepeatedKeyWins) {
  Request request;
  ASSERT_TRUE(parse_request_target("/messages/a%20b?chat=http%3Aalice&limit=1&limit=10", request));
  EXPECT_EQ(request.path, "/messages/a b");
  EXPECT_EQ(request.query["chat"], "http:alice");
  EXPECT_EQ(request.query["limit"], "10");
}

// Found by fuzzing (fuzz/corpus/api_http_fuzz/crash-path-not-utf8.http): the 404 for
// "/em/re%adail" quoted the decoded path's byte 0xAD as it was, which is not valid JSON.
TEST(RequestTarget, ErrorAnswerQuotingAPathThatIsNotUtf8IsValidJson) {
  Request request;
  ASSERT_TRUE(parse_request_target("/em/re%adail", request));
  const Response answer = error_response(404, "no such resource: " + request.path);
  boost::system::error_code ec;
  const auto body = boost::json::parse(answer.body, ec);
  ASSERT_FALSE(ec) << answer.body;
  EXPECT_EQ(body.at("error").as_string(),
            "no such resource: /em/re\xEF\xBF\xBD"
            "ail");
}

TEST(RequestTarget, TargetsThatAreNotOriginFormAreRefused) {
  Request request;
  EXPECT_FALSE(parse_request_target("http://example.org/messages", request));
  EXPECT_FALSE(parse_request_target("*", request));
  EXPECT_FALSE(parse_request_target("/messages?x=%zz", request));
}

}  // namespace
}  // namespace sb::api

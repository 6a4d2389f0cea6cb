// What a client sends to the HTTP API, read as HttpServer::serve reads it (api/http_server.cpp):
// Boost.Beast's request_parser with the server's limits (ApiConfig's header and body limits,
// the read buffer of common/http_limits.h), several requests on one connection, then for each
// request the project's own handling: the request target (parse_request_target), the bearer
// token check, the router with the API's route table, and for POST /messages the body
// validation (new_message_from_json).
//
// An oversized header or trailer field that escaped Beast as an exception would end the
// daemon's event loop: here it stops the fuzzer as an uncaught exception.
//
// Properties checked beyond "no crash": the error answers the server builds from a request's
// path and method are valid JSON.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/auth.h"
#include "api/http_types.h"
#include "api/message_json.h"
#include "api/router.h"
#include "common/http_limits.h"
#include "config/config.h"
#include "fuzz_support.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using namespace sb::api;
using sb::fuzz::require;

// The API's routes (api/*_routes.cpp), with handlers that are never run.
const Router& api_router() {
  static const Router router = [] {
    Router r;
    const Handler none = [](Request&) -> boost::asio::awaitable<Response> { co_return Response{}; };
    for (const auto& [method, pattern] :
         std::initializer_list<std::pair<const char*, const char*>>{{"POST", "/messages"},
                                                                    {"GET", "/messages"},
                                                                    {"GET", "/messages/unread"},
                                                                    {"GET", "/messages/wait"},
                                                                    {"GET", "/messages/{id}"},
                                                                    {"POST", "/messages/{id}/read"},
                                                                    {"POST", "/email"},
                                                                    {"GET", "/email/{id}"},
                                                                    {"GET", "/groups"},
                                                                    {"POST", "/groups"},
                                                                    {"GET", "/groups/{folder}"},
                                                                    {"PATCH", "/groups/{folder}"},
                                                                    {"DELETE", "/groups/{folder}"},
                                                                    {"GET", "/health"},
                                                                    {"GET", "/metrics"},
                                                                    {"GET", "/tasks"},
                                                                    {"POST", "/tasks"},
                                                                    {"GET", "/tasks/{id}"},
                                                                    {"POST", "/tasks/{id}/pause"},
                                                                    {"POST", "/tasks/{id}/resume"},
                                                                    {"POST", "/tasks/{id}/cancel"},
                                                                    {"GET", "/tasks/{id}/runs"},
                                                                    {"GET", "/usage"},
                                                                    {"GET", "/outbox"}}) {
      r.add(method, pattern, none);
    }
    return r;
  }();
  return router;
}

void require_json(const Response& response) {
  beast::error_code ec;
  json::parse(response.body, ec);
  require(!ec, "an error answer is valid JSON");
}

void handle(Request& request) {
  auto outcome = api_router().match(request.method, request.path);
  if (std::holds_alternative<Router::NotFound>(outcome)) {
    require_json(error_response(404, "no such resource: " + request.path));
    return;
  }
  if (auto* not_allowed = std::get_if<Router::MethodNotAllowed>(&outcome)) {
    require_json(error_response(405, request.method + " is not allowed on " + request.path +
                                         " (allowed: " + not_allowed->allow + ")"));
    return;
  }
  auto& match = std::get<Router::Match>(outcome);
  for (const auto& [name, value] : match.params) {
    require(!value.empty() && value.find('/') == std::string::npos, "a capture is one segment");
  }
  if (request.method == "POST" && match.pattern == "/messages") {
    beast::error_code ec;
    auto parsed = json::parse(request.body, ec);
    if (!ec && parsed.is_object()) {
      if (auto message = new_message_from_json(parsed.get_object()); !message) {
        require_json(error_response(422, message.error().message));
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const sb::ApiConfig config;
  sb::fuzz::PieceStream stream(sb::fuzz::as_text(data, size));
  beast::flat_buffer buffer{sb::kMaxHttpReadBuffer};
  for (int requests = 0; requests < 16; ++requests) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(config.max_header_bytes));
    parser.body_limit(config.max_body_bytes);
    beast::error_code ec;
    http::read_header(stream, buffer, parser, ec);
    if (ec) break;  // answered 400/413/431 and closed, or the client went away
    Request request;
    const auto& header = parser.get();
    request.method = std::string(header.method_string());
    if (!parse_request_target(header.target(), request)) break;  // 400, closed
    bearer_token_matches(header[http::field::authorization], "fuzz-token");
    http::read(stream, buffer, parser, ec);
    if (ec) break;
    auto& message = parser.get();
    request.content_type = std::string(message[http::field::content_type]);
    request.body = std::move(message.body());
    handle(request);
    if (!message.keep_alive()) break;
  }
  return 0;
}

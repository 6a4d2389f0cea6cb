#include "cli/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace sb {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string HttpReply::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return v;
  }
  return {};
}

Result<HttpReply> http_call(const HttpCall& call) {
  const std::string where = call.host + ":" + std::to_string(call.port);
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code failure;
  std::string stage = "connect to";
  HttpReply reply;

  http::request<http::string_body> req{http::string_to_verb(call.method), call.target, 11};
  // With the port, so that redirects built from it keep it; IPv6 literals in brackets.
  const bool ipv6 = call.host.find(':') != std::string::npos;
  req.set(http::field::host, ipv6 ? "[" + call.host + "]:" + std::to_string(call.port) : where);
  req.set(http::field::user_agent, "switchboard-cli");
  if (!call.token.empty()) req.set(http::field::authorization, "Bearer " + call.token);
  for (const auto& [k, v] : call.headers) req.set(k, v);
  if (!call.body.empty() || call.method == "POST") {
    req.set(http::field::content_type, "application/json");
    req.body() = call.body;
  }
  req.keep_alive(false);
  req.prepare_payload();

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);

  asio::ip::tcp::resolver resolver(io);
  resolver.async_resolve(call.host, std::to_string(call.port), [&](auto ec, auto results) {
    if (ec) {
      failure = ec;
      stage = "resolve";
      return;
    }
    stream.expires_after(call.timeout);
    stream.async_connect(results, [&](auto ec, auto) {
      if (ec) {
        failure = ec;
        return;
      }
      stage = "send a request to";
      http::async_write(stream, req, [&](auto ec, auto) {
        if (ec) {
          failure = ec;
          return;
        }
        stage = "read the answer of";
        http::async_read(stream, buffer, parser, [&](auto ec, auto) { failure = ec; });
      });
    });
  });
  io.run();
  if (failure) {
    auto reason = failure == beast::error::timeout ? std::string("timed out") : failure.message();
    return make_error("cannot " + stage + " " + where + ": " + reason);
  }
  auto& res = parser.get();
  reply.status = res.result_int();
  reply.body = std::move(res.body());
  for (const auto& field : res) {
    reply.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  return reply;
}

}  // namespace sb

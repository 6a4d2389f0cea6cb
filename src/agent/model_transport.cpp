#include "agent/model_transport.h"

#include <sys/un.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

namespace sb::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using Kind = TransportFailure::Kind;

std::string TransportReply::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (beast::iequals(key, name)) return value;
  }
  return {};
}

namespace {

bool connection_lost(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::connection_aborted || ec == asio::error::broken_pipe;
}

TransportFailure read_failure(const beast::error_code& ec, const TransportRequest& request) {
  if (ec == http::error::body_limit) {
    return {Kind::too_large,
            "the response body is over " + std::to_string(request.max_body_bytes) + " bytes"};
  }
  if (ec == http::error::header_limit) {
    return {Kind::too_large,
            "the response header is over " + std::to_string(request.max_header_bytes) + " bytes"};
  }
  if (connection_lost(ec)) {
    return {Kind::dropped, "the connection closed before the response was complete"};
  }
  if (ec.category() == beast::error_code(http::error::end_of_stream).category()) {
    return {Kind::malformed, "the response is not valid HTTP: " + ec.message()};
  }
  return {Kind::dropped, "reading the response failed: " + ec.message()};
}

}  // namespace

TransportResult post_json(const TransportRequest& request) {
  const std::string& path = request.socket.native();
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    return TransportFailure{Kind::unreachable,
                            "cannot connect to '" + path + "': not a usable unix socket path"};
  }

  http::request<http::string_body> req{http::verb::post, request.target, 11};
  req.set(http::field::host, "model");
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "application/json");
  req.set(http::field::user_agent, "switchboard-agent");
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.keep_alive(false);
  req.body() = request.body;
  req.prepare_payload();

  asio::io_context io;
  beast::basic_stream<local> stream(io);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(request.max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(request.max_header_bytes));
  std::optional<TransportFailure> failure;

  // One expiry for the whole exchange: basic_stream applies it to every operation started
  // after it, so a peer that accepts and never answers ends in beast::error::timeout.
  stream.expires_after(request.timeout);
  stream.async_connect(local::endpoint(path), [&](beast::error_code ec) {
    if (ec) {
      failure = ec == beast::error::timeout
                    ? TransportFailure{Kind::timeout, "connecting timed out"}
                    : TransportFailure{Kind::unreachable,
                                       "cannot connect to " + path + ": " + ec.message()};
      return;
    }
    http::async_write(stream, req, [&](beast::error_code write_ec, std::size_t) {
      if (write_ec == beast::error::timeout) {
        failure = TransportFailure{Kind::timeout, "sending the request timed out"};
        return;
      }
      // Even when sending failed, the peer may have answered before it closed (the proxy's
      // 413 for a body over its limit): that answer says more than the broken pipe.
      http::async_read(stream, buffer, parser, [&, write_ec](beast::error_code ec, std::size_t) {
        if (ec == beast::error::timeout) {
          failure = TransportFailure{Kind::timeout, "no complete response in time"};
        } else if (ec && write_ec) {
          failure =
              TransportFailure{Kind::dropped, "sending the request failed: " + write_ec.message()};
        } else if (ec) {
          failure = read_failure(ec, request);
        }
      });
    });
  });
  io.run();
  if (failure) return *failure;

  auto& res = parser.get();
  TransportReply reply;
  reply.status = res.result_int();
  for (const auto& field : res) {
    reply.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  reply.body = std::move(res.body());
  return reply;
}

}  // namespace sb::agent

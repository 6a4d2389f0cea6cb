#include "api/http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

#include "api/auth.h"
#include "common/async.h"
#include "common/http_limits.h"
#include "generated/version.h"

namespace sb::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// After a response that ends the connection while the client may still be sending (a
// refused upload), half-close and drain for a moment so the kernel does not answer the
// unread bytes with a reset that would destroy the response before the client reads it.
asio::awaitable<void> close_gracefully(beast::tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.expires_after(std::chrono::seconds(1));
  std::array<char, 4096> sink;
  std::size_t drained = 0;
  while (drained < (1 << 20)) {
    auto [err, n] = co_await stream.async_read_some(asio::buffer(sink), kAsTuple);
    if (err) break;
    drained += n;
  }
  stream.close();
}

http::response<http::string_body> to_beast(Response r, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
  res.set(http::field::server, std::string("switchboard/") + kVersion);
  res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.body() = std::move(r.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

}  // namespace

struct HttpServer::Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer{kMaxHttpReadBuffer};  // common/http_limits.h: no oversized field
  bool busy = false;  // between the first byte of a request and the end of its response
};

HttpServer::HttpServer(asio::io_context& io, const ApiConfig& config, const Router& router,
                       MetricsRegistry& metrics)
    : io_(io),
      config_(config),
      router_(router),
      acceptor_(io),
      requests_(metrics.counter_family("switchboard_http_requests_total",
                                       "HTTP requests answered, by route pattern and status.",
                                       {"method", "route", "status"})),
      request_seconds_(metrics.histogram("switchboard_http_request_duration_seconds",
                                         "Time from a request's first byte to its response.")),
      open_connections_(metrics.gauge("switchboard_http_connections", "Open HTTP connections.")),
      refused_connections_(metrics.counter("switchboard_http_connections_refused_total",
                                           "Connections refused with 503 at the limit.")),
      timeouts_(metrics.counter("switchboard_http_timeouts_total",
                                "Connections closed because a request took too long.")) {}

HttpServer::~HttpServer() = default;

Result<tcp::endpoint> HttpServer::listen() {
  std::string where = config_.host + ":" + std::to_string(config_.port);
  beast::error_code ec;
  auto address =
      asio::ip::make_address(config_.host == "localhost" ? "127.0.0.1" : config_.host, ec);
  if (ec) return make_error("cannot listen on " + where + ": not an IP address");
  tcp::endpoint endpoint(address, config_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error("cannot listen on " + where + ": " + ec.message());
  return acceptor_.local_endpoint();
}

void HttpServer::start() {
  // Accepting must not end for good on an unexpected error (out of memory, say): it is
  // logged and accepting starts again after a pause.
  asio::co_spawn(io_, accept_loop(), [this](std::exception_ptr e) {
    if (!e) return;
    log_failure("api: accepting connections")(e);
    if (stopping_) return;
    auto pause = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(100));
    pause->async_wait([this, pause](beast::error_code) {
      if (!stopping_) start();
    });
  });
}

asio::awaitable<void> HttpServer::accept_loop() {
  while (!stopping_) {
    auto [ec, socket] = co_await acceptor_.async_accept(kAsTuple);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) break;
      // Out of file descriptors and the like: say so, pause, go on.
      spdlog::warn("api: accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(50));
      co_await pause.async_wait(kAsTuple);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    if (connections_.size() >= config_.max_connections) {
      refused_connections_.inc();
      asio::co_spawn(io_, refuse_busy(std::move(socket)),
                     log_failure("api: refusing a connection"));
      continue;
    }
    auto connection = std::make_shared<Connection>(std::move(socket));
    connections_.insert(connection);
    open_connections_.set(static_cast<std::int64_t>(connections_.size()));
    // An exception out of a connection's coroutine (of any type) ends that connection only.
    asio::co_spawn(io_, serve(connection), [this, connection](std::exception_ptr e) {
      log_failure("api: connection ended by an unexpected error")(e);
      connections_.erase(connection);
      open_connections_.set(static_cast<std::int64_t>(connections_.size()));
      check_stopped();
    });
  }
}

asio::awaitable<void> HttpServer::refuse_busy(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  auto res = to_beast(error_response(503, "too many connections (limit " +
                                              std::to_string(config_.max_connections) + ")"),
                      false);
  res.set(http::field::retry_after, "1");
  stream.expires_after(std::chrono::seconds(2));
  co_await http::async_write(stream, res, kAsTuple);
  co_await close_gracefully(stream);
}

asio::awaitable<void> HttpServer::serve(std::shared_ptr<Connection> c) {
  auto& stream = c->stream;
  auto& buffer = c->buffer;
  auto too_large = [this] {
    return error_response(
        413, "request body exceeds " + std::to_string(config_.max_body_bytes) + " bytes");
  };
  while (!stopping_) {
    c->busy = false;
    if (buffer.size() == 0) {
      stream.expires_after(config_.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), kAsTuple);
      if (ec) break;  // closed by the client, idle too long, or shutting down
      buffer.commit(n);
    }
    c->busy = true;
    const auto started = std::chrono::steady_clock::now();
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(config_.max_header_bytes));
    parser.body_limit(config_.max_body_bytes);
    stream.expires_after(config_.request_timeout);

    Request request;
    std::string route = "unmatched";
    Response response;
    bool close = false;

    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kAsTuple);
    if (ec == beast::error::timeout) {
      timeouts_.inc();
      break;  // the stream closed itself; nothing can be answered
    }
    if (ec == http::error::end_of_stream) break;
    if (ec) {
      close = true;
      if (ec == http::error::header_limit) {
        response = error_response(
            431, "request headers exceed " + std::to_string(config_.max_header_bytes) + " bytes");
      } else if (ec == http::error::body_limit) {  // Content-Length over the limit
        response = too_large();
      } else {
        response = error_response(400, "malformed HTTP request: " + ec.message());
      }
    } else {
      auto& header = parser.get();
      request.method = std::string(header.method_string());
      auto authorization = std::string(header[http::field::authorization]);
      if (!parse_request_target(header.target(), request)) {
        response = error_response(400, "malformed request target");
        close = true;
      } else if (!config_.token.empty() && request.path != "/health" &&
                 !bearer_token_matches(authorization, config_.token)) {
        response = error_response(401, "missing or wrong bearer token");
        response.headers.emplace_back("WWW-Authenticate", "Bearer");
        // The body was not read; and the client's "Connection: close" holds here too.
        close = !parser.is_done() || !header.keep_alive();
      } else {
        if (beast::iequals(header[http::field::expect], "100-continue")) {
          http::response<http::empty_body> go_on{http::status::continue_, 11};
          co_await http::async_write(stream, go_on, kAsTuple);
        }
        auto [body_ec, body_n] = co_await http::async_read(stream, buffer, parser, kAsTuple);
        if (body_ec == beast::error::timeout) {
          timeouts_.inc();
          break;
        }
        if (body_ec) {
          close = true;
          response = body_ec == http::error::body_limit  // a chunked body grew too large
                         ? too_large()
                         : error_response(400, "malformed HTTP request: " + body_ec.message());
        } else {
          auto& msg = parser.get();
          request.content_type = std::string(msg[http::field::content_type]);
          request.body = std::move(msg.body());
          response = co_await respond(request, route);
          close = !msg.keep_alive();
        }
      }
    }
    close = close || stopping_;
    const int status = response.status;
    auto res = to_beast(std::move(response), !close);
    stream.expires_after(config_.request_timeout);
    auto [write_ec, written] = co_await http::async_write(stream, res, kAsTuple);
    const auto took = std::chrono::steady_clock::now() - started;
    request_seconds_.observe(took);
    requests_.with({request.method.empty() ? "-" : request.method, route, std::to_string(status)})
        .inc();
    spdlog::debug("api: {} {} -> {} in {} µs", request.method, request.path, status,
                  std::chrono::duration_cast<std::chrono::microseconds>(took).count());
    if (write_ec) break;
    if (close) {
      co_await close_gracefully(stream);
      co_return;
    }
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.close();
}

asio::awaitable<Response> HttpServer::respond(Request& request, std::string& route_label) {
  auto outcome = router_.match(request.method, request.path);
  if (std::holds_alternative<Router::NotFound>(outcome)) {
    co_return error_response(404, "no such resource: " + request.path);
  }
  if (auto* na = std::get_if<Router::MethodNotAllowed>(&outcome)) {
    route_label = na->pattern;
    auto r = error_response(405, request.method + " is not allowed on " + request.path +
                                     " (allowed: " + na->allow + ")");
    r.headers.emplace_back("Allow", na->allow);
    co_return r;
  }
  auto& match = std::get<Router::Match>(outcome);
  route_label = match.pattern;
  request.params = std::move(match.params);
  try {
    co_return co_await (*match.handler)(request);
  } catch (const std::exception& e) {
    spdlog::error("api: {} {} failed: {}", request.method, request.path, e.what());
    co_return error_response(500, std::string("internal error: ") + e.what());
  } catch (...) {
    spdlog::error("api: {} {} failed: unknown exception", request.method, request.path);
    co_return error_response(500, "internal error");
  }
}

void HttpServer::stop(std::function<void()> done) {
  stopping_ = true;
  on_stopped_ = std::move(done);
  beast::error_code ignored;
  acceptor_.close(ignored);
  for (const auto& c : connections_) {
    if (!c->busy) c->stream.cancel();
  }
  grace_timer_ = std::make_unique<asio::steady_timer>(io_, config_.shutdown_grace);
  grace_timer_->async_wait([this](beast::error_code ec) {
    if (ec) return;
    if (!connections_.empty()) {
      spdlog::warn("api: closing {} connection(s) still busy after the shutdown grace period",
                   connections_.size());
    }
    for (const auto& c : connections_) c->stream.close();
  });
  check_stopped();
}

void HttpServer::check_stopped() {
  if (!stopping_ || !connections_.empty() || !on_stopped_) return;
  if (grace_timer_) grace_timer_->cancel();
  auto done = std::move(on_stopped_);
  on_stopped_ = nullptr;
  asio::post(io_, std::move(done));
}

}  // namespace sb::api

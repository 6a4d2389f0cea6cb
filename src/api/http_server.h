#pragma once
// HttpServer: the HTTP/1.1 server of the API. One coroutine per connection: read a
// request, check auth, route it, write the response, loop (keep-alive). Enforces the
// limits of ApiConfig: header and body size (431/413, checked before the body is read),
// connections (503 beyond the limit), the time to read one request (408) and the idle time
// between requests. Answers `Expect: 100-continue` only after the headers passed the
// checks, so a refused upload is never sent.
//
// Threading: everything runs on the io_context's thread.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "api/router.h"
#include "common/metrics.h"
#include "common/result.h"
#include "config/config.h"

namespace sb::api {

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, const ApiConfig& config, const Router& router,
             MetricsRegistry& metrics);
  ~HttpServer();

  // Binds and listens on config.host:config.port. Error names the address and the reason.
  Result<boost::asio::ip::tcp::endpoint> listen();

  // Starts accepting (after listen()).
  void start();

  // Stops accepting, closes idle connections, lets requests in flight finish and close
  // their connections. `done` is called once no connection is left, or after
  // config.shutdown_grace, when the rest are closed.
  void stop(std::function<void()> done);

  std::size_t connection_count() const { return connections_.size(); }

 private:
  struct Connection;
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Connection> connection);
  boost::asio::awaitable<void> refuse_busy(boost::asio::ip::tcp::socket socket);
  boost::asio::awaitable<Response> respond(Request& request, std::string& route_label);
  void check_stopped();

  boost::asio::io_context& io_;
  ApiConfig config_;
  const Router& router_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::set<std::shared_ptr<Connection>> connections_;
  bool stopping_ = false;
  std::function<void()> on_stopped_;
  std::unique_ptr<boost::asio::steady_timer> grace_timer_;

  CounterFamily& requests_;
  Histogram& request_seconds_;
  Gauge& open_connections_;
  Counter& refused_connections_;
  Counter& timeouts_;
};

}  // namespace sb::api

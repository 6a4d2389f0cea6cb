#include "channels/email/mail_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <tuple>
#include <utility>

#include "common/tls_client.h"

namespace sb::email {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

std::string timed_out(std::chrono::milliseconds timeout) {
  return " timed out after " + std::to_string(timeout.count()) + " ms";
}

// A server that vanishes without closing (a NAT timeout, a dead host) would leave an IDLE
// waiting for its renewal, up to half an hour: the kernel probes an idle connection after
// 60 s and gives up after 4 unanswered probes 15 s apart, failing the read.
void enable_keepalive(int fd) {
  const int on = 1, idle = 60, interval = 15, count = 4;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

}  // namespace

MailConnection::MailConnection(asio::any_io_executor executor, ssl::context& tls, std::string host,
                               std::uint16_t port, bool verify_certificate, std::string protocol)
    : executor_(std::move(executor)),
      stream_(executor_, tls),
      host_(std::move(host)),
      port_(port),
      verify_certificate_(verify_certificate),
      protocol_(std::move(protocol)) {
  const bool ipv6 = host_.find(':') != std::string::npos;
  server_ = (ipv6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

asio::awaitable<Result<void>> MailConnection::connect(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  // The resolver cannot take a deadline itself: a timer cancels it. The timer's handler may
  // run after this frame is gone, hence the weak pointer.
  auto resolver = std::make_shared<tcp::resolver>(executor_);
  resolving_ = resolver;
  asio::steady_timer timer(executor_, deadline);
  std::weak_ptr<tcp::resolver> weak = resolver;
  timer.async_wait([weak](const boost::system::error_code& ec) {
    if (auto live = weak.lock(); live && !ec) live->cancel();
  });
  auto [rec, endpoints] = co_await resolver->async_resolve(host_, std::to_string(port_), kAsTuple);
  timer.cancel();
  resolving_.reset();
  if (closed_) co_return make_error("the connection to " + server_ + " was closed");
  if (rec) {
    healthy_ = false;
    if (Clock::now() >= deadline) co_return make_error("resolving " + server_ + timed_out(timeout));
    co_return make_error("cannot resolve " + server_ + ": " + rec.message());
  }
  auto& tcp_stream = stream_.next_layer();
  tcp_stream.expires_at(deadline);
  auto [cec, endpoint] = co_await tcp_stream.async_connect(endpoints, kAsTuple);
  if (cec) {
    healthy_ = false;
    if (cec == beast::error::timeout)
      co_return make_error("connecting to " + server_ + timed_out(timeout));
    co_return make_error("cannot connect to " + server_ + ": " + cec.message());
  }
  boost::system::error_code ignored;
  tcp_stream.socket().set_option(tcp::no_delay(true), ignored);
  enable_keepalive(tcp_stream.socket().native_handle());
  co_return Result<void>{};
}

asio::awaitable<Result<void>> MailConnection::handshake(std::chrono::milliseconds timeout) {
  // Whatever happens now, the connection is no longer fit for plaintext commands.
  healthy_ = false;
  SSL* ssl = stream_.native_handle();
  if (auto prepared = prepare_tls_handshake(ssl, host_, verify_certificate_); !prepared) {
    co_return make_error(prepared.error().message + " (" + server_ + ")");
  }
  stream_.next_layer().expires_after(timeout);
  auto [ec] = co_await stream_.async_handshake(ssl::stream_base::client, kAsTuple);
  if (ec) {
    if (ec == beast::error::timeout)
      co_return make_error("TLS handshake with " + server_ + timed_out(timeout));
    co_return make_error(tls_handshake_error(ssl, ec, server_, verify_certificate_));
  }
  tls_ = true;
  healthy_ = true;
  spdlog::debug("{} {}: {} established", protocol_, server_, SSL_get_version(ssl));
  co_return Result<void>{};
}

void MailConnection::expires_after(std::chrono::milliseconds timeout) {
  timeout_ = timeout;
  stream_.next_layer().expires_after(timeout);
}

asio::awaitable<Result<void>> MailConnection::fill(std::string_view step) {
  auto buffer = asio::buffer(chunk_);
  boost::system::error_code ec;
  std::size_t n = 0;
  if (tls_) {
    std::tie(ec, n) = co_await stream_.async_read_some(buffer, kAsTuple);
  } else {
    std::tie(ec, n) = co_await stream_.next_layer().async_read_some(buffer, kAsTuple);
  }
  if (ec) {
    healthy_ = false;
    if (closed_) co_return make_error("the connection to " + server_ + " was closed");
    if (ec == beast::error::timeout) {
      co_return make_error(server_ + " did not answer " + std::string(step) + " within " +
                           std::to_string(timeout_.count()) + " ms");
    }
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      co_return make_error(server_ + " closed the connection before answering " +
                           std::string(step));
    }
    co_return make_error("reading the answer to " + std::string(step) + " from " + server_ +
                         " failed: " + ec.message());
  }
  buffer_.append(chunk_.data(), n);
  co_return Result<void>{};
}

asio::awaitable<Result<std::string>> MailConnection::read_line(std::string_view step,
                                                               std::size_t max_line) {
  std::size_t scanned = 0;
  for (;;) {
    const auto end = buffer_.find('\n', scanned);
    if (end != std::string::npos && end <= max_line + 1) {
      std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      co_return line;
    }
    if (end != std::string::npos || buffer_.size() > max_line + 1) {
      healthy_ = false;
      co_return make_error(server_ + " sent an answer line longer than " +
                           std::to_string(max_line) + " bytes to " + std::string(step));
    }
    scanned = buffer_.size();
    if (auto filled = co_await fill(step); !filled) co_return filled.error();
  }
}

asio::awaitable<Result<std::string>> MailConnection::read_exact(std::size_t n,
                                                                std::string_view step) {
  while (buffer_.size() < n) {
    if (auto filled = co_await fill(step); !filled) co_return filled.error();
  }
  std::string bytes;
  if (buffer_.size() == n) {
    bytes.swap(buffer_);
  } else {
    bytes = buffer_.substr(0, n);
    buffer_.erase(0, n);
  }
  co_return bytes;
}

asio::awaitable<Result<void>> MailConnection::write(std::string_view bytes, std::string_view step) {
  auto buffer = asio::buffer(bytes.data(), bytes.size());
  boost::system::error_code ec;
  if (tls_) {
    std::tie(ec, std::ignore) = co_await asio::async_write(stream_, buffer, kAsTuple);
  } else {
    std::tie(ec, std::ignore) = co_await asio::async_write(stream_.next_layer(), buffer, kAsTuple);
  }
  if (ec) {
    healthy_ = false;
    if (closed_) co_return make_error("the connection to " + server_ + " was closed");
    if (ec == beast::error::timeout) {
      co_return make_error("sending " + std::string(step) + " to " + server_ + timed_out(timeout_));
    }
    co_return make_error("sending " + std::string(step) + " to " + server_ +
                         " failed: " + ec.message());
  }
  co_return Result<void>{};
}

void MailConnection::shutdown() {
  boost::system::error_code ignored;
  stream_.next_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
}

void MailConnection::close() {
  if (closed_) return;
  closed_ = true;
  healthy_ = false;
  if (auto resolver = resolving_.lock()) resolver->cancel();
  stream_.next_layer().close();
}

}  // namespace sb::email

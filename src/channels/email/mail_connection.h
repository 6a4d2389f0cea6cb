#pragma once
// One client connection to a mail server (SMTP submission, IMAP): TCP that may turn into
// TLS (implicit, or after STARTTLS), a bounded read buffer, a deadline on every read and
// write, and errors that name the server and the step ("EHLO", "UID FETCH 12"). The
// protocols (replies, responses, commands) live in their own clients on top of it.
//
// Errors are values; nothing here throws for what the network or the server does.
// Threading: use on the executor's thread. At most one read and one write may be in flight
// at a time (IMAP writes DONE while a read waits in IDLE); close() may be called any time.

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sb::email {

class MailConnection {
 public:
  // `tls` must outlive the connection and be configured already (configure_tls_client): the
  // connection's TLS state copies its verification settings now.
  // `protocol` ("smtp", "imap") prefixes the debug logs.
  MailConnection(boost::asio::any_io_executor executor, boost::asio::ssl::context& tls,
                 std::string host, std::uint16_t port, bool verify_certificate,
                 std::string protocol);
  MailConnection(const MailConnection&) = delete;
  MailConnection& operator=(const MailConnection&) = delete;

  // "host:port" ("[::1]:993" for IPv6 literals), for messages.
  const std::string& server() const { return server_; }
  bool tls() const { return tls_; }
  // False once an operation failed or the caller said the server made no sense: the
  // connection is then not fit for a polite goodbye (QUIT, LOGOUT).
  bool healthy() const { return healthy_; }
  void mark_broken() { healthy_ = false; }

  // Resolves the host and connects within `timeout`, with TCP_NODELAY (a command split over
  // two writes would otherwise wait for the server's delayed ACK). Error: what failed.
  boost::asio::awaitable<Result<void>> connect(std::chrono::milliseconds timeout);
  // The TLS handshake within `timeout`, checking the certificate's chain and that it is for
  // the host. Error: why it failed (the certificate problem when there is one).
  boost::asio::awaitable<Result<void>> handshake(std::chrono::milliseconds timeout);
  // Forgets bytes received but not yet read: after STARTTLS they came in clear text and must
  // not be taken as answers from inside TLS (RFC 3207 4.2, RFC 9051 11.1; CVE-2011-0411).
  void discard_buffered() { buffer_.clear(); }

  // Sets the deadline of the reads and writes that follow, until it is set again. The
  // figure last set goes into timeout errors. A read and a write in flight together keep
  // the deadline each had when it started.
  void expires_after(std::chrono::milliseconds timeout);

  // One line without its line end (CRLF, or a bare LF: lenient reading). Error: the
  // connection failed, timed out, or the line grew past `max_line` bytes.
  boost::asio::awaitable<Result<std::string>> read_line(std::string_view step,
                                                        std::size_t max_line);
  // Exactly `n` bytes (an IMAP literal); the caller has checked that `n` is acceptable.
  boost::asio::awaitable<Result<std::string>> read_exact(std::size_t n, std::string_view step);
  // Writes all of `bytes`, which must stay alive until it returns. `step` names what is sent
  // for errors: never the bytes themselves, which may hold credentials.
  boost::asio::awaitable<Result<void>> write(std::string_view bytes, std::string_view step);

  // Shuts the socket down both ways (the end of a conversation; no TLS close_notify).
  void shutdown();
  // Ends everything now: resolving, connecting and any read or write in flight complete with
  // an error. Idempotent.
  void close();

 private:
  // Reads once more into the buffer. Error: the connection failed or timed out.
  boost::asio::awaitable<Result<void>> fill(std::string_view step);

  boost::asio::any_io_executor executor_;
  boost::asio::ssl::stream<boost::beast::tcp_stream> stream_;
  std::string host_;
  std::uint16_t port_;
  bool verify_certificate_;
  std::string protocol_;
  std::string server_;
  std::chrono::milliseconds timeout_{0};
  std::weak_ptr<boost::asio::ip::tcp::resolver> resolving_;
  bool tls_ = false;
  bool healthy_ = true;
  bool closed_ = false;
  std::string buffer_;
  std::array<char, 16384> chunk_{};
};

}  // namespace sb::email

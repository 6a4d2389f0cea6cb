#pragma once
// SmtpServer: receives mail for the configured addresses (RFC 5321 with PIPELINING,
// 8BITMIME, SIZE, ENHANCEDSTATUSCODES and, when a certificate is configured, STARTTLS).
// One coroutine per connection reads commands top to bottom; replies to a pipelined batch
// go out in order, together, when the server would otherwise wait for input. A message is
// handed to the SmtpDeliver function and answered 250 only after that returned (stored).
//
// Refusals: 421 beyond the connection limits, after a timeout, after too many errors and
// on shutdown; 550 for addresses not configured; 552 for messages over the size limit
// (at MAIL FROM when SIZE= says so, else after the data); 550 5.6.11 for data with a bare
// CR or LF (SMTP smuggling: only CRLF.CRLF ends the data), 550 5.6.0 for a NUL byte in it; 500 for
// over-long command lines, 552 for over-long text lines; 452 4.3.1 when the messages in memory
// reach max_buffered_bytes. VRFY discloses nothing (252). Message bodies are never logged.
//
// Metrics: switchboard_smtp_{connections, connections_total, connections_refused_total,
// messages_accepted_total, messages_rejected_total, recipients_rejected_total,
// disconnects_total}.
//
// Threading: construct, start(), port(), stop() and connection_count() on the event-loop
// thread of `executor`.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"

namespace sb::email {

struct SmtpEnvelope {
  std::string mail_from;                // "" for the null sender (bounces)
  std::vector<std::string> recipients;  // as the client wrote them (with any +tag)
  std::string client_address;           // the peer's IP address
  std::string helo;                     // the HELO/EHLO argument, unverified
  bool tls = false;                     // received over STARTTLS
  std::string id;                       // "smtp-…", also in the Received: header and the 250
};

// Called on the event-loop thread for each accepted message: `data` has CRLF line ends, is
// dot-unstuffed and starts with our Received: header. Returns once the message is durably
// stored; an error (or an exception) makes the server answer 451 4.3.0 so the client
// retries. Never called again after stop().
using SmtpDeliver =
    std::function<boost::asio::awaitable<Result<void>>(SmtpEnvelope envelope, std::string data)>;

struct SmtpServerOptions {
  std::string listen = "127.0.0.1";  // an IP address ("0.0.0.0", "::"); "localhost" = 127.0.0.1
  std::uint16_t port = 2525;         // 0 picks a free port (see port())
  std::string hostname;              // in the greeting and Received:; empty: the host's name
  // PEM files. With a certificate STARTTLS is offered; the key may be in the same file
  // (tls_key empty).
  std::filesystem::path tls_cert, tls_key;
  std::vector<std::string> recipients;  // accepted addresses; "+tag" variants match too

  std::size_t max_message_bytes = 25u << 20;  // the text as sent, after unstuffing
  // Message text held in memory by all sessions together, while being received and
  // stored. A message that would go beyond it is answered 452 4.3.1 (try again later).
  // At least max_message_bytes.
  std::size_t max_buffered_bytes = 200u << 20;
  // A command line with its CRLF (RFC 5321: 512). Enough for the longest MAIL FROM with
  // SIZE= and BODY=, since a path is at most 256 bytes.
  std::size_t max_command_line = 512;
  // One line of message text with its CRLF, after unstuffing (RFC 5322: 998 + 2).
  std::size_t max_text_line = 1000;
  std::size_t max_recipients = 100;             // per message; more get 452 4.5.3
  std::size_t max_connections = 100;            // overall
  std::size_t max_connections_per_client = 10;  // per client IP address
  // Waiting for one complete command line (covers idle clients and slow drips).
  std::chrono::milliseconds command_timeout = std::chrono::minutes(5);
  // Receiving the whole text of one message, from the 354 to CRLF.CRLF.
  std::chrono::milliseconds data_timeout = std::chrono::minutes(10);
  // Replies to the client's mistakes (5xx, and 452 for too many recipients) before the
  // client is disconnected.
  std::size_t max_errors = 10;
};

class SmtpServer {
 public:
  // Nothing listens until start(). `metrics` must outlive the server.
  SmtpServer(boost::asio::any_io_executor executor, SmtpServerOptions options, SmtpDeliver deliver,
             MetricsRegistry& metrics);
  // As stop(). Sessions still running end at their next step on the event loop, which may
  // run them after this object is gone; destroy before the io_context.
  ~SmtpServer();
  SmtpServer(const SmtpServer&) = delete;
  SmtpServer& operator=(const SmtpServer&) = delete;

  // Checks the options, loads the certificate, binds, listens and starts accepting. Error
  // (nothing listens) naming the bad option, the unreadable certificate or key, or the
  // address that cannot be bound. Call once.
  Result<void> start();

  // The port listened on (the chosen one when options.port was 0); 0 before start().
  std::uint16_t port() const;

  // Stops accepting; idle sessions are told 421 4.3.2 and closed, a session whose message
  // is being stored answers it and then closes. After it `deliver` is not called again.
  void stop();

  // Open sessions, for tests and /health.
  std::size_t connection_count() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sb::email

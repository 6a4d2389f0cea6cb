#pragma once
// The SMTP submission client: hands one finished message to a mail server (RFC 5321 with
// STARTTLS, RFC 3207; implicit TLS, RFC 8314; AUTH PLAIN / LOGIN, RFC 4954 / 4616) over a
// new connection per message, and says what became of it in the outbox's terms: sent, retry
// (4xx, connection or TLS trouble, timeouts) or failed (5xx, including a refused login).
//
// Threading: call on the event-loop thread; the connection runs on the given executor.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "channels/channel.h"

namespace sb::email {

struct SmtpClientOptions {
  std::string host;
  std::uint16_t port = 587;
  // starttls: plain connect, then STARTTLS before anything else (port 587).
  // tls: TLS from the first byte (port 465).
  // plain: no TLS at all, for a local test server only (smtp_client_warnings says so).
  enum class Security { starttls, tls, plain } security = Security::starttls;
  bool verify_certificate = true;  // chain and host name; off only for self-signed test servers
  std::filesystem::path ca_file;   // trusted CAs (PEM); empty: the system's store
  std::string username, password;  // empty username: no AUTH
  std::string helo_name = "localhost";
  // connect_timeout bounds resolving and connecting together, and each TLS handshake;
  // command_timeout bounds each wait for an answer and each write (RFC 5321 4.5.3.2: 5 min).
  std::chrono::milliseconds connect_timeout{30'000}, command_timeout{300'000};
};

struct SmtpMessage {
  std::string mail_from;                // envelope sender; empty: the null sender "<>"
  std::vector<std::string> recipients;  // envelope recipients, at least one
  std::string data;                     // RFC 5322 bytes, CRLF, not dot-stuffed
};

// Delivers `message` to the server of `options` over a new connection, then says QUIT.
// Returns sent when the server took the message for at least one recipient (recipients it
// refused for good are listed in `error`); retry for 4xx answers, connection failures,
// timeouts and TLS failures (certificate included), with the server's words or the error;
// failed for 5xx answers (the server's answer, e.g. "550 5.1.1 <x@y>: user unknown"), a
// refused login (535), an invalid address or a message over the server's SIZE. Credentials
// are sent only over TLS unless security is plain, and never logged. Never throws for
// anything the network or the server does. `options` and `message` must outlive the call.
boost::asio::awaitable<channels::SendOutcome> smtp_send(boost::asio::any_io_executor executor,
                                                        const SmtpClientOptions& options,
                                                        const SmtpMessage& message);

// The warnings to log once at start-up for these options: TLS off (security plain) or
// certificate verification off. Empty when the setup is safe.
std::vector<std::string> smtp_client_warnings(const SmtpClientOptions& options);

}  // namespace sb::email

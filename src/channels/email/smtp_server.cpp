#include "channels/email/smtp_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/host_name.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "channels/email/smtp_protocol.h"
#include "common/async.h"
#include "common/ids.h"

namespace sb::email {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 16 * 1024;
// Replies to a long pipelined batch are sent before the batch ends once this much waits.
constexpr std::size_t kMaxPendingOutput = 64 * 1024;
// Sending a last reply (421, 221) and waiting for the client to close after it.
constexpr auto kClosingTime = std::chrono::seconds(2);
constexpr std::size_t kMaxDrain = 64 * 1024;

struct Connection {
  Connection(tcp::socket s, std::string peer)
      : socket(std::move(s)), timer(socket.get_executor()), address(std::move(peer)) {}

  tcp::socket socket;
  std::unique_ptr<ssl::stream<tcp::socket&>> tls;  // after STARTTLS
  // The deadline of the operation in progress; the watchdog cancels the socket's I/O
  // when it passes, so the session can still say 421 before closing.
  asio::steady_timer timer;
  bool timed_out = false;
  bool closed = false;
  bool storing = false;  // a message is with the deliver function: stop() lets it finish
  std::string address;
  std::string in;  // read, not yet consumed from in_pos on
  std::size_t in_pos = 0;
  std::string out;  // replies not yet written

  void set_deadline(std::chrono::milliseconds d) {
    timed_out = false;
    timer.expires_after(d);
  }
  void no_deadline() {
    timed_out = false;
    timer.expires_at(Clock::time_point::max());
  }
  std::string_view unread() const { return std::string_view(in).substr(in_pos); }
  void compact() {
    in.erase(0, in_pos);
    in_pos = 0;
  }
};

asio::awaitable<void> watchdog(std::shared_ptr<Connection> c) {
  while (!c->closed) {
    co_await c->timer.async_wait(kAsTuple);
    if (c->closed) break;
    // A changed deadline also wakes the wait (cancelled): only a passed one counts.
    if (c->timer.expiry() <= Clock::now()) {
      c->timed_out = true;
      error_code ignored;
      c->socket.cancel(ignored);
      c->timer.expires_at(Clock::time_point::max());
    }
  }
}

// Reads more bytes into c.in. False on error, timeout, or end of stream.
asio::awaitable<bool> read_more(Connection& c) {
  if (c.timed_out) co_return false;
  c.compact();
  const auto old_size = c.in.size();
  c.in.resize(old_size + kReadChunk);
  auto buffer = asio::buffer(c.in.data() + old_size, kReadChunk);
  error_code ec;
  std::size_t n = 0;
  if (c.tls) {
    std::tie(ec, n) = co_await c.tls->async_read_some(buffer, kAsTuple);
  } else {
    std::tie(ec, n) = co_await c.socket.async_read_some(buffer, kAsTuple);
  }
  c.in.resize(old_size + n);
  co_return !ec && n > 0;
}

// Writes the pending replies. False if that failed (the client is gone or stalled).
asio::awaitable<bool> flush(Connection& c) {
  if (c.out.empty()) co_return true;
  if (c.timed_out) co_return false;
  error_code ec;
  if (c.tls) {
    std::tie(ec, std::ignore) = co_await asio::async_write(*c.tls, asio::buffer(c.out), kAsTuple);
  } else {
    std::tie(ec, std::ignore) = co_await asio::async_write(c.socket, asio::buffer(c.out), kAsTuple);
  }
  c.out.clear();
  co_return !ec;
}

enum class LineStatus { ok, too_long, gone };

// Reads one command line (without its CRLF) into `line`, flushing pending replies before it
// waits for input. A line longer than `limit` bytes (CRLF included) is skipped up to its
// CRLF and reported as too_long. gone: the client closed, the deadline passed or the
// server stops; the caller tells these apart.
asio::awaitable<LineStatus> read_line(Connection& c, std::size_t limit, std::string& line) {
  bool skipping = false;
  std::size_t scanned = c.in_pos;
  while (true) {
    const auto crlf = c.in.find("\r\n", scanned);
    if (crlf != std::string::npos) {
      const std::size_t length = crlf + 2 - c.in_pos;
      if (!skipping && length <= limit) line.assign(c.in, c.in_pos, crlf - c.in_pos);
      c.in_pos = crlf + 2;
      co_return (skipping || length > limit) ? LineStatus::too_long : LineStatus::ok;
    }
    if (c.in.size() - c.in_pos >= limit) {
      // Over the limit without a line end: keep only a CR that may start the CRLF.
      skipping = true;
      c.in_pos = c.in.back() == '\r' ? c.in.size() - 1 : c.in.size();
    }
    scanned = c.in.size() > c.in_pos ? c.in.size() - 1 : c.in_pos;
    if (!co_await flush(c)) co_return LineStatus::gone;
    const auto kept = scanned - c.in_pos;
    if (!co_await read_more(c)) co_return LineStatus::gone;
    scanned = kept;  // read_more moved the unread bytes to the front
  }
}

// Sends the pending replies, half-closes and waits briefly for the client to close, so that
// unread input does not make the kernel reset the connection before the last reply arrives.
asio::awaitable<void> close_connection(Connection& c) {
  c.set_deadline(std::chrono::duration_cast<std::chrono::milliseconds>(kClosingTime));
  co_await flush(c);
  error_code ignored;
  c.socket.shutdown(tcp::socket::shutdown_send, ignored);
  std::array<char, 4096> sink;
  std::size_t drained = 0;
  while (drained < kMaxDrain && !c.timed_out) {
    auto [ec, n] = co_await c.socket.async_read_some(asio::buffer(sink), kAsTuple);
    if (ec) break;
    drained += n;
  }
  c.socket.close(ignored);
}

// A share of a byte budget shared by sessions, given back when it goes out of scope (also
// when the session ends by an exception).
class Reservation {
 public:
  explicit Reservation(std::size_t& total) : total_(total) {}
  ~Reservation() { total_ -= bytes_; }
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;

  // Holds `bytes` instead; false (holding nothing) if the total would pass `limit`.
  bool resize(std::size_t bytes, std::size_t limit = SIZE_MAX) {
    total_ -= bytes_;
    bytes_ = 0;
    if (bytes > limit - std::min(limit, total_)) return false;
    total_ += bytes;
    bytes_ = bytes;
    return true;
  }

 private:
  std::size_t& total_;
  std::size_t bytes_ = 0;
};

bool printable_ascii(std::string_view s) {
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (u < 32 || u > 126) return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string peer_address(const tcp::socket& socket) {
  error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  auto address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

}  // namespace

struct SmtpServer::Impl {
  Impl(asio::any_io_executor ex, SmtpServerOptions o, SmtpDeliver d, MetricsRegistry& metrics)
      : executor(std::move(ex)),
        options(std::move(o)),
        deliver(std::move(d)),
        acceptor(executor),
        connections_total(
            metrics.counter("switchboard_smtp_connections_total", "SMTP connections accepted.")),
        open_connections(metrics.gauge("switchboard_smtp_connections", "Open SMTP connections.")),
        refused_connections(metrics.counter_family(
            "switchboard_smtp_connections_refused_total",
            "SMTP connections refused with 421 at a limit (overall or per client address).",
            {"reason"})),
        messages_accepted(metrics.counter("switchboard_smtp_messages_accepted_total",
                                          "Messages received by SMTP and stored.")),
        messages_rejected(metrics.counter_family(
            "switchboard_smtp_messages_rejected_total",
            "Messages refused by SMTP, by reason (size, line_length, bare_newline, "
            "nul_byte, no_storage, store_failed).",
            {"reason"})),
        recipients_rejected(metrics.counter("switchboard_smtp_recipients_rejected_total",
                                            "RCPT TO addresses refused (not configured).")),
        disconnects(metrics.counter_family(
            "switchboard_smtp_disconnects_total",
            "SMTP sessions ended by the server, by reason (timeout, errors, tls, "
            "foreign_protocol, shutdown).",
            {"reason"})) {}

  asio::any_io_executor executor;
  SmtpServerOptions options;
  SmtpDeliver deliver;
  RecipientSet recipients;
  std::string hostname;
  std::optional<ssl::context> tls_context;
  tcp::acceptor acceptor;
  std::set<std::shared_ptr<Connection>> connections;
  std::map<std::string, std::size_t> per_client;
  std::size_t buffered_bytes = 0;  // message text held by all sessions
  bool stopped = false;

  Counter& connections_total;
  Gauge& open_connections;
  CounterFamily& refused_connections;
  Counter& messages_accepted;
  CounterFamily& messages_rejected;
  Counter& recipients_rejected;
  CounterFamily& disconnects;

  struct Session;

  Result<void> configure();
  // Runs accept_loop; should it end by an unexpected error (out of memory, say), that is
  // logged and accepting starts again after a pause until stop().
  static void start_accepting(std::shared_ptr<Impl> self);
  static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self);
  static asio::awaitable<void> session(std::shared_ptr<Impl> self, std::shared_ptr<Connection> c);
  // DATA after its checks: the text, then the store. False when the session must end.
  static asio::awaitable<bool> receive_message(Session& s);
  // STARTTLS after its checks: the handshake and the reset. False when the session must end.
  static asio::awaitable<bool> start_tls(Session& s);
  void refuse(tcp::socket& socket, const std::string& address, const char* reason,
              const std::string& text);
  void finished(const std::shared_ptr<Connection>& c);
};

Result<void> SmtpServer::Impl::configure() {
  const auto& o = options;
  auto recipient_set = RecipientSet::make(o.recipients);
  if (!recipient_set) return make_error("smtp recipients: " + recipient_set.error().message);
  if (recipient_set->empty()) {
    return make_error("smtp recipients: no address configured; the server would refuse all mail");
  }
  recipients = std::move(*recipient_set);
  hostname = o.hostname;
  if (hostname.empty()) {
    error_code ec;
    hostname = asio::ip::host_name(ec);
    if (ec) return make_error("smtp hostname is not set and the host's name is unknown");
  }
  if (!is_valid_domain(hostname)) {
    return make_error("smtp hostname '" + hostname + "' is not a valid domain name");
  }
  if (o.max_command_line < 512) {
    return make_error("smtp max_command_line must be at least 512 bytes (RFC 5321)");
  }
  if (o.max_text_line < 1000) {
    return make_error("smtp max_text_line must be at least 1000 bytes (RFC 5321)");
  }
  if (o.max_buffered_bytes < o.max_message_bytes) {
    return make_error("smtp max_buffered_bytes must be at least max_message_bytes");
  }
  if (o.max_message_bytes == 0 || o.max_recipients == 0 || o.max_connections == 0 ||
      o.max_connections_per_client == 0 || o.max_errors == 0) {
    return make_error(
        "smtp limits max_message_bytes, max_recipients, max_connections, "
        "max_connections_per_client and max_errors must be above 0");
  }
  if (o.command_timeout.count() <= 0 || o.data_timeout.count() <= 0) {
    return make_error("smtp command_timeout and data_timeout must be above 0");
  }
  if (o.tls_cert.empty()) {
    if (!o.tls_key.empty()) return make_error("smtp tls_key is set but tls_cert is not");
    return {};
  }
  tls_context.emplace(ssl::context::tls_server);
  tls_context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  error_code ec;
  tls_context->use_certificate_chain_file(o.tls_cert.string(), ec);
  if (ec) {
    tls_context.reset();
    return make_error("smtp tls_cert '" + o.tls_cert.string() + "': " + ec.message());
  }
  const auto key = o.tls_key.empty() ? o.tls_cert : o.tls_key;
  tls_context->use_private_key_file(key.string(), ssl::context::pem, ec);
  if (ec) {
    tls_context.reset();
    return make_error("smtp tls_key '" + key.string() + "': " + ec.message());
  }
  return {};
}

void SmtpServer::Impl::refuse(tcp::socket& socket, const std::string& address, const char* reason,
                              const std::string& text) {
  refused_connections.with({reason}).inc();
  spdlog::info("smtp: refused connection from {}: {}", address, text);
  // Written without waiting: a full send buffer loses the reply, never the event loop.
  const auto reply = format_reply(SmtpReply{421, "4.7.0", hostname + " " + text});
  error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(reply), ignored);
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

void SmtpServer::Impl::start_accepting(std::shared_ptr<Impl> self) {
  auto on_end = [self](std::exception_ptr e) {
    if (!e) return;
    log_failure("smtp: accept loop")(e);
    if (self->stopped) return;
    auto pause =
        std::make_shared<asio::steady_timer>(self->executor, std::chrono::milliseconds(100));
    pause->async_wait([self, pause](const error_code&) {
      if (!self->stopped) start_accepting(self);
    });
  };
  asio::co_spawn(self->executor, accept_loop(self), std::move(on_end));
}

asio::awaitable<void> SmtpServer::Impl::accept_loop(std::shared_ptr<Impl> self) {
  while (!self->stopped) {
    auto [ec, socket] = co_await self->acceptor.async_accept(kAsTuple);
    if (self->stopped) break;
    if (ec) {
      // Out of file descriptors and the like: say so, pause, go on.
      spdlog::warn("smtp: accept failed: {}", ec.message());
      asio::steady_timer pause(self->executor, std::chrono::milliseconds(50));
      co_await pause.async_wait(kAsTuple);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto address = peer_address(socket);
    const auto& o = self->options;
    if (self->connections.size() >= o.max_connections) {
      self->refuse(socket, address, "limit",
                   "Too many connections (limit " + std::to_string(o.max_connections) +
                       "), try again later");
      continue;
    }
    auto& from_client = self->per_client[address];
    if (from_client >= o.max_connections_per_client) {
      self->refuse(socket, address, "per_client",
                   "Too many connections from " + address + " (limit " +
                       std::to_string(o.max_connections_per_client) + "), try again later");
      continue;
    }
    ++from_client;
    auto connection = std::make_shared<Connection>(std::move(socket), address);
    self->connections.insert(connection);
    self->connections_total.inc();
    self->open_connections.set(static_cast<std::int64_t>(self->connections.size()));
    auto done = [self, connection](std::exception_ptr e) {
      log_failure("smtp: session from " + connection->address)(e);
      self->finished(connection);
    };
    asio::co_spawn(self->executor, watchdog(connection), log_failure("smtp: watchdog"));
    asio::co_spawn(self->executor, session(self, connection), std::move(done));
  }
}

void SmtpServer::Impl::finished(const std::shared_ptr<Connection>& c) {
  c->closed = true;
  c->timer.cancel();
  error_code ignored;
  c->socket.close(ignored);
  connections.erase(c);
  open_connections.set(static_cast<std::int64_t>(connections.size()));
  auto it = per_client.find(c->address);
  if (it != per_client.end() && --it->second == 0) per_client.erase(it);
}

// The state of one session between commands, and the replies it queues.
struct SmtpServer::Impl::Session {
  Impl& server;
  Connection& c;
  std::size_t errors = 0;
  std::size_t accepted = 0;
  std::size_t refused = 0;
  std::string helo;  // empty until HELO/EHLO (again after STARTTLS)
  bool esmtp = false;
  std::optional<MailFrom> mail;  // set between MAIL and the end of the transaction
  std::vector<std::string> recipients;
  std::string outcome = "client closed the connection";

  void say(const SmtpReply& reply) {
    // Temporary failures of our own (451, 452 4.3.1) are not the client's mistakes.
    if (reply.code >= 500 || reply.status == "4.5.3") ++errors;
    c.out += format_reply(reply);
  }
  void reset_transaction() {
    mail.reset();
    recipients.clear();
  }
  // Ends the session with a 421 that the client should see before the connection closes.
  void closing(const char* reason, std::string status, std::string text) {
    server.disconnects.with({reason}).inc();
    c.out += format_reply(SmtpReply{421, std::move(status), server.hostname + " " + text});
    outcome = std::move(text);
  }
  // After a read or write failed: a 421 when it was our deadline or our shutdown.
  void gone(const char* what) {
    if (c.timed_out) {
      spdlog::info("smtp: {} timed out {}", c.address, what);
      closing("timeout", "4.4.2", std::string("Timeout ") + what + ", closing the connection");
    } else if (server.stopped) {
      closing("shutdown", "4.3.2", "Service shutting down, try again later");
    }
  }
  void refuse_message(const char* reason, std::string_view sender, const SmtpReply& reply) {
    server.messages_rejected.with({reason}).inc();
    ++refused;
    spdlog::info("smtp: refused message from <{}> ({}): {}", sender, c.address, reply.text);
    say(reply);
  }
};

asio::awaitable<void> SmtpServer::Impl::session(std::shared_ptr<Impl> self,
                                                std::shared_ptr<Connection> connection) {
  const SmtpServerOptions& o = self->options;
  Connection& c = *connection;
  const std::string& host = self->hostname;
  Session s{*self, c};

  c.out = format_reply(SmtpReply{220, "", host + " ESMTP switchboard"});
  bool end = false;  // set by a command after which the session ends
  while (!end) {
    if (self->stopped) {
      s.closing("shutdown", "4.3.2", "Service shutting down, try again later");
      break;
    }
    if (s.errors >= o.max_errors) {
      spdlog::info("smtp: disconnecting {} after {} errors", c.address, s.errors);
      s.closing("errors", "4.7.0", "Too many errors, closing the connection");
      break;
    }
    if (c.out.size() > kMaxPendingOutput && !co_await flush(c)) break;
    c.set_deadline(o.command_timeout);
    std::string line;
    const auto status = co_await read_line(c, o.max_command_line, line);
    if (status == LineStatus::gone) {
      s.gone("waiting for a command");
      break;
    }
    if (status == LineStatus::too_long) {
      s.say(
          {500, "5.5.2", "Line too long (limit " + std::to_string(o.max_command_line) + " bytes)"});
      continue;
    }
    if (line.find_first_of("\r\n") != std::string::npos) {
      s.say({500, "5.5.2", "Bare <CR> or <LF> in command; lines end with <CR><LF>"});
      continue;
    }
    if (line.find('\0') != std::string::npos) {
      s.say({500, "5.5.2", "NUL byte in command"});
      continue;
    }
    const auto command = parse_command(line);
    const auto& arg = command.argument;
    switch (command.verb) {
      case SmtpVerb::helo:
      case SmtpVerb::ehlo: {
        const bool extended = command.verb == SmtpVerb::ehlo;
        if (arg.empty() || !printable_ascii(arg)) {
          s.say({501, "5.5.4", extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname"});
          break;
        }
        s.reset_transaction();
        s.helo = std::string(arg);
        s.esmtp = extended;
        if (!extended) {
          s.say({250, "", host});
          break;
        }
        std::string text = host + "\nPIPELINING\nSIZE " + std::to_string(o.max_message_bytes) +
                           "\n8BITMIME\nENHANCEDSTATUSCODES";
        if (self->tls_context && !c.tls) text += "\nSTARTTLS";
        s.say({250, "", std::move(text)});
        break;
      }
      case SmtpVerb::mail: {
        if (s.helo.empty()) {
          s.say({503, "5.5.1", "Send HELO or EHLO first"});
          break;
        }
        if (s.mail) {
          s.say({503, "5.5.1", "Nested MAIL command"});
          break;
        }
        auto parsed = parse_mail_from(arg);
        if (auto* refusal = std::get_if<SmtpReply>(&parsed)) {
          s.say(*refusal);
          break;
        }
        auto& from = std::get<MailFrom>(parsed);
        if (from.size && *from.size > o.max_message_bytes) {
          s.refuse_message("size", from.address,
                           {552, "5.3.4",
                            "Message size exceeds the limit of " +
                                std::to_string(o.max_message_bytes) + " bytes"});
          break;
        }
        s.mail = std::move(from);
        s.say({250, "2.1.0", "Ok"});
        break;
      }
      case SmtpVerb::rcpt: {
        if (!s.mail) {
          s.say({503, "5.5.1", "Need MAIL command"});
          break;
        }
        auto parsed = parse_rcpt_to(arg);
        if (auto* refusal = std::get_if<SmtpReply>(&parsed)) {
          s.say(*refusal);
          break;
        }
        auto& to = std::get<RcptTo>(parsed).address;
        if (!self->recipients.match(to)) {
          self->recipients_rejected.inc();
          spdlog::info("smtp: refused recipient <{}> from {}", to, c.address);
          s.say({550, "5.1.1", "<" + to + ">: Recipient address rejected: no such mailbox here"});
          break;
        }
        bool duplicate = false;
        for (const auto& r : s.recipients) duplicate = duplicate || iequals(r, to);
        if (!duplicate && s.recipients.size() >= o.max_recipients) {
          s.say({452, "4.5.3", "Too many recipients"});
          break;
        }
        if (!duplicate) s.recipients.push_back(std::move(to));
        s.say({250, "2.1.5", "Ok"});
        break;
      }
      case SmtpVerb::data:
        if (!arg.empty()) {
          s.say({501, "5.5.4", "Syntax: DATA"});
        } else if (!s.mail) {
          s.say({503, "5.5.1", "Need MAIL command"});
        } else if (s.recipients.empty()) {
          s.say({503, "5.5.1", "Need RCPT command"});
        } else {
          end = !co_await receive_message(s);
        }
        break;
      case SmtpVerb::rset:
        if (!arg.empty()) {
          s.say({501, "5.5.4", "Syntax: RSET"});
          break;
        }
        s.reset_transaction();
        s.say({250, "2.0.0", "Ok"});
        break;
      case SmtpVerb::noop:
        s.say({250, "2.0.0", "Ok"});
        break;
      case SmtpVerb::vrfy:
        if (arg.empty()) {
          s.say({501, "5.5.4", "Syntax: VRFY address"});
          break;
        }
        s.say({252, "2.5.2", "Cannot VRFY user; try RCPT to attempt delivery"});
        break;
      case SmtpVerb::expn:
        s.say({502, "5.5.1", "EXPN not available"});
        break;
      case SmtpVerb::help:
        s.say({214, "2.0.0",
               std::string("Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY") +
                   (self->tls_context && !c.tls ? " STARTTLS" : "")});
        break;
      case SmtpVerb::starttls:
        if (!self->tls_context) {
          s.say({502, "5.5.1", "STARTTLS not available"});
        } else if (c.tls) {
          s.say({503, "5.5.1", "TLS already active"});
        } else if (!arg.empty()) {
          s.say({501, "5.5.4", "Syntax: STARTTLS"});
        } else {
          end = !co_await start_tls(s);
        }
        break;
      case SmtpVerb::quit:
        c.out += format_reply(SmtpReply{221, "2.0.0", "Bye"});
        s.outcome = "quit";
        end = true;
        break;
      case SmtpVerb::foreign:
        spdlog::info("smtp: {} spoke another protocol ({}); disconnecting", c.address,
                     line.substr(0, line.find(' ')));
        s.closing("foreign_protocol", "4.7.0", "This is an SMTP server");
        end = true;
        break;
      case SmtpVerb::unknown:
        s.say({502, "5.5.2", "Command not recognized"});
        break;
    }
  }
  co_await close_connection(c);
  spdlog::debug("smtp: session from {} ended ({}): {} message(s) stored, {} refused", c.address,
                s.outcome, s.accepted, s.refused);
}

asio::awaitable<bool> SmtpServer::Impl::receive_message(Session& s) {
  Impl& self = s.server;
  Connection& c = s.c;
  const SmtpServerOptions& o = self.options;
  s.say({354, "", "End data with <CR><LF>.<CR><LF>"});
  c.set_deadline(o.data_timeout);
  SmtpDataReader reader(o.max_message_bytes, o.max_text_line);
  // The text this session holds, counted in the server's memory budget until stored.
  Reservation held(self.buffered_bytes);
  auto account = [&] {
    c.in_pos += reader.consume(c.unread());
    if (reader.problem() != SmtpDataReader::Problem::none) {
      held.resize(0);
    } else if (!held.resize(reader.size(), o.max_buffered_bytes)) {
      reader.abandon();
    }
  };
  account();
  while (!reader.done()) {
    if (!co_await flush(c) || !co_await read_more(c)) {
      s.gone("receiving the message");
      co_return false;
    }
    account();
  }
  if (reader.problem() != SmtpDataReader::Problem::none) {
    const char* reason = "size";
    switch (reader.problem()) {
      case SmtpDataReader::Problem::bare_line_feed:
      case SmtpDataReader::Problem::bare_carriage_return:
        reason = "bare_newline";
        break;
      case SmtpDataReader::Problem::nul_byte:
        reason = "nul_byte";
        break;
      case SmtpDataReader::Problem::line_too_long:
        reason = "line_length";
        break;
      case SmtpDataReader::Problem::no_storage:
        reason = "no_storage";
        break;
      case SmtpDataReader::Problem::too_big:
      case SmtpDataReader::Problem::none:
        break;
    }
    s.refuse_message(reason, s.mail->address, reader.reply());
    s.reset_transaction();
    co_return true;
  }
  if (self.stopped) {
    s.closing("shutdown", "4.3.2", "Service shutting down, try again later");
    co_return false;
  }
  const bool tls = c.tls != nullptr;
  SmtpEnvelope envelope{s.mail->address, s.recipients, c.address, s.helo, tls, random_id("smtp")};
  const ReceivedTrace trace{s.helo, c.address,   self.hostname, s.esmtp,
                            tls,    envelope.id, s.recipients,  std::chrono::system_clock::now()};
  // Inserted in front rather than concatenated: no second copy of a large text.
  std::string data = reader.take_message();
  data.insert(0, received_header(trace));
  const std::string id = envelope.id;
  if (!co_await flush(c)) co_return false;

  c.storing = true;
  c.no_deadline();  // the store's own timing is not the client's fault
  Result<void> stored = make_error("no result");
  try {
    stored = co_await self.deliver(std::move(envelope), std::move(data));
  } catch (const std::exception& e) {
    stored = make_error(std::string("exception: ") + e.what());
  }
  c.storing = false;
  held.resize(0);
  if (stored) {
    self.messages_accepted.inc();
    ++s.accepted;
    spdlog::debug("smtp: stored message {} from <{}> ({}) for {} recipient(s)", id, s.mail->address,
                  c.address, s.recipients.size());
    s.say({250, "2.0.0", "Ok: queued as " + id});
  } else {
    self.messages_rejected.with({"store_failed"}).inc();
    ++s.refused;
    spdlog::warn("smtp: storing message from <{}> ({}) failed: {}", s.mail->address, c.address,
                 stored.error().message);
    s.say({451, "4.3.0", "Temporary failure storing the message, try again later"});
  }
  s.reset_transaction();
  co_return true;
}

asio::awaitable<bool> SmtpServer::Impl::start_tls(Session& s) {
  Impl& self = s.server;
  Connection& c = s.c;
  s.say({220, "2.0.0", "Ready to start TLS"});
  if (!co_await flush(c)) co_return false;
  // Commands sent in plaintext after STARTTLS could have been injected by a man in the
  // middle (CVE-2011-0411): they are dropped, never run inside the TLS session.
  if (!c.unread().empty()) {
    spdlog::info("smtp: {} sent {} bytes after STARTTLS before the handshake; dropped", c.address,
                 c.unread().size());
  }
  c.in.clear();
  c.in_pos = 0;
  c.tls = std::make_unique<ssl::stream<tcp::socket&>>(c.socket, *self.tls_context);
  c.set_deadline(self.options.command_timeout);
  auto [ec] = co_await c.tls->async_handshake(ssl::stream_base::server, kAsTuple);
  if (ec) {
    self.disconnects.with({"tls"}).inc();
    s.outcome = "TLS handshake failed: " + ec.message();
    spdlog::info("smtp: {}: {}", c.address, s.outcome);
    co_return false;
  }
  // RFC 3207 §4.2: the client starts over with EHLO.
  s.helo.clear();
  s.esmtp = false;
  s.reset_transaction();
  co_return true;
}

SmtpServer::SmtpServer(asio::any_io_executor executor, SmtpServerOptions options,
                       SmtpDeliver deliver, MetricsRegistry& metrics)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options), std::move(deliver),
                                   metrics)) {}

SmtpServer::~SmtpServer() { stop(); }

Result<void> SmtpServer::start() {
  Impl& s = *impl_;
  if (s.acceptor.is_open() || s.stopped) return make_error("smtp server already started");
  auto configured = s.configure();
  if (!configured) return configured;
  const auto& o = s.options;
  const std::string where = o.listen + ":" + std::to_string(o.port);
  error_code ec;
  auto address = asio::ip::make_address(o.listen == "localhost" ? "127.0.0.1" : o.listen, ec);
  if (ec) return make_error("smtp cannot listen on " + where + ": not an IP address");
  tcp::endpoint endpoint(address, o.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    s.acceptor.close(ignored);
    return make_error("smtp cannot listen on " + where + ": " + ec.message());
  }
  spdlog::info("smtp: listening on {}:{} as {}{}", o.listen, port(), s.hostname,
               s.tls_context ? " (STARTTLS offered)" : "");
  Impl::start_accepting(impl_);
  return {};
}

std::uint16_t SmtpServer::port() const {
  error_code ec;
  auto endpoint = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

void SmtpServer::stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  error_code ignored;
  s.acceptor.close(ignored);
  for (const auto& c : s.connections) {
    if (!c->storing) c->socket.cancel(ignored);
  }
}

std::size_t SmtpServer::connection_count() const { return impl_->connections.size(); }

}  // namespace sb::email

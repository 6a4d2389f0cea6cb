#include "channels/email/smtp_client.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cctype>
#include <charconv>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "channels/email/mail_connection.h"
#include "common/base64.h"
#include "common/result.h"
#include "common/tls_client.h"

namespace sb::email {

namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using channels::SendOutcome;
using Security = SmtpClientOptions::Security;

// RFC 5321 4.5.3.1.5 allows 512 octets per reply line, but servers send longer texts and
// long EHLO lists: the bounds are generous, yet a hostile server cannot grow memory.
constexpr std::size_t kMaxReplyLine = 4096;
constexpr std::size_t kMaxReplyLines = 100;
// RFC 5321 4.5.3.1.3: a path is at most 256 octets including the angle brackets.
constexpr std::size_t kMaxAddress = 254;
// Once the outcome is known, a server that stalls on QUIT must not hold the outbox for long.
constexpr std::chrono::milliseconds kQuitTimeout{10'000};

SendOutcome retry(std::string error) { return {SendOutcome::Kind::retry, std::move(error)}; }
SendOutcome failed(std::string error) { return {SendOutcome::Kind::failed, std::move(error)}; }

// Server text ends up in logs and in JSON answers of the API: printable ASCII only.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u == '\t') c = ' ';
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  return out;
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool has_8bit(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// An envelope address goes into a command line between angle brackets: anything that could
// end the line or the brackets would let the address inject commands.
std::optional<std::string> address_problem(std::string_view address) {
  if (address.size() > kMaxAddress) {
    return "is longer than " + std::to_string(kMaxAddress) + " bytes";
  }
  for (char c : address) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return std::string("contains a control character");
    if (c == '<' || c == '>') return std::string("contains an angle bracket");
  }
  return std::nullopt;
}

// The message as it goes on the wire after DATA (RFC 5321 4.5.2): every line ends in CRLF
// (a bare CR or LF becomes one, so that no server can be made to see an end of data the
// others do not: "SMTP smuggling"), a leading dot is doubled, and "." ends it.
std::string dot_stuff(std::string_view data) {
  std::string out;
  out.reserve(data.size() + data.size() / 32 + 5);
  bool line_start = true;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
      out += "\r\n";
      line_start = true;
      continue;
    }
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = false;
  }
  if (!line_start) out += "\r\n";
  out += ".\r\n";
  return out;
}

struct Reply {
  int code = 0;
  std::vector<std::string> lines;  // the text after "ddd-" or "ddd ", printable

  // "550 5.1.1 <x@y>: user unknown"; the lines of a multi-line answer joined by spaces.
  std::string text() const {
    std::string out = std::to_string(code);
    for (const auto& line : lines) {
      if (!line.empty()) out += " " + line;
    }
    return out;
  }
};

// The EHLO keywords (RFC 5321 4.1.1.1), upper case, with their parameters.
class Extensions {
 public:
  Extensions() = default;
  explicit Extensions(const Reply& ehlo) {
    // The first line is the server's name and greeting, not an extension.
    for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
      std::string_view line = ehlo.lines[i];
      const auto space = line.find(' ');
      std::string keyword = upper(line.substr(0, space));
      std::string params =
          space == std::string_view::npos ? "" : std::string(line.substr(space + 1));
      // Servers from before RFC 4954 advertise "AUTH=LOGIN PLAIN".
      if (keyword.starts_with("AUTH=")) {
        params = keyword.substr(5) + (params.empty() ? "" : " " + params);
        keyword = "AUTH";
      }
      auto& stored = keywords_[keyword];
      stored += (stored.empty() ? "" : " ") + params;
    }
  }
  bool has(std::string_view keyword) const { return keywords_.contains(std::string(keyword)); }
  bool has_auth(std::string_view mechanism) const {
    auto it = keywords_.find("AUTH");
    if (it == keywords_.end()) return false;
    const std::string mechanisms = upper(it->second);
    std::size_t pos = 0;
    while (pos < mechanisms.size()) {
      const auto end = std::min(mechanisms.find(' ', pos), mechanisms.size());
      if (std::string_view(mechanisms).substr(pos, end - pos) == mechanism) return true;
      pos = end + 1;
    }
    return false;
  }
  std::string auth_list() const {
    auto it = keywords_.find("AUTH");
    return it == keywords_.end() ? "" : printable(it->second);
  }
  // The server's message size limit (RFC 1870); 0 when it states none.
  std::uint64_t size_limit() const {
    auto it = keywords_.find("SIZE");
    if (it == keywords_.end()) return 0;
    std::string_view text = it->second;
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    std::uint64_t limit = 0;
    std::from_chars(text.data(), text.data() + text.size(), limit);
    return limit;
  }

 private:
  std::map<std::string, std::string, std::less<>> keywords_;
};

// One SMTP conversation over a MailConnection: replies, EHLO and its extensions, commands.
class Connection {
 public:
  Connection(asio::any_io_executor executor, ssl::context& tls, const SmtpClientOptions& options)
      : options_(options),
        conn_(std::move(executor), tls, options.host, options.port, options.verify_certificate,
              "smtp") {}

  const std::string& server() const { return conn_.server(); }
  const Extensions& extensions() const { return extensions_; }
  // Resolves the host and connects, within connect_timeout. Error: what failed, for a retry.
  asio::awaitable<Result<void>> connect() { return conn_.connect(options_.connect_timeout); }
  // The TLS handshake, checking the certificate's chain and that it is for options.host.
  // Error: why it failed (the certificate problem when there is one), for a retry.
  asio::awaitable<Result<void>> handshake() { return conn_.handshake(options_.connect_timeout); }
  void discard_buffered() { conn_.discard_buffered(); }

  // Reads one complete reply, single- or multi-line, within `timeout`. `step` names what it
  // answers, for the error. Error: a connection problem or an unreadable reply.
  asio::awaitable<Result<Reply>> read_reply(std::string_view step,
                                            std::chrono::milliseconds timeout) {
    conn_.expires_after(timeout);
    Reply reply;
    for (;;) {
      auto line = co_await conn_.read_line(step, kMaxReplyLine);
      if (!line) co_return line.error();
      const std::string& text = *line;
      const bool well_formed = text.size() >= 3 && text[0] >= '1' && text[0] <= '5' &&
                               std::isdigit(static_cast<unsigned char>(text[1])) &&
                               std::isdigit(static_cast<unsigned char>(text[2])) &&
                               (text.size() == 3 || text[3] == ' ' || text[3] == '-');
      const int code = well_formed ? std::stoi(text.substr(0, 3)) : 0;
      if (!well_formed || (reply.code != 0 && code != reply.code)) {
        conn_.mark_broken();
        co_return make_error(server() + " sent an unreadable answer to " + std::string(step) +
                             ": \"" + printable(text.substr(0, 200)) + "\"");
      }
      reply.code = code;
      reply.lines.push_back(printable(text.size() > 4 ? text.substr(4) : ""));
      if (text.size() == 3 || text[3] == ' ') co_return reply;
      if (reply.lines.size() >= kMaxReplyLines) {
        conn_.mark_broken();
        co_return make_error(server() + " sent an answer of more than " +
                             std::to_string(kMaxReplyLines) + " lines to " + std::string(step));
      }
    }
  }
  asio::awaitable<Result<Reply>> read_reply(std::string_view step) {
    return read_reply(step, options_.command_timeout);
  }

  // Writes `bytes` within command_timeout. Error: the connection problem.
  asio::awaitable<Result<void>> write(std::string_view bytes, std::string_view step) {
    conn_.expires_after(options_.command_timeout);
    return conn_.write(bytes, step);
  }

  // Sends one command line and reads its reply. `step` names the command for errors: it is
  // never the line itself, which may hold credentials.
  asio::awaitable<Result<Reply>> command(std::string_view line, std::string_view step) {
    const std::string wire = std::string(line) + "\r\n";
    auto written = co_await write(wire, step);
    if (!written) co_return written.error();
    co_return co_await read_reply(step);
  }

  // EHLO, or HELO for a server that does not know EHLO (RFC 5321 3.2). Records the
  // extensions. Returns the outcome to stop with, or nothing to go on.
  asio::awaitable<std::optional<SendOutcome>> hello() {
    const std::string ehlo = "EHLO " + options_.helo_name;
    auto reply = co_await command(ehlo, "EHLO");
    if (reply && reply->code / 100 == 5) {
      extensions_ = Extensions();
      const std::string helo = "HELO " + options_.helo_name;
      auto fallback = co_await command(helo, "HELO");
      co_return unexpected(fallback, "HELO", 2);
    }
    if (auto stop = unexpected(reply, "EHLO", 2)) co_return stop;
    extensions_ = Extensions(*reply);
    co_return std::nullopt;
  }

  // Nothing when `reply` is of the expected class (2 or 3); otherwise the outcome: 4xx and
  // connection problems retry, 5xx fail, anything else is a confused server (retry).
  std::optional<SendOutcome> unexpected(const Result<Reply>& reply, std::string_view step,
                                        int expected_class) const {
    if (!reply) return retry(reply.error().message);
    const int kind = reply->code / 100;
    if (kind == expected_class) return std::nullopt;
    if (kind == 4 || kind == 5) {
      std::string error = server() + " answered " + std::string(step) + ": " + reply->text();
      return kind == 4 ? retry(std::move(error)) : failed(std::move(error));
    }
    return retry(server() + " gave an unexpected answer to " + std::string(step) + ": " +
                 reply->text());
  }

  // Says goodbye if the connection is still usable; its answer does not matter.
  asio::awaitable<void> quit() {
    if (!conn_.healthy()) co_return;
    auto written = co_await write("QUIT\r\n", "QUIT");
    if (written) {
      auto answer = co_await read_reply("QUIT", std::min(options_.command_timeout, kQuitTimeout));
      (void)answer;
    }
    conn_.shutdown();
  }

 private:
  const SmtpClientOptions& options_;
  MailConnection conn_;
  Extensions extensions_;
};

// What can be known wrong before connecting: it would be wrong on every attempt.
std::optional<std::string> invalid_input(const SmtpClientOptions& options,
                                         const SmtpMessage& message) {
  if (options.host.empty()) return "no SMTP server is configured";
  if (options.helo_name.empty() ||
      options.helo_name.find_first_of(" \t\r\n") != std::string::npos) {
    return "the HELO name \"" + printable(options.helo_name) + "\" is not a host name";
  }
  if (options.username.find('\0') != std::string::npos ||
      options.password.find('\0') != std::string::npos) {
    return std::string("the SMTP user name or password contains a NUL byte");
  }
  if (message.recipients.empty()) return std::string("the message has no recipients");
  if (auto problem = address_problem(message.mail_from)) {
    return "the sender address \"" + printable(message.mail_from) + "\" " + *problem;
  }
  for (const auto& recipient : message.recipients) {
    if (recipient.empty()) return std::string("a recipient address is empty");
    if (auto problem = address_problem(recipient)) {
      return "the recipient address \"" + printable(recipient) + "\" " + *problem;
    }
  }
  return std::nullopt;
}

// Logs in with the first of PLAIN and LOGIN the server offers. Nothing to go on.
asio::awaitable<std::optional<SendOutcome>> authenticate(Connection& c,
                                                         const SmtpClientOptions& options) {
  const Extensions& ext = c.extensions();
  if (ext.has_auth("PLAIN")) {
    // RFC 4616: authorization id (empty), NUL, user name, NUL, password.
    const std::string credentials = base64_encode(std::string(1, '\0') + options.username +
                                                  std::string(1, '\0') + options.password);
    const std::string line = "AUTH PLAIN " + credentials;
    auto reply = co_await c.command(line, "AUTH PLAIN");
    // A server that ignores the initial response asks for it with an empty challenge.
    if (reply && reply->code == 334) reply = co_await c.command(credentials, "AUTH PLAIN");
    co_return c.unexpected(reply, "AUTH PLAIN", 2);
  }
  if (ext.has_auth("LOGIN")) {
    auto start = co_await c.command("AUTH LOGIN", "AUTH LOGIN");
    if (auto stop = c.unexpected(start, "AUTH LOGIN", 3)) co_return stop;
    const std::string user = base64_encode(options.username);
    auto asked = co_await c.command(user, "AUTH LOGIN (user name)");
    if (auto stop = c.unexpected(asked, "AUTH LOGIN (user name)", 3)) co_return stop;
    const std::string password = base64_encode(options.password);
    auto done = co_await c.command(password, "AUTH LOGIN (password)");
    co_return c.unexpected(done, "AUTH LOGIN (password)", 2);
  }
  if (!ext.has("AUTH")) {
    co_return failed(c.server() + " does not offer AUTH, so cannot log in as " +
                     printable(options.username));
  }
  co_return failed(c.server() + " offers AUTH " + ext.auth_list() +
                   " but neither PLAIN nor LOGIN, which are the ones supported");
}

// The conversation from the greeting to the end of DATA, top to bottom.
asio::awaitable<SendOutcome> converse(Connection& c, const SmtpClientOptions& options,
                                      const SmtpMessage& message, const std::string& payload) {
  if (options.security == Security::tls) {
    auto secured = co_await c.handshake();
    if (!secured) co_return retry(secured.error().message);
  }
  auto greeting = co_await c.read_reply("the connection");
  if (auto stop = c.unexpected(greeting, "the connection", 2)) co_return *stop;
  if (auto stop = co_await c.hello()) co_return *stop;

  if (options.security == Security::starttls) {
    if (!c.extensions().has("STARTTLS")) {
      co_return retry(c.server() +
                      " does not offer STARTTLS; not sending in clear text (security is starttls)");
    }
    auto go_ahead = co_await c.command("STARTTLS", "STARTTLS");
    if (auto stop = c.unexpected(go_ahead, "STARTTLS", 2)) co_return *stop;
    c.discard_buffered();
    auto secured = co_await c.handshake();
    if (!secured) co_return retry(secured.error().message);
    // RFC 3207 4.2: everything learnt before TLS is forgotten, the extensions included.
    if (auto stop = co_await c.hello()) co_return *stop;
  }

  if (!options.username.empty()) {
    if (auto stop = co_await authenticate(c, options)) co_return *stop;
  }

  const Extensions& ext = c.extensions();
  std::string mail = "MAIL FROM:<" + message.mail_from + ">";
  if (ext.has("SIZE")) {
    const std::uint64_t limit = ext.size_limit();
    if (limit > 0 && payload.size() > limit) {
      co_return failed("the message is " + std::to_string(payload.size()) + " bytes; " +
                       c.server() + " accepts at most " + std::to_string(limit) + " (SIZE)");
    }
    mail += " SIZE=" + std::to_string(payload.size());
  }
  if (has_8bit(payload) && ext.has("8BITMIME")) mail += " BODY=8BITMIME";
  bool utf8_addresses = has_8bit(message.mail_from);
  for (const auto& recipient : message.recipients) utf8_addresses |= has_8bit(recipient);
  if (utf8_addresses) {
    if (!ext.has("SMTPUTF8")) {
      co_return failed(c.server() +
                       " does not accept addresses with non-ASCII characters (no SMTPUTF8)");
    }
    mail += " SMTPUTF8";
  }
  auto mail_reply = co_await c.command(mail, "MAIL FROM");
  if (auto stop = c.unexpected(mail_reply, "MAIL FROM", 2)) co_return *stop;

  std::vector<std::string> refused;
  for (const auto& recipient : message.recipients) {
    const std::string step = "RCPT TO:<" + printable(recipient) + ">";
    const std::string line = "RCPT TO:<" + recipient + ">";
    auto reply = co_await c.command(line, step);
    // A 5xx refuses this recipient only; a 4xx (or worse) ends the attempt before DATA, so
    // the retry cannot deliver twice to the recipients accepted now.
    if (reply && reply->code / 100 == 5) {
      refused.push_back(step + ": " + reply->text());
      continue;
    }
    if (auto stop = c.unexpected(reply, step, 2)) co_return *stop;
  }
  if (refused.size() == message.recipients.size()) {
    co_return failed(c.server() + " refused " + fmt::format("{}", fmt::join(refused, "; ")));
  }

  auto go_ahead = co_await c.command("DATA", "DATA");
  if (auto stop = c.unexpected(go_ahead, "DATA", 3)) co_return *stop;
  auto written = co_await c.write(payload, "the message");
  if (!written) co_return retry(written.error().message);
  auto taken = co_await c.read_reply("the message data");
  if (auto stop = c.unexpected(taken, "the message data", 2)) co_return *stop;
  if (refused.empty()) co_return SendOutcome{};
  co_return SendOutcome{SendOutcome::Kind::sent, "sent, but " + c.server() + " refused " +
                                                     fmt::format("{}", fmt::join(refused, "; "))};
}

const char* kind_name(SendOutcome::Kind kind) {
  switch (kind) {
    case SendOutcome::Kind::sent:
      return "sent";
    case SendOutcome::Kind::retry:
      return "retry";
    case SendOutcome::Kind::failed:
      return "failed";
  }
  return "?";
}

}  // namespace

asio::awaitable<SendOutcome> smtp_send(asio::any_io_executor executor,
                                       const SmtpClientOptions& options,
                                       const SmtpMessage& message) {
  if (auto problem = invalid_input(options, message)) co_return failed(std::move(*problem));
  const std::string payload = dot_stuff(message.data);

  ssl::context tls(ssl::context::tls_client);
  if (options.security != Security::plain) {
    auto loaded = configure_tls_client(tls, options.verify_certificate, options.ca_file);
    if (!loaded) co_return retry(loaded.error().message);
  }

  Connection c(executor, tls, options);
  auto connected = co_await c.connect();
  if (!connected) {
    spdlog::debug("smtp {}: {}", c.server(), connected.error().message);
    co_return retry(connected.error().message);
  }
  SendOutcome outcome = co_await converse(c, options, message, payload);
  co_await c.quit();
  spdlog::debug("smtp {}: message for {} recipient(s): {}{}{}", c.server(),
                message.recipients.size(), kind_name(outcome.kind),
                outcome.error.empty() ? "" : ": ", outcome.error);
  co_return outcome;
}

std::vector<std::string> smtp_client_warnings(const SmtpClientOptions& options) {
  std::vector<std::string> warnings;
  const std::string server = options.host + ":" + std::to_string(options.port);
  if (options.security == Security::plain) {
    warnings.push_back("email: TLS is off for the SMTP server " + server +
                       " (security = plain): mail" +
                       (options.username.empty() ? "" : " and the password") +
                       " travel unencrypted; use this only for a local test server");
  } else if (!options.verify_certificate) {
    warnings.push_back("email: certificate verification is off for the SMTP server " + server +
                       ": anyone on the network path can pose as the server and read the mail" +
                       (options.username.empty() ? "" : " and the password"));
  }
  return warnings;
}

}  // namespace sb::email

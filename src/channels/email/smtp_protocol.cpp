#include "channels/email/smtp_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <limits>

namespace sb::email {

namespace {

constexpr std::size_t kMaxLocalPart = 64;   // RFC 5321 §4.5.3.1.1
constexpr std::size_t kMaxDomain = 255;     // RFC 5321 §4.5.3.1.2
constexpr std::size_t kMaxPath = 256;       // RFC 5321 §4.5.3.1.3, brackets included
constexpr std::size_t kMaxSizeDigits = 20;  // enough for any uint64, bounded work
constexpr std::size_t kMaxReceivedHelo = 255;

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_let_dig(char c) { return is_alpha(c) || is_digit(c); }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// RFC 5322 atext.
bool is_atext(char c) {
  if (is_let_dig(c)) return true;
  constexpr std::string_view specials = "!#$%&'*+-/=?^_`{|}~";
  return specials.find(c) != std::string_view::npos;
}

bool is_dot_string(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char previous = 0;
  for (char c : s) {
    if (c == '.') {
      if (previous == '.') return false;
    } else if (!is_atext(c)) {
      return false;
    }
    previous = c;
  }
  return true;
}

// RFC 5321 Quoted-string, the quotes included.
bool is_quoted_string(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      if (i + 2 >= s.size()) return false;  // the escaped byte would be the closing quote
      const auto escaped = static_cast<unsigned char>(s[++i]);
      if (escaped < 32 || escaped > 126) return false;
    } else if (c < 32 || c > 126 || c == '"') {
      return false;
    }
  }
  return true;
}

bool is_address_literal(std::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  const std::string inner(s.substr(1, s.size() - 2));
  // inet_pton reads up to the first NUL: "[192.0.2.1\0<anything>]" must not pass.
  if (inner.find('\0') != std::string::npos) return false;
  std::array<unsigned char, 16> scratch;
  if (istarts_with(inner, "IPv6:")) {
    return inet_pton(AF_INET6, inner.c_str() + 5, scratch.data()) == 1;
  }
  return inet_pton(AF_INET, inner.c_str(), scratch.data()) == 1;
}

// Where the local part of `mailbox` ends (the index of its '@'), honouring a quoted local
// part; npos when there is no '@' outside quotes.
std::size_t local_part_end(std::string_view mailbox) {
  if (!mailbox.empty() && mailbox.front() == '"') {
    for (std::size_t i = 1; i < mailbox.size(); ++i) {
      if (mailbox[i] == '\\') {
        ++i;
      } else if (mailbox[i] == '"') {
        return (i + 1 < mailbox.size() && mailbox[i + 1] == '@') ? i + 1 : std::string_view::npos;
      }
    }
    return std::string_view::npos;
  }
  return mailbox.find('@');
}

enum class PathError { syntax, address };

struct Path {
  std::string mailbox;  // "" for "<>"
  std::string_view rest;
};

// Parses "<[@route,@route:]mailbox>" at the start of `s` (after the spaces some clients put
// before it). `postmaster_ok` admits "<Postmaster>" without a domain.
std::variant<Path, PathError> parse_path(std::string_view s, bool postmaster_ok) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  if (s.empty() || s.front() != '<') return PathError::syntax;
  // Find the closing '>' outside a quoted local part.
  std::size_t close = std::string_view::npos;
  bool quoted = false;
  for (std::size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted && c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == '>') {
      close = i;
      break;
    }
  }
  if (close == std::string_view::npos) return PathError::syntax;
  if (close + 1 > kMaxPath) return PathError::address;
  std::string_view inner = s.substr(1, close - 1);
  Path path;
  path.rest = s.substr(close + 1);
  if (!inner.empty() && inner.front() == '@') {
    // A source route: obsolete, to be accepted and ignored (RFC 5321 §4.1.1.3, appendix C).
    const auto colon = inner.find(':');
    if (colon == std::string_view::npos) return PathError::address;
    std::string_view route = inner.substr(0, colon);
    while (!route.empty()) {
      const auto comma = route.find(',');
      const auto hop = route.substr(0, comma);
      if (hop.size() < 2 || hop.front() != '@' || !is_valid_domain(hop.substr(1))) {
        return PathError::address;
      }
      if (comma == std::string_view::npos) break;
      route.remove_prefix(comma + 1);
    }
    inner.remove_prefix(colon + 1);
  }
  if (inner.empty()) return path;  // "<>": the caller decides whether it is allowed
  if (postmaster_ok && iequals(inner, "postmaster")) {
    path.mailbox = std::string(inner);
    return path;
  }
  if (!is_valid_mailbox(inner)) return PathError::address;
  path.mailbox = std::string(inner);
  return path;
}

struct Parameter {
  std::string_view keyword;
  std::string_view value;  // empty when the parameter has no "="
};

// Splits "KEY=value KEY2" into parameters; nullopt if one is malformed (RFC 5321 §4.1.2).
std::optional<std::vector<Parameter>> parse_parameters(std::string_view s) {
  std::vector<Parameter> out;
  while (!s.empty()) {
    if (s.front() == ' ') {
      s.remove_prefix(1);
      continue;
    }
    const auto end = std::min(s.find(' '), s.size());
    const auto token = s.substr(0, end);
    s.remove_prefix(end);
    const auto eq = token.find('=');
    Parameter p{token.substr(0, eq), eq == std::string_view::npos ? "" : token.substr(eq + 1)};
    if (p.keyword.empty() || !is_let_dig(p.keyword.front())) return std::nullopt;
    for (char c : p.keyword) {
      if (!is_let_dig(c) && c != '-') return std::nullopt;
    }
    if (eq != std::string_view::npos && p.value.empty()) return std::nullopt;
    for (char c : p.value) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 33 || u > 126 || u == '=') return std::nullopt;
    }
    out.push_back(p);
  }
  return out;
}

SmtpReply reply(int code, std::string status, std::string text) {
  return SmtpReply{code, std::move(status), std::move(text)};
}

// "Tue, 21 Nov 2026 16:21:00 +0000" (RFC 5322 date-time, UTC). Written by hand because
// strftime's day and month names follow the locale.
std::string rfc5322_date(std::chrono::system_clock::time_point time) {
  static constexpr std::array<const char*, 7> kDays = {"Sun", "Mon", "Tue", "Wed",
                                                       "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 64> buffer;
  const int n = std::snprintf(buffer.data(), buffer.size(), "%s, %02d %s %04d %02d:%02d:%02d +0000",
                              kDays[tm.tm_wday % 7], tm.tm_mday, kMonths[tm.tm_mon % 12],
                              tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return std::string(buffer.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace

std::string format_reply(const SmtpReply& r) {
  std::string out;
  std::string_view text = r.text;
  const std::string code = std::to_string(r.code);
  while (true) {
    const auto nl = text.find('\n');
    const auto line = text.substr(0, nl);
    const bool last = nl == std::string_view::npos;
    out += code;
    out += last ? ' ' : '-';
    if (!r.status.empty()) {
      out += r.status;
      out += ' ';
    }
    for (char c : line) out += (c == '\r') ? ' ' : c;  // a reply line must not be split
    out += "\r\n";
    if (last) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

SmtpCommand parse_command(std::string_view line) {
  const auto space = std::min(line.find(' '), line.size());
  const auto verb = line.substr(0, space);
  auto argument = line.substr(space);
  while (!argument.empty() && argument.front() == ' ') argument.remove_prefix(1);
  while (!argument.empty() && (argument.back() == ' ' || argument.back() == '\t')) {
    argument.remove_suffix(1);
  }
  static constexpr std::pair<std::string_view, SmtpVerb> kVerbs[] = {
      {"HELO", SmtpVerb::helo},   {"EHLO", SmtpVerb::ehlo},       {"MAIL", SmtpVerb::mail},
      {"RCPT", SmtpVerb::rcpt},   {"DATA", SmtpVerb::data},       {"RSET", SmtpVerb::rset},
      {"NOOP", SmtpVerb::noop},   {"QUIT", SmtpVerb::quit},       {"VRFY", SmtpVerb::vrfy},
      {"EXPN", SmtpVerb::expn},   {"HELP", SmtpVerb::help},       {"STARTTLS", SmtpVerb::starttls},
      {"GET", SmtpVerb::foreign}, {"POST", SmtpVerb::foreign},    {"HEAD", SmtpVerb::foreign},
      {"PUT", SmtpVerb::foreign}, {"CONNECT", SmtpVerb::foreign},
  };
  for (const auto& [name, v] : kVerbs) {
    if (iequals(verb, name)) return SmtpCommand{v, argument};
  }
  return SmtpCommand{SmtpVerb::unknown, argument};
}

bool is_valid_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > kMaxDomain) return false;
  if (domain.front() == '[') return is_address_literal(domain);
  while (true) {
    const auto dot = domain.find('.');
    const auto label = domain.substr(0, dot);
    if (label.empty() || label.size() > 63) return false;
    if (!is_let_dig(label.front()) || !is_let_dig(label.back())) return false;
    for (char c : label) {
      if (!is_let_dig(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    domain.remove_prefix(dot + 1);
  }
}

bool is_valid_mailbox(std::string_view address) {
  const auto at = local_part_end(address);
  if (at == std::string_view::npos || at == 0) return false;
  const auto local = address.substr(0, at);
  const auto domain = address.substr(at + 1);
  if (local.size() > kMaxLocalPart) return false;
  if (!(local.front() == '"' ? is_quoted_string(local) : is_dot_string(local))) return false;
  return is_valid_domain(domain);
}

OrReply<MailFrom> parse_mail_from(std::string_view argument) {
  auto syntax = [] { return reply(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]"); };
  if (!istarts_with(argument, "FROM:")) return syntax();
  auto parsed = parse_path(argument.substr(5), false);
  if (auto* error = std::get_if<PathError>(&parsed)) {
    if (*error == PathError::syntax) return syntax();
    return reply(501, "5.1.7", "Bad sender address syntax");
  }
  auto& path = std::get<Path>(parsed);
  if (!path.rest.empty() && path.rest.front() != ' ') return syntax();
  auto parameters = parse_parameters(path.rest);
  if (!parameters) return reply(501, "5.5.4", "Malformed MAIL FROM parameters");
  MailFrom out;
  out.address = std::move(path.mailbox);
  bool seen_body = false;
  for (const auto& p : *parameters) {
    if (iequals(p.keyword, "SIZE")) {
      if (out.size) return reply(555, "5.5.4", "SIZE given twice");
      if (p.value.empty() || p.value.size() > kMaxSizeDigits) {
        return reply(555, "5.5.4", "Bad SIZE value");
      }
      std::uint64_t size = 0;
      for (char c : p.value) {
        if (!is_digit(c)) return reply(555, "5.5.4", "Bad SIZE value");
        const auto digit = static_cast<std::uint64_t>(c - '0');
        constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
        size = size > (kMax - digit) / 10 ? kMax : size * 10 + digit;
      }
      out.size = size;
    } else if (iequals(p.keyword, "BODY")) {
      if (seen_body) return reply(555, "5.5.4", "BODY given twice");
      seen_body = true;
      if (iequals(p.value, "8BITMIME")) {
        out.body_8bit = true;
      } else if (!iequals(p.value, "7BIT")) {
        return reply(555, "5.5.4", "Unsupported BODY type (7BIT or 8BITMIME)");
      }
    } else {
      return reply(555, "5.5.4", "Unsupported MAIL FROM parameter " + std::string(p.keyword));
    }
  }
  return out;
}

OrReply<RcptTo> parse_rcpt_to(std::string_view argument) {
  auto syntax = [] { return reply(501, "5.5.4", "Syntax: RCPT TO:<address>"); };
  if (!istarts_with(argument, "TO:")) return syntax();
  auto parsed = parse_path(argument.substr(3), true);
  if (auto* error = std::get_if<PathError>(&parsed)) {
    if (*error == PathError::syntax) return syntax();
    return reply(501, "5.1.3", "Bad recipient address syntax");
  }
  auto& path = std::get<Path>(parsed);
  if (path.mailbox.empty()) return reply(501, "5.1.3", "Bad recipient address syntax");
  if (!path.rest.empty() && path.rest.front() != ' ') return syntax();
  auto parameters = parse_parameters(path.rest);
  if (!parameters) return reply(501, "5.5.4", "Malformed RCPT TO parameters");
  if (!parameters->empty()) {
    return reply(555, "5.5.4",
                 "Unsupported RCPT TO parameter " + std::string(parameters->front().keyword));
  }
  return RcptTo{std::move(path.mailbox)};
}

Result<RecipientSet> RecipientSet::make(const std::vector<std::string>& addresses) {
  RecipientSet set;
  for (const auto& address : addresses) {
    if (!is_valid_mailbox(address)) {
      return make_error("recipient address '" + address +
                        "' is not a valid mailbox (local@domain)");
    }
    set.addresses_.push_back(to_lower(address));
  }
  return set;
}

std::optional<std::string> RecipientSet::match(std::string_view recipient) const {
  auto find = [this](const std::string& key) -> std::optional<std::string> {
    auto it = std::find(addresses_.begin(), addresses_.end(), key);
    if (it == addresses_.end()) return std::nullopt;
    return *it;
  };
  std::string key = to_lower(recipient);
  if (auto hit = find(key)) return hit;
  const auto at = local_part_end(key);
  if (at == std::string_view::npos) return std::nullopt;
  const auto plus = key.find('+');
  if (plus == std::string::npos || plus > at || plus == 0) return std::nullopt;
  key.erase(plus, at - plus);
  return find(key);
}

SmtpDataReader::SmtpDataReader(std::size_t max_message_bytes, std::size_t max_line_bytes)
    : max_message_bytes_(max_message_bytes), max_line_bytes_(max_line_bytes) {}

void SmtpDataReader::flag(Problem p) {
  if (problem_ != Problem::none) return;
  problem_ = p;
  // The message will be refused: keep nothing of it.
  message_.clear();
  message_.shrink_to_fit();
}

void SmtpDataReader::append(std::string_view bytes) {
  if (bytes.empty()) return;
  if (at_line_start_) {
    at_line_start_ = false;
    if (bytes.front() == '.') {
      leading_dot_ = true;
      bytes.remove_prefix(1);
      if (bytes.empty()) return;
    }
  }
  // More bytes after a leading dot: it was a stuffed one, and is dropped (RFC 5321 §4.5.2).
  leading_dot_ = false;
  if (bytes.find('\0') != std::string_view::npos) flag(Problem::nul_byte);
  line_bytes_ += bytes.size();
  size_ += bytes.size();
  if (line_bytes_ + 2 > max_line_bytes_) flag(Problem::line_too_long);
  if (size_ > max_message_bytes_) flag(Problem::too_big);
  if (problem_ == Problem::none) message_.append(bytes);
}

void SmtpDataReader::end_line() {
  if (leading_dot_ && line_bytes_ == 0) {
    done_ = true;
    return;
  }
  leading_dot_ = false;
  size_ += 2;
  if (size_ > max_message_bytes_) flag(Problem::too_big);
  if (problem_ == Problem::none) message_.append("\r\n");
  line_bytes_ = 0;
  at_line_start_ = true;
}

std::size_t SmtpDataReader::consume(std::string_view in) {
  std::size_t i = 0;
  const std::size_t n = in.size();
  while (i < n && !done_) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (in[i] == '\n') {
        ++i;
        end_line();
      } else {
        flag(Problem::bare_carriage_return);
        append("\r");
      }
      continue;
    }
    std::size_t stop = i;
    while (stop < n && in[stop] != '\r' && in[stop] != '\n') ++stop;
    append(in.substr(i, stop - i));
    if (stop == n) return n;
    i = stop + 1;
    if (in[stop] == '\n') {
      flag(Problem::bare_line_feed);
      append("\n");
    } else if (i == n) {
      pending_cr_ = true;
    } else if (in[i] == '\n') {
      ++i;
      end_line();
    } else {
      flag(Problem::bare_carriage_return);
      append("\r");
    }
  }
  return i;
}

SmtpReply SmtpDataReader::reply() const {
  switch (problem_) {
    case Problem::bare_line_feed:
      return email::reply(550, "5.6.11", "Bare <LF> in message data; lines must end with <CR><LF>");
    case Problem::bare_carriage_return:
      return email::reply(550, "5.6.11", "Bare <CR> in message data; lines must end with <CR><LF>");
    case Problem::nul_byte:
      return email::reply(550, "5.6.0", "NUL byte in message data; RFC 5321 does not allow it");
    case Problem::line_too_long:
      return email::reply(
          552, "5.3.4",
          "Message has a line longer than " + std::to_string(max_line_bytes_) + " bytes");
    case Problem::no_storage:
      return email::reply(452, "4.3.1", "Insufficient system storage, try again later");
    case Problem::too_big:
    case Problem::none:
      break;
  }
  return email::reply(
      552, "5.3.4",
      "Message exceeds the size limit of " + std::to_string(max_message_bytes_) + " bytes");
}

std::string received_header(const ReceivedTrace& trace) {
  std::string from = trace.helo.size() <= kMaxReceivedHelo && is_valid_domain(trace.helo)
                         ? trace.helo
                         : std::string("unknown");
  const bool v6 = trace.client_address.find(':') != std::string::npos;
  std::string out = "Received: from " + from + " ([" + (v6 ? "IPv6:" : "") + trace.client_address +
                    "])\r\n\tby " + trace.hostname + " (switchboard) with " +
                    (trace.esmtp ? "ESMTP" : "SMTP") + (trace.tls ? "S" : "") + " id " + trace.id;
  if (trace.recipients.size() == 1) {
    out += "\r\n\tfor <" + trace.recipients.front() + ">";
  }
  out += "; " + rfc5322_date(trace.time) + "\r\n";
  return out;
}

}  // namespace sb::email

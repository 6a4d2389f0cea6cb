#pragma once
// The pure parts of the SMTP receiver (RFC 5321), without I/O: command lines, envelope
// addresses, recipient matching, the DATA reader and the Received: header. SmtpServer
// (smtp_server.h) drives them from one coroutine per connection.
//
// Everything here takes hostile input: lengths are bounded, and failures come back as the
// SMTP reply to send, never as an exception. Threading: plain values, no shared state.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace sb::email {

// One SMTP reply: "550 5.1.1 <a@b>: no such recipient". `status` is the enhanced status
// code (RFC 3463), empty where none belongs (the greeting, EHLO). `text` may hold several
// lines separated by '\n'; each is sent as its own reply line.
struct SmtpReply {
  int code = 250;
  std::string status;
  std::string text;
};

// The reply as sent: "code-status text\r\n" for every line but the last, "code status
// text\r\n" for the last.
std::string format_reply(const SmtpReply& reply);

enum class SmtpVerb {
  helo,
  ehlo,
  mail,
  rcpt,
  data,
  rset,
  noop,
  quit,
  vrfy,
  expn,
  help,
  starttls,
  unknown,
  // A line no mail client sends but a web browser or proxy might (GET, POST, CONNECT…):
  // another protocol talking to the port, answered by closing the connection.
  foreign,
};

struct SmtpCommand {
  SmtpVerb verb = SmtpVerb::unknown;
  std::string_view argument;  // after the verb and its spaces; a view into the line
};

// Splits a command line (without its CRLF) into verb and argument. The verb is matched
// case-insensitively; "MAIL" and "RCPT" keep "FROM:…"/"TO:…" in the argument.
SmtpCommand parse_command(std::string_view line);

// The parameters of MAIL FROM this server understands (RFC 1870 SIZE, RFC 6152 BODY).
struct MailFrom {
  std::string address;  // "" for the null sender <>
  std::optional<std::uint64_t> size;
  bool body_8bit = false;  // BODY=8BITMIME (BODY=7BIT leaves it false)
};

struct RcptTo {
  std::string address;
};

template <class T>
using OrReply = std::variant<T, SmtpReply>;

// Parses the argument of MAIL ("FROM:<a@b> SIZE=123 BODY=8BITMIME"). Accepts "FROM: <…>"
// (a space after the colon, as some clients send), a source route ("<@x,@y:a@b>", ignored
// as RFC 5321 asks) and the null sender "<>". Refuses with 501 5.5.4 a malformed argument,
// 501 5.1.7 a malformed or too long address (RFC 5321 §4.5.3.1 limits), and 555 5.5.4 an
// unknown or repeated parameter or a bad parameter value. A SIZE beyond 2^64-1 is reported
// as UINT64_MAX.
OrReply<MailFrom> parse_mail_from(std::string_view argument);

// Parses the argument of RCPT ("TO:<a@b>"), with the same leniency. "<Postmaster>" without
// a domain is accepted (RFC 5321 §4.5.1). Refuses with 501 5.5.4 / 501 5.1.3 / 555 5.5.4 as
// parse_mail_from; the null path "<>" is refused.
OrReply<RcptTo> parse_rcpt_to(std::string_view argument);

// True for a syntactically valid mailbox "local@domain" within RFC 5321's lengths (local
// part 64, domain 255): dot-string or quoted local part, domain of letter-digit-hyphen labels
// or an address literal "[…]". ASCII only (SMTPUTF8 is not offered).
bool is_valid_mailbox(std::string_view address);

// True for a domain name (letter-digit-hyphen labels separated by dots, 255 bytes at most)
// or an address literal "[127.0.0.1]" / "[IPv6:…]".
bool is_valid_domain(std::string_view domain);

// The addresses mail is accepted for. A recipient matches a configured address when both
// are equal ignoring case, or when they are after removing a "+tag" from the recipient's
// local part ("Muse+news@Example.org" matches "muse@example.org").
class RecipientSet {
 public:
  // Error naming the first entry that is not a valid mailbox.
  static Result<RecipientSet> make(const std::vector<std::string>& addresses);

  // The configured address `recipient` belongs to, or nullopt.
  std::optional<std::string> match(std::string_view recipient) const;

  bool empty() const { return addresses_.empty(); }

 private:
  std::vector<std::string> addresses_;  // lower-cased
};

// Reads the text of a DATA command as it arrives, in pieces of any size. The text ends only
// at CRLF "." CRLF (a "." line preceded by a CRLF, or first); a bare LF or CR is never a line
// end, so "LF . LF", "CR . CR" and their mixtures do not end it (SMTP smuggling). Lines
// are dot-unstuffed. A bare LF or CR anywhere, a NUL byte (RFC 5321 §4.1.1.4 and RFC 5322
// forbid it), a line longer than the limit or a text over the size limit is a problem: the reader
// keeps reading to the real end (so that the session stays in step with the client) but stops
// storing, and the message is to be refused with reply().
class SmtpDataReader {
 public:
  enum class Problem {
    none,
    bare_line_feed,
    bare_carriage_return,
    nul_byte,
    line_too_long,
    too_big,
    no_storage,  // the caller ran out of room for it (abandon())
  };

  // max_message_bytes: the unstuffed text with its CRLFs. max_line_bytes: one unstuffed
  // line with its CRLF (RFC 5322: 1000).
  SmtpDataReader(std::size_t max_message_bytes, std::size_t max_line_bytes);

  // Consumes bytes up to and including the terminating CRLF.CRLF and returns how many it
  // consumed: all of `input` until the end is seen, fewer when `input` goes on past it
  // (pipelined commands, which belong to the caller).
  std::size_t consume(std::string_view input);

  bool done() const { return done_; }
  // The first problem seen (none for an acceptable message).
  Problem problem() const { return problem_; }
  // The refusal for problem(): 550 5.6.11 for a bare CR/LF, 550 5.6.0 for a NUL byte,
  // 552 5.3.4 for size and lines, 452 4.3.1 for no_storage. Precondition: problem() != none.
  SmtpReply reply() const;
  // Stops storing the text (its memory is released) because the server has no room for
  // it; the reader still finds the end. problem() becomes no_storage unless it was set.
  void abandon() { flag(Problem::no_storage); }
  // Bytes of unstuffed text seen so far (counting on past the limit).
  std::uint64_t size() const { return size_; }

  // The unstuffed text with CRLF line ends, without the terminating "." line.
  // Precondition: done() and problem() == none.
  std::string take_message() { return std::move(message_); }

 private:
  void append(std::string_view bytes);
  void end_line();
  void flag(Problem p);

  std::size_t max_message_bytes_;
  std::size_t max_line_bytes_;
  std::string message_;
  std::uint64_t size_ = 0;
  std::size_t line_bytes_ = 0;  // unstuffed bytes of the current line so far
  bool at_line_start_ = true;   // no byte of the current line seen yet
  bool leading_dot_ = false;    // the line so far is one "." (a terminator or a stuffed dot)
  bool pending_cr_ = false;     // the last input ended with a CR whose LF may follow
  bool done_ = false;
  Problem problem_ = Problem::none;
};

// What the Received: trace header (RFC 5321 §4.4) records about one message.
struct ReceivedTrace {
  std::string helo;            // as the client sent it; replaced by "unknown" when invalid
  std::string client_address;  // IP address, "127.0.0.1" or "::1"
  std::string hostname;        // ours
  bool esmtp = true;
  bool tls = false;
  std::string id;
  std::vector<std::string> recipients;  // named ("for <…>") only when there is exactly one
  std::chrono::system_clock::time_point time;
};

// "Received: from helo ([1.2.3.4])\r\n\tby host (switchboard) with ESMTPS id ID\r\n\tfor
// <a@b>; Tue, 21 Nov 2026 16:21:00 +0000\r\n", the date in UTC.
std::string received_header(const ReceivedTrace& trace);

}  // namespace sb::email

#pragma once
// The IMAP wire format (RFC 9051 / RFC 3501 section 9), without any I/O:
// - ImapParser: an incremental response parser. Bytes go in as they arrive, split anywhere
//   (inside a line, a quoted string or a literal); complete responses come out, parsed into
//   tagged / untagged / continuation with their response code and data. Every dimension is
//   bounded (line, literal, whole response, nesting); a violation is an error after which
//   the parser is unusable and the connection should be dropped.
// - ImapCommandBuilder: command lines with user data quoted or sent as literals, so that no
//   user name, password or folder name can break out of its argument.
// - Small readers for what the client needs from responses: capabilities, FETCH items,
//   SEARCH results, sequence sets.
//
// Threading: none; each object is used by one connection at a time.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sb::email {

// A parsed value in a response's data: an atom (also numbers and flags such as \Seen, and
// FETCH item names with their section, "BODY[HEADER.FIELDS (SUBJECT)]<0>"), a string (quoted
// or literal, unescaped), NIL, or a parenthesised list.
struct ImapValue {
  enum class Kind { atom, string, nil, list } kind = Kind::atom;
  std::string text;              // atom, string
  std::vector<ImapValue> items;  // list

  bool is_atom(std::string_view name) const;  // case-insensitive
  // The atom as a number (digits only, fits in 64 bits), or nothing.
  std::optional<std::uint64_t> number() const;
};

enum class ImapStatus { none, ok, no, bad, bye, preauth };

struct ImapResponse {
  enum class Kind { tagged, untagged, continuation } kind = Kind::untagged;
  std::string tag;  // tagged only

  // Status responses (tagged, and untagged OK / NO / BAD / BYE / PREAUTH).
  ImapStatus status = ImapStatus::none;
  std::string code;       // the response code's name, upper case: "UIDVALIDITY", "ALERT"
  std::string code_args;  // what follows the name inside the brackets: "3857529045"
  // Human-readable text (also a continuation's text); control characters and 8-bit bytes
  // replaced by '?', at most 500 bytes: fit for logs and errors.
  std::string text;

  // Untagged data: "* 23 EXISTS" → number 23, name "EXISTS"; "* CAPABILITY …" → name
  // "CAPABILITY" and the atoms in values; "* 3 FETCH (…)" → the list in values[0].
  std::optional<std::uint32_t> number;
  std::string name;  // upper case; for status responses "OK", "NO", …
  std::vector<ImapValue> values;
  // SEARCH results ("* SEARCH 2 5 9"; ESEARCH "ALL 2,5:9" expanded), read without building
  // values since a large mailbox can answer with hundreds of thousands of numbers.
  std::vector<std::uint32_t> numbers;
  // An untagged response of a kind the client does not know, kept for logs only.
  bool unknown = false;
};

struct ImapLimits {
  std::size_t max_line = 64 * 1024;  // each line outside literals
  // "* SEARCH" and "* ESEARCH" lines grow with the mailbox (about 7 bytes per message).
  std::size_t max_search_line = 4 * 1024 * 1024;
  std::size_t max_literal = 26 * 1024 * 1024;
  std::size_t max_response = 27 * 1024 * 1024;  // lines and literals of one response
  std::size_t max_depth = 32;                   // nested parentheses
};

class ImapParser {
 public:
  explicit ImapParser(ImapLimits limits = {});

  // Takes the next bytes. Error: malformed or over a limit (the message names which); the
  // parser is then broken and every later feed fails too.
  Result<void> feed(std::string_view bytes);
  // The next complete response, oldest first, or nothing yet.
  std::optional<ImapResponse> next();

  // How many bytes of the literal being read are still to come (0 when not in a literal):
  // the reader can fetch them in one go.
  std::size_t literal_remaining() const { return literal_remaining_; }
  // Whether a limit or the grammar was broken: the parser takes no more input then.
  bool broken() const { return !error_.empty(); }

 private:
  Result<void> fail(std::string message);
  Result<void> end_of_line();
  Result<void> finish_response();

  ImapLimits limits_;
  std::string line_;                   // the current line, without its line end
  std::string text_;                   // the response's lines so far, literal markers kept
  std::vector<std::string> literals_;  // the response's literals so far, in order
  std::size_t literal_remaining_ = 0;
  std::size_t response_bytes_ = 0;
  std::deque<ImapResponse> ready_;
  std::string error_;
};

// Parses one complete response: its text (lines joined without their line ends, literal
// markers "{n}" kept) and its literals in order. Exposed for tests.
Result<ImapResponse> parse_imap_response(std::string_view text, std::vector<std::string> literals,
                                         std::size_t max_depth = 32);

// --- commands ---

// A command in the pieces it is sent in: after each piece but the last, the client waits for
// the server's continuation ("+") before sending the next (synchronising literals).
struct ImapCommand {
  std::string tag;
  std::vector<std::string> pieces;  // each ends in CRLF except a literal's bytes before more
};

class ImapCommandBuilder {
 public:
  // `literal_plus`: the server takes non-synchronising literals (LITERAL+, RFC 7888).
  ImapCommandBuilder(std::string tag, std::string_view name, bool literal_plus);
  // Appends text as it is (the caller's own syntax: "UID", "1:*", "(\\Seen)").
  ImapCommandBuilder& raw(std::string_view text);
  // Appends user data as an astring: an atom when safe, a quoted string for other printable
  // ASCII, a literal for anything else (8-bit, CR, LF, quotes, backslashes).
  // Precondition: no NUL byte (no IMAP string can carry one).
  ImapCommandBuilder& string(std::string_view value);
  ImapCommand finish();

 private:
  ImapCommand command_;
  std::string current_;
  bool literal_plus_;
};

// Tags "A1", "A2", … for one connection.
class ImapTags {
 public:
  std::string next() { return "A" + std::to_string(++counter_); }

 private:
  std::uint64_t counter_ = 0;
};

// --- reading responses ---

// Capability names, upper case ("IMAP4REV1", "IDLE", "AUTH=PLAIN").
using ImapCapabilities = std::set<std::string, std::less<>>;
// From "* CAPABILITY …", or a [CAPABILITY …] response code; nothing for other responses.
std::optional<ImapCapabilities> imap_capabilities(const ImapResponse& response);

// What a FETCH response says about one message.
struct ImapFetch {
  std::uint32_t sequence = 0;
  std::optional<std::uint32_t> uid;
  std::optional<std::uint64_t> size;  // RFC822.SIZE
  std::optional<std::string> body;    // BODY[] (NIL: absent)
  std::vector<std::string> flags;
};
// Error: the response is a FETCH whose items cannot be read.
Result<ImapFetch> imap_fetch(ImapResponse& response);

// "1:3,7,9:10" for ascending, distinct numbers (empty for none).
std::string imap_sequence_set(const std::vector<std::uint32_t>& numbers);

}  // namespace sb::email

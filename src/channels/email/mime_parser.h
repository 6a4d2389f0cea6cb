#pragma once
// Reading received mail (RFC 5322 with MIME, RFC 2045-2049, 2047, 2231) with GMime into
// what the email channel needs: addresses, subject, threading ids, the text for the agent,
// the attachments and the headers that tell an automatic or list message from a person's.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sb::email {

struct Mailbox {
  std::string address;  // "alice@example.org" as written (case kept)
  std::string name;     // display name, decoded; may be empty
};

enum class TextSource {
  plain,  // from text/plain parts
  html,   // text/html converted to text (html_text.h)
  none,   // no text part: `text` is a short note saying so
};

// What one message may cost. The structure caps (parts, header fields and their bytes) are
// applied before GMime builds its tree, whose objects cost far more than the bytes they come
// from (a part about 1.6 KiB, a header field 0.6 KiB, an address 45 bytes per byte): a message
// over one is read up to the line where it goes over (a header field over
// max_header_field_bytes is cut instead), and the rest is named in `problems`. So the memory
// of a parse is a few times the message's size plus a few tens of MiB at most.
struct MimeLimits {
  std::size_t max_attachment_bytes = 10 * 1024 * 1024;        // per attachment, decoded
  std::size_t max_attachments = 10;                           // kept per message
  std::size_t max_total_attachment_bytes = 25 * 1024 * 1024;  // kept per message
  std::size_t max_text_bytes = 1024 * 1024;                   // of `text`, after conversion
  std::size_t max_header_bytes = 8 * 1024;  // per kept header value (subject, names, ids)
  std::size_t max_addresses = 1000;         // per address list
  std::size_t max_depth = 32;               // MIME nesting walked for text and attachments
  // Lines starting with "--", which may open or close a MIME part (a boundary), counted
  // whether or not they turn out to be one: about as many parts.
  std::size_t max_parts = 1000;
  std::size_t max_header_fields = 10'000;             // of the message and all its parts
  std::size_t max_header_field_bytes = 64 * 1024;     // one field with its folded lines
  std::size_t max_header_section_bytes = 512 * 1024;  // all header fields together
  std::size_t max_decoded_bytes = 64 * 1024 * 1024;   // content decoded from all parts
};

struct ParsedAttachment {
  std::string filename;      // as the sender named it (decoded, UTF-8), not yet safe as a
                             // file name: attachments.h makes it so; may be empty
  std::string content_type;  // "application/pdf": lower case, without parameters
  std::size_t size = 0;      // decoded size in bytes, also when skipped
  std::string data;          // decoded bytes; empty when skipped
  std::string skipped;       // why it was not kept ("larger than the 10 MiB limit"), or empty
};

struct ParsedMail {
  Mailbox from;  // the first From mailbox (Sender when From is missing); empty if none
  std::vector<Mailbox> to;
  std::vector<Mailbox> cc;
  std::vector<Mailbox> reply_to;  // informational: replies go to `from`, since a Reply-To
                                  // could point the agent at any address
  std::string subject;            // decoded, one line
  std::optional<std::chrono::system_clock::time_point> date;
  std::string message_id;               // without <>; empty if missing
  std::string in_reply_to;              // without <>; empty if missing
  std::vector<std::string> references;  // without <>, oldest first

  std::string text;  // UTF-8, for the agent; attachments are not described here
  TextSource text_source = TextSource::none;
  std::vector<ParsedAttachment> attachments;

  // Headers that mark automatic and list mail (mail_policy.h), trimmed, as written.
  std::string auto_submitted;              // Auto-Submitted (RFC 3834)
  std::string precedence;                  // Precedence
  std::string list_id;                     // List-Id
  bool has_list_headers = false;           // any List-* header (List-Id, List-Unsubscribe, …)
  std::string auto_response_suppress;      // X-Auto-Response-Suppress (Exchange)
  bool has_autoreply_headers = false;      // X-Autoreply / X-Autorespond
  std::optional<std::string> return_path;  // without <>; "" for the null sender "<>"
  std::string report_type;  // report-type of a top-level multipart/report ("delivery-status")

  // What could not be read, one sentence each ("truncated message", "unknown charset
  // x-foo: decoded as windows-1252"); empty for a clean message.
  std::vector<std::string> problems;
};

// Initialises GMime once per process (g_mime_init); safe to call from any thread, any
// number of times. parse_mail and build_mail call it themselves.
void init_mime();

// Parses one message. Never throws and never fails: whatever can be read is returned, and
// what could not be is listed in `problems` (a blob that is not mail at all becomes its
// bytes as text; a message over a structure cap of `limits` is read up to it). Every string
// in the result is valid UTF-8. Work and memory are bounded by the input size and `limits`.
// Thread-safe: GMime objects are per call, so it may run on a worker thread (a large message should
// not block the event loop).
ParsedMail parse_mail(std::string_view raw, const MimeLimits& limits = {});

// The note that stands for the text of a message that has none.
inline constexpr std::string_view kNoTextNote = "[The message has no text.]";

}  // namespace sb::email

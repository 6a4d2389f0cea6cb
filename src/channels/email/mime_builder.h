#pragma once
// Building outgoing mail (RFC 5322 + MIME) with GMime: replies threaded under the message
// they answer, the agent's Markdown as text/plain beside its HTML rendering (md4c), and
// attachments.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "channels/email/mime_parser.h"
#include "common/result.h"

namespace sb::email {

struct OutgoingAttachment {
  std::string name;          // file name for the recipient, UTF-8 (RFC 2231-encoded as needed)
  std::string content_type;  // "application/pdf" (parameters are dropped); empty means
                             // application/octet-stream
  std::string bytes;
};

struct OutgoingMail {
  Mailbox from;
  std::vector<Mailbox> to;  // at least one
  std::vector<Mailbox> cc;
  std::string subject;
  // Without <>; required. Make it once with make_message_id and keep it with the outbox row,
  // so that a resend after a crash carries the same id and the recipient sees one message.
  std::string message_id;
  std::string in_reply_to;              // without <>; empty for a new thread
  std::vector<std::string> references;  // without <>, oldest first (reply_references)
  std::string markdown_body;            // UTF-8 Markdown, sent as text and rendered as HTML
  std::vector<OutgoingAttachment> attachments;
  // RFC 3834: marks our replies as automatic so that other robots do not answer them.
  // Empty leaves the header out (mail a person asked for, e.g. POST /email).
  std::string auto_submitted = "auto-replied";
  std::optional<std::chrono::system_clock::time_point> date;  // default: now
};

// The message as RFC 5322 bytes with CRLF line ends, ready for SMTP DATA (not dot-stuffed):
// From, To, Cc, Subject (RFC 2047-encoded when not ASCII), Date, Message-ID, In-Reply-To,
// References, MIME-Version, Auto-Submitted; the body multipart/alternative (text/plain with
// the Markdown as written, text/html rendered from it), inside multipart/mixed with base64
// attachments when there are any. Errors, naming the header or field: a header value
// (addresses, names, subject, ids, attachment names and types) containing CR, LF or NUL
// (header injection); an address that is not local@domain; no recipient; no or a malformed
// message id; a malformed content type. Thread-safe (GMime objects are per call).
Result<std::string> build_mail(const OutgoingMail& mail);

// The HTML document for a Markdown text: CommonMark with tables, strikethrough and
// autolinks; raw HTML in the Markdown is shown as text, never passed through, and link or
// image targets other than http(s), mailto, cid or relative ones become "#". Thread-safe.
std::string markdown_to_html(std::string_view markdown);

// "Re: <subject>" without stacking: leading reply prefixes ("Re:", "RE:", "re :", "Re[2]:",
// "Re(2):", "Aw:", "Sv:", "Antw:") are removed first. Control characters become spaces.
std::string reply_subject(std::string_view subject);

// The References of a reply to `parent`: its References (or, when it has none, its
// In-Reply-To) followed by its Message-ID, without duplicates, at most 20 (the first and
// the most recent ones, as RFC 5322 suggests when trimming).
std::vector<std::string> reply_references(const ParsedMail& parent);

// A new globally unique message id, without <>: "sb.<time>.<128 random bits>@domain". A
// domain that is empty or not a host name is replaced by "switchboard.invalid".
// Thread-safe.
std::string make_message_id(std::string_view domain);

}  // namespace sb::email

#include "channels/email/mime_parser.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <iconv.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "channels/email/mail_text.h"
#include "common/html_text.h"

namespace sb::email {
namespace {

constexpr std::size_t kMaxProblems = 32;
constexpr std::size_t kMaxReferences = 100;
constexpr std::size_t kMaxMessageIdBytes = 998;  // one RFC 5322 line
constexpr std::size_t kMaxFilenameBytes = 1024;

struct GObjectUnref {
  void operator()(gpointer object) const {
    if (object != nullptr) g_object_unref(object);
  }
};
template <class T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

struct ParserOptionsFree {
  void operator()(GMimeParserOptions* options) const { g_mime_parser_options_free(options); }
};
struct ReferencesFree {
  void operator()(GMimeReferences* references) const { g_mime_references_free(references); }
};

std::string_view or_empty(const char* text) { return text != nullptr ? text : std::string_view(); }

// A message id (or the Return-Path address) as we keep it: without <> and whitespace.
std::string bare_id(std::string_view value) {
  std::string id;
  for (char c : value) {
    const auto b = static_cast<unsigned char>(c);
    if (b > 0x20 && b != 0x7F && c != '<' && c != '>') id += c;
  }
  return std::string(utf8_prefix(to_valid_utf8(id), kMaxMessageIdBytes));
}

// Text for the agent: LF line ends, no control characters other than tab and newline,
// no blank lines at the start or end.
std::string clean_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') continue;
      out += '\n';
    } else if (c == '\n' || c == '\t' || static_cast<unsigned char>(c) >= 0x20) {
      if (c != 0x7F) out += c;
    }
  }
  std::size_t begin = 0;
  while (begin < out.size() && (out[begin] == '\n' || out[begin] == ' ' || out[begin] == '\t')) {
    // Keep the indentation of the first line: only whole blank lines go.
    const std::size_t newline = out.find('\n', begin);
    if (newline == std::string::npos || out.find_first_not_of(" \t", begin) < newline) break;
    begin = newline + 1;
  }
  std::size_t end = out.size();
  while (end > begin && (out[end - 1] == '\n' || out[end - 1] == ' ' || out[end - 1] == '\t')) {
    --end;
  }
  return out.substr(begin, end - begin);
}

bool is_utf8_name(std::string_view charset) {
  return iequals(charset, "utf-8") || iequals(charset, "utf8");
}

bool is_ascii_name(std::string_view charset) {
  return iequals(charset, "us-ascii") || iequals(charset, "ascii") ||
         iequals(charset, "ansi_x3.4-1968");
}

// Converts with iconv, replacing each byte it cannot convert by U+FFFD. Returns nullopt when
// the charset is unknown to iconv.
std::optional<std::string> convert_with_iconv(std::string_view bytes, const char* charset,
                                              bool& lossy) {
  iconv_t cd = g_mime_iconv_open("UTF-8", charset);
  if (cd == reinterpret_cast<iconv_t>(-1)) return std::nullopt;
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 2);
  char* in = const_cast<char*>(bytes.data());
  std::size_t in_left = bytes.size();
  char buffer[4096];
  while (in_left > 0) {
    char* out_ptr = buffer;
    std::size_t out_left = sizeof buffer;
    const std::size_t result = iconv(cd, &in, &in_left, &out_ptr, &out_left);
    const int error = errno;
    out.append(buffer, static_cast<std::size_t>(out_ptr - buffer));
    if (result != static_cast<std::size_t>(-1) || error == E2BIG) continue;
    lossy = true;
    out.append("\xEF\xBF\xBD");
    if (error != EILSEQ) break;  // EINVAL: an incomplete sequence at the end
    ++in;
    --in_left;
  }
  char* out_ptr = buffer;
  std::size_t out_left = sizeof buffer;
  iconv(cd, nullptr, nullptr, &out_ptr, &out_left);  // the shift state's closing bytes
  out.append(buffer, static_cast<std::size_t>(out_ptr - buffer));
  g_mime_iconv_close(cd);
  return out;
}

std::string mime_type_of(GMimeObject* object) {
  GMimeContentType* type = g_mime_object_get_content_type(object);
  if (type == nullptr) return "application/octet-stream";
  const std::string media = ascii_lower(or_empty(g_mime_content_type_get_media_type(type)));
  const std::string sub = ascii_lower(or_empty(g_mime_content_type_get_media_subtype(type)));
  if (media.empty() || sub.empty()) return "application/octet-stream";
  return single_line(media + "/" + sub, 255);
}

std::optional<std::string> header(GMimeObject* object, const char* name) {
  const char* value = g_mime_object_get_header(object, name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

struct Body {
  std::string text;
  TextSource source = TextSource::none;
};

int rank(const Body& body) {
  if (body.text.empty()) return 0;
  return body.source == TextSource::plain ? 2 : 1;
}

// Text beyond `max_bytes` is not collected: finish_text() cuts it there anyway.
void append_body(Body& into, Body part, std::size_t max_bytes) {
  if (into.text.size() > max_bytes) return;
  part.text = clean_text(part.text);
  if (part.text.empty()) return;
  if (!into.text.empty()) into.text += "\n\n";
  into.text += part.text;
  if (into.source == TextSource::none || part.source == TextSource::plain) {
    into.source = part.source;
  }
}

// The structure caps of MimeLimits, shared by every parse of one message (the recovery of
// a broken multipart parses part of it again).
struct StructureBudget {
  std::size_t parts;
  std::size_t fields;
  std::size_t header_bytes;
};

bool starts_with_dashes(std::string_view line) {
  return line.size() >= 2 && line[0] == '-' && line[1] == '-';
}

// Whether the value of a Content-Type field, without its white space, names `word`.
bool type_names(std::string_view compact_lower_value, std::string_view word) {
  return compact_lower_value.find(word) != std::string_view::npos;
}

// What GMime is given of `raw`: `raw` itself when it is within the structure caps, else a
// copy made in `copy` that ends before the line that went over a cap (parts, header fields,
// header bytes), and in which each header field is cut at max_header_field_bytes. Sentences
// for `problems` are added to `notes`.
//
// The scan must see at least every line GMime will read as a MIME boundary or a header
// field, so it errs on the side of counting. GMime reads header fields at the start of the
// message, after a line starting with "--" when it is a boundary, at the start of a
// message/* part's content and of a part of a multipart/digest without Content-Type (whose
// type is message/rfc822). Here every line starting with "--" counts as a part and starts a
// header block, and a block also follows a header block whose Content-Type mentions
// "message", or a part's block without Content-Type once any Content-Type mentioned
// "digest". A header block lasts to an empty line. GMime ends lines at LF, as done here.
std::string_view bound_structure(std::string_view raw, const MimeLimits& limits,
                                 StructureBudget& budget, std::string& copy,
                                 std::vector<std::string>& notes) {
  std::size_t flushed = 0;  // raw up to here is in `copy` or dropped
  bool modified = false;
  auto drop = [&](std::size_t from, std::size_t to) {
    copy.append(raw.substr(flushed, from - flushed));
    flushed = to;
    modified = true;
  };
  auto stop_at = [&](std::size_t at, const std::string& what) {
    drop(at, raw.size());
    notes.push_back(what + ": the message was read up to byte " + std::to_string(at) + " of " +
                    std::to_string(raw.size()));
  };

  bool in_header = true;
  bool block_is_part = false;   // the header block follows a "--" line
  bool block_has_type = false;  // it has a Content-Type field
  bool block_embeds = false;    // its Content-Type mentions "message"
  bool digest_seen = false;     // a Content-Type mentioned "digest"
  bool in_field = false;
  bool field_is_type = false;
  bool field_cut = false;
  bool noted_cut = false;
  std::size_t field_bytes = 0;
  std::string type_value;  // of the current Content-Type field: lower case, no white space
  auto end_field = [&] {
    if (in_field && field_is_type) {
      block_has_type = true;
      block_embeds = block_embeds || type_names(type_value, "message");
      digest_seen = digest_seen || type_names(type_value, "digest");
    }
    in_field = false;
  };
  auto start_block = [&](bool part) {
    in_header = true;
    block_is_part = part;
    block_has_type = false;
    block_embeds = false;
  };

  std::size_t pos = 0;
  while (pos < raw.size()) {
    const std::size_t eol = raw.find('\n', pos);
    const std::size_t next = eol == std::string_view::npos ? raw.size() : eol + 1;
    std::string_view content = raw.substr(pos, (eol == std::string_view::npos ? next : eol) - pos);
    if (!content.empty() && content.back() == '\r') content.remove_suffix(1);

    if (starts_with_dashes(content)) {
      end_field();
      if (budget.parts == 0) {
        stop_at(pos, "more than " + std::to_string(limits.max_parts) + " MIME boundary lines");
        break;
      }
      --budget.parts;
      start_block(true);
    } else if (!in_header) {
      // Content: nothing GMime allocates per line.
    } else if (content.empty()) {
      end_field();
      const bool embedded = block_embeds || (block_is_part && !block_has_type && digest_seen);
      if (embedded) {
        start_block(false);
      } else {
        in_header = false;
      }
    } else {
      const bool continuation = content.front() == ' ' || content.front() == '\t';
      if (!continuation || !in_field) {
        end_field();
        if (budget.fields == 0) {
          stop_at(pos, "more than " + std::to_string(limits.max_header_fields) + " header fields");
          break;
        }
        --budget.fields;
        in_field = true;
        field_cut = false;
        field_bytes = 0;
        std::string_view name = content.substr(0, content.find(':'));
        while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
        field_is_type = iequals(name, "content-type");
        type_value.clear();
      }
      if (field_cut) {
        drop(pos, next);  // a folded line of a field already cut
      } else {
        const std::size_t take =
            std::min(content.size(), limits.max_header_field_bytes - field_bytes);
        if (take > budget.header_bytes) {
          stop_at(pos, "more than " + byte_size_text(limits.max_header_section_bytes) +
                           " of header fields");
          break;
        }
        budget.header_bytes -= take;
        field_bytes += take;
        if (field_is_type) {
          for (char c : content.substr(0, take)) {
            if (c == ' ' || c == '\t' || c == '\r') continue;
            type_value += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
          }
        }
        if (take < content.size()) {
          drop(pos + take, pos + content.size());  // the line end stays
          field_cut = true;
          if (!noted_cut) {
            notes.push_back("a header field longer than " +
                            byte_size_text(limits.max_header_field_bytes) + " was cut");
            noted_cut = true;
          }
        }
      }
    }
    pos = next;
  }
  if (!modified) return raw;
  copy.append(raw.substr(flushed));
  return copy;
}

class MailReader {
 public:
  MailReader(std::string_view raw, const MimeLimits& limits)
      : raw_(raw),
        limits_(limits),
        options_(g_mime_parser_options_new()),
        budget_{limits.max_parts, limits.max_header_fields, limits.max_header_section_bytes} {
    g_mime_parser_options_set_rfc2047_compliance_mode(options_.get(), GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(options_.get(), GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(options_.get(), GMIME_RFC_COMPLIANCE_LOOSE);
    // Undeclared 8-bit header text: UTF-8 when it is valid, else the usual Western charset.
    const char* fallbacks[] = {"UTF-8", "windows-1252", nullptr};
    g_mime_parser_options_set_fallback_charsets(options_.get(), fallbacks);
    g_mime_parser_options_set_warning_callback(options_.get(), &MailReader::on_warning, this);
  }

  ParsedMail run() {
    std::vector<std::string> notes;
    const std::string_view bounded = bound_structure(raw_, limits_, budget_, bounded_, notes);
    for (std::string& note : notes) problem(std::move(note));
    GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bounded.data(), bounded.size()));
    GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    GPtr<GMimeMessage> message(g_mime_parser_construct_message(parser.get(), options_.get()));
    if (!message) {
      problem("not a MIME message: its bytes are kept as text");
      finish_text(Body{to_valid_utf8(raw_), TextSource::plain});
      return std::move(mail_);
    }
    read_headers(message.get());
    GMimeObject* body = g_mime_message_get_mime_part(message.get());
    if (body == nullptr) {
      problem("the message has no body");
      finish_text({});
    } else {
      if (GMIME_IS_MULTIPART(body) && mime_type_of(body) == "multipart/report") {
        mail_.report_type = single_line(
            ascii_lower(or_empty(g_mime_object_get_content_type_parameter(body, "report-type"))),
            limits_.max_header_bytes);
      }
      finish_text(walk(body, 0));
    }
    if (unlisted_attachments_ > 0) {
      problem(std::to_string(unlisted_attachments_) + " more attachments were not listed");
    }
    return std::move(mail_);
  }

 private:
  static void on_warning(gint64, GMimeParserWarning code, const gchar* item, gpointer self) {
    static_cast<MailReader*>(self)->warning(code, item);
  }

  void warning(GMimeParserWarning code, const char* item) {
    std::string text;
    switch (code) {
      case GMIME_WARN_DUPLICATED_HEADER:
        text = "header repeated";
        break;
      case GMIME_WARN_DUPLICATED_PARAMETER:
        text = "header parameter repeated";
        break;
      case GMIME_WARN_UNENCODED_8BIT_HEADER:
        text = "unencoded 8-bit text in a header";
        break;
      case GMIME_WARN_INVALID_CONTENT_TYPE:
        text = "invalid Content-Type, read as application/octet-stream";
        break;
      case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
        text = "invalid RFC 2047 encoded header text";
        break;
      case GMIME_WARN_MALFORMED_MULTIPART:
        text = "multipart without parts";
        break;
      case GMIME_WARN_TRUNCATED_MESSAGE:
        text = "the message is truncated";
        break;
      case GMIME_WARN_MALFORMED_MESSAGE:
        text = "malformed message";
        break;
      case GMIME_CRIT_INVALID_HEADER_NAME:
        text = "invalid header name";
        break;
      case GMIME_CRIT_CONFLICTING_HEADER:
        text = "conflicting headers";
        break;
      case GMIME_CRIT_CONFLICTING_PARAMETER:
        text = "conflicting header parameters";
        break;
      case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
        text = "multipart without a boundary";
        break;
      case GMIME_WARN_INVALID_PARAMETER:
        text = "invalid header parameter";
        break;
      case GMIME_WARN_INVALID_ADDRESS_LIST:
        text = "invalid address list";
        break;
      case GMIME_CRIT_NESTING_OVERFLOW:
        text = "MIME parts nested too deeply";
        break;
      case GMIME_WARN_PART_WITHOUT_CONTENT:
        text = "MIME part without content";
        break;
      case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
        text = "MIME part without headers or content";
        break;
      default:
        text = "parser warning " + std::to_string(static_cast<int>(code));
        break;
    }
    if (item != nullptr && *item != '\0') text += ": " + single_line(item, 80);
    problem(std::move(text));
  }

  void problem(std::string text) {
    if (mail_.problems.size() >= kMaxProblems) return;
    for (const std::string& known : mail_.problems) {
      if (known == text) return;
    }
    mail_.problems.push_back(std::move(text));
  }

  std::string header_value(std::string_view value) {
    return single_line(value, limits_.max_header_bytes);
  }

  void read_headers(GMimeMessage* message) {
    GMimeObject* object = GMIME_OBJECT(message);
    read_addresses(g_mime_message_get_from(message), from_list_);
    if (from_list_.empty()) read_addresses(g_mime_message_get_sender(message), from_list_);
    read_addresses(g_mime_message_get_to(message), mail_.to);
    read_addresses(g_mime_message_get_cc(message), mail_.cc);
    read_addresses(g_mime_message_get_reply_to(message), mail_.reply_to);
    mail_.subject = header_value(or_empty(g_mime_message_get_subject(message)));

    // system_clock counts nanoseconds in 64 bits: years 1678 to 2262 (GDateTime goes to 9999).
    constexpr gint64 kMaxUnixSeconds = 9'000'000'000;
    GDateTime* date = g_mime_message_get_date(message);
    if (date && std::abs(g_date_time_to_unix(date)) < kMaxUnixSeconds) {
      mail_.date = std::chrono::system_clock::time_point(
          std::chrono::seconds(g_date_time_to_unix(date)) +
          std::chrono::microseconds(g_date_time_get_microsecond(date)));
    } else if (date) {
      problem("Date header out of range");
    } else if (header(object, "Date")) {
      problem("unreadable Date header");
    }

    mail_.message_id = bare_id(or_empty(g_mime_message_get_message_id(message)));
    if (const auto value = header(object, "In-Reply-To")) {
      const auto ids = parse_references(*value);
      mail_.in_reply_to = ids.empty() ? bare_id(*value) : ids.front();
    }
    if (const auto value = header(object, "References")) {
      auto ids = parse_references(*value);
      if (ids.size() > kMaxReferences) {
        // Keep the thread's root and the most recent ones, as RFC 5322 suggests trimming.
        ids.erase(ids.begin() + 1, ids.end() - static_cast<std::ptrdiff_t>(kMaxReferences - 1));
      }
      mail_.references = std::move(ids);
    }

    mail_.auto_submitted = header_value(header(object, "Auto-Submitted").value_or(""));
    mail_.precedence = header_value(header(object, "Precedence").value_or(""));
    mail_.list_id = header_value(header(object, "List-Id").value_or(""));
    mail_.auto_response_suppress =
        header_value(header(object, "X-Auto-Response-Suppress").value_or(""));
    if (const auto value = header(object, "Return-Path")) {
      mail_.return_path = bare_id(*value);
    }
    GMimeHeaderList* headers = g_mime_object_get_header_list(object);
    const int count = g_mime_header_list_get_count(headers);
    for (int i = 0; i < count; ++i) {
      GMimeHeader* h = g_mime_header_list_get_header_at(headers, i);
      const std::string_view name = or_empty(g_mime_header_get_name(h));
      if (name.size() > 5 && iequals(name.substr(0, 5), "List-")) mail_.has_list_headers = true;
      if (iequals(name, "X-Autoreply") || iequals(name, "X-Autorespond")) {
        mail_.has_autoreply_headers = true;
      }
    }
    mail_.from = from_list_.empty() ? Mailbox{} : from_list_.front();
  }

  std::vector<std::string> parse_references(const std::string& value) {
    std::vector<std::string> ids;
    std::unique_ptr<GMimeReferences, ReferencesFree> refs(
        g_mime_references_parse(options_.get(), value.c_str()));
    if (!refs) return ids;
    const int count = g_mime_references_length(refs.get());
    for (int i = 0; i < count; ++i) {
      std::string id = bare_id(or_empty(g_mime_references_get_message_id(refs.get(), i)));
      if (!id.empty()) ids.push_back(std::move(id));
    }
    return ids;
  }

  void read_addresses(InternetAddressList* list, std::vector<Mailbox>& into) {
    if (list == nullptr) return;
    const int count = internet_address_list_length(list);
    for (int i = 0; i < count; ++i) {
      InternetAddress* address = internet_address_list_get_address(list, i);
      if (INTERNET_ADDRESS_IS_GROUP(address)) {
        // Groups ("undisclosed-recipients:;") hold mailboxes; RFC 5322 forbids nesting them.
        InternetAddressList* members =
            internet_address_group_get_members(INTERNET_ADDRESS_GROUP(address));
        const int member_count = members != nullptr ? internet_address_list_length(members) : 0;
        for (int k = 0; k < member_count; ++k) {
          add_mailbox(internet_address_list_get_address(members, k), into);
        }
      } else {
        add_mailbox(address, into);
      }
    }
  }

  void add_mailbox(InternetAddress* address, std::vector<Mailbox>& into) {
    if (!INTERNET_ADDRESS_IS_MAILBOX(address)) return;
    if (into.size() >= limits_.max_addresses) {
      problem("more than " + std::to_string(limits_.max_addresses) +
              " addresses in one header: the rest were dropped");
      return;
    }
    Mailbox mailbox;
    mailbox.address =
        single_line(or_empty(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address))),
                    limits_.max_header_bytes);
    mailbox.name = header_value(or_empty(internet_address_get_name(address)));
    if (mailbox.address.find(' ') != std::string::npos) {
      problem("address with spaces: " + single_line(mailbox.address, 80));
    }
    if (!mailbox.address.empty()) into.push_back(std::move(mailbox));
  }

  Body walk(GMimeObject* object, std::size_t depth) {
    if (depth >= limits_.max_depth) {
      problem("MIME parts nested deeper than " + std::to_string(limits_.max_depth) +
              " levels were skipped");
      return {};
    }
    if (GMIME_IS_MULTIPART(object)) return walk_multipart(GMIME_MULTIPART(object), depth);
    if (GMIME_IS_MESSAGE_PART(object)) {
      attach_message(GMIME_MESSAGE_PART(object));
      return {};
    }
    if (GMIME_IS_PART(object)) return read_part(GMIME_PART(object));
    return {};
  }

  Body walk_multipart(GMimeMultipart* multipart, std::size_t depth) {
    GMimeObject* object = GMIME_OBJECT(multipart);
    const std::string type = mime_type_of(object);
    const int count = g_mime_multipart_get_count(multipart);
    if (GMIME_IS_MULTIPART_ENCRYPTED(object) || type == "multipart/encrypted") {
      problem("encrypted part: it cannot be read");
      return {};
    }
    if (count == 0) return recover_parts(multipart, type, depth);
    if (GMIME_IS_MULTIPART_SIGNED(object) || type == "multipart/signed") {
      // The first part is the content; the second, the signature, means nothing to a reader.
      return walk(g_mime_multipart_get_part(multipart, 0), depth + 1);
    }
    if (type == "multipart/alternative") {
      // Each part is the same content; plain text is what the agent reads best.
      Body best;
      for (int i = 0; i < count; ++i) {
        Body candidate = walk(g_mime_multipart_get_part(multipart, i), depth + 1);
        if (rank(candidate) > rank(best)) best = std::move(candidate);
      }
      return best;
    }
    Body all;
    for (int i = 0; i < count; ++i) {
      append_body(all, walk(g_mime_multipart_get_part(multipart, i), depth + 1),
                  limits_.max_text_bytes);
    }
    return all;
  }

  // A multipart whose parts GMime could not find, usually because the boundary parameter
  // is missing: its content is then all prologue. When that starts like a multipart body
  // ("--something"), it is parsed again with that boundary; otherwise it is read as text.
  Body recover_parts(GMimeMultipart* multipart, const std::string& type, std::size_t depth) {
    const std::string_view content = or_empty(g_mime_multipart_get_prologue(multipart));
    if (content.find_first_not_of(" \t\r\n") == std::string_view::npos) return {};
    std::string_view first_line = content.substr(content.find_first_not_of("\r\n"));
    first_line = first_line.substr(0, first_line.find_first_of("\r\n"));
    while (!first_line.empty() && (first_line.back() == ' ' || first_line.back() == '\t')) {
      first_line.remove_suffix(1);
    }
    const std::string_view boundary =
        first_line.starts_with("--") ? first_line.substr(2) : std::string_view();
    const bool usable = !boundary.empty() && boundary.size() <= 200 &&
                        boundary.find_first_of("\"\\") == std::string_view::npos;
    if (!usable) {
      problem("multipart without parts: its content is read as text");
      return {clean_text(to_utf8(content, nullptr)), TextSource::plain};
    }
    // Each recovery parses its content again: all of them together at most the message's
    // size, so that nested broken multiparts cannot multiply the work.
    if (content.size() > raw_.size() - std::min(raw_.size(), recovered_bytes_)) {
      problem("multipart without parts: its content is read as text");
      return {clean_text(to_utf8(content, nullptr)), TextSource::plain};
    }
    recovered_bytes_ += content.size();
    problem("multipart without a usable boundary: parts found with boundary \"" +
            single_line(boundary, 80) + "\"");
    std::string rebuilt = "Content-Type: " + type + "; boundary=\"" + std::string(boundary) +
                          "\"\r\n\r\n" + std::string(content);
    std::string rebuilt_bounded;
    std::vector<std::string> notes;
    const std::string_view bounded =
        bound_structure(rebuilt, limits_, budget_, rebuilt_bounded, notes);
    for (std::string& note : notes) problem(std::move(note));
    GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bounded.data(), bounded.size()));
    GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    GPtr<GMimeObject> recovered(g_mime_parser_construct_part(parser.get(), options_.get()));
    // A second failure is not retried: the recovered multipart is walked as it is.
    if (!recovered || !GMIME_IS_MULTIPART(recovered.get()) ||
        g_mime_multipart_get_count(GMIME_MULTIPART(recovered.get())) == 0) {
      return {clean_text(to_utf8(content, nullptr)), TextSource::plain};
    }
    return walk(recovered.get(), depth + 1);
  }

  Body read_part(GMimePart* part) {
    GMimeObject* object = GMIME_OBJECT(part);
    const std::string type = mime_type_of(object);
    const char* disposition = g_mime_object_get_disposition(object);
    const bool attachment = disposition != nullptr && iequals(disposition, "attachment");
    const std::string filename =
        single_line(or_empty(g_mime_part_get_filename(part)), kMaxFilenameBytes);
    if ((type == "text/plain" || type == "text/html") && !attachment && filename.empty()) {
      const std::string bytes = decode(part);
      if (!claim_decoded(bytes.size())) return {};
      const char* charset = g_mime_object_get_content_type_parameter(object, "charset");
      std::string text = to_utf8(bytes, charset);
      // Cleaned here so that a part holding only blank lines does not win an alternative.
      if (type == "text/html") return {clean_text(html_to_text(text)), TextSource::html};
      return {clean_text(text), TextSource::plain};
    }
    add_attachment(
        filename, type, [&] { return decoded_size(part); }, [&] { return decode(part); });
    return {};
  }

  void attach_message(GMimeMessagePart* part) {
    GMimeMessage* inner = g_mime_message_part_get_message(part);
    if (inner == nullptr) return;
    GMimeObject* object = GMIME_OBJECT(part);
    const char* name = g_mime_object_get_content_disposition_parameter(object, "filename");
    if (name == nullptr) name = g_mime_object_get_content_type_parameter(object, "name");
    std::string filename = single_line(or_empty(name), kMaxFilenameBytes);
    if (filename.empty()) {
      const std::string subject = single_line(or_empty(g_mime_message_get_subject(inner)), 100);
      filename = (subject.empty() ? std::string("message") : subject) + ".eml";
    }
    auto write = [inner](GMimeStream* out) {
      g_mime_object_write_to_stream(GMIME_OBJECT(inner), nullptr, out);
    };
    add_attachment(
        filename, mime_type_of(object), [&] { return written_size(write); },
        [&] {
          GPtr<GMimeStream> out(g_mime_stream_mem_new());
          write(out.get());
          return stream_bytes(out.get());
        });
  }

  // An attachment is measured first (decoded without being kept), and decoded into memory
  // only when it is kept.
  template <class Measure, class Decode>
  void add_attachment(const std::string& filename, const std::string& type, Measure measure,
                      Decode decode) {
    // Beyond this many entries a hostile message would only grow the list given to the agent.
    if (mail_.attachments.size() >= 2 * limits_.max_attachments + 10) {
      ++unlisted_attachments_;
      return;
    }
    ParsedAttachment attachment;
    attachment.filename = filename;
    attachment.content_type = type;
    const std::size_t size = measure();
    attachment.size = size;
    if (!claim_decoded(size)) {
      attachment.skipped = "not read: the message's parts hold more than " +
                           byte_size_text(limits_.max_decoded_bytes);
    } else if (kept_attachments_ >= limits_.max_attachments) {
      attachment.skipped =
          "more than " + std::to_string(limits_.max_attachments) + " attachments in one message";
    } else if (attachment.size > limits_.max_attachment_bytes) {
      attachment.skipped =
          "larger than the " + byte_size_text(limits_.max_attachment_bytes) + " limit";
    } else if (kept_bytes_ + attachment.size > limits_.max_total_attachment_bytes) {
      attachment.skipped = "over the " + byte_size_text(limits_.max_total_attachment_bytes) +
                           " limit for all attachments of one message";
    } else {
      attachment.data = decode();
      attachment.size = attachment.data.size();
      ++kept_attachments_;
      kept_bytes_ += attachment.size;
    }
    mail_.attachments.push_back(std::move(attachment));
  }

  // Counts `bytes` of decoded content against max_decoded_bytes; false (and a problem) once
  // that is spent: the part is then not read.
  bool claim_decoded(std::size_t bytes) {
    if (bytes > limits_.max_decoded_bytes - std::min(limits_.max_decoded_bytes, decoded_bytes_)) {
      decoded_bytes_ = limits_.max_decoded_bytes;
      problem("parts beyond " + byte_size_text(limits_.max_decoded_bytes) +
              " of decoded content were not read");
      return false;
    }
    decoded_bytes_ += bytes;
    return true;
  }

  template <class Write>
  static std::size_t written_size(Write write) {
    GPtr<GMimeStream> counter(g_mime_stream_null_new());
    write(counter.get());
    return GMIME_STREAM_NULL(counter.get())->written;
  }

  // The size of the part's content with its transfer encoding undone, without keeping it.
  static std::size_t decoded_size(GMimePart* part) {
    GMimeDataWrapper* content = g_mime_part_get_content(part);
    if (content == nullptr) return 0;
    return written_size(
        [content](GMimeStream* out) { g_mime_data_wrapper_write_to_stream(content, out); });
  }

  static std::string stream_bytes(GMimeStream* stream) {
    GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream));
    if (bytes == nullptr || bytes->len == 0) return {};
    return std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
  }

  // The part's content with its transfer encoding (base64, quoted-printable, uuencode) undone.
  static std::string decode(GMimePart* part) {
    GMimeDataWrapper* content = g_mime_part_get_content(part);
    if (content == nullptr) return {};
    GPtr<GMimeStream> out(g_mime_stream_mem_new());
    g_mime_data_wrapper_write_to_stream(content, out.get());
    return stream_bytes(out.get());
  }

  std::string to_utf8(std::string_view bytes, const char* charset) {
    const std::string_view name = or_empty(charset);
    if (name.empty() || is_utf8_name(name) || is_ascii_name(name)) {
      if (is_valid_utf8(bytes)) return std::string(bytes);
      if (is_utf8_name(name)) {
        problem("invalid UTF-8 in the text");
        return to_valid_utf8(bytes);
      }
      // Mislabelled or unlabelled 8-bit text is usually Windows-1252 / ISO-8859-1.
      problem("8-bit text without a fitting charset: read as windows-1252");
      return windows1252_to_utf8(bytes);
    }
    bool lossy = false;
    if (auto converted = convert_with_iconv(bytes, charset, lossy)) {
      if (lossy) problem("text not valid in its charset " + single_line(name, 40));
      return to_valid_utf8(*converted);
    }
    if (is_valid_utf8(bytes)) {
      problem("unknown charset " + single_line(name, 40) + ": read as UTF-8");
      return std::string(bytes);
    }
    problem("unknown charset " + single_line(name, 40) + ": read as windows-1252");
    return windows1252_to_utf8(bytes);
  }

  void finish_text(Body body) {
    std::string text = clean_text(body.text);
    if (text.empty()) {
      mail_.text = std::string(kNoTextNote);
      mail_.text_source = TextSource::none;
      return;
    }
    if (text.size() > limits_.max_text_bytes) {
      problem("the text was cut at " + byte_size_text(limits_.max_text_bytes));
      text = std::string(utf8_prefix(text, limits_.max_text_bytes));
      text += "\n[The rest of the text was cut.]";
    }
    mail_.text = std::move(text);
    mail_.text_source = body.source == TextSource::none ? TextSource::plain : body.source;
  }

  std::string_view raw_;
  const MimeLimits& limits_;
  std::unique_ptr<GMimeParserOptions, ParserOptionsFree> options_;
  ParsedMail mail_;
  std::vector<Mailbox> from_list_;
  StructureBudget budget_;
  std::string bounded_;  // the message as given to GMime, when bound_structure cut it
  std::size_t recovered_bytes_ = 0;
  std::size_t decoded_bytes_ = 0;
  std::size_t kept_attachments_ = 0;
  std::size_t kept_bytes_ = 0;
  std::size_t unlisted_attachments_ = 0;
};

}  // namespace

void init_mime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

ParsedMail parse_mail(std::string_view raw, const MimeLimits& limits) {
  init_mime();
  return MailReader(raw, limits).run();
}

}  // namespace sb::email

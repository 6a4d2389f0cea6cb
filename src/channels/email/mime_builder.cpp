#include "channels/email/mime_builder.h"

#include <gmime/gmime.h>
#include <md4c-html.h>
#include <openssl/rand.h>

#include <algorithm>
#include <memory>
#include <random>
#include <utility>

#include "channels/email/mail_text.h"
#include "common/html_text.h"

namespace sb::email {
namespace {

constexpr std::size_t kMaxReplyReferences = 20;
constexpr std::size_t kMaxMessageIdBytes = 250;

struct GObjectUnref {
  void operator()(gpointer object) const {
    if (object != nullptr) g_object_unref(object);
  }
};
template <class T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

struct FormatOptionsFree {
  void operator()(GMimeFormatOptions* options) const { g_mime_format_options_free(options); }
};
struct DateTimeUnref {
  void operator()(GDateTime* date) const { g_date_time_unref(date); }
};

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

Result<void> check_header(std::string_view header, std::string_view value) {
  if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
    return make_error("the " + std::string(header) +
                      " header contains CR, LF or NUL (refused: header injection)");
  }
  return {};
}

// An addr-spec as we send it: local@domain, no spaces, quotes, brackets or separators.
bool is_plain_address(std::string_view address) {
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return false;
  for (char c : address) {
    const auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b == 0x7F) return false;
    if (std::string_view("<>()[]\\,;:\"").find(c) != std::string_view::npos) return false;
  }
  return address.find('@') == at;
}

Result<void> check_mailbox(std::string_view header, const Mailbox& mailbox) {
  if (auto ok = check_header(header, mailbox.address); !ok) return ok;
  if (auto ok = check_header(header, mailbox.name); !ok) return ok;
  if (!is_plain_address(mailbox.address)) {
    return make_error("invalid address in " + std::string(header) + ": \"" +
                      single_line(mailbox.address, 100) + "\" (expected local@domain)");
  }
  return {};
}

std::string strip_angle_brackets(std::string_view id) {
  if (id.size() >= 2 && id.front() == '<' && id.back() == '>') id = id.substr(1, id.size() - 2);
  return std::string(id);
}

bool is_message_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxMessageIdBytes) return false;
  const std::size_t at = id.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == id.size()) return false;
  for (char c : id) {
    const auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b >= 0x7F || c == '<' || c == '>') return false;
  }
  return true;
}

Result<std::string> checked_message_id(std::string_view header, std::string_view value) {
  if (auto ok = check_header(header, value); !ok) return ok.error();
  std::string id = strip_angle_brackets(value);
  if (!is_message_id(id)) {
    return make_error("invalid " + std::string(header) + " \"" + single_line(value, 100) +
                      "\" (expected id-left@id-right, printable ASCII without spaces or <>)");
  }
  return id;
}

bool is_token_char(char c) {
  return is_alpha(c) || is_digit(c) || std::string_view("!#$&-^_.+").find(c) != std::string::npos;
}

// "type/subtype" from a content type; parameters are not sent.
Result<std::pair<std::string, std::string>> parse_content_type(std::string_view value) {
  if (value.empty()) return std::pair<std::string, std::string>{"application", "octet-stream"};
  const std::string_view bare = value.substr(0, value.find(';'));
  const std::size_t slash = bare.find('/');
  auto is_token = [](std::string_view s) {
    return !s.empty() && s.size() <= 127 && std::all_of(s.begin(), s.end(), is_token_char);
  };
  std::string_view type = bare.substr(0, slash);
  std::string_view subtype = slash == std::string_view::npos ? "" : bare.substr(slash + 1);
  while (!subtype.empty() && subtype.back() == ' ') subtype.remove_suffix(1);
  while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
  if (!is_token(type) || !is_token(subtype)) {
    return make_error("invalid content type \"" + single_line(value, 100) +
                      "\" (expected type/subtype)");
  }
  return std::pair{ascii_lower(type), ascii_lower(subtype)};
}

// Body text as it goes out: valid UTF-8 with LF line ends (written as CRLF) and no NUL.
std::string body_text(std::string_view text) {
  const std::string utf8 = to_valid_utf8(text);
  std::string out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    if (utf8[i] == '\r') {
      out += '\n';
      if (i + 1 < utf8.size() && utf8[i + 1] == '\n') ++i;
    } else if (utf8[i] != '\0') {
      out += utf8[i];
    }
  }
  return out;
}

bool is_safe_url(std::string_view encoded) {
  // Browsers ignore whitespace and control characters inside a scheme ("java\tscript:").
  std::string url;
  for (char c : decode_html_entities(encoded)) {
    if (static_cast<unsigned char>(c) > 0x20 && c != 0x7F) url += c;
  }
  url = ascii_lower(url);
  const std::size_t colon = url.find(':');
  if (colon == std::string::npos || url.find_first_of("/?#") < colon) return true;  // relative
  const std::string scheme = url.substr(0, colon);
  return scheme == "http" || scheme == "https" || scheme == "mailto" || scheme == "cid";
}

// md4c renders links and images as href="…" / src="…" and escapes every quote of the text,
// so these are the only attribute values in its output: neutralise unsafe targets.
std::string neutralise_urls(const std::string& html) {
  std::string out;
  out.reserve(html.size());
  std::size_t pos = 0;
  while (pos < html.size()) {
    std::size_t href = html.find(" href=\"", pos);
    std::size_t src = html.find(" src=\"", pos);
    const std::size_t start = std::min(href, src);
    if (start == std::string::npos) break;
    const std::size_t value_start = html.find('"', start) + 1;
    const std::size_t value_end = html.find('"', value_start);
    if (value_end == std::string::npos) break;
    out.append(html, pos, value_start - pos);
    const std::string_view value(html.data() + value_start, value_end - value_start);
    out.append(is_safe_url(value) ? value : "#");
    pos = value_end;
  }
  out.append(html, pos, std::string::npos);
  return out;
}

// A text part with UTF-8 content, 7bit when that is allowed (ASCII, lines of at most 998
// bytes), quoted-printable otherwise.
GMimeTextPart* new_text_part(const char* subtype, const std::string& text) {
  GMimeTextPart* part = g_mime_text_part_new_with_subtype(subtype);
  GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(text.data(), text.size()));
  GPtr<GMimeDataWrapper> content(
      g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(GMIME_PART(part), content.get());
  g_mime_text_part_set_charset(part, "utf-8");
  bool seven_bit = true;
  std::size_t line = 0;
  for (char c : text) {
    line = c == '\n' ? 0 : line + 1;
    if (static_cast<unsigned char>(c) >= 0x80 || line > 998) seven_bit = false;
  }
  g_mime_part_set_content_encoding(GMIME_PART(part), seven_bit
                                                         ? GMIME_CONTENT_ENCODING_7BIT
                                                         : GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
  return part;
}

void add_mailbox(GMimeMessage* message, GMimeAddressType type, const Mailbox& mailbox) {
  const std::string name = to_valid_utf8(mailbox.name);
  GPtr<InternetAddress> address(
      internet_address_mailbox_new(name.empty() ? nullptr : name.c_str(), mailbox.address.c_str()));
  // UTF-8 rather than GMime's pick of the smallest charset (often ISO-8859-1).
  internet_address_set_charset(address.get(), "utf-8");
  internet_address_list_add(g_mime_message_get_addresses(message, type), address.get());
}

void set_utf8_charset(GMimeParamList* parameters, const char* name) {
  if (parameters == nullptr) return;
  if (GMimeParam* parameter = g_mime_param_list_get_parameter(parameters, name)) {
    g_mime_param_set_charset(parameter, "utf-8");
  }
}

std::string random_hex(std::size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    std::random_device random;
    for (char& c : raw) c = static_cast<char>(random());
  }
  std::string hex;
  for (char c : raw) {
    hex += kHex[(static_cast<unsigned char>(c) >> 4) & 15];
    hex += kHex[static_cast<unsigned char>(c) & 15];
  }
  return hex;
}

bool is_host_name(std::string_view domain) {
  if (domain.empty() || domain.size() > 253 || domain.front() == '.' || domain.back() == '.') {
    return false;
  }
  return std::all_of(domain.begin(), domain.end(),
                     [](char c) { return is_alpha(c) || is_digit(c) || c == '-' || c == '.'; });
}

// Length of a reply prefix ("Re:", "RE :", "Re[2]:", "Aw:") at the start of `s`, or 0.
std::size_t reply_prefix_length(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && is_alpha(s[i])) ++i;
  const std::string word = ascii_lower(s.substr(0, i));
  if (word != "re" && word != "aw" && word != "sv" && word != "antw") return 0;
  if (i < s.size() && (s[i] == '[' || s[i] == '(')) {
    const char close = s[i] == '[' ? ']' : ')';
    std::size_t j = i + 1;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j == i + 1 || j >= s.size() || s[j] != close) return 0;
    i = j + 1;
  }
  while (i < s.size() && s[i] == ' ') ++i;
  if (i >= s.size() || s[i] != ':') return 0;
  return i + 1;
}

}  // namespace

std::string markdown_to_html(std::string_view markdown) {
  const std::string text = body_text(markdown);
  std::string body;
  auto append = [](const MD_CHAR* chunk, MD_SIZE size, void* out) {
    static_cast<std::string*>(out)->append(chunk, size);
  };
  const unsigned parser_flags = MD_FLAG_NOHTML | MD_FLAG_TABLES | MD_FLAG_STRIKETHROUGH |
                                MD_FLAG_PERMISSIVEURLAUTOLINKS | MD_FLAG_PERMISSIVEWWWAUTOLINKS |
                                MD_FLAG_PERMISSIVEEMAILAUTOLINKS | MD_FLAG_TASKLISTS;
  if (md_html(text.data(), static_cast<MD_SIZE>(text.size()), append, &body, parser_flags,
              MD_HTML_FLAG_SKIP_UTF8_BOM) != 0) {
    body = "<pre>" + escape_xml(text) + "</pre>\n";  // md4c fails only when out of memory
  }
  return "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n</head>\n<body>\n" +
         neutralise_urls(body) + "</body>\n</html>\n";
}

Result<std::string> build_mail(const OutgoingMail& mail) {
  if (auto ok = check_mailbox("From", mail.from); !ok) return ok.error();
  if (mail.to.empty()) return make_error("the mail has no recipient (To is empty)");
  for (const Mailbox& mailbox : mail.to) {
    if (auto ok = check_mailbox("To", mailbox); !ok) return ok.error();
  }
  for (const Mailbox& mailbox : mail.cc) {
    if (auto ok = check_mailbox("Cc", mailbox); !ok) return ok.error();
  }
  if (auto ok = check_header("Subject", mail.subject); !ok) return ok.error();
  if (auto ok = check_header("Auto-Submitted", mail.auto_submitted); !ok) return ok.error();
  if (!std::all_of(mail.auto_submitted.begin(), mail.auto_submitted.end(),
                   [](char c) { return is_token_char(c) || c == ' ' || c == ';' || c == '='; })) {
    return make_error("invalid Auto-Submitted value \"" + single_line(mail.auto_submitted, 100) +
                      "\"");
  }
  auto message_id = checked_message_id("Message-ID", mail.message_id);
  if (!message_id) return message_id.error();
  std::string in_reply_to;
  if (!mail.in_reply_to.empty()) {
    auto id = checked_message_id("In-Reply-To", mail.in_reply_to);
    if (!id) return id.error();
    in_reply_to = "<" + id.value() + ">";
  }
  std::string references;
  for (const std::string& reference : mail.references) {
    auto id = checked_message_id("References", reference);
    if (!id) return id.error();
    if (!references.empty()) references += ' ';
    references += "<" + id.value() + ">";
  }
  std::vector<std::pair<std::string, std::string>> attachment_types;
  for (const OutgoingAttachment& attachment : mail.attachments) {
    if (auto ok = check_header("Content-Disposition (attachment file name)", attachment.name);
        !ok) {
      return ok.error();
    }
    if (auto ok = check_header("Content-Type (attachment)", attachment.content_type); !ok) {
      return ok.error();
    }
    auto type = parse_content_type(attachment.content_type);
    if (!type) {
      return make_error("attachment \"" + single_line(attachment.name, 100) +
                        "\": " + type.error().message);
    }
    attachment_types.push_back(std::move(type.value()));
  }

  init_mime();
  GPtr<GMimeMessage> message(g_mime_message_new(FALSE));
  GMimeObject* object = GMIME_OBJECT(message.get());
  add_mailbox(message.get(), GMIME_ADDRESS_TYPE_FROM, mail.from);
  for (const Mailbox& mailbox : mail.to) add_mailbox(message.get(), GMIME_ADDRESS_TYPE_TO, mailbox);
  for (const Mailbox& mailbox : mail.cc) add_mailbox(message.get(), GMIME_ADDRESS_TYPE_CC, mailbox);
  const std::string subject = to_valid_utf8(mail.subject);
  g_mime_message_set_subject(message.get(), subject.c_str(), "utf-8");

  const auto when = mail.date.value_or(std::chrono::system_clock::now());
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count();
  std::unique_ptr<GDateTime, DateTimeUnref> date(g_date_time_new_from_unix_utc(seconds));
  if (date) g_mime_message_set_date(message.get(), date.get());

  g_mime_message_set_message_id(message.get(), message_id->c_str());
  if (!in_reply_to.empty()) {
    g_mime_object_set_header(object, "In-Reply-To", in_reply_to.c_str(), nullptr);
  }
  if (!references.empty()) {
    g_mime_object_set_header(object, "References", references.c_str(), nullptr);
  }
  g_mime_object_set_header(object, "MIME-Version", "1.0", nullptr);
  if (!mail.auto_submitted.empty()) {
    g_mime_object_set_header(object, "Auto-Submitted", mail.auto_submitted.c_str(), nullptr);
  }

  const std::string text = body_text(mail.markdown_body);
  GPtr<GMimeTextPart> plain(new_text_part("plain", text));
  GPtr<GMimeTextPart> html(new_text_part("html", markdown_to_html(text)));
  GPtr<GMimeMultipart> alternative(g_mime_multipart_new_with_subtype("alternative"));
  g_mime_multipart_add(alternative.get(), GMIME_OBJECT(plain.get()));
  g_mime_multipart_add(alternative.get(), GMIME_OBJECT(html.get()));

  GPtr<GMimeMultipart> mixed;
  if (!mail.attachments.empty()) {
    mixed.reset(g_mime_multipart_new_with_subtype("mixed"));
    g_mime_multipart_add(mixed.get(), GMIME_OBJECT(alternative.get()));
    for (std::size_t i = 0; i < mail.attachments.size(); ++i) {
      const OutgoingAttachment& attachment = mail.attachments[i];
      const auto& [type, subtype] = attachment_types[i];
      GPtr<GMimePart> part(g_mime_part_new_with_type(type.c_str(), subtype.c_str()));
      GPtr<GMimeStream> stream(
          g_mime_stream_mem_new_with_buffer(attachment.bytes.data(), attachment.bytes.size()));
      GPtr<GMimeDataWrapper> content(
          g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
      g_mime_part_set_content(part.get(), content.get());
      g_mime_object_set_disposition(GMIME_OBJECT(part.get()), "attachment");
      const std::string name = to_valid_utf8(attachment.name);
      if (!name.empty()) {
        g_mime_part_set_filename(part.get(), name.c_str());
        set_utf8_charset(g_mime_content_disposition_get_parameters(
                             g_mime_object_get_content_disposition(GMIME_OBJECT(part.get()))),
                         "filename");
        set_utf8_charset(g_mime_content_type_get_parameters(
                             g_mime_object_get_content_type(GMIME_OBJECT(part.get()))),
                         "name");
      }
      g_mime_part_set_content_encoding(part.get(), GMIME_CONTENT_ENCODING_BASE64);
      g_mime_multipart_add(mixed.get(), GMIME_OBJECT(part.get()));
    }
  }
  g_mime_message_set_mime_part(message.get(),
                               mixed ? GMIME_OBJECT(mixed.get()) : GMIME_OBJECT(alternative.get()));

  std::unique_ptr<GMimeFormatOptions, FormatOptionsFree> format(g_mime_format_options_new());
  g_mime_format_options_set_newline_format(format.get(), GMIME_NEWLINE_FORMAT_DOS);
  GPtr<GMimeStream> out(g_mime_stream_mem_new());
  if (g_mime_object_write_to_stream(object, format.get(), out.get()) < 0) {
    return make_error("GMime could not write the message");
  }
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out.get()));
  return std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

std::string reply_subject(std::string_view subject) {
  std::string rest = single_line(subject, 4096);
  while (true) {
    const std::size_t prefix = reply_prefix_length(rest);
    if (prefix == 0) break;
    const std::size_t next = rest.find_first_not_of(' ', prefix);
    rest.erase(0, next == std::string::npos ? rest.size() : next);
  }
  return rest.empty() ? "Re:" : "Re: " + rest;
}

std::vector<std::string> reply_references(const ParsedMail& parent) {
  std::vector<std::string> chain = parent.references;
  if (chain.empty() && !parent.in_reply_to.empty()) chain.push_back(parent.in_reply_to);
  if (!parent.message_id.empty()) chain.push_back(parent.message_id);
  std::vector<std::string> ids;
  // Later occurrences win so that the parent's own id stays last.
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const std::string id = strip_angle_brackets(*it);
    if (is_message_id(id) && std::find(ids.begin(), ids.end(), id) == ids.end()) {
      ids.push_back(id);
    }
  }
  std::reverse(ids.begin(), ids.end());
  if (ids.size() > kMaxReplyReferences) {
    ids.erase(ids.begin() + 1, ids.end() - static_cast<std::ptrdiff_t>(kMaxReplyReferences - 1));
  }
  return ids;
}

std::string make_message_id(std::string_view domain) {
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::string time;
  for (auto value = static_cast<unsigned long long>(millis); value > 0; value /= 36) {
    time.insert(time.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[value % 36]);
  }
  const std::string host = is_host_name(domain) ? ascii_lower(domain) : "switchboard.invalid";
  return "sb." + time + "." + random_hex(16) + "@" + host;
}

}  // namespace sb::email

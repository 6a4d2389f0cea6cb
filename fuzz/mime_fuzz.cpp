// A received message (RFC 5322 with MIME) as the email channel reads it: parse_mail
// (channels/email/mime_parser.h), then what EmailIngest does with the result before
// anything is stored: the automatic-reply policy, the sender allow-list and the attachment
// file names.
//
// Properties checked beyond "no crash": every string parse_mail returns is valid UTF-8 (its
// contract) and within its limits; a safe_filename is a plain, non-empty file name.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "channels/email/attachments.h"
#include "channels/email/mail_policy.h"
#include "channels/email/mime_parser.h"
#include "common/utf8.h"
#include "fuzz_support.h"

namespace {

using namespace sb::email;
using sb::fuzz::require;

void check_text(const std::string& text) { require(sb::is_valid_utf8(text), "UTF-8 out"); }

void check_mailbox(const Mailbox& mailbox) {
  check_text(mailbox.address);
  check_text(mailbox.name);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  init_mime();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The channel's limits, smaller where the fuzzer's inputs could never reach them.
  MimeLimits limits;
  limits.max_attachment_bytes = 2048;
  limits.max_attachments = 3;
  limits.max_total_attachment_bytes = 4096;
  limits.max_text_bytes = 8192;
  limits.max_header_bytes = 512;
  limits.max_addresses = 8;
  limits.max_depth = 8;
  const ParsedMail mail = parse_mail(sb::fuzz::as_text(data, size), limits);

  check_mailbox(mail.from);
  for (const auto* list : {&mail.to, &mail.cc, &mail.reply_to}) {
    require(list->size() <= limits.max_addresses, "address lists are cut at the limit");
    for (const auto& mailbox : *list) check_mailbox(mailbox);
  }
  for (const auto* header : {&mail.subject, &mail.message_id, &mail.in_reply_to}) {
    check_text(*header);
  }
  for (const auto& id : mail.references) check_text(id);
  check_text(mail.text);
  // A cut text ends with a short note saying so.
  require(mail.text.size() <= limits.max_text_bytes + 64 || mail.text_source == TextSource::none,
          "the text is cut at the limit");
  for (const auto* header : {&mail.auto_submitted, &mail.precedence, &mail.list_id,
                             &mail.auto_response_suppress, &mail.report_type}) {
    check_text(*header);
  }
  if (mail.return_path) check_text(*mail.return_path);
  for (const auto& problem : mail.problems) check_text(problem);

  std::size_t kept = 0;
  for (const auto& attachment : mail.attachments) {
    check_text(attachment.filename);
    check_text(attachment.content_type);
    check_text(attachment.skipped);
    if (attachment.skipped.empty()) {
      require(attachment.data.size() == attachment.size, "a kept attachment has its bytes");
      require(attachment.size <= limits.max_attachment_bytes, "attachments within the limit");
      ++kept;
    } else {
      require(attachment.data.empty(), "a skipped attachment holds no bytes");
    }
    const std::string name = safe_filename(attachment.filename, attachment.content_type);
    require(!name.empty() && name.size() <= 100, "a safe file name is short and not empty");
    require(name.find('/') == std::string::npos && name.find('\\') == std::string::npos,
            "a safe file name has no path separator");
    require(name.front() != '.' && name != "..", "a safe file name is not hidden");
    require(sb::is_valid_utf8(name), "a safe file name is UTF-8");
  }
  require(kept <= limits.max_attachments, "kept attachments are counted");

  no_reply_reason(mail, {"muse@example.org"});
  static const auto allowed = AllowList::parse({"alice@example.org", "@example.com"});
  if (allowed) allowed->allows(mail.from.address);
  normalize_address(mail.from.address);
  return 0;
}

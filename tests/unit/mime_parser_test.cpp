#include "channels/email/mime_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "channels/email/mail_text.h"

namespace sb::email {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

// Hand-written samples shaped after real clients; see tests/data/mail/README.md.
const fs::path kSamples = fs::path(__FILE__).parent_path().parent_path() / "data" / "mail";

std::string sample(const std::string& name) {
  std::ifstream in(kSamples / name, std::ios::binary);
  if (!in) throw std::runtime_error("missing sample " + name);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

std::vector<std::string> sample_names() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kSamples)) {
    if (entry.path().extension() == ".eml") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool any_problem_contains(const ParsedMail& mail, const std::string& part) {
  return std::any_of(mail.problems.begin(), mail.problems.end(),
                     [&](const std::string& p) { return contains(p, part); });
}

void expect_all_valid_utf8(const ParsedMail& mail) {
  std::vector<std::string> strings = {mail.from.address,   mail.from.name,   mail.subject,
                                      mail.message_id,     mail.in_reply_to, mail.text,
                                      mail.auto_submitted, mail.precedence,  mail.list_id};
  for (const auto& list : {mail.to, mail.cc, mail.reply_to}) {
    for (const Mailbox& m : list) {
      strings.push_back(m.address);
      strings.push_back(m.name);
    }
  }
  for (const auto& a : mail.attachments) strings.push_back(a.filename);
  strings.insert(strings.end(), mail.references.begin(), mail.references.end());
  strings.insert(strings.end(), mail.problems.begin(), mail.problems.end());
  for (const std::string& s : strings) EXPECT_TRUE(is_valid_utf8(s)) << s;
}

// A minimal message with the given extra headers and body.
std::string message(const std::string& headers, const std::string& body) {
  return "From: a@example.com\r\nTo: b@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\n" +
         headers + "\r\n" + body;
}

TEST(MimeParser, GmailAlternativePrefersPlainTextAndDecodesHeaders) {
  const ParsedMail mail = parse_mail(sample("gmail_alternative.eml"));
  EXPECT_EQ(mail.from.address, "maria.garcia@gmail.com");
  EXPECT_EQ(mail.from.name,
            "Mar\xC3\xAD"
            "a Garc\xC3\xAD"
            "a");
  EXPECT_EQ(mail.subject, "Reserva para el viernes \xF0\x9F\x8D\x82");
  ASSERT_EQ(mail.to.size(), 1u);
  EXPECT_EQ(mail.to[0].address, "assistant@example.org");
  ASSERT_EQ(mail.cc.size(), 2u);
  EXPECT_EQ(mail.cc[0].name, "Pedro, Luis");
  EXPECT_EQ(mail.cc[1].address, "ana@example.net");
  EXPECT_EQ(mail.message_id, "CAGx8Lq3pZ7vR2Yb+K1w=hN4s9Qe_Fz0mT5c@mail.gmail.com");
  ASSERT_TRUE(mail.date.has_value());
  EXPECT_EQ(*mail.date, sys_days{2026y / March / 10} + 8h + 13min + 52s);
  EXPECT_EQ(mail.text_source, TextSource::plain);
  EXPECT_EQ(mail.text,
            "Hola,\n\n\xC2\xBFPuedes reservar una mesa para cuatro el viernes a las 21:00?\n"
            "Gracias \xE2\x80\x94 Mar\xC3\xAD"
            "a");
  EXPECT_TRUE(mail.attachments.empty());
  EXPECT_EQ(mail.return_path, "maria.garcia@gmail.com");
  EXPECT_TRUE(mail.problems.empty()) << mail.problems.front();
}

TEST(MimeParser, OutlookRelatedMailDecodesWindows1252AndKeepsThreadingAndInlineImage) {
  const ParsedMail mail = parse_mail(sample("outlook_related.eml"));
  EXPECT_EQ(mail.from.name, "Jensen, Karl");
  EXPECT_EQ(mail.subject, "RE: Quarterly numbers");
  EXPECT_EQ(mail.text_source, TextSource::plain);
  EXPECT_TRUE(contains(mail.text, "That\xE2\x80\x99s fine \xE2\x80\x93 the numbers"));
  EXPECT_EQ(mail.in_reply_to, "sb.abc.2@example.org");
  EXPECT_EQ(mail.references,
            (std::vector<std::string>{"sb.abc.1@example.org", "sb.abc.2@example.org"}));
  EXPECT_EQ(mail.auto_response_suppress, "DR, RN, NRN, OOF");
  ASSERT_EQ(mail.attachments.size(), 1u);
  EXPECT_EQ(mail.attachments[0].filename, "image001.png");
  EXPECT_EQ(mail.attachments[0].content_type, "image/png");
  EXPECT_TRUE(mail.attachments[0].data.starts_with("\x89PNG\r\n"));
  EXPECT_EQ(mail.attachments[0].size, mail.attachments[0].data.size());
}

TEST(MimeParser, HtmlOnlyMailBecomesReadableText) {
  const ParsedMail mail = parse_mail(sample("html_only.eml"));
  EXPECT_EQ(mail.text_source, TextSource::html);
  EXPECT_TRUE(contains(mail.text, "Your order is on its way\n\nHello J\xC3\xBCrgen,\nyour order"));
  EXPECT_TRUE(contains(mail.text, "- Caf\xC3\xA9 beans & filters\n- Mug \"Morning\" \xC3\x97 2"));
  EXPECT_TRUE(contains(mail.text,
                       "Track it here (https://track.example.com/p/4711) or visit "
                       "shop.example.com."));
  EXPECT_TRUE(contains(mail.text, "Price: 12\xE2\x82\xAC \xE2\x80\x94 thanks!"));
  for (const char* hidden :
       {"trackOpen", "Preheader", "Shipping confirmation", "font-family", "<", "&nbsp;"}) {
    EXPECT_FALSE(contains(mail.text, hidden)) << hidden;
  }
}

TEST(MimeParser, AppleMailAttachmentKeepsItsRfc2231FileName) {
  const ParsedMail mail = parse_mail(sample("apple_mail_attachment.eml"));
  EXPECT_EQ(mail.subject, "Contrat sign\xC3\xA9");
  EXPECT_EQ(mail.text, "Bonjour,\n\nVoici le contrat sign\xC3\xA9.\n\nSophie");
  ASSERT_EQ(mail.attachments.size(), 1u);
  const ParsedAttachment& pdf = mail.attachments[0];
  EXPECT_EQ(pdf.filename, "Contrat sign\xC3\xA9 \xE2\x80\x93 mars.pdf");
  EXPECT_EQ(pdf.content_type, "application/pdf");
  EXPECT_TRUE(pdf.data.starts_with("%PDF-1.4\n"));
  EXPECT_TRUE(pdf.skipped.empty());
}

TEST(MimeParser, MailingListHeadersAreRecorded) {
  const ParsedMail mail = parse_mail(sample("mailing_list.eml"));
  EXPECT_EQ(mail.list_id, "Developers <dev.lists.example.net>");
  EXPECT_TRUE(mail.has_list_headers);
  EXPECT_EQ(mail.precedence, "list");
  EXPECT_EQ(mail.in_reply_to, "20260313.abc@example.com");
}

TEST(MimeParser, BounceIsRecognisedAsADeliveryReport) {
  const ParsedMail mail = parse_mail(sample("bounce_dsn.eml"));
  EXPECT_EQ(mail.report_type, "delivery-status");
  EXPECT_EQ(mail.return_path, "");
  EXPECT_EQ(mail.auto_submitted, "auto-replied");
  EXPECT_EQ(mail.from.address, "MAILER-DAEMON@mx.example.org");
  EXPECT_EQ(mail.from.name, "Mail Delivery System");
  EXPECT_TRUE(contains(mail.text, "could not\nbe delivered"));
  ASSERT_EQ(mail.attachments.size(), 2u);
  EXPECT_EQ(mail.attachments[0].content_type, "message/delivery-status");
  EXPECT_TRUE(contains(mail.attachments[0].data, "Status: 5.1.1"));
  EXPECT_EQ(mail.attachments[1].content_type, "text/rfc822-headers");
}

TEST(MimeParser, AutoReplyHeadersAreRecorded) {
  const ParsedMail mail = parse_mail(sample("auto_reply.eml"));
  EXPECT_EQ(mail.auto_submitted, "auto-replied (vacation)");
  EXPECT_TRUE(mail.has_autoreply_headers);
  EXPECT_EQ(mail.precedence, "bulk");
  EXPECT_EQ(mail.subject, "Abwesenheitsnotiz: Re: Termin");
  EXPECT_EQ(mail.text, "Ich bin bis zum 23. M\xC3\xA4rz nicht im B\xC3\xBCro.");
}

TEST(MimeParser, SignedMultipartYieldsItsContentWithoutTheSignature) {
  const ParsedMail mail = parse_mail(sample("signed_nested.eml"));
  EXPECT_EQ(mail.text, "Here is the report, signed.");
  ASSERT_EQ(mail.attachments.size(), 1u);
  EXPECT_EQ(mail.attachments[0].filename, "report.csv");
  EXPECT_EQ(mail.attachments[0].content_type, "text/csv");
  EXPECT_EQ(mail.attachments[0].data, "region,total\nnorth,12\nsouth,7\n");
}

TEST(MimeParser, ForwardedMessageBecomesAnEmlAttachment) {
  const ParsedMail mail = parse_mail(sample("forwarded_message.eml"));
  EXPECT_EQ(mail.text, "Please file the attached invoice.");
  ASSERT_EQ(mail.attachments.size(), 1u);
  EXPECT_EQ(mail.attachments[0].filename, "Invoice 2026-031.eml");
  EXPECT_EQ(mail.attachments[0].content_type, "message/rfc822");
  EXPECT_TRUE(contains(mail.attachments[0].data, "Amount due: 120.00 EUR"));
}

TEST(MimeParser, MixedCharsetsAreAllDecodedToUtf8) {
  const ParsedMail mail = parse_mail(sample("charset_mix.eml"));
  EXPECT_EQ(mail.from.name,
            "Ren\xC3\xA9"
            "e Fran\xC3\xA7ois");
  ASSERT_EQ(mail.to.size(), 2u);
  EXPECT_EQ(mail.to[0].name, "\xD0\x92\xD0\xB0\xD1\x81\xD0\xB8\xD0\xBB\xD0\xB8\xD0\xB9");
  // Whitespace between adjacent encoded words is not part of the text (RFC 2047 6.2).
  EXPECT_EQ(mail.subject, "Caf\xC3\xA9\xE2\x80\x93 prix en \xE2\x82\xAC");
  EXPECT_TRUE(contains(mail.text, "Le caf\xC3\xA9 co\xC3\xBBte 3 \xE2\x82\xAC."));
  EXPECT_TRUE(contains(mail.text, "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF"));
  ASSERT_EQ(mail.attachments.size(), 1u);
  EXPECT_EQ(mail.attachments[0].filename,
            "\xC3\xBC"
            "bersicht 2026 \xE2\x82\xAC.xlsx");
}

TEST(MimeParser, MissingBoundaryStillYieldsTheText) {
  const ParsedMail mail = parse_mail(sample("malformed_missing_boundary.eml"));
  EXPECT_EQ(mail.text, "The boundary parameter is missing, but the text is here.");
  EXPECT_EQ(mail.text_source, TextSource::plain);
  EXPECT_TRUE(any_problem_contains(mail, "boundary"));
}

TEST(MimeParser, BlankPlainAlternativeLosesToTheHtmlPart) {
  const ParsedMail mail = parse_mail(
      message("Content-Type: multipart/alternative; boundary=a\r\n",
              "--a\r\nContent-Type: text/plain\r\n\r\n \r\n\r\n"
              "--a\r\nContent-Type: text/html\r\n\r\n<p>Real <b>content</b></p>\r\n--a--\r\n"));
  EXPECT_EQ(mail.text, "Real content");
  EXPECT_EQ(mail.text_source, TextSource::html);
}

TEST(MimeParser, MultipartWithoutAnyStructureIsReadAsText) {
  const ParsedMail mail =
      parse_mail(message("Content-Type: multipart/mixed\r\n", "Just words, no parts.\r\n"));
  EXPECT_EQ(mail.text, "Just words, no parts.");
  EXPECT_FALSE(mail.problems.empty());
}

TEST(MimeParser, TruncatedMessageKeepsWhatArrived) {
  const ParsedMail mail = parse_mail(sample("malformed_truncated.eml"));
  EXPECT_EQ(mail.text, "See the attached photo.");
  EXPECT_TRUE(any_problem_contains(mail, "truncated"));
  ASSERT_EQ(mail.attachments.size(), 1u);
  EXPECT_EQ(mail.attachments[0].filename, "photo.png");
  EXPECT_TRUE(mail.attachments[0].data.starts_with("\x89PNG"));
}

TEST(MimeParser, HugeHeadersAreReadAndCutToTheLimits) {
  MimeLimits limits;
  limits.max_header_bytes = 1000;
  const ParsedMail mail = parse_mail(sample("malformed_huge_header.eml"), limits);
  EXPECT_EQ(mail.to.size(), 600u);
  EXPECT_EQ(mail.to[599].name, "Recipient 599");
  EXPECT_LE(mail.subject.size(), 1000u);
  EXPECT_TRUE(mail.subject.starts_with("A very long subject line A very"));
  ASSERT_EQ(mail.references.size(), 100u);
  EXPECT_EQ(mail.references.front(), "ref0@example.com");
  EXPECT_EQ(mail.references.back(), "ref299@example.com");
  EXPECT_EQ(mail.message_id, "huge-header@example.com");
  EXPECT_EQ(mail.text, "Body after huge headers.");
}

TEST(MimeParser, OneMegabyteHeaderLineDoesNotBreakParsing) {
  const std::string huge(1024 * 1024, 'h');
  const ParsedMail mail = parse_mail("From: a@example.com\r\nSubject: " + huge +
                                     "\r\nX-Long: " + huge + "\r\n\r\nbody\r\n");
  EXPECT_EQ(mail.subject.size(), MimeLimits{}.max_header_bytes);
  EXPECT_EQ(mail.text, "body");
}

TEST(MimeParser, TooManyAddressesAreCut) {
  std::string to;
  for (int i = 0; i < 50; ++i)
    to += (i ? ", " : "") + std::string("u") + std::to_string(i) + "@x.org";
  MimeLimits limits;
  limits.max_addresses = 10;
  const ParsedMail mail = parse_mail("From: a@example.com\r\nTo: " + to + "\r\n\r\nx", limits);
  EXPECT_EQ(mail.to.size(), 10u);
  EXPECT_TRUE(any_problem_contains(mail, "addresses"));
}

TEST(MimeParser, UnknownCharsetsFallBackInsteadOfFailing) {
  const ParsedMail mail = parse_mail(sample("malformed_bad_charset.eml"));
  EXPECT_EQ(mail.text,
            "Stra\xC3\x9F"
            "e und Gr\xC3\xBC\xC3\x9F"
            "e.");
  EXPECT_TRUE(any_problem_contains(mail, "x-no-such-charset"));
  EXPECT_TRUE(
      mail.subject.starts_with("Gr\xC3\xBC\xC3\x9F"
                               "e und"))
      << mail.subject;
  EXPECT_EQ(mail.from.name, "Bad Charset");
  expect_all_valid_utf8(mail);
}

TEST(MimeParser, UnencodedEightBitHeadersAreReadAsUtf8OrWindows1252) {
  const ParsedMail mail = parse_mail(sample("malformed_8bit_headers.eml"));
  EXPECT_EQ(mail.from.name, "J\xC3\xB6rg M\xC3\xBCller");
  EXPECT_EQ(mail.subject,
            "Gr\xC3\xBC\xC3\x9F"
            "e aus M\xC3\xBCnchen");
  ASSERT_EQ(mail.to.size(), 2u);
  EXPECT_EQ(mail.to[0].name, "Fran\xC3\xA7oise");
  EXPECT_EQ(mail.text,
            "Sch\xC3\xB6ne Gr\xC3\xBC\xC3\x9F"
            "e!");
  EXPECT_TRUE(any_problem_contains(mail, "8-bit"));
}

TEST(MimeParser, EncodedLineBreaksInHeadersCannotSplitThem) {
  const ParsedMail mail = parse_mail(
      "From: =?utf-8?q?Eve=0D=0ABcc:_x@evil.example?= <eve@example.com>\r\n"
      "Subject: =?utf-8?q?Hi=0D=0AX-Injected:_yes=00?=\r\n\r\nbody");
  EXPECT_TRUE(mail.subject.starts_with("Hi X-Injected: yes")) << mail.subject;
  EXPECT_EQ(mail.subject.find_first_of(std::string("\r\n\0", 3)), std::string::npos);
  EXPECT_EQ(mail.from.name.find_first_of("\r\n"), std::string::npos);
  EXPECT_EQ(mail.from.address, "eve@example.com");
}

TEST(MimeParser, AttachmentsOverTheSizeLimitAreListedButNotKept) {
  const std::string body =
      "--b\r\nContent-Type: text/plain\r\n\r\nsee files\r\n"
      "--b\r\nContent-Type: application/octet-stream\r\n"
      "Content-Disposition: attachment; filename=big.bin\r\n\r\n" +
      std::string(2000, 'x') +
      "\r\n--b\r\nContent-Type: application/octet-stream\r\n"
      "Content-Disposition: attachment; filename=small.bin\r\n\r\n" +
      std::string(100, 'y') + "\r\n--b--\r\n";
  MimeLimits limits;
  limits.max_attachment_bytes = 1000;
  const ParsedMail mail =
      parse_mail(message("Content-Type: multipart/mixed; boundary=b\r\n", body), limits);
  ASSERT_EQ(mail.attachments.size(), 2u);
  EXPECT_EQ(mail.attachments[0].filename, "big.bin");
  EXPECT_EQ(mail.attachments[0].size, 2000u);
  EXPECT_TRUE(mail.attachments[0].data.empty());
  EXPECT_TRUE(contains(mail.attachments[0].skipped, "larger than"));
  EXPECT_EQ(mail.attachments[1].data, std::string(100, 'y'));
  EXPECT_TRUE(mail.attachments[1].skipped.empty());
}

TEST(MimeParser, AttachmentsOverTheCountAndTotalLimitsAreSkipped) {
  std::string body = "--b\r\nContent-Type: text/plain\r\n\r\nfiles\r\n";
  for (int i = 0; i < 6; ++i) {
    body += "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=f" +
            std::to_string(i) + ".txt\r\n\r\n" + std::string(100, 'a' + i) + "\r\n";
  }
  body += "--b--\r\n";
  MimeLimits limits;
  limits.max_attachments = 4;
  limits.max_total_attachment_bytes = 250;
  const ParsedMail mail =
      parse_mail(message("Content-Type: multipart/mixed; boundary=b\r\n", body), limits);
  ASSERT_EQ(mail.attachments.size(), 6u);
  EXPECT_TRUE(mail.attachments[0].skipped.empty());
  EXPECT_TRUE(mail.attachments[1].skipped.empty());
  EXPECT_TRUE(contains(mail.attachments[2].skipped, "all attachments"));
  EXPECT_EQ(mail.text, "files");
}

TEST(MimeParser, AttachmentCountLimitIsPerMessage) {
  std::string body;
  for (int i = 0; i < 5; ++i) {
    body += "--b\r\nContent-Type: image/gif\r\nContent-Disposition: attachment\r\n\r\nGIF89a\r\n";
  }
  body += "--b--\r\n";
  MimeLimits limits;
  limits.max_attachments = 3;
  const ParsedMail mail =
      parse_mail(message("Content-Type: multipart/mixed; boundary=b\r\n", body), limits);
  ASSERT_EQ(mail.attachments.size(), 5u);
  EXPECT_TRUE(mail.attachments[2].skipped.empty());
  EXPECT_TRUE(contains(mail.attachments[3].skipped, "more than 3 attachments"));
  EXPECT_EQ(mail.text_source, TextSource::none);
  EXPECT_EQ(mail.text, kNoTextNote);
}

TEST(MimeParser, TextIsCutAtTheLimitOnACharacterBoundary) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "\xC3\xA9";  // 2000 bytes of "é"
  MimeLimits limits;
  limits.max_text_bytes = 1001;
  const ParsedMail mail =
      parse_mail(message("Content-Type: text/plain; charset=utf-8\r\n", text), limits);
  EXPECT_TRUE(mail.text.starts_with(text.substr(0, 1000)));
  EXPECT_TRUE(contains(mail.text, "cut"));
  EXPECT_TRUE(is_valid_utf8(mail.text));
  EXPECT_TRUE(any_problem_contains(mail, "cut"));
}

TEST(MimeParser, EncryptedMailIsReportedAsUnreadable) {
  const ParsedMail mail = parse_mail(message(
      "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=e\r\n",
      "--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
      "--e\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n"
      "--e--\r\n"));
  EXPECT_EQ(mail.text_source, TextSource::none);
  EXPECT_TRUE(any_problem_contains(mail, "encrypted"));
}

TEST(MimeParser, QuotedPrintableAndBase64BodiesAreDecoded) {
  const ParsedMail qp = parse_mail(
      message("Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: "
              "quoted-printable\r\n",
              "Gr=FC=DFe, soft=\r\nbreak\r\n"));
  EXPECT_EQ(qp.text,
            "Gr\xC3\xBC\xC3\x9F"
            "e, softbreak");
  const ParsedMail b64 = parse_mail(
      message("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
              "SMOpbGxvIHfDtnJsZA==\r\n"));
  EXPECT_EQ(b64.text, "H\xC3\xA9llo w\xC3\xB6rld");
}

TEST(MimeParser, DeepMimeNestingIsBounded) {
  std::string raw = "From: a@example.com\r\nMIME-Version: 1.0\r\n";
  for (int i = 0; i < 2000; ++i) {
    raw += "Content-Type: multipart/mixed; boundary=\"n" + std::to_string(i) + "\"\r\n\r\n--n" +
           std::to_string(i) + "\r\n";
  }
  raw += "Content-Type: text/plain\r\n\r\ndeep text\r\n";
  const ParsedMail mail = parse_mail(raw);
  EXPECT_FALSE(mail.problems.empty());
  expect_all_valid_utf8(mail);
}

// Issue 16: 20 MB of tiny parts, header fields or addresses cost GMime about 1 GB. Past a
// structure cap the message is read up to the line that went over, and that is said.
std::string many_parts(int count) {
  std::string body;
  for (int i = 0; i < count; ++i)
    body += "--b\r\nContent-Type: text/plain\r\n\r\np" + std::to_string(i) + "\r\n";
  return message("Content-Type: multipart/mixed; boundary=b\r\n", body + "--b--\r\n");
}

TEST(MimeParser, PartsOverTheCapAreNotRead) {
  MimeLimits limits;
  limits.max_parts = 5;
  const ParsedMail mail = parse_mail(many_parts(20), limits);
  EXPECT_EQ(mail.text, "p0\n\np1\n\np2\n\np3\n\np4");  // five boundaries: five parts
  EXPECT_TRUE(
      any_problem_contains(mail, "more than 5 MIME boundary lines: the message was read up to"));
  // Four parts and the closing boundary.
  const ParsedMail within = parse_mail(many_parts(4), limits);
  EXPECT_TRUE(within.problems.empty()) << within.problems.front();
  EXPECT_TRUE(contains(within.text, "p3"));
}

TEST(MimeParser, AHundredThousandPartsAreReadOnlyUpToTheDefaultCap) {
  const ParsedMail mail = parse_mail(many_parts(100'000));
  EXPECT_TRUE(any_problem_contains(mail, "more than 1000 MIME boundary lines"));
  EXPECT_TRUE(contains(mail.text, "p999"));
  EXPECT_FALSE(contains(mail.text, "p1000"));
}

TEST(MimeParser, HeaderFieldsOverTheCapAreNotRead) {
  MimeLimits limits;
  limits.max_header_fields = 50;
  std::string raw = "From: a@example.com\r\nSubject: kept\r\n";
  for (int i = 0; i < 100; ++i) raw += "X-Filler: " + std::to_string(i) + "\r\n";
  const ParsedMail mail = parse_mail(raw + "\r\nbody\r\n", limits);
  EXPECT_EQ(mail.subject, "kept");
  EXPECT_EQ(mail.text, kNoTextNote);
  EXPECT_TRUE(any_problem_contains(mail, "more than 50 header fields"));
}

TEST(MimeParser, HeaderFieldsOfEmbeddedMessagesAndDigestPartsCount) {
  MimeLimits limits;
  limits.max_header_fields = 50;
  std::string inner;
  for (int i = 0; i < 100; ++i) inner += "X-Inner: " + std::to_string(i) + "\r\n";
  // A message/rfc822 part: its content starts with the embedded message's header fields.
  const ParsedMail embedded = parse_mail(
      message("Content-Type: multipart/mixed; boundary=b\r\n",
              "--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + "\r\nhi\r\n--b--\r\n"),
      limits);
  EXPECT_TRUE(any_problem_contains(embedded, "more than 50 header fields"));
  // A part of a multipart/digest without Content-Type is a message/rfc822 too.
  const ParsedMail digest = parse_mail(message("Content-Type: multipart/digest; boundary=b\r\n",
                                               "--b\r\n\r\n" + inner + "\r\nhi\r\n--b--\r\n"),
                                       limits);
  EXPECT_TRUE(any_problem_contains(digest, "more than 50 header fields"));
}

TEST(MimeParser, AnOverlongHeaderFieldIsCutAndTheBodyKept) {
  MimeLimits limits;
  limits.max_header_field_bytes = 1024;
  std::string to = "To: first@example.org";
  for (int i = 0; i < 10'000; ++i) to += ",\r\n u" + std::to_string(i) + "@example.org";
  const ParsedMail mail =
      parse_mail("From: a@example.com\r\n" + to + "\r\nSubject: s\r\n\r\nthe body\r\n", limits);
  EXPECT_EQ(mail.text, "the body");
  EXPECT_EQ(mail.subject, "s");
  ASSERT_FALSE(mail.to.empty());
  EXPECT_EQ(mail.to.front().address, "first@example.org");
  EXPECT_LT(mail.to.size(), 100u);
  EXPECT_TRUE(any_problem_contains(mail, "a header field longer than 1 KiB was cut"));
}

TEST(MimeParser, HeaderBytesOverTheCapAreNotRead) {
  MimeLimits limits;
  limits.max_header_section_bytes = 4096;
  std::string raw = "From: a@example.com\r\n";
  for (int i = 0; i < 20; ++i) raw += "To: " + std::string(1000, 'x') + "@example.org\r\n";
  const ParsedMail mail = parse_mail(raw + "\r\nbody\r\n", limits);
  EXPECT_TRUE(any_problem_contains(mail, "more than 4 KiB of header fields"));
  EXPECT_EQ(mail.from.address, "a@example.com");
}

TEST(MimeParser, ContentOverTheDecodedCapIsNotRead) {
  std::string body = "--b\r\nContent-Type: text/plain\r\n\r\nsee files\r\n";
  for (int i = 0; i < 4; ++i) {
    body +=
        "--b\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename=f" +
        std::to_string(i) + ".bin\r\n\r\n" + std::string(1000, 'x') + "\r\n";
  }
  MimeLimits limits;
  limits.max_decoded_bytes = 2500;
  const ParsedMail mail = parse_mail(
      message("Content-Type: multipart/mixed; boundary=b\r\n", body + "--b--\r\n"), limits);
  ASSERT_EQ(mail.attachments.size(), 4u);
  EXPECT_FALSE(mail.attachments[0].data.empty());
  EXPECT_FALSE(mail.attachments[1].data.empty());
  EXPECT_TRUE(contains(mail.attachments[2].skipped, "not read"));
  EXPECT_TRUE(mail.attachments[2].data.empty());
  EXPECT_TRUE(any_problem_contains(mail, "decoded content were not read"));
  EXPECT_EQ(mail.text, "see files");
}

TEST(MimeParser, NestedBrokenMultipartsAreRecoveredWithinTheMessageSize) {
  // Each multipart lacks its boundary; recovering one parses its content again.
  std::string raw = "From: a@example.com\r\nMIME-Version: 1.0\r\n";
  std::string inner = "Content-Type: text/plain\r\n\r\ninnermost\r\n";
  for (int i = 0; i < 40; ++i) {
    inner = "Content-Type: multipart/mixed\r\n\r\n--x" + std::to_string(i) + "\r\n" + inner;
  }
  const ParsedMail mail = parse_mail(raw + inner);
  EXPECT_FALSE(mail.problems.empty());
  expect_all_valid_utf8(mail);
}

// Found by fuzzing (fuzz/corpus/mime_fuzz/crash-date-after-2262.eml): a date beyond what
// system_clock holds overflowed its conversion to nanoseconds (undefined behaviour).
TEST(MimeParser, DateBeyondTheClocksRangeIsAProblemNotAnOverflow) {
  const ParsedMail mail =
      parse_mail("From: a@example.org\r\nDate: Mon, 1 Jan 2900 00:00:00 +0000\r\n\r\nhi\r\n");
  EXPECT_FALSE(mail.date.has_value());
  EXPECT_NE(std::find(mail.problems.begin(), mail.problems.end(), "Date header out of range"),
            mail.problems.end());
  EXPECT_TRUE(parse_mail("Date: Fri, 27 Nov 2026 16:21:00 +0000\r\n\r\nx").date.has_value());
}

TEST(MimeParser, InputThatIsNotMailBecomesText) {
  EXPECT_EQ(parse_mail("").text, kNoTextNote);
  const ParsedMail garbage = parse_mail(std::string("\x00\xFF\xFEnot mail\n", 12));
  expect_all_valid_utf8(garbage);
  EXPECT_FALSE(garbage.problems.empty());
}

TEST(MimeParser, EveryStringFromEverySampleIsValidUtf8) {
  for (const std::string& name : sample_names()) {
    SCOPED_TRACE(name);
    expect_all_valid_utf8(parse_mail(sample(name)));
  }
}

TEST(MimeParser, RandomlyDamagedSamplesNeverBreakTheParser) {
  std::mt19937 random(20260310);
  for (const std::string& name : sample_names()) {
    const std::string original = sample(name);
    for (int round = 0; round < 40; ++round) {
      std::string damaged = original;
      const int edits = 1 + static_cast<int>(random() % 20);
      for (int e = 0; e < edits && !damaged.empty(); ++e) {
        const std::size_t at = random() % damaged.size();
        switch (random() % 4) {
          case 0:
            damaged[at] = static_cast<char>(random());
            break;
          case 1:
            damaged.erase(at, random() % 64);
            break;
          case 2:
            damaged.insert(at, std::string(1 + random() % 8, "-\r\n=?<>\"\\"[random() % 9]));
            break;
          default:
            damaged.resize(at);
            break;
        }
      }
      SCOPED_TRACE(name + " round " + std::to_string(round));
      const ParsedMail mail = parse_mail(damaged);
      expect_all_valid_utf8(mail);
      EXPECT_FALSE(mail.text.empty());
    }
  }
}

TEST(MimeParser, ParsesOnSeveralThreadsAtOnce) {
  const std::vector<std::string> names = sample_names();
  std::vector<std::string> expected;
  for (const std::string& name : names) expected.push_back(parse_mail(sample(name)).text);
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 10; ++round) {
        for (std::size_t i = 0; i < names.size(); ++i) {
          if (parse_mail(sample(names[i])).text != expected[i]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace sb::email

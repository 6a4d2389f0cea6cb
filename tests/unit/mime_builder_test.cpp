#include "channels/email/mime_builder.h"

#include <gmime/gmime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace sb::email {
namespace {

using namespace std::chrono;

OutgoingMail reply() {
  OutgoingMail mail;
  mail.from = {"assistant@example.org", "Assistant"};
  mail.to = {{"alice@example.com", "Alice"}};
  mail.subject = "Re: Lunch";
  mail.message_id = "sb.test.1@example.org";
  mail.in_reply_to = "parent@example.com";
  mail.references = {"root@example.com", "parent@example.com"};
  mail.markdown_body = "Hello **Alice**,\n\n- one\n- two\n";
  return mail;
}

std::string built(const OutgoingMail& mail) {
  auto bytes = build_mail(mail);
  if (!bytes) throw std::runtime_error(bytes.error().message);
  return std::move(bytes).value();
}

std::string error_of(const OutgoingMail& mail) {
  const auto bytes = build_mail(mail);
  return bytes ? "ok" : bytes.error().message;
}

std::string headers_of(const std::string& raw) { return raw.substr(0, raw.find("\r\n\r\n") + 2); }

// The message parsed back with GMime itself, to check the structure independently of our
// parser.
struct Parsed {
  explicit Parsed(const std::string& raw) {
    init_mime();
    GMimeStream* stream = g_mime_stream_mem_new_with_buffer(raw.data(), raw.size());
    GMimeParser* parser = g_mime_parser_new_with_stream(stream);
    message = g_mime_parser_construct_message(parser, nullptr);
    g_object_unref(parser);
    g_object_unref(stream);
  }
  ~Parsed() {
    if (message != nullptr) g_object_unref(message);
  }
  Parsed(const Parsed&) = delete;
  Parsed& operator=(const Parsed&) = delete;

  std::string header(const char* name) const {
    const char* value = g_mime_object_get_header(GMIME_OBJECT(message), name);
    return value != nullptr ? value : "<none>";
  }
  GMimeObject* body() const { return g_mime_message_get_mime_part(message); }

  GMimeMessage* message = nullptr;
};

std::string type_of(GMimeObject* object) {
  char* type = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(object));
  std::string result = type;
  g_free(type);
  return result;
}

GMimeObject* child(GMimeObject* multipart, int index) {
  return g_mime_multipart_get_part(GMIME_MULTIPART(multipart), index);
}

// A text part's content with the wire format's CRLF line ends read as LF.
std::string text_of(GMimeObject* part) {
  char* text = g_mime_text_part_get_text(GMIME_TEXT_PART(part));
  std::string result = text;
  g_free(text);
  std::erase(result, '\r');
  return result;
}

std::string content_of(GMimeObject* part) {
  GMimeStream* out = g_mime_stream_mem_new();
  g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(GMIME_PART(part)), out);
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
  std::string result(reinterpret_cast<const char*>(bytes->data), bytes->len);
  g_object_unref(out);
  return result;
}

TEST(MimeBuilder, ReplyIsMultipartAlternativeWithTextAndHtml) {
  const std::string raw = built(reply());
  const Parsed parsed(raw);
  ASSERT_NE(parsed.message, nullptr);
  GMimeObject* body = parsed.body();
  EXPECT_EQ(type_of(body), "multipart/alternative");
  ASSERT_EQ(g_mime_multipart_get_count(GMIME_MULTIPART(body)), 2);
  EXPECT_EQ(type_of(child(body, 0)), "text/plain");
  EXPECT_EQ(type_of(child(body, 1)), "text/html");
  EXPECT_EQ(text_of(child(body, 0)), "Hello **Alice**,\n\n- one\n- two\n");
  const std::string html = text_of(child(body, 1));
  EXPECT_NE(html.find("<p>Hello <strong>Alice</strong>,</p>"), std::string::npos);
  EXPECT_NE(html.find("<li>one</li>"), std::string::npos);
  EXPECT_NE(html.find("<meta charset=\"utf-8\">"), std::string::npos);
}

TEST(MimeBuilder, ReplyCarriesThreadingAndLoopHeaders) {
  const std::string raw = built(reply());
  const Parsed parsed(raw);
  EXPECT_EQ(parsed.header("From"), "Assistant <assistant@example.org>");
  EXPECT_EQ(parsed.header("To"), "Alice <alice@example.com>");
  EXPECT_EQ(parsed.header("Subject"), "Re: Lunch");
  EXPECT_EQ(parsed.header("Message-ID"), "<sb.test.1@example.org>");
  EXPECT_EQ(parsed.header("In-Reply-To"), "<parent@example.com>");
  EXPECT_EQ(parsed.header("References"), "<root@example.com> <parent@example.com>");
  EXPECT_EQ(parsed.header("Auto-Submitted"), "auto-replied");
  EXPECT_EQ(parsed.header("MIME-Version"), "1.0");
  EXPECT_NE(parsed.header("Date"), "<none>");
  EXPECT_EQ(parsed.header("Cc"), "<none>");
}

TEST(MimeBuilder, EmptyAutoSubmittedLeavesTheHeaderOut) {
  OutgoingMail mail = reply();
  mail.auto_submitted.clear();
  EXPECT_EQ(Parsed(built(mail)).header("Auto-Submitted"), "<none>");
}

TEST(MimeBuilder, UsesCrlfLineEndsAndShortLinesOnly) {
  OutgoingMail mail = reply();
  mail.markdown_body = std::string(3000, 'x') + "\nline\r\nanother\rlast\n";
  mail.subject = std::string(300, 's');
  const std::string raw = built(mail);
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n') {
      ASSERT_GT(i, 0u);
      EXPECT_EQ(raw[i - 1], '\r') << "bare LF at " << i;
      EXPECT_LE(i - line_start, 999u);
      line_start = i + 1;
    } else if (raw[i] == '\r') {
      ASSERT_LT(i + 1, raw.size());
      EXPECT_EQ(raw[i + 1], '\n') << "bare CR at " << i;
    }
  }
  const Parsed parsed(raw);
  EXPECT_EQ(text_of(child(parsed.body(), 0)), std::string(3000, 'x') + "\nline\nanother\nlast\n");
}

TEST(MimeBuilder, NonAsciiSubjectAndNamesAreEncoded) {
  OutgoingMail mail = reply();
  mail.subject =
      "Re: Gr\xC3\xBC\xC3\x9F"
      "e \xF0\x9F\x91\x8B";
  mail.from.name = "Assistent M\xC3\xBCller";
  mail.to = {{"jose@example.es", "Jos\xC3\xA9, P."}};
  mail.markdown_body = "Ol\xC3\xA1!";
  const std::string raw = built(mail);
  const std::string headers = headers_of(raw);
  for (char c : headers) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << headers;
  EXPECT_NE(headers.find("=?UTF-8?"), std::string::npos);

  const ParsedMail back = parse_mail(raw);
  EXPECT_EQ(back.subject, mail.subject);
  EXPECT_EQ(back.from.name, mail.from.name);
  ASSERT_EQ(back.to.size(), 1u);
  EXPECT_EQ(back.to[0].name, "Jos\xC3\xA9, P.");
  EXPECT_EQ(back.text, "Ol\xC3\xA1!");
  for (char c : raw) EXPECT_LT(static_cast<unsigned char>(c), 0x80);
}

TEST(MimeBuilder, AttachmentsMakeMultipartMixedWithBase64Parts) {
  OutgoingMail mail = reply();
  const std::string binary("%PDF\0\x01\x02\xFF\r\n\n", 11);
  mail.attachments = {{"Bericht f\xC3\xBCr M\xC3\xA4rz.pdf", "application/pdf", binary},
                      {"notes.txt", "", "plain notes"}};
  const std::string raw = built(mail);
  const Parsed parsed(raw);
  GMimeObject* body = parsed.body();
  EXPECT_EQ(type_of(body), "multipart/mixed");
  ASSERT_EQ(g_mime_multipart_get_count(GMIME_MULTIPART(body)), 3);
  EXPECT_EQ(type_of(child(body, 0)), "multipart/alternative");
  GMimeObject* pdf = child(body, 1);
  EXPECT_EQ(type_of(pdf), "application/pdf");
  EXPECT_EQ(g_mime_part_get_content_encoding(GMIME_PART(pdf)), GMIME_CONTENT_ENCODING_BASE64);
  EXPECT_STREQ(g_mime_object_get_disposition(pdf), "attachment");
  EXPECT_STREQ(g_mime_part_get_filename(GMIME_PART(pdf)), "Bericht f\xC3\xBCr M\xC3\xA4rz.pdf");
  EXPECT_EQ(content_of(pdf), binary);
  EXPECT_EQ(type_of(child(body, 2)), "application/octet-stream");

  const ParsedMail back = parse_mail(raw);
  ASSERT_EQ(back.attachments.size(), 2u);
  EXPECT_EQ(back.attachments[0].data, binary);
  EXPECT_EQ(back.attachments[1].filename, "notes.txt");
  EXPECT_EQ(back.text, "Hello **Alice**,\n\n- one\n- two");
}

TEST(MimeBuilder, BuiltReplyParsesBackWithAllItsMetadata) {
  OutgoingMail mail = reply();
  mail.cc = {{"bob@example.com", ""}};
  mail.date = sys_days{2026y / March / 10} + 9h + 30min;
  const ParsedMail back = parse_mail(built(mail));
  EXPECT_EQ(back.from.address, "assistant@example.org");
  EXPECT_EQ(back.from.name, "Assistant");
  ASSERT_EQ(back.cc.size(), 1u);
  EXPECT_EQ(back.cc[0].address, "bob@example.com");
  EXPECT_EQ(back.message_id, "sb.test.1@example.org");
  EXPECT_EQ(back.in_reply_to, "parent@example.com");
  EXPECT_EQ(back.references, mail.references);
  EXPECT_EQ(back.auto_submitted, "auto-replied");
  ASSERT_TRUE(back.date.has_value());
  EXPECT_EQ(*back.date, *mail.date);
  EXPECT_TRUE(back.problems.empty()) << back.problems.front();
}

TEST(MimeBuilder, RawHtmlInTheMarkdownIsShownAsText) {
  OutgoingMail mail = reply();
  mail.markdown_body = "<script>alert(1)</script>\n\nText <img src=x onerror=alert(1)>";
  const Parsed parsed(built(mail));
  const std::string html = text_of(child(parsed.body(), 1));
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);
}

TEST(MimeBuilder, UnsafeLinkTargetsAreNeutralised) {
  const std::string html = markdown_to_html(
      "[a](javascript:alert(1)) [b](JaVaScRiPt:alert(2)) [c](https://example.com/x) "
      "[d](mailto:bob@example.com) [e](/relative) ![i](data:image/png;base64,AAAA) "
      "[f](vbscript:x) [g](java&#115;cript:alert(3))");
  EXPECT_EQ(html.find("javascript"), std::string::npos);
  EXPECT_EQ(html.find("JaVaScRiPt"), std::string::npos);
  EXPECT_EQ(html.find("vbscript"), std::string::npos);
  EXPECT_EQ(html.find("data:"), std::string::npos);
  EXPECT_NE(html.find("href=\"https://example.com/x\""), std::string::npos);
  EXPECT_NE(html.find("href=\"mailto:bob@example.com\""), std::string::npos);
  EXPECT_NE(html.find("href=\"/relative\""), std::string::npos);
}

TEST(MimeBuilder, RefusesHeaderInjectionNamingTheHeader) {
  struct Case {
    const char* header;
    void (*spoil)(OutgoingMail&);
  };
  const Case cases[] = {
      {"Subject", [](OutgoingMail& m) { m.subject = "Hi\r\nBcc: victim@example.com"; }},
      {"Subject", [](OutgoingMail& m) { m.subject = std::string("Hi\0there", 8); }},
      {"From", [](OutgoingMail& m) { m.from.name = "Eve\nBcc: x@example.com"; }},
      {"From", [](OutgoingMail& m) { m.from.address = "eve@example.org\r\nBcc: x@y.z"; }},
      {"To", [](OutgoingMail& m) { m.to[0].name = "A\rB"; }},
      {"Cc",
       [](OutgoingMail& m) {
         m.cc = {{"c@example.com\n", ""}};
       }},
      {"Message-ID", [](OutgoingMail& m) { m.message_id = "a@b\r\nX: y"; }},
      {"In-Reply-To", [](OutgoingMail& m) { m.in_reply_to = "a@b\nX: y"; }},
      {"References",
       [](OutgoingMail& m) {
         m.references = {"ok@x", "a@b\r\n"};
       }},
      {"Auto-Submitted", [](OutgoingMail& m) { m.auto_submitted = "no\r\nBcc: x@y.z"; }},
      {"file name",
       [](OutgoingMail& m) {
         m.attachments = {{"a\r\n.txt", "text/plain", "x"}};
       }},
      {"Content-Type",
       [](OutgoingMail& m) {
         m.attachments = {{"a.txt", "text/plain\n", "x"}};
       }},
  };
  for (const Case& c : cases) {
    OutgoingMail mail = reply();
    c.spoil(mail);
    const std::string error = error_of(mail);
    EXPECT_NE(error.find(c.header), std::string::npos) << c.header << ": " << error;
  }
}

TEST(MimeBuilder, RefusesMalformedAddressesIdsAndTypes) {
  OutgoingMail mail = reply();
  mail.to.clear();
  EXPECT_NE(error_of(mail).find("no recipient"), std::string::npos);

  for (const char* bad : {"alice", "@example.com", "alice@", "a b@example.com", "<a@b.c>", "a@b@c",
                          "Alice <alice@example.com>"}) {
    mail = reply();
    mail.to[0].address = bad;
    EXPECT_NE(error_of(mail).find("invalid address in To"), std::string::npos) << bad;
  }
  mail = reply();
  mail.message_id.clear();
  EXPECT_NE(error_of(mail).find("Message-ID"), std::string::npos);
  mail.message_id = "no-at-sign";
  EXPECT_NE(error_of(mail).find("Message-ID"), std::string::npos);
  mail.message_id = "<with@brackets>";
  EXPECT_EQ(error_of(mail), "ok");
  mail.attachments = {{"a.bin", "not a type", "x"}};
  EXPECT_NE(error_of(mail).find("content type"), std::string::npos);
}

TEST(MimeBuilder, ReplySubjectDoesNotStackPrefixes) {
  EXPECT_EQ(reply_subject("Lunch"), "Re: Lunch");
  EXPECT_EQ(reply_subject("Re: Lunch"), "Re: Lunch");
  EXPECT_EQ(reply_subject("RE: re: Lunch"), "Re: Lunch");
  EXPECT_EQ(reply_subject("Re[2]: Lunch"), "Re: Lunch");
  EXPECT_EQ(reply_subject("Re(3): Re: Lunch"), "Re: Lunch");
  EXPECT_EQ(reply_subject("Aw: Lunch"), "Re: Lunch");
  EXPECT_EQ(reply_subject("Re : Lunch"), "Re: Lunch");
  EXPECT_EQ(reply_subject("Re:Lunch"), "Re: Lunch");
  EXPECT_EQ(reply_subject("Fwd: Lunch"), "Re: Fwd: Lunch");
  EXPECT_EQ(reply_subject("Reply needed"), "Re: Reply needed");
  EXPECT_EQ(reply_subject("Re[x]: Lunch"), "Re: Re[x]: Lunch");
  EXPECT_EQ(reply_subject(""), "Re:");
  EXPECT_EQ(reply_subject("Re: "), "Re:");
  EXPECT_EQ(reply_subject("Lunch\r\nBcc: x@y.z"), "Re: Lunch Bcc: x@y.z");
}

TEST(MimeBuilder, ReplyReferencesAppendTheParentWithoutDuplicates) {
  ParsedMail parent;
  parent.message_id = "c@x";
  parent.references = {"a@x", "b@x"};
  EXPECT_EQ(reply_references(parent), (std::vector<std::string>{"a@x", "b@x", "c@x"}));

  parent.references = {"a@x", "c@x", "b@x", "a@x"};
  EXPECT_EQ(reply_references(parent), (std::vector<std::string>{"b@x", "a@x", "c@x"}));

  parent.references.clear();
  parent.in_reply_to = "p@x";
  EXPECT_EQ(reply_references(parent), (std::vector<std::string>{"p@x", "c@x"}));

  parent.references = {"bad id@x", "ok@x"};
  EXPECT_EQ(reply_references(parent), (std::vector<std::string>{"ok@x", "c@x"}));
}

TEST(MimeBuilder, LongReferenceChainsKeepTheRootAndTheRecentOnes) {
  ParsedMail parent;
  parent.message_id = "last@x";
  for (int i = 0; i < 50; ++i) parent.references.push_back("r" + std::to_string(i) + "@x");
  const auto references = reply_references(parent);
  ASSERT_EQ(references.size(), 20u);
  EXPECT_EQ(references.front(), "r0@x");
  EXPECT_EQ(references[1], "r32@x");
  EXPECT_EQ(references.back(), "last@x");
}

TEST(MimeBuilder, MessageIdsAreUniqueAndWellFormed) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(make_message_id("Example.ORG"));
  EXPECT_EQ(ids.size(), 1000u);
  for (const std::string& id : ids) {
    EXPECT_TRUE(id.starts_with("sb.")) << id;
    EXPECT_TRUE(id.ends_with("@example.org")) << id;
    EXPECT_EQ(id.find_first_of(" <>\r\n"), std::string::npos) << id;
  }
  EXPECT_TRUE(make_message_id("").ends_with("@switchboard.invalid"));
  EXPECT_TRUE(make_message_id("bad domain\r\n").ends_with("@switchboard.invalid"));
  OutgoingMail mail = reply();
  mail.message_id = make_message_id("example.org");
  EXPECT_EQ(error_of(mail), "ok");
}

}  // namespace
}  // namespace sb::email

#include "channels/email/smtp_protocol.h"

#include <gtest/gtest.h>

#include <cctype>
#include <limits>
#include <string>

namespace sb::email {
namespace {

template <class T>
const T& ok(const OrReply<T>& parsed) {
  if (auto* refusal = std::get_if<SmtpReply>(&parsed)) {
    ADD_FAILURE() << "refused: " << format_reply(*refusal);
    static const T empty{};
    return empty;
  }
  return std::get<T>(parsed);
}

template <class T>
SmtpReply refused(const OrReply<T>& parsed) {
  if (auto* refusal = std::get_if<SmtpReply>(&parsed)) return *refusal;
  ADD_FAILURE() << "accepted";
  return {};
}

// Feeds `input` to a fresh reader in one piece; the reader with what it consumed.
struct Fed {
  SmtpDataReader reader;
  std::size_t consumed = 0;
};
Fed feed(std::string_view input, std::size_t max_message = 1 << 20, std::size_t max_line = 1000) {
  Fed fed{SmtpDataReader(max_message, max_line)};
  fed.consumed = fed.reader.consume(input);
  return fed;
}

// --- replies and commands ---

TEST(SmtpReply, FormatsSingleAndMultiLineReplies) {
  EXPECT_EQ(format_reply({250, "2.1.0", "Ok"}), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(format_reply({250, "", "mx.example.org\nPIPELINING\nSIZE 10"}),
            "250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
}

TEST(SmtpReply, NeverLetsACarriageReturnSplitAReplyLine) {
  EXPECT_EQ(format_reply({550, "5.1.1", "a\rb"}), "550 5.1.1 a b\r\n");
}

TEST(SmtpCommand, MatchesVerbsCaseInsensitivelyAndKeepsTheArgument) {
  auto c = parse_command("mail FROM:<a@b.org> SIZE=10  ");
  EXPECT_EQ(c.verb, SmtpVerb::mail);
  EXPECT_EQ(c.argument, "FROM:<a@b.org> SIZE=10");
  EXPECT_EQ(parse_command("EhLo client.example").verb, SmtpVerb::ehlo);
  EXPECT_EQ(parse_command("EHLO client.example").argument, "client.example");
  EXPECT_EQ(parse_command("QUIT").verb, SmtpVerb::quit);
  EXPECT_EQ(parse_command("starttls").verb, SmtpVerb::starttls);
}

TEST(SmtpCommand, TellsUnknownVerbsAndOtherProtocolsApart) {
  EXPECT_EQ(parse_command("BDAT 10 LAST").verb, SmtpVerb::unknown);
  EXPECT_EQ(parse_command("MAILFROM:<a@b>").verb, SmtpVerb::unknown);
  EXPECT_EQ(parse_command("").verb, SmtpVerb::unknown);
  EXPECT_EQ(parse_command("GET / HTTP/1.1").verb, SmtpVerb::foreign);
  EXPECT_EQ(parse_command("CONNECT example.org:25 HTTP/1.1").verb, SmtpVerb::foreign);
}

// --- MAIL FROM and RCPT TO ---

TEST(SmtpMailFrom, ParsesAddressSizeAndBody) {
  auto m = ok(parse_mail_from("FROM:<alice@example.org> SIZE=12345 BODY=8BITMIME"));
  EXPECT_EQ(m.address, "alice@example.org");
  ASSERT_TRUE(m.size.has_value());
  EXPECT_EQ(*m.size, 12345u);
  EXPECT_TRUE(m.body_8bit);
  auto plain = ok(parse_mail_from("from:<alice@example.org> body=7bit"));
  EXPECT_FALSE(plain.body_8bit);
  EXPECT_FALSE(plain.size.has_value());
}

TEST(SmtpMailFrom, AcceptsTheNullSenderAndASpaceAfterTheColon) {
  EXPECT_EQ(ok(parse_mail_from("FROM:<>")).address, "");
  EXPECT_EQ(ok(parse_mail_from("FROM: <bob@example.org>")).address, "bob@example.org");
}

TEST(SmtpMailFrom, IgnoresASourceRoute) {
  EXPECT_EQ(ok(parse_mail_from("FROM:<@relay.example,@hop.example:bob@example.org>")).address,
            "bob@example.org");
  EXPECT_EQ(refused(parse_mail_from("FROM:<@relay.example bob@example.org>")).status, "5.1.7");
}

TEST(SmtpMailFrom, AcceptsQuotedLocalPartsWithSpecials) {
  EXPECT_EQ(ok(parse_mail_from(R"(FROM:<"odd >name"@example.org>)")).address,
            R"("odd >name"@example.org)");
}

TEST(SmtpMailFrom, RefusesMalformedArguments) {
  EXPECT_EQ(refused(parse_mail_from("TO:<a@example.org>")).code, 501);
  EXPECT_EQ(refused(parse_mail_from("FROM:a@example.org")).status, "5.5.4");
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@example.org")).status, "5.5.4");
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@example.org>SIZE=1")).code, 501);
}

TEST(SmtpMailFrom, RefusesBadAddressesWith5_1_7) {
  for (const char* arg : {"FROM:<no-at-sign>", "FROM:<a..b@example.org>", "FROM:<a@-bad.org>",
                          "FROM:<a b@example.org>", "FROM:<a@exa_mple.org>",
                          "FROM:<\xc3\xa9@example.org>", "FROM:<a@[300.1.1.1]>"}) {
    auto r = refused(parse_mail_from(arg));
    EXPECT_EQ(r.code, 501) << arg;
    EXPECT_EQ(r.status, "5.1.7") << arg;
  }
}

TEST(SmtpMailFrom, EnforcesRfc5321AddressLengths) {
  const std::string local64(64, 'a');
  EXPECT_EQ(ok(parse_mail_from("FROM:<" + local64 + "@example.org>")).address,
            local64 + "@example.org");
  EXPECT_EQ(refused(parse_mail_from("FROM:<" + local64 + "a@example.org>")).status, "5.1.7");
  std::string long_domain;
  for (int i = 0; i < 5; ++i) long_domain += std::string(60, 'd') + ".";
  long_domain += "org";  // 5 * 61 + 3 = 308 bytes
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@" + long_domain + ">")).status, "5.1.7");
}

TEST(SmtpMailFrom, RefusesUnknownRepeatedAndMalformedParametersWith555) {
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@example.org> AUTH=<>")).code, 555);
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@example.org> SIZE=1 SIZE=2")).code, 555);
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@example.org> SIZE=12x")).code, 555);
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@example.org> SIZE")).code, 555);
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@example.org> BODY=BINARYMIME")).code, 555);
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@example.org> SIZE=")).code, 501);
}

TEST(SmtpMailFrom, SaturatesAHugeSize) {
  auto m = ok(parse_mail_from("FROM:<a@example.org> SIZE=99999999999999999999"));
  EXPECT_EQ(*m.size, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(refused(parse_mail_from("FROM:<a@example.org> SIZE=999999999999999999999")).code, 555);
}

TEST(SmtpRcptTo, ParsesTheAddress) {
  EXPECT_EQ(ok(parse_rcpt_to("TO:<muse@example.org>")).address, "muse@example.org");
  EXPECT_EQ(ok(parse_rcpt_to("to: <muse@[127.0.0.1]>")).address, "muse@[127.0.0.1]");
  EXPECT_EQ(ok(parse_rcpt_to("TO:<m@[IPv6:::1]>")).address, "m@[IPv6:::1]");
  EXPECT_EQ(ok(parse_rcpt_to("TO:<Postmaster>")).address, "Postmaster");
}

TEST(SmtpRcptTo, RefusesTheNullPathBadAddressesAndParameters) {
  EXPECT_EQ(refused(parse_rcpt_to("TO:<>")).status, "5.1.3");
  EXPECT_EQ(refused(parse_rcpt_to("TO:<nobody>")).status, "5.1.3");
  EXPECT_EQ(refused(parse_rcpt_to("FROM:<a@example.org>")).status, "5.5.4");
  EXPECT_EQ(refused(parse_rcpt_to("TO:<a@example.org> NOTIFY=NEVER")).code, 555);
}

TEST(SmtpAddress, ValidatesDomainsAndLiterals) {
  EXPECT_TRUE(is_valid_domain("mx.example.org"));
  EXPECT_TRUE(is_valid_domain("localhost"));
  EXPECT_TRUE(is_valid_domain("[192.0.2.1]"));
  EXPECT_FALSE(is_valid_domain("a..b"));
  EXPECT_FALSE(is_valid_domain("-a.org"));
  EXPECT_FALSE(is_valid_domain("a-.org"));
  EXPECT_FALSE(is_valid_domain(std::string(64, 'a') + ".org"));
  EXPECT_FALSE(is_valid_domain("[not an ip]"));
  EXPECT_FALSE(is_valid_domain(""));
}

// Found by fuzzing (fuzz/corpus/smtp_fuzz/crash-nul-in-address-literal.txt): the literal was
// checked only up to its first NUL byte, so control bytes after it reached the Received:
// header.
TEST(SmtpAddress, AddressLiteralWithANulByteIsRefused) {
  using namespace std::string_literals;
  EXPECT_FALSE(is_valid_domain("[192.0.2.1\0\x03junk]"s));
  EXPECT_FALSE(is_valid_domain("[IPv6:::1\0]"s));
  EXPECT_FALSE(is_valid_mailbox("m@[192.0.2.1\0\x01]"s));
  EXPECT_EQ(refused(parse_rcpt_to("TO:<m@[192.0.2.1\0\x07]>"s)).status, "5.1.3");
  EXPECT_EQ(refused(parse_mail_from("FROM:<m@[192.0.2.1\0]>"s)).status, "5.1.7");
}

// --- recipients ---

TEST(SmtpRecipients, MatchIgnoringCaseAndPlusTags) {
  auto set = RecipientSet::make({"muse@example.org", "Ops@Example.org"});
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->match("muse@example.org"), "muse@example.org");
  EXPECT_EQ(set->match("MUSE@EXAMPLE.ORG"), "muse@example.org");
  EXPECT_EQ(set->match("Muse+News@example.org"), "muse@example.org");
  EXPECT_EQ(set->match("ops+a+b@example.org"), "ops@example.org");
  EXPECT_FALSE(set->match("other@example.org"));
  EXPECT_FALSE(set->match("muse@example.com"));
  EXPECT_FALSE(set->match("musex@example.org"));
  EXPECT_FALSE(set->match("+muse@example.org"));
  EXPECT_FALSE(set->match("muse@example.org+tag"));
}

TEST(SmtpRecipients, ConfiguredTaggedAddressMatchesExactly) {
  auto set = RecipientSet::make({"muse+inbox@example.org"});
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(set->match("muse+inbox@example.org"));
  EXPECT_FALSE(set->match("muse@example.org"));
}

TEST(SmtpRecipients, RefusesAnInvalidConfiguredAddress) {
  auto set = RecipientSet::make({"muse@example.org", "not an address"});
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.error().message.find("not an address"), std::string::npos);
}

// --- the DATA reader ---

TEST(SmtpDataReader, EndsAtCrLfDotCrLfAndLeavesWhatFollows) {
  const std::string input = "Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
  auto fed = feed(input);
  ASSERT_TRUE(fed.reader.done());
  EXPECT_EQ(fed.reader.problem(), SmtpDataReader::Problem::none);
  EXPECT_EQ(input.substr(fed.consumed), "QUIT\r\n");
  EXPECT_EQ(fed.reader.take_message(), "Subject: hi\r\n\r\nbody\r\n");
}

TEST(SmtpDataReader, AcceptsAnEmptyMessage) {
  auto fed = feed(".\r\n");
  ASSERT_TRUE(fed.reader.done());
  EXPECT_EQ(fed.consumed, 3u);
  EXPECT_EQ(fed.reader.take_message(), "");
}

TEST(SmtpDataReader, DotUnstuffsLines) {
  auto fed = feed("..leading dot\r\n...\r\n.x\r\nmid.dle\r\n.\r\n");
  ASSERT_TRUE(fed.reader.done());
  EXPECT_EQ(fed.reader.take_message(), ".leading dot\r\n..\r\nx\r\nmid.dle\r\n");
}

TEST(SmtpDataReader, GivesTheSameResultForEverySplitOfTheInput) {
  const std::string input = "A: b\r\n\r\n..one\r\ntwo\r\n\r\n.\r\nNOOP\r\n";
  const std::string expected = "A: b\r\n\r\n.one\r\ntwo\r\n\r\n";
  const std::size_t end = input.size() - 6;
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    for (std::size_t cut2 = cut; cut2 <= input.size(); ++cut2) {
      SmtpDataReader reader(1 << 20, 1000);
      std::size_t consumed = reader.consume(std::string_view(input).substr(0, cut));
      if (!reader.done())
        consumed += reader.consume(std::string_view(input).substr(cut, cut2 - cut));
      if (!reader.done()) consumed += reader.consume(std::string_view(input).substr(cut2));
      ASSERT_TRUE(reader.done()) << cut << "," << cut2;
      EXPECT_EQ(consumed, end) << cut << "," << cut2;
      EXPECT_EQ(reader.problem(), SmtpDataReader::Problem::none);
      EXPECT_EQ(reader.take_message(), expected) << cut << "," << cut2;
    }
  }
}

TEST(SmtpDataReader, WorksByteByByte) {
  const std::string input = "x\r\n..\r\n.\r\n";
  SmtpDataReader reader(1 << 20, 1000);
  for (char c : input) {
    ASSERT_FALSE(reader.done());
    EXPECT_EQ(reader.consume(std::string_view(&c, 1)), 1u);
  }
  ASSERT_TRUE(reader.done());
  EXPECT_EQ(reader.take_message(), "x\r\n.\r\n");
}

TEST(SmtpDataReader, TerminatorSplitAcrossReadsIsFound) {
  SmtpDataReader reader(1 << 20, 1000);
  EXPECT_EQ(reader.consume("body\r"), 5u);
  EXPECT_FALSE(reader.done());
  EXPECT_EQ(reader.consume("\n."), 2u);
  EXPECT_FALSE(reader.done());
  EXPECT_EQ(reader.consume("\r"), 1u);
  EXPECT_FALSE(reader.done());
  EXPECT_EQ(reader.consume("\nRSET\r\n"), 1u);
  ASSERT_TRUE(reader.done());
  EXPECT_EQ(reader.take_message(), "body\r\n");
}

TEST(SmtpDataReader, RejectsBareLfAsEndOfData) {
  const std::string input = "a\n.\nb\r\n.\r\nNOOP\r\n";
  auto fed = feed(input);
  ASSERT_TRUE(fed.reader.done());
  EXPECT_EQ(input.substr(fed.consumed), "NOOP\r\n");  // the real end, not the LF.LF
  EXPECT_EQ(fed.reader.problem(), SmtpDataReader::Problem::bare_line_feed);
  EXPECT_EQ(fed.reader.reply().code, 550);
  EXPECT_EQ(fed.reader.reply().status, "5.6.11");
}

TEST(SmtpDataReader, RefusesANulByteAndFindsTheRealEnd) {
  const std::string input = std::string("Subject: x\r\n\r\na\0b\r\n.\r\nNOOP\r\n", 28);
  auto fed = feed(input);
  ASSERT_TRUE(fed.reader.done());
  EXPECT_EQ(input.substr(fed.consumed), "NOOP\r\n");
  EXPECT_EQ(fed.reader.problem(), SmtpDataReader::Problem::nul_byte);
  EXPECT_EQ(fed.reader.reply().code, 550);
  EXPECT_EQ(fed.reader.reply().status, "5.6.0");
}

// Each smuggling vector of the 2023 SMTP smuggling research (SEC Consult): a fake end of
// data followed by a second message. None may end the data; each makes the message refused.
struct SmugglingVector {
  const char* name;
  const char* fake_end;
  SmtpDataReader::Problem problem;
};

class SmtpSmuggling : public ::testing::TestWithParam<SmugglingVector> {};

TEST_P(SmtpSmuggling, FakeEndOfDataNeitherEndsTheMessageNorGetsThrough) {
  const auto& v = GetParam();
  const std::string smuggled =
      std::string("Subject: first\r\n\r\nhello") + v.fake_end +
      "MAIL FROM:<evil@example.org>\r\nRCPT TO:<muse@example.org>\r\nDATA\r\n"
      "Subject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n";
  const std::size_t real_end = smuggled.size() - 6;
  // Whole, and cut at every position: the result never depends on how the bytes arrive.
  for (std::size_t cut = 0; cut <= smuggled.size(); ++cut) {
    SmtpDataReader reader(1 << 20, 1000);
    std::size_t consumed = reader.consume(std::string_view(smuggled).substr(0, cut));
    if (!reader.done()) consumed += reader.consume(std::string_view(smuggled).substr(cut));
    ASSERT_TRUE(reader.done()) << v.name << " cut " << cut;
    EXPECT_EQ(consumed, real_end) << v.name << " cut " << cut;
    EXPECT_EQ(reader.problem(), v.problem) << v.name << " cut " << cut;
    EXPECT_EQ(reader.reply().code, 550);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Vectors, SmtpSmuggling,
    ::testing::Values(
        SmugglingVector{"LF.LF", "\n.\n", SmtpDataReader::Problem::bare_line_feed},
        SmugglingVector{"LF.CRLF", "\n.\r\n", SmtpDataReader::Problem::bare_line_feed},
        SmugglingVector{"CRLF.LF", "\r\n.\n", SmtpDataReader::Problem::bare_line_feed},
        SmugglingVector{"CR.CR", "\r.\r", SmtpDataReader::Problem::bare_carriage_return},
        SmugglingVector{"CRLF.CR", "\r\n.\r", SmtpDataReader::Problem::bare_carriage_return},
        SmugglingVector{"CR.CRLF", "\r.\r\n", SmtpDataReader::Problem::bare_carriage_return},
        SmugglingVector{"CR.LF", "\r.\n", SmtpDataReader::Problem::bare_carriage_return},
        SmugglingVector{"LF.CR", "\n.\r", SmtpDataReader::Problem::bare_line_feed}),
    [](const auto& info) {
      std::string name;
      for (const char* p = info.param.name; *p; ++p) name += std::isalnum(*p) ? *p : '_';
      return name;
    });

TEST(SmtpDataReader, RefusesABareCrInsideALine) {
  auto fed = feed("a\rb\r\n.\r\n");
  ASSERT_TRUE(fed.reader.done());
  EXPECT_EQ(fed.reader.problem(), SmtpDataReader::Problem::bare_carriage_return);
}

TEST(SmtpDataReader, RefusesAMessageOverTheSizeLimitAtItsEnd) {
  const std::string line(98, 'x');
  std::string input;
  for (int i = 0; i < 11; ++i) input += line + "\r\n";  // 1100 bytes
  input += ".\r\n";
  auto fed = feed(input, 1000);
  ASSERT_TRUE(fed.reader.done());
  EXPECT_EQ(fed.consumed, input.size());
  EXPECT_EQ(fed.reader.problem(), SmtpDataReader::Problem::too_big);
  EXPECT_EQ(fed.reader.reply().code, 552);
  EXPECT_EQ(fed.reader.reply().status, "5.3.4");
}

TEST(SmtpDataReader, AcceptsAMessageOfExactlyTheLimit) {
  std::string input = std::string(998, 'x') + "\r\n";  // 1000 bytes
  auto fed = feed(input + ".\r\n", 1000);
  ASSERT_TRUE(fed.reader.done());
  EXPECT_EQ(fed.reader.problem(), SmtpDataReader::Problem::none);
  EXPECT_EQ(fed.reader.take_message(), input);
}

TEST(SmtpDataReader, LineLimitCountsTheCrLfButNotAStuffedDot) {
  auto at_limit = feed("." + std::string(998, '.') + "\r\n.\r\n");
  EXPECT_EQ(at_limit.reader.problem(), SmtpDataReader::Problem::none);
  auto over = feed(std::string(999, 'y') + "\r\n.\r\n");
  ASSERT_TRUE(over.reader.done());
  EXPECT_EQ(over.reader.problem(), SmtpDataReader::Problem::line_too_long);
  EXPECT_EQ(over.reader.reply().code, 552);
}

TEST(SmtpDataReader, KeepsReadingToTheEndAfterAProblemWithoutStoring) {
  SmtpDataReader reader(100, 1000);
  const std::string chunk = std::string(998, 'z') + "\r\n";
  for (int i = 0; i < 50; ++i) EXPECT_EQ(reader.consume(chunk), chunk.size());
  EXPECT_FALSE(reader.done());
  EXPECT_EQ(reader.size(), 50u * 1000u);
  EXPECT_EQ(reader.consume(".\r\n"), 3u);
  EXPECT_TRUE(reader.done());
  EXPECT_EQ(reader.problem(), SmtpDataReader::Problem::too_big);
}

TEST(SmtpDataReader, AbandonReleasesTheTextAndStillFindsTheEnd) {
  SmtpDataReader reader(1 << 20, 1000);
  EXPECT_EQ(reader.consume("a\r\nb\r\n"), 6u);
  reader.abandon();
  EXPECT_EQ(reader.consume("c\r\n.\r\nNOOP\r\n"), 6u);
  ASSERT_TRUE(reader.done());
  EXPECT_EQ(reader.problem(), SmtpDataReader::Problem::no_storage);
  EXPECT_EQ(reader.reply().code, 452);
  EXPECT_EQ(reader.reply().status, "4.3.1");
}

TEST(SmtpDataReader, KeepsEightBitBytes) {
  const std::string text = "Subject: caf\xc3\xa9\r\n\r\n\xe2\x82\xac 5\r\n";
  auto fed = feed(text + ".\r\n");
  ASSERT_TRUE(fed.reader.done());
  EXPECT_EQ(fed.reader.take_message(), text);
}

// --- Received: ---

TEST(SmtpReceived, WritesATraceHeaderWithOneRecipient) {
  ReceivedTrace t;
  t.helo = "client.example";
  t.client_address = "192.0.2.7";
  t.hostname = "mx.example.org";
  t.tls = true;
  t.id = "smtp-0123456789ab";
  t.recipients = {"muse@example.org"};
  t.time = std::chrono::system_clock::time_point(std::chrono::seconds(1795796460));
  EXPECT_EQ(received_header(t),
            "Received: from client.example ([192.0.2.7])\r\n"
            "\tby mx.example.org (switchboard) with ESMTPS id smtp-0123456789ab\r\n"
            "\tfor <muse@example.org>; Fri, 27 Nov 2026 16:21:00 +0000\r\n");
}

TEST(SmtpReceived, HidesRecipientsWhenThereAreSeveralAndReplacesABadHelo) {
  ReceivedTrace t;
  t.helo = "bad helo\r\nX-Injected: yes";
  t.client_address = "::1";
  t.hostname = "mx.example.org";
  t.esmtp = false;
  t.id = "smtp-1";
  t.recipients = {"a@example.org", "b@example.org"};
  t.time = std::chrono::system_clock::time_point(std::chrono::seconds(0));
  EXPECT_EQ(received_header(t),
            "Received: from unknown ([IPv6:::1])\r\n"
            "\tby mx.example.org (switchboard) with SMTP id smtp-1; Thu, 01 Jan 1970 00:00:00 "
            "+0000\r\n");
}

}  // namespace
}  // namespace sb::email

#include "channels/email/imap_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb::email {
namespace {

using namespace std::string_view_literals;

// Feeds `input` in pieces of `chunk` bytes (0: all at once) and returns every response, or
// the first error's message.
struct Parsed {
  std::vector<ImapResponse> responses;
  std::string error;
};
Parsed parse_all(std::string_view input, std::size_t chunk = 0, ImapLimits limits = {}) {
  ImapParser parser(limits);
  Parsed out;
  if (chunk == 0) chunk = input.size() + 1;
  for (std::size_t pos = 0; pos < input.size(); pos += chunk) {
    auto fed = parser.feed(input.substr(pos, chunk));
    if (!fed) {
      out.error = fed.error().message;
      return out;
    }
    while (auto r = parser.next()) out.responses.push_back(std::move(*r));
  }
  return out;
}

ImapResponse one(std::string_view input) {
  Parsed p = parse_all(input);
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.responses.size(), 1u) << input;
  return p.responses.empty() ? ImapResponse{} : std::move(p.responses.front());
}

std::string error_of(std::string_view input, ImapLimits limits = {}) {
  Parsed p = parse_all(input, 0, limits);
  EXPECT_NE(p.error, "") << "accepted: " << input;
  return p.error;
}

// --- status responses ---

TEST(ImapParser, ReadsDovecotsGreetingWithItsCapabilities) {
  auto r =
      one("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
          "AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.\r\n");
  EXPECT_EQ(r.kind, ImapResponse::Kind::untagged);
  EXPECT_EQ(r.status, ImapStatus::ok);
  EXPECT_EQ(r.code, "CAPABILITY");
  EXPECT_EQ(r.text, "Dovecot (Debian) ready.");
  auto caps = imap_capabilities(r);
  ASSERT_TRUE(caps.has_value());
  EXPECT_TRUE(caps->contains("IMAP4REV1"));
  EXPECT_TRUE(caps->contains("IDLE"));
  EXPECT_TRUE(caps->contains("AUTH=PLAIN"));
  EXPECT_TRUE(caps->contains("STARTTLS"));
  EXPECT_FALSE(caps->contains("LOGINDISABLED"));
}

TEST(ImapParser, ReadsTaggedAnswersWithCodesAndText) {
  auto no = one("A3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
  EXPECT_EQ(no.kind, ImapResponse::Kind::tagged);
  EXPECT_EQ(no.tag, "A3");
  EXPECT_EQ(no.status, ImapStatus::no);
  EXPECT_EQ(no.code, "AUTHENTICATIONFAILED");
  EXPECT_EQ(no.text, "Authentication failed.");

  auto ok = one("a7 ok [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n");
  EXPECT_EQ(ok.status, ImapStatus::ok);
  EXPECT_EQ(ok.code, "READ-WRITE");

  auto bad = one("A9 BAD Error in IMAP command UID: Invalid arguments.\r\n");
  EXPECT_EQ(bad.status, ImapStatus::bad);
  EXPECT_EQ(bad.code, "");

  auto bare = one("A10 OK\r\n");
  EXPECT_EQ(bare.status, ImapStatus::ok);
  EXPECT_EQ(bare.text, "");

  auto trycreate = one("A4 NO [TRYCREATE] Mailbox doesn't exist: Archive\r\n");
  EXPECT_EQ(trycreate.code, "TRYCREATE");
}

TEST(ImapParser, ReadsASelectAnswerAsDovecotSendsIt) {
  Parsed p = parse_all(
      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
      "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags "
      "permitted.\r\n"
      "* 3 EXISTS\r\n"
      "* 0 RECENT\r\n"
      "* OK [UNSEEN 2] First unseen.\r\n"
      "* OK [UIDVALIDITY 1712345678] UIDs valid\r\n"
      "* OK [UIDNEXT 4] Predicted next UID\r\n"
      "A2 OK [READ-WRITE] Select completed (0.002 + 0.000 + 0.001 secs).\r\n");
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.responses.size(), 8u);
  EXPECT_EQ(p.responses[0].name, "FLAGS");
  ASSERT_EQ(p.responses[0].values.size(), 1u);
  EXPECT_EQ(p.responses[0].values[0].items.size(), 5u);
  EXPECT_TRUE(p.responses[0].values[0].items[3].is_atom("\\seen"));
  EXPECT_EQ(p.responses[1].code, "PERMANENTFLAGS");
  EXPECT_EQ(p.responses[1].code_args, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)");
  EXPECT_EQ(p.responses[2].name, "EXISTS");
  EXPECT_EQ(p.responses[2].number, 3u);
  EXPECT_EQ(p.responses[3].name, "RECENT");
  EXPECT_EQ(p.responses[5].code, "UIDVALIDITY");
  EXPECT_EQ(p.responses[5].code_args, "1712345678");
  EXPECT_EQ(p.responses[6].code, "UIDNEXT");
  EXPECT_EQ(p.responses[6].code_args, "4");
  EXPECT_EQ(p.responses[7].tag, "A2");
}

TEST(ImapParser, ReadsByeAndContinuations) {
  auto bye = one("* BYE Server shutting down.\r\n");
  EXPECT_EQ(bye.status, ImapStatus::bye);
  EXPECT_EQ(bye.text, "Server shutting down.");
  auto idling = one("+ idling\r\n");
  EXPECT_EQ(idling.kind, ImapResponse::Kind::continuation);
  EXPECT_EQ(idling.text, "idling");
  auto empty = one("+\r\n");
  EXPECT_EQ(empty.kind, ImapResponse::Kind::continuation);
  EXPECT_EQ(one("+ \r\n").kind, ImapResponse::Kind::continuation);
  auto preauth = one("* PREAUTH [CAPABILITY IMAP4rev1] Logged in as alice\r\n");
  EXPECT_EQ(preauth.status, ImapStatus::preauth);
}

TEST(ImapParser, ServerTextIsMadePrintable) {
  auto r = one("* OK caf\xc3\xa9\x01 ready\r\n");
  EXPECT_EQ(r.text, "caf??? ready");
}

// --- FETCH and literals ---

constexpr std::string_view kFetch =
    "* 1 FETCH (UID 7 RFC822.SIZE 21 FLAGS (\\Recent) BODY[] {21}\r\n"
    "Subject: hi\r\n\r\nbody\r\n)\r\n"
    "A5 OK Fetch completed.\r\n";

TEST(ImapParser, ReadsAFetchWithItsBodyLiteral) {
  Parsed p = parse_all(kFetch);
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.responses.size(), 2u);
  auto fetch = imap_fetch(p.responses[0]);
  ASSERT_TRUE(fetch.ok()) << fetch.error().message;
  EXPECT_EQ(fetch->sequence, 1u);
  EXPECT_EQ(fetch->uid, 7u);
  EXPECT_EQ(fetch->size, 21u);
  ASSERT_TRUE(fetch->body.has_value());
  EXPECT_EQ(*fetch->body, "Subject: hi\r\n\r\nbody\r\n");
  ASSERT_EQ(fetch->flags.size(), 1u);
  EXPECT_EQ(fetch->flags[0], "\\Recent");
  EXPECT_EQ(p.responses[1].tag, "A5");
}

TEST(ImapParser, ResponsesSplitAtEveryByteBoundaryComeOutTheSame) {
  for (std::size_t split = 0; split <= kFetch.size(); ++split) {
    ImapParser parser;
    std::vector<ImapResponse> out;
    ASSERT_TRUE(parser.feed(kFetch.substr(0, split)).ok()) << split;
    while (auto r = parser.next()) out.push_back(std::move(*r));
    ASSERT_TRUE(parser.feed(kFetch.substr(split)).ok()) << split;
    while (auto r = parser.next()) out.push_back(std::move(*r));
    ASSERT_EQ(out.size(), 2u) << "split at " << split;
    auto fetch = imap_fetch(out[0]);
    ASSERT_TRUE(fetch.ok()) << split;
    EXPECT_EQ(*fetch->body, "Subject: hi\r\n\r\nbody\r\n") << split;
    EXPECT_EQ(out[1].tag, "A5") << split;
  }
  Parsed bytewise = parse_all(kFetch, 1);
  ASSERT_EQ(bytewise.error, "");
  ASSERT_EQ(bytewise.responses.size(), 2u);
  EXPECT_EQ(*imap_fetch(bytewise.responses[0])->body, "Subject: hi\r\n\r\nbody\r\n");
}

TEST(ImapParser, TellsHowMuchOfALiteralIsStillToCome) {
  ImapParser parser;
  ASSERT_TRUE(parser.feed("* 1 FETCH (BODY[] {10}\r\nabc").ok());
  EXPECT_EQ(parser.literal_remaining(), 7u);
  ASSERT_TRUE(parser.feed("defghij").ok());
  EXPECT_EQ(parser.literal_remaining(), 0u);
  EXPECT_FALSE(parser.next().has_value());
  ASSERT_TRUE(parser.feed(" UID 4)\r\n").ok());
  auto r = parser.next();
  ASSERT_TRUE(r.has_value());
  auto fetch = imap_fetch(*r);
  ASSERT_TRUE(fetch.ok());
  EXPECT_EQ(*fetch->body, "abcdefghij");
  EXPECT_EQ(fetch->uid, 4u);
}

TEST(ImapParser, ReadsGmailShapedFetchWithSeveralLiteralsAndExtensions) {
  Parsed p = parse_all(
      "* 12 FETCH (X-GM-THRID 1791234567890123456 X-GM-MSGID 1791234567890123457 "
      "X-GM-LABELS (\\Inbox \"\\\\Important\") UID 4711 "
      "BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: Re: x\r\n BODY[] {5}\r\nhello"
      " FLAGS ())\r\n");
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.responses.size(), 1u);
  auto& items = p.responses[0].values[0].items;
  ASSERT_EQ(items.size(), 14u);
  EXPECT_EQ(items[5].items[1].text, "\\Important");
  EXPECT_EQ(items[8].text, "BODY[HEADER.FIELDS (SUBJECT)]");
  EXPECT_EQ(items[9].text, "Subject: Re: x\r\n");
  auto fetch = imap_fetch(p.responses[0]);
  ASSERT_TRUE(fetch.ok()) << fetch.error().message;
  EXPECT_EQ(fetch->uid, 4711u);
  EXPECT_EQ(*fetch->body, "hello");
  EXPECT_TRUE(fetch->flags.empty());
}

TEST(ImapParser, ReadsLiteral8AndNonSynchronisingLiterals) {
  auto binary = one("* 2 FETCH (UID 9 BINARY[] ~{4}\r\n\x00\x01\x02\x03)\r\n"sv);
  auto fetch = imap_fetch(binary);
  ASSERT_TRUE(fetch.ok());
  EXPECT_EQ(*fetch->body, std::string("\x00\x01\x02\x03", 4));
  auto plus = one("* LIST () \"/\" {5+}\r\nIN BX\r\n");
  ASSERT_EQ(plus.values.size(), 3u);
  EXPECT_EQ(plus.values[2].text, "IN BX");
  auto empty = one("* 3 FETCH (UID 10 BODY[] {0}\r\n)\r\n");
  EXPECT_EQ(*imap_fetch(empty)->body, "");
}

TEST(ImapParser, ReadsQuotedStringsWithEscapesAndNil) {
  auto list = one("* LIST (\\HasNoChildren) \"/\" \"a \\\"quoted\\\" \\\\ name\"\r\n");
  ASSERT_EQ(list.values.size(), 3u);
  EXPECT_EQ(list.values[0].kind, ImapValue::Kind::list);
  EXPECT_EQ(list.values[1].text, "/");
  EXPECT_EQ(list.values[2].kind, ImapValue::Kind::string);
  EXPECT_EQ(list.values[2].text, "a \"quoted\" \\ name");
  auto nil = one("* 4 FETCH (UID 11 BODY[] NIL)\r\n");
  auto fetch = imap_fetch(nil);
  ASSERT_TRUE(fetch.ok());
  EXPECT_FALSE(fetch->body.has_value());
  auto root = one("* LIST (\\Noselect) NIL \"\"\r\n");
  EXPECT_EQ(root.values[1].kind, ImapValue::Kind::nil);
  EXPECT_EQ(root.values[2].text, "");
}

TEST(ImapParser, ReadsNestedLists) {
  auto r =
      one("* 5 FETCH (UID 3 BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL "
          "\"7bit\" 5 1 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL "
          "\"7bit\" 12 1 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"b1\") NIL NIL NIL))\r\n");
  auto& structure = r.values[0].items[3];
  ASSERT_EQ(structure.kind, ImapValue::Kind::list);
  ASSERT_EQ(structure.items.size(), 7u);
  EXPECT_EQ(structure.items[0].items[2].items[1].text, "utf-8");
  EXPECT_EQ(structure.items[2].text, "alternative");
}

TEST(ImapParser, ReadsSearchAndEsearchResults) {
  auto search = one("* SEARCH 2 5 9\r\n");
  EXPECT_EQ(search.numbers, (std::vector<std::uint32_t>{2, 5, 9}));
  EXPECT_TRUE(one("* SEARCH\r\n").numbers.empty());
  EXPECT_EQ(one("* SEARCH 4 7 (MODSEQ 917162500)\r\n").numbers, (std::vector<std::uint32_t>{4, 7}));
  auto esearch = one("* ESEARCH (TAG \"A5\") UID ALL 2,5:7,12\r\n");
  EXPECT_EQ(esearch.numbers, (std::vector<std::uint32_t>{2, 5, 6, 7, 12}));
  EXPECT_TRUE(one("* ESEARCH (TAG \"A6\") UID\r\n").numbers.empty());
  EXPECT_NE(error_of("* SEARCH 1 x 3\r\n"), "");
  EXPECT_NE(error_of("* SEARCH 99999999999\r\n"), "");
}

TEST(ImapParser, KeepsUnknownUntaggedResponsesWithoutFailing) {
  Parsed p = parse_all(
      "* XWEIRD ]]] (( \"unterminated\r\n"
      "* 5 XFOO bar\r\n"
      "* ID (\"name\" \"Dovecot\")\r\n"
      "* OK Still here\r\n"
      "* 7 EXISTS\r\n");
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.responses.size(), 5u);
  EXPECT_TRUE(p.responses[0].unknown);
  EXPECT_EQ(p.responses[0].name, "XWEIRD");
  EXPECT_TRUE(p.responses[1].unknown);
  EXPECT_EQ(p.responses[1].number, 5u);
  EXPECT_TRUE(p.responses[2].unknown);
  EXPECT_FALSE(p.responses[3].unknown);
  EXPECT_EQ(p.responses[4].name, "EXISTS");
  EXPECT_EQ(p.responses[4].number, 7u);
}

TEST(ImapParser, AcceptsBareLineFeedsAndSkipsEmptyLines) {
  Parsed p = parse_all("\r\n* 1 EXISTS\n\nA1 OK done\n");
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.responses.size(), 2u);
  EXPECT_EQ(p.responses[0].number, 1u);
  EXPECT_EQ(p.responses[1].text, "done");
}

TEST(ImapParser, TextEndingInBracesThatAreNoLiteralIsText) {
  auto r = one("* OK Hello {world}\r\n");
  EXPECT_EQ(r.text, "Hello {world}");
}

// --- malformed input ---

TEST(ImapParser, RejectsMalformedResponses) {
  EXPECT_NE(error_of("* 1 FETCH (UID 5 BODY[] \"unterminated)\r\n"), "");
  EXPECT_NE(error_of("* 1 FETCH (UID 5 BODY[] \"bad \\x escape\")\r\n"), "");
  EXPECT_NE(error_of("* 1 FETCH (UID 5\r\n"), "");
  EXPECT_NE(error_of("* 1 FETCH UID 5\r\n"), "");
  EXPECT_NE(error_of("* CAPABILITY IMAP4rev1 \"open\r\n"), "");
  EXPECT_NE(error_of("A1 MAYBE later\r\n"), "");
  EXPECT_NE(error_of("hello\r\n"), "");
  EXPECT_NE(error_of("*OK no space\r\n"), "");
  EXPECT_NE(error_of("* 99999999999 EXISTS\r\n"), "");
  EXPECT_NE(error_of("* 1 FETCH (BODY[] {5}\r\nabcde BODY[ x)\r\n"), "");
}

TEST(ImapParser, RejectsLiteralSizesItCannotOrWillNotTake) {
  EXPECT_NE(error_of("* 1 FETCH (BODY[] {99999999999999999999999}\r\n"), "");
  ImapLimits small;
  small.max_literal = 100;
  const std::string error = error_of("* 1 FETCH (BODY[] {101}\r\n", small);
  EXPECT_NE(error.find("101"), std::string::npos) << error;
  Parsed fits =
      parse_all("* 1 FETCH (BODY[] {100}\r\n" + std::string(100, 'x') + ")\r\n", 0, small);
  EXPECT_EQ(fits.error, "");
  EXPECT_EQ(fits.responses.size(), 1u);
}

TEST(ImapParser, RejectsALiteralThatIsNotWhereTheGrammarPutsIt) {
  // The line ends in "{3}" inside a quoted string: the literal's bytes cannot be placed.
  EXPECT_NE(error_of("* 1 FETCH (UID 5 BODY[] \"abc {3}\r\nxyz\")\r\n"), "");
}

TEST(ImapParser, BoundsLinesResponsesAndNesting) {
  ImapLimits limits;
  limits.max_line = 1000;
  limits.max_search_line = 5000;
  limits.max_literal = 2000;
  limits.max_response = 3000;
  limits.max_depth = 8;
  const std::string long_line = "* OK " + std::string(2000, 'a') + "\r\n";
  EXPECT_NE(error_of(long_line, limits).find("longer than 1000"), std::string::npos);
  // An overlong line fails before its end arrives: memory does not wait for a newline.
  ImapParser endless(limits);
  EXPECT_FALSE(endless.feed(std::string(1500, 'a')).ok());
  EXPECT_TRUE(endless.broken());
  EXPECT_FALSE(endless.feed("\r\n").ok());

  std::string search = "* SEARCH";
  for (int i = 1; i <= 500; ++i) search += " " + std::to_string(i);
  search += "\r\n";
  Parsed searched = parse_all(search, 0, limits);
  ASSERT_EQ(searched.error, "");
  EXPECT_EQ(searched.responses[0].numbers.size(), 500u);

  std::string many = "* 1 FETCH (A {1500}\r\n" + std::string(1500, 'x') + " B {1500}\r\n" +
                     std::string(1500, 'y') + ")\r\n";
  EXPECT_NE(error_of(many, limits).find("larger than 3000"), std::string::npos);

  std::string deep = "* 1 FETCH " + std::string(9, '(') + std::string(9, ')') + "\r\n";
  EXPECT_NE(error_of(deep, limits).find("nested"), std::string::npos);
  std::string fine = "* 1 FETCH " + std::string(8, '(') + std::string(8, ')') + "\r\n";
  EXPECT_EQ(parse_all(fine, 0, limits).error, "");
  // Deep nesting in an unknown response is not an error, but is not read either.
  std::string deep_unknown = "* XDEEP " + std::string(5000 / 2, '(') + "\r\n";
  Parsed unknown = parse_all(deep_unknown, 0, limits);
  EXPECT_NE(unknown.error, "");  // over max_line
  std::string deep_short = "* XDEEP " + std::string(100, '(') + "\r\n";
  Parsed short_unknown = parse_all(deep_short, 0, limits);
  ASSERT_EQ(short_unknown.error, "");
  EXPECT_TRUE(short_unknown.responses[0].unknown);
}

TEST(ImapFetch, RejectsUnreadableItems) {
  auto zero = one("* 1 FETCH (UID 0)\r\n");
  EXPECT_FALSE(imap_fetch(zero).ok());
  auto odd = one("* 1 FETCH (UID 5 FLAGS)\r\n");
  EXPECT_FALSE(imap_fetch(odd).ok());
  auto size = one("* 1 FETCH (RFC822.SIZE big)\r\n");
  EXPECT_FALSE(imap_fetch(size).ok());
  auto not_fetch = one("* 1 EXISTS\r\n");
  EXPECT_FALSE(imap_fetch(not_fetch).ok());
  auto flags_only = one("* 3 FETCH (FLAGS (\\Seen))\r\n");
  auto fetch = imap_fetch(flags_only);
  ASSERT_TRUE(fetch.ok());
  EXPECT_FALSE(fetch->uid.has_value());
  EXPECT_FALSE(fetch->body.has_value());
}

// --- commands ---

TEST(ImapCommandBuilder, QuotesOrSendsLiteralsSoUserDataCannotBreakOut) {
  auto atom = ImapCommandBuilder("A1", "LOGIN", false)
                  .string("alice@example.com")
                  .string("pass word")
                  .finish();
  EXPECT_EQ(atom.tag, "A1");
  ASSERT_EQ(atom.pieces.size(), 1u);
  EXPECT_EQ(atom.pieces[0], "A1 LOGIN alice@example.com \"pass word\"\r\n");

  auto literal =
      ImapCommandBuilder("A2", "LOGIN", false).string("bob").string("p\"ss\\w\xc3\xb6rd").finish();
  ASSERT_EQ(literal.pieces.size(), 2u);
  EXPECT_EQ(literal.pieces[0], "A2 LOGIN bob {10}\r\n");
  EXPECT_EQ(literal.pieces[1], "p\"ss\\w\xc3\xb6rd\r\n");

  auto injection =
      ImapCommandBuilder("A3", "SELECT", false).string("INBOX\r\nA4 DELETE INBOX").finish();
  ASSERT_EQ(injection.pieces.size(), 2u);
  EXPECT_EQ(injection.pieces[0], "A3 SELECT {22}\r\n");

  auto plus = ImapCommandBuilder("A5", "LOGIN", true).string("bob").string("a\"b").finish();
  ASSERT_EQ(plus.pieces.size(), 1u);
  EXPECT_EQ(plus.pieces[0], "A5 LOGIN bob {3+}\r\na\"b\r\n");

  auto empty = ImapCommandBuilder("A6", "LOGIN", false).string("").string("x").finish();
  EXPECT_EQ(empty.pieces[0], "A6 LOGIN \"\" x\r\n");

  auto special = ImapCommandBuilder("A7", "SELECT", false).string("Lists/a*b").finish();
  EXPECT_EQ(special.pieces[0], "A7 SELECT \"Lists/a*b\"\r\n");

  auto raw = ImapCommandBuilder("A8", "UID STORE", false).raw("5").raw("+FLAGS.SILENT (\\Seen)");
  EXPECT_EQ(raw.finish().pieces[0], "A8 UID STORE 5 +FLAGS.SILENT (\\Seen)\r\n");
}

TEST(ImapTags, AreDistinctAndIncreasing) {
  ImapTags tags;
  EXPECT_EQ(tags.next(), "A1");
  EXPECT_EQ(tags.next(), "A2");
}

TEST(ImapSequenceSet, CompressesRuns) {
  EXPECT_EQ(imap_sequence_set({1, 2, 3, 5, 7, 8}), "1:3,5,7:8");
  EXPECT_EQ(imap_sequence_set({42}), "42");
  EXPECT_EQ(imap_sequence_set({}), "");
  EXPECT_EQ(imap_sequence_set({4294967294u, 4294967295u}), "4294967294:4294967295");
}

TEST(ImapCapabilities, ComeFromTheUntaggedResponseOrAResponseCode) {
  auto untagged = one("* CAPABILITY IMAP4rev1 idle Literal+ AUTH=PLAIN\r\n");
  auto caps = imap_capabilities(untagged);
  ASSERT_TRUE(caps.has_value());
  EXPECT_EQ(*caps, (ImapCapabilities{"IMAP4REV1", "IDLE", "LITERAL+", "AUTH=PLAIN"}));
  auto login = one("A2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n");
  EXPECT_EQ(*imap_capabilities(login), (ImapCapabilities{"IMAP4REV1", "IDLE"}));
  EXPECT_FALSE(imap_capabilities(one("A3 OK done\r\n")).has_value());
}

}  // namespace
}  // namespace sb::email

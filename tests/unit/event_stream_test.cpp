#include "channels/email/event_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb::email {
namespace {

struct Collected {
  std::vector<ServerSentEvent> events;
  bool ok = true;
  std::string error;
};

// Feeds `stream` in the given pieces and collects the events.
Collected parse(const std::vector<std::string>& pieces, EventStreamParser::Limits limits = {}) {
  EventStreamParser parser(limits);
  Collected out;
  for (const auto& piece : pieces) {
    auto fed = parser.feed(piece, [&](const ServerSentEvent& e) { out.events.push_back(e); });
    if (!fed) {
      out.ok = false;
      out.error = fed.error().message;
      break;
    }
  }
  return out;
}

// A JMAP-shaped stream with every kind of line end, a comment, a ping, ids and a retry.
const std::string kStream =
    "\xEF\xBB\xBF: a comment\r\n"
    "event: state\r\n"
    "id: 1\r\n"
    "data: {\"@type\":\"StateChange\",\r\n"
    "data:\"changed\":{}}\r\n"
    "\r\n"
    "event: ping\n"
    "data: {\"interval\":30}\n"
    "\n"
    "retry: 5000\r"
    "id: 2\r"
    "data:x\r"
    "\r";

void expect_the_stream(const Collected& got, const std::string& where) {
  ASSERT_TRUE(got.ok) << where << ": " << got.error;
  ASSERT_EQ(got.events.size(), 3u) << where;
  EXPECT_EQ(got.events[0].type, "state") << where;
  EXPECT_EQ(got.events[0].data, "{\"@type\":\"StateChange\",\n\"changed\":{}}") << where;
  EXPECT_EQ(got.events[0].id, "1") << where;
  EXPECT_EQ(got.events[1].type, "ping") << where;
  EXPECT_EQ(got.events[1].data, "{\"interval\":30}") << where;
  EXPECT_EQ(got.events[1].id, "1") << where;  // the id persists
  EXPECT_EQ(got.events[2].type, "message") << where;
  EXPECT_EQ(got.events[2].data, "x") << where;
  EXPECT_EQ(got.events[2].id, "2") << where;
}

TEST(EventStream, ParsesAStreamFedWhole) { expect_the_stream(parse({kStream}), "whole"); }

TEST(EventStream, ParsesTheSameEventsAtEverySplitPoint) {
  for (std::size_t split = 0; split <= kStream.size(); ++split) {
    expect_the_stream(parse({kStream.substr(0, split), kStream.substr(split)}),
                      "split at " + std::to_string(split));
  }
}

TEST(EventStream, ParsesTheSameEventsFedByteByByte) {
  std::vector<std::string> bytes;
  for (char c : kStream) bytes.emplace_back(1, c);
  expect_the_stream(parse(bytes), "byte by byte");
}

TEST(EventStream, ParsesEveryPairOfSplitPoints) {
  for (std::size_t a = 0; a <= kStream.size(); ++a) {
    for (std::size_t b = a; b <= kStream.size(); b += 3) {
      expect_the_stream(parse({kStream.substr(0, a), kStream.substr(a, b - a), kStream.substr(b)}),
                        "splits at " + std::to_string(a) + " and " + std::to_string(b));
    }
  }
}

TEST(EventStream, CrAtTheEndOfAChunkAndLfAtTheStartOfTheNextAreOneLineEnd) {
  // Were the LF a second line end, the empty line would dispatch "a" alone, twice.
  auto got = parse({"data: a\r", "\ndata: b\r", "\n\r", "\n"});
  ASSERT_TRUE(got.ok);
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_EQ(got.events[0].data, "a\nb");
}

TEST(EventStream, RemembersTheLastEventIdAndTheRetryTime) {
  EventStreamParser parser;
  int events = 0;
  ASSERT_TRUE(parser.feed("id: 7\nretry: 2500\ndata: a\n\n", [&](const auto&) { ++events; }));
  EXPECT_EQ(events, 1);
  EXPECT_EQ(parser.last_event_id(), "7");
  ASSERT_TRUE(parser.retry());
  EXPECT_EQ(parser.retry()->count(), 2500);
  // An id without data still moves the last event id on, at the blank line.
  ASSERT_TRUE(parser.feed("id: 8\n", [&](const auto&) { ++events; }));
  EXPECT_EQ(parser.last_event_id(), "7");
  ASSERT_TRUE(parser.feed("\n", [&](const auto&) { ++events; }));
  EXPECT_EQ(parser.last_event_id(), "8");
  EXPECT_EQ(events, 1);
}

TEST(EventStream, IgnoresARetryThatIsNotDigitsAndUnknownFields) {
  EventStreamParser parser;
  std::vector<ServerSentEvent> events;
  ASSERT_TRUE(parser.feed("retry: 1s\nfoo: bar\nevent\ndata\n\n",
                          [&](const auto& e) { events.push_back(e); }));
  EXPECT_FALSE(parser.retry());
  ASSERT_EQ(events.size(), 1u);
  // "event" without a colon sets an empty type (so "message"); "data" adds an empty line.
  EXPECT_EQ(events[0].type, "message");
  EXPECT_EQ(events[0].data, "");
}

TEST(EventStream, AnEventWithoutDataIsNotDispatchedAndItsTypeIsForgotten) {
  auto got = parse({"event: state\n\ndata: x\n\n"});
  ASSERT_TRUE(got.ok);
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_EQ(got.events[0].type, "message");
}

TEST(EventStream, KeepsOnlyOneLeadingSpaceOfAValue) {
  auto got = parse({"data:  two spaces\n\n"});
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_EQ(got.events[0].data, " two spaces");
}

TEST(EventStream, ABomIsSkippedOnlyAtTheStart) {
  auto got = parse({"\xEF\xBB",
                    "\xBF"
                    "data: a\n\ndata: \xEF\xBB\xBF"
                    "b\n\n"});
  ASSERT_TRUE(got.ok);
  ASSERT_EQ(got.events.size(), 2u);
  EXPECT_EQ(got.events[0].data, "a");
  EXPECT_EQ(got.events[1].data,
            "\xEF\xBB\xBF"
            "b");
}

TEST(EventStream, ALineOverTheBoundIsAnErrorEvenWithoutALineEnd) {
  EventStreamParser::Limits limits;
  limits.max_line_bytes = 100;
  auto got = parse({": " + std::string(60, 'x'), std::string(60, 'x')}, limits);
  EXPECT_FALSE(got.ok);
  EXPECT_NE(got.error.find("longer than 100"), std::string::npos) << got.error;
}

TEST(EventStream, AnEventOverTheDataBoundIsAnErrorAndTheParserStaysFailed) {
  EventStreamParser::Limits limits;
  limits.max_data_bytes = 50;
  EventStreamParser parser(limits);
  int events = 0;
  std::string many;
  for (int i = 0; i < 10; ++i) many += "data: 0123456789\n";
  auto fed = parser.feed(many, [&](const auto&) { ++events; });
  EXPECT_FALSE(fed);
  EXPECT_FALSE(parser.feed("\n", [&](const auto&) { ++events; }));
  EXPECT_EQ(events, 0);
}

}  // namespace
}  // namespace sb::email

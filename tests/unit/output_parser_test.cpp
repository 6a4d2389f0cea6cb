#include "sandbox/output_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb::sandbox {
namespace {

const std::string kStart = std::string(kOutputStartMarker) + "\n";
const std::string kEnd = std::string(kOutputEndMarker) + "\n";

std::string framed(const std::string& json) { return kStart + json + "\n" + kEnd; }

// Everything the parser hands out for `chunks` fed in order, then finish().
OutputParser::Output parse_all(const std::vector<std::string>& chunks,
                               OutputParser::Limits limits = {}) {
  OutputParser parser(limits);
  OutputParser::Output all;
  auto take = [&all](OutputParser::Output out) {
    for (auto& r : out.results) all.results.push_back(std::move(r));
    for (auto& n : out.noise) all.noise.push_back(std::move(n));
  };
  for (const auto& chunk : chunks) take(parser.feed(chunk));
  take(parser.finish());
  return all;
}

std::string error_of(const AgentResult& r) { return r.error.value_or("(none)"); }

TEST(OutputParser, FindsTwoResultsWhereverTheStreamIsSplit) {
  const std::string stream =
      "starting up\n" + framed(R"({"status":"success","result":"first","newSessionId":"s-1"})") +
      "thinking…\n" +
      framed(R"({"status":"error","result":null,"newSessionId":"s-1","error":"boom"})");
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    const auto out = parse_all({stream.substr(0, split), stream.substr(split)});
    ASSERT_EQ(out.results.size(), 2u);
    EXPECT_EQ(out.results[0].status, AgentResult::Status::success);
    EXPECT_EQ(out.results[0].result, "first");
    EXPECT_EQ(out.results[0].new_session_id, "s-1");
    EXPECT_EQ(out.results[1].status, AgentResult::Status::error);
    EXPECT_FALSE(out.results[1].result.has_value());
    EXPECT_EQ(out.results[1].error, "boom");
    EXPECT_EQ(out.noise, (std::vector<std::string>{"starting up", "thinking…"}));
  }
}

TEST(OutputParser, FindsResultsFedOneByteAtATime) {
  const std::string stream = framed(R"({"status":"success","result":"a"})") +
                             framed(R"({"status":"success","result":"b"})");
  std::vector<std::string> bytes;
  for (char c : stream) bytes.emplace_back(1, c);
  const auto out = parse_all(bytes);
  ASSERT_EQ(out.results.size(), 2u);
  EXPECT_EQ(out.results[0].result, "a");
  EXPECT_EQ(out.results[1].result, "b");
  EXPECT_TRUE(out.noise.empty());
}

TEST(OutputParser, ReturnsEachResultFromTheFeedThatCompletesIt) {
  OutputParser parser;
  EXPECT_TRUE(parser.feed(kStart + R"({"status":"success","result":"x"})" + "\n").results.empty());
  const auto out = parser.feed(std::string(kOutputEndMarker).substr(0, 5));
  EXPECT_TRUE(out.results.empty());
  EXPECT_EQ(parser.feed(std::string(kOutputEndMarker).substr(5) + "\n").results.size(), 1u);
}

TEST(OutputParser, ToleratesCrlfLineEndings) {
  const auto out = parse_all({"noise\r\n" + std::string(kOutputStartMarker) +
                              "\r\n{\"status\":\"success\",\"result\":\"ok\"}\r\n" +
                              std::string(kOutputEndMarker) + "\r\n"});
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].status, AgentResult::Status::success);
  EXPECT_EQ(out.results[0].result, "ok");
  EXPECT_EQ(out.noise, std::vector<std::string>{"noise"});
}

TEST(OutputParser, CountsAMarkerOnlyAsAWholeLine) {
  const auto out =
      parse_all({"say " + std::string(kOutputStartMarker) + "\n" + " " +
                 std::string(kOutputStartMarker) + "\n" + R"({"status":"success"})" + "\n"});
  EXPECT_TRUE(out.results.empty());
  EXPECT_EQ(out.noise.size(), 3u);
}

TEST(OutputParser, CutsLongNoiseLinesToTheLimit) {
  OutputParser::Limits limits;
  limits.max_noise_line_bytes = 40;
  const auto out = parse_all({std::string(100000, 'n') + "\nshort\n"}, limits);
  ASSERT_EQ(out.noise.size(), 2u);
  EXPECT_EQ(out.noise[0], std::string(40, 'n') + " …[truncated]");
  EXPECT_EQ(out.noise[1], "short");
}

TEST(OutputParser, StillSeesMarkersWhenTheNoiseLimitIsTiny) {
  OutputParser::Limits limits;
  limits.max_noise_line_bytes = 3;
  const auto out = parse_all({framed(R"({"status":"success","result":"r"})")}, limits);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result, "r");
}

TEST(OutputParser, TurnsMalformedJsonIntoAnErrorResultAndGoesOn) {
  const auto out = parse_all({framed(R"({"status":"success","result":)") +
                              framed(R"({"status":"success","result":"next"})")});
  ASSERT_EQ(out.results.size(), 2u);
  EXPECT_EQ(out.results[0].status, AgentResult::Status::error);
  EXPECT_NE(error_of(out.results[0]).find("malformed JSON"), std::string::npos)
      << error_of(out.results[0]);
  EXPECT_EQ(out.results[1].result, "next");
}

TEST(OutputParser, RejectsJsonThatIsNotAResultObject) {
  const auto out =
      parse_all({framed("[1,2]") + framed(R"({"result":"no status"})") +
                 framed(R"({"status":"done"})") + framed(R"({"status":"success","result":42})") +
                 framed(R"({"status":"success","newSessionId":7})")});
  ASSERT_EQ(out.results.size(), 5u);
  for (const auto& r : out.results) EXPECT_EQ(r.status, AgentResult::Status::error);
  EXPECT_NE(error_of(out.results[0]).find("not an object"), std::string::npos);
  EXPECT_NE(error_of(out.results[1]).find("status"), std::string::npos);
  EXPECT_NE(error_of(out.results[2]).find("status"), std::string::npos);
  EXPECT_NE(error_of(out.results[3]).find("\"result\""), std::string::npos);
  EXPECT_NE(error_of(out.results[4]).find("\"newSessionId\""), std::string::npos);
}

TEST(OutputParser, RejectsAResultLongerThanTheCapAndKeepsTheNextOne) {
  OutputParser::Limits limits;
  limits.max_result_bytes = 100;
  const std::string big = R"({"status":"success","result":")" + std::string(5000, 'y') + "\"}";
  const auto out =
      parse_all({framed(big) + framed(R"({"status":"success","result":"small"})")}, limits);
  ASSERT_EQ(out.results.size(), 2u);
  EXPECT_EQ(out.results[0].status, AgentResult::Status::error);
  EXPECT_NE(error_of(out.results[0]).find("exceeded 100 bytes"), std::string::npos);
  EXPECT_EQ(out.results[1].result, "small");
}

TEST(OutputParser, AppliesTheCapToJsonSpreadOverManyLines) {
  OutputParser::Limits limits;
  limits.max_result_bytes = 100;
  std::string lines;
  for (int i = 0; i < 50; ++i) lines += "\"abcdefgh\",\n";
  const auto out = parse_all({kStart + "[" + lines + "1]\n" + kEnd}, limits);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_NE(error_of(out.results[0]).find("exceeded"), std::string::npos);
}

TEST(OutputParser, JoinsPrettyPrintedJson) {
  const auto out =
      parse_all({kStart + "{\n  \"status\": \"success\",\n  \"result\": \"pretty\"\n}\n" + kEnd});
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result, "pretty");
}

TEST(OutputParser, KeepsANullResultAsNoResult) {
  const auto out = parse_all({framed(R"({"status":"success","result":null,"newSessionId":"s"})")});
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].status, AgentResult::Status::success);
  EXPECT_FALSE(out.results[0].result.has_value());
  EXPECT_FALSE(out.results[0].error.has_value());
  EXPECT_EQ(out.results[0].new_session_id, "s");
}

TEST(OutputParser, FinishReportsAResultWithoutEndMarker) {
  OutputParser parser;
  EXPECT_TRUE(
      parser.feed(kStart + R"({"status":"success","result":"cut"})" + "\n").results.empty());
  const auto out = parser.finish();
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].status, AgentResult::Status::error);
  EXPECT_NE(error_of(out.results[0]).find(std::string(kOutputEndMarker)), std::string::npos);
  EXPECT_TRUE(parser.finish().results.empty());  // reset
}

TEST(OutputParser, FinishCompletesAnEndMarkerWithoutNewline) {
  OutputParser parser;
  (void)parser.feed(kStart + R"({"status":"success","result":"last"})" + "\n" +
                    std::string(kOutputEndMarker));
  const auto out = parser.finish();
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result, "last");
}

TEST(OutputParser, FinishHandsOutAnUnterminatedNoiseLine) {
  OutputParser parser;
  EXPECT_TRUE(parser.feed("partial").noise.empty());
  EXPECT_EQ(parser.finish().noise, std::vector<std::string>{"partial"});
}

TEST(OutputParser, ReportsAResultLostToANewStartMarker) {
  const auto out = parse_all({kStart + R"({"status":"success","result":"lost"})" + "\n" +
                              framed(R"({"status":"success","result":"kept"})")});
  ASSERT_EQ(out.results.size(), 2u);
  EXPECT_EQ(out.results[0].status, AgentResult::Status::error);
  EXPECT_EQ(out.results[1].result, "kept");
}

}  // namespace
}  // namespace sb::sandbox

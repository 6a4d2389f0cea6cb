#include "mcp/mcp_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <sstream>

#include "support/temp_dir.h"

namespace sb::mcp {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using ::testing::HasSubstr;

std::size_t files_in(const fs::path& dir) {
  if (!fs::exists(dir)) return 0;
  std::size_t count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().front() != '.') ++count;
  }
  return count;
}

class Mcp : public ::testing::Test {
 protected:
  Mcp() : server(context(), "9.9.9") {}

  agent::ToolContext context() const {
    agent::ToolContext c;
    c.ipc_dir = temp.path();
    c.snapshot_dir = temp.path() / "snapshots";
    c.group_folder = "family";
    c.chat_jid = "http:alice";
    return c;
  }

  // Sends one request object and returns the parsed answer; fails if there is none.
  json::object ask(const json::object& request) {
    auto answer = server.handle_line(json::serialize(request));
    EXPECT_TRUE(answer.has_value()) << json::serialize(request);
    if (!answer) return {};
    EXPECT_EQ(answer->find('\n'), std::string::npos);
    json::object parsed = json::parse(*answer).as_object();
    EXPECT_EQ(parsed.at("jsonrpc"), "2.0");
    return parsed;
  }

  json::object call(std::string_view method, json::object params, json::value id = 1) {
    return ask({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
  }

  // The error code of the answer to `line`.
  std::int64_t error_code(std::string_view line) {
    auto answer = server.handle_line(line);
    EXPECT_TRUE(answer.has_value()) << line;
    if (!answer) return 0;
    json::value parsed = json::parse(*answer);
    EXPECT_FALSE(parsed.as_object().contains("result")) << *answer;
    return parsed.at("error").at("code").as_int64();
  }

  test::TempDir temp;
  McpServer server;
};

TEST_F(Mcp, InitializeAnswersWithTheClientsSupportedVersionAndServerInfo) {
  json::object answer = call("initialize", {{"protocolVersion", "2025-03-26"},
                                            {"capabilities", json::object{}},
                                            {"clientInfo", {{"name", "test"}, {"version", "1"}}}});
  EXPECT_EQ(answer.at("id"), 1);
  const json::object& result = answer.at("result").as_object();
  EXPECT_EQ(result.at("protocolVersion"), "2025-03-26");
  EXPECT_TRUE(result.at("capabilities").at("tools").is_object());
  EXPECT_EQ(result.at("serverInfo").at("name"), "switchboard");
  EXPECT_EQ(result.at("serverInfo").at("version"), "9.9.9");
}

TEST_F(Mcp, InitializeWithAnUnknownVersionAnswersTheLatestSupported) {
  json::object answer = call("initialize", {{"protocolVersion", "2023-01-01"}});
  EXPECT_EQ(answer.at("result").at("protocolVersion"), "2025-06-18");
  EXPECT_EQ(
      call("initialize", {{"protocolVersion", "2024-11-05"}}).at("result").at("protocolVersion"),
      "2024-11-05");
}

TEST_F(Mcp, InitializeWithoutProtocolVersionIsInvalidParams) {
  EXPECT_EQ(call("initialize", json::object{}).at("error").at("code"), -32602);
}

TEST_F(Mcp, InitializedNotificationIsNotAnswered) {
  EXPECT_FALSE(server.handle_line(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
}

TEST_F(Mcp, NotificationsAreNeverAnsweredEvenWhenUnknownOrMalformed) {
  EXPECT_FALSE(server.handle_line(R"({"jsonrpc":"2.0","method":"notifications/cancelled",
                                      "params":{"requestId":3}})"));
  EXPECT_FALSE(server.handle_line(R"({"jsonrpc":"2.0","method":"no/such/thing"})"));
  EXPECT_FALSE(server.handle_line(R"({"jsonrpc":"2.0","method":"tools/call","params":7})"));
  EXPECT_FALSE(server.handle_line(R"({"jsonrpc":"1.0","method":"ping"})"));
}

TEST_F(Mcp, ResponsesFromTheClientAndBlankLinesAreNotAnswered) {
  EXPECT_FALSE(server.handle_line(R"({"jsonrpc":"2.0","id":5,"result":{}})"));
  EXPECT_FALSE(server.handle_line(""));
  EXPECT_FALSE(server.handle_line("  \r"));
}

TEST_F(Mcp, PingAnswersAnEmptyResultWithTheSameId) {
  json::object answer = call("ping", json::object{}, "abc-1");
  EXPECT_EQ(answer.at("id"), "abc-1");
  EXPECT_EQ(answer.at("result"), json::object{});
  auto without_params = server.handle_line(R"({"jsonrpc":"2.0","id":2,"method":"ping"})"
                                           "\r");
  ASSERT_TRUE(without_params);
  EXPECT_EQ(json::parse(*without_params).at("id"), 2);
}

TEST_F(Mcp, ToolsListGivesEachHostToolWithItsSchema) {
  json::object answer = call("tools/list", json::object{});
  const json::array& tools = answer.at("result").at("tools").as_array();
  std::vector<std::string> names;
  for (const json::value& tool : tools) {
    names.emplace_back(tool.at("name").as_string());
    EXPECT_FALSE(tool.at("description").as_string().empty());
    EXPECT_EQ(tool.at("inputSchema").at("type"), "object");
  }
  EXPECT_EQ(names, (std::vector<std::string>{"send_message", "schedule_task", "list_tasks",
                                             "pause_task", "resume_task", "cancel_task"}));
  const json::value& schedule = tools[1].at("inputSchema");
  EXPECT_EQ(schedule.at("properties").at("schedule_type").at("enum"),
            json::parse(R"(["cron","interval","once"])"));
  EXPECT_EQ(schedule.at("required"), json::parse(R"(["prompt","schedule_type","schedule_value"])"));
}

TEST_F(Mcp, MainGroupServerListsRegisterGroup) {
  agent::ToolContext main = context();
  main.is_main = true;
  McpServer main_server(main, "1");
  auto answer = main_server.handle_line(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  ASSERT_TRUE(answer);
  EXPECT_THAT(*answer, HasSubstr("\"register_group\""));
}

TEST_F(Mcp, ToolsCallRunsTheToolAndWritesTheRequest) {
  json::object answer =
      call("tools/call", {{"name", "send_message"}, {"arguments", {{"text", "hello"}}}});
  const json::object& result = answer.at("result").as_object();
  EXPECT_EQ(result.at("isError"), false);
  const json::value& content = result.at("content").at(0);
  EXPECT_EQ(content.at("type"), "text");
  EXPECT_THAT(std::string(content.at("text").as_string()),
              HasSubstr("Message queued for http:alice"));
  EXPECT_EQ(files_in(temp.path() / "messages"), 1u);
}

TEST_F(Mcp, AFailingToolAnswersAResultWithIsError) {
  json::object answer =
      call("tools/call",
           {{"name", "schedule_task"},
            {"arguments",
             {{"prompt", "p"}, {"schedule_type", "cron"}, {"schedule_value", "61 * * * *"}}}});
  const json::object& result = answer.at("result").as_object();
  EXPECT_EQ(result.at("isError"), true);
  EXPECT_THAT(std::string(result.at("content").at(0).at("text").as_string()),
              HasSubstr("cron field 1 (minute)"));
  EXPECT_EQ(files_in(temp.path() / "tasks"), 0u);
}

TEST_F(Mcp, ListTasksCallsWorkWithoutArguments) {
  json::object answer = call("tools/call", {{"name", "list_tasks"}});
  EXPECT_EQ(answer.at("result").at("isError"), false);
}

TEST_F(Mcp, UnknownToolIsInvalidParams) {
  json::object answer =
      call("tools/call", {{"name", "register_group"}, {"arguments", json::object{}}});
  EXPECT_EQ(answer.at("error").at("code"), -32602);
  EXPECT_THAT(std::string(answer.at("error").at("message").as_string()),
              HasSubstr("main group only"));
}

TEST_F(Mcp, ArgumentsThatDoNotMatchTheSchemaAreInvalidParams) {
  for (const json::object& params :
       {json::object{{"name", "send_message"}, {"arguments", json::object{}}},
        json::object{{"name", "send_message"}, {"arguments", {{"text", 1}}}},
        json::object{{"name", "send_message"}, {"arguments", {{"text", "x"}, {"to", "y"}}}},
        json::object{{"name", "send_message"}, {"arguments", "text"}}, json::object{{"name", 3}},
        json::object{}}) {
    json::object answer = call("tools/call", params);
    EXPECT_EQ(answer.at("error").at("code"), -32602) << json::serialize(params);
  }
  EXPECT_EQ(files_in(temp.path() / "messages"), 0u);
}

TEST_F(Mcp, UnknownMethodIsMethodNotFound) {
  EXPECT_EQ(error_code(R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})"), -32601);
}

TEST_F(Mcp, MalformedJsonIsAParseErrorWithNullId) {
  auto answer = server.handle_line(R"({"jsonrpc":"2.0","id":1,"method":)");
  ASSERT_TRUE(answer);
  json::value parsed = json::parse(*answer);
  EXPECT_EQ(parsed.at("error").at("code"), -32700);
  EXPECT_TRUE(parsed.at("id").is_null());
  EXPECT_EQ(error_code("\xff\xfe"), -32700);
}

TEST_F(Mcp, InvalidRequestsAreRefused) {
  EXPECT_EQ(error_code(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])"), -32600);  // batch
  EXPECT_EQ(error_code("42"), -32600);
  EXPECT_EQ(error_code(R"({"id":1,"method":"ping"})"), -32600);  // no jsonrpc
  EXPECT_EQ(error_code(R"({"jsonrpc":"2.0","id":1})"), -32600);  // no method
  EXPECT_EQ(error_code(R"({"jsonrpc":"2.0","id":1,"method":7})"), -32600);
  EXPECT_EQ(error_code(R"({"jsonrpc":"2.0","id":{"x":1},"method":"ping"})"), -32600);
  EXPECT_EQ(error_code(R"({"jsonrpc":"2.0","id":null,"method":"ping"})"), -32600);
  EXPECT_EQ(error_code(R"({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]})"), -32602);
}

TEST_F(Mcp, AnErrorAnswerKeepsTheRequestsId) {
  auto answer = server.handle_line(R"({"jsonrpc":"2.0","id":"q7","method":"nope"})");
  ASSERT_TRUE(answer);
  EXPECT_EQ(json::parse(*answer).at("id"), "q7");
}

TEST_F(Mcp, StdioServesLinesInOrderAndEndsAtEndOfInput) {
  std::istringstream in(
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}})"
      "\n"
      R"({"jsonrpc":"2.0","method":"notifications/initialized"})"
      "\n"
      "not json\n"
      R"({"jsonrpc":"2.0","id":2,"method":"ping"})");  // no final newline
  std::ostringstream out;
  EXPECT_EQ(run_mcp_stdio(in, out, context()), 0);
  std::istringstream lines(out.str());
  std::vector<json::value> answers;
  for (std::string line; std::getline(lines, line);) answers.push_back(json::parse(line));
  ASSERT_EQ(answers.size(), 3u) << out.str();
  EXPECT_EQ(answers[0].at("id"), 1);
  EXPECT_EQ(answers[1].at("error").at("code"), -32700);
  EXPECT_EQ(answers[2].at("id"), 2);
}

TEST_F(Mcp, StdioAnswersAnOversizedLineWithAnErrorAndCarriesOn) {
  std::string input = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"pad\":\"" +
                      std::string(kMaxMessageBytes, 'x') + "\"}}\n" +
                      R"({"jsonrpc":"2.0","id":2,"method":"ping"})" + "\n";
  std::istringstream in(input);
  std::ostringstream out;
  EXPECT_EQ(run_mcp_stdio(in, out, context()), 0);
  std::istringstream lines(out.str());
  std::vector<json::value> answers;
  for (std::string line; std::getline(lines, line);) answers.push_back(json::parse(line));
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].at("error").at("code"), -32600);
  EXPECT_THAT(std::string(answers[0].at("error").at("message").as_string()), HasSubstr("limit"));
  EXPECT_EQ(answers[1].at("id"), 2);
  EXPECT_TRUE(answers[1].as_object().contains("result"));
}

TEST_F(Mcp, AMessageExactlyAtTheLimitWithCrLfIsRead) {
  const std::string head = R"({"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":")";
  const std::string tail = R"("}})";
  std::string message =
      head + std::string(kMaxMessageBytes - head.size() - tail.size(), 'x') + tail;
  ASSERT_EQ(message.size(), kMaxMessageBytes);
  std::istringstream in(message + "\r\n");
  std::ostringstream out;
  EXPECT_EQ(run_mcp_stdio(in, out, context()), 0);
  EXPECT_THAT(out.str(), HasSubstr("\"result\":{}"));
}

TEST_F(Mcp, StdioStopsWhenOutputFails) {
  std::istringstream in(R"({"jsonrpc":"2.0","id":1,"method":"ping"})"
                        "\n");
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  EXPECT_EQ(run_mcp_stdio(in, out, context()), 1);
}

}  // namespace
}  // namespace sb::mcp

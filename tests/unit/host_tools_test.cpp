#include "agent/host_tools.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fstream>
#include <sstream>

#include "host/ipc_files.h"
#include "host/ipc_requests.h"
#include "support/temp_dir.h"

namespace sb::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Regular files of `dir` whose names do not start with '.' (what the host would read).
std::vector<fs::path> request_files(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::exists(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().front() != '.') files.push_back(entry.path());
  }
  return files;
}

class HostTools : public ::testing::Test {
 protected:
  void SetUp() override {
    context.ipc_dir = temp.path();
    context.snapshot_dir = temp.path() / "snapshots";
    context.workspace = temp.path() / "group";
    context.group_folder = "family";
    context.chat_jid = "http:alice";
    fs::create_directories(temp.path() / "messages");
    fs::create_directories(temp.path() / "tasks");
  }

  ToolOutput call(std::string_view name, const json::object& input) {
    tools = make_host_tools(context);
    Tool* tool = find_tool(tools, name);
    if (tool == nullptr) return ToolOutput::error("test: no tool " + std::string(name));
    return tool->run(input, context);
  }

  // The only request file in `sub`, parsed; fails the test if there is not exactly one.
  json::object only_request(std::string_view sub) {
    auto files = request_files(temp.path() / sub);
    EXPECT_EQ(files.size(), 1u) << sub;
    if (files.size() != 1) return {};
    EXPECT_THAT(files[0].filename().string(),
                ::testing::MatchesRegex("[0-9]{13}-[0-9]{6}-[0-9a-f]{8}\\.json"));
    const std::string text = read_file(files[0]);
    // Whatever the tool writes, the host must accept in that directory.
    EXPECT_TRUE(host::parse_ipc_request(
                    text, sub == "messages" ? host::IpcDir::messages : host::IpcDir::tasks)
                    .ok())
        << text;
    return json::parse(text).as_object();
  }

  std::vector<std::string> names() {
    tools = make_host_tools(context);
    std::vector<std::string> out;
    for (const auto& tool : tools) out.push_back(tool->spec().name);
    return out;
  }

  void write_snapshot(std::string_view text) {
    fs::create_directories(context.snapshot_dir);
    std::ofstream(context.snapshot_dir / "current_tasks.json", std::ios::binary) << text;
  }

  test::TempDir temp;
  ToolContext context;
  ToolList tools;
};

TEST_F(HostTools, NonMainGroupIsNotOfferedRegisterGroup) {
  EXPECT_EQ(names(), (std::vector<std::string>{"send_message", "schedule_task", "list_tasks",
                                               "pause_task", "resume_task", "cancel_task"}));
}

TEST_F(HostTools, MainGroupIsOfferedRegisterGroup) {
  context.is_main = true;
  EXPECT_THAT(names(), ::testing::Contains("register_group"));
}

TEST_F(HostTools, EverySpecIsAnObjectSchemaListingItsRequiredProperties) {
  context.is_main = true;
  tools = make_host_tools(context);
  for (const auto& tool : tools) {
    const ToolSpec& spec = tool->spec();
    EXPECT_FALSE(spec.description.empty()) << spec.name;
    EXPECT_EQ(spec.input_schema.at("type"), "object") << spec.name;
    const json::object& properties = spec.input_schema.at("properties").as_object();
    for (const json::value& required : spec.input_schema.at("required").as_array()) {
      EXPECT_TRUE(properties.contains(required.as_string())) << spec.name << " " << required;
    }
  }
}

TEST_F(HostTools, SendMessageWritesAMessageRequestForTheCurrentChat) {
  ToolOutput out = call("send_message", {{"text", "The report is ready."}});
  ASSERT_FALSE(out.is_error) << out.text;
  EXPECT_THAT(out.text, HasSubstr("Message queued for http:alice."));
  json::object request = only_request("messages");
  EXPECT_EQ(request.at("type"), "message");
  EXPECT_EQ(request.at("chatJid"), "http:alice");
  EXPECT_EQ(request.at("text"), "The report is ready.");
  EXPECT_TRUE(request_files(temp.path() / "tasks").empty());
}

TEST_F(HostTools, SendMessageToAnotherChatNamesThatChatAndDoesNotClaimDelivery) {
  ToolOutput out = call("send_message", {{"text", "hi"}, {"chatJid", "whatsapp:+15551234567"}});
  ASSERT_FALSE(out.is_error) << out.text;
  EXPECT_THAT(out.text, HasSubstr("whatsapp:+15551234567"));
  EXPECT_THAT(out.text, Not(HasSubstr("sent.")));
  EXPECT_EQ(only_request("messages").at("chatJid"), "whatsapp:+15551234567");
}

TEST_F(HostTools, SendMessageWithoutAnyChatWritesNothing) {
  context.chat_jid.clear();
  ToolOutput out = call("send_message", {{"text", "hi"}});
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("chatJid"));
  EXPECT_TRUE(request_files(temp.path() / "messages").empty());
}

TEST_F(HostTools, SendMessageRefusesAChatIdWithoutChannel) {
  ToolOutput out = call("send_message", {{"text", "hi"}, {"chatJid", "alice"}});
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("<channel>:<address>"));
  EXPECT_TRUE(request_files(temp.path() / "messages").empty());
}

TEST_F(HostTools, SendMessageRefusesWrongTypesMissingTextAndUnknownArguments) {
  EXPECT_THAT(call("send_message", {{"text", 5}}).text, HasSubstr("'text'"));
  EXPECT_THAT(call("send_message", json::object{}).text, HasSubstr("'text' is required"));
  EXPECT_THAT(call("send_message", {{"text", ""}}).text, HasSubstr("must not be empty"));
  ToolOutput misspelt = call("send_message", {{"text", "hi"}, {"chat_jid", "http:bob"}});
  EXPECT_TRUE(misspelt.is_error);
  EXPECT_THAT(misspelt.text, HasSubstr("unknown argument 'chat_jid'"));
  EXPECT_TRUE(request_files(temp.path() / "messages").empty());
}

TEST_F(HostTools, SendMessageRefusesATextOverTheHostsLimit) {
  ToolOutput out = call("send_message", {{"text", std::string(host::kMaxIpcTextBytes + 1, 'x')}});
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("limit"));
  EXPECT_TRUE(request_files(temp.path() / "messages").empty());
}

TEST_F(HostTools, ScheduleTaskWritesTheRequestIntoTasks) {
  ToolOutput out = call("schedule_task", {{"prompt", "Summarise today's mail"},
                                          {"schedule_type", "cron"},
                                          {"schedule_value", "0 18 * * 1-5"},
                                          {"context_mode", "group"},
                                          {"targetJid", "http:bob"}});
  ASSERT_FALSE(out.is_error) << out.text;
  EXPECT_THAT(out.text, HasSubstr("Task request written"));
  EXPECT_THAT(out.text, HasSubstr("list_tasks"));
  json::object request = only_request("tasks");
  EXPECT_EQ(request.at("type"), "schedule_task");
  EXPECT_EQ(request.at("prompt"), "Summarise today's mail");
  EXPECT_EQ(request.at("schedule_type"), "cron");
  EXPECT_EQ(request.at("schedule_value"), "0 18 * * 1-5");
  EXPECT_EQ(request.at("context_mode"), "group");
  EXPECT_EQ(request.at("targetJid"), "http:bob");
  EXPECT_TRUE(request_files(temp.path() / "messages").empty());
}

TEST_F(HostTools, ScheduleTaskLeavesOptionalFieldsToTheHostsDefaults) {
  ASSERT_FALSE(call("schedule_task",
                    {{"prompt", "p"}, {"schedule_type", "interval"}, {"schedule_value", "3600000"}})
                   .is_error);
  json::object request = only_request("tasks");
  EXPECT_FALSE(request.contains("context_mode"));
  EXPECT_FALSE(request.contains("targetJid"));
}

TEST_F(HostTools, ScheduleTaskAcceptsAOnceTimeInLocalTimeOrWithOffset) {
  for (const char* when : {"2026-12-24T18:00", "2026-12-24T17:00Z", "2026-12-24 18:00:30+01:00"}) {
    ToolOutput out = call("schedule_task",
                          {{"prompt", "p"}, {"schedule_type", "once"}, {"schedule_value", when}});
    EXPECT_FALSE(out.is_error) << when << ": " << out.text;
  }
  EXPECT_EQ(request_files(temp.path() / "tasks").size(), 3u);
}

TEST_F(HostTools, InvalidCronSaysWhatIsWrongAndWhatIsValidAndWritesNothing) {
  ToolOutput out =
      call("schedule_task",
           {{"prompt", "p"}, {"schedule_type", "cron"}, {"schedule_value", "0 24 * * *"}});
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("cron field 2 (hour) must be 0-23"));
  EXPECT_THAT(out.text, HasSubstr("'0 9 * * 1-5'"));
  EXPECT_THAT(out.text, HasSubstr("milliseconds"));
  EXPECT_THAT(out.text, HasSubstr("2026-12-24T18:00"));
  EXPECT_TRUE(request_files(temp.path() / "tasks").empty());
}

TEST_F(HostTools, IntervalBelowOneSecondIsRefused) {
  ToolOutput out = call(
      "schedule_task", {{"prompt", "p"}, {"schedule_type", "interval"}, {"schedule_value", "500"}});
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("at least 1000 milliseconds"));
  EXPECT_TRUE(request_files(temp.path() / "tasks").empty());
}

TEST_F(HostTools, OnceThatIsNotADateTimeIsRefused) {
  ToolOutput out =
      call("schedule_task",
           {{"prompt", "p"}, {"schedule_type", "once"}, {"schedule_value", "tomorrow"}});
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("ISO-8601"));
  EXPECT_TRUE(request_files(temp.path() / "tasks").empty());
}

TEST_F(HostTools, UnknownScheduleTypeAndContextModeAreRefused) {
  ToolOutput type = call("schedule_task",
                         {{"prompt", "p"}, {"schedule_type", "weekly"}, {"schedule_value", "x"}});
  EXPECT_TRUE(type.is_error);
  EXPECT_THAT(type.text, HasSubstr("cron, interval, once"));
  ToolOutput mode = call("schedule_task", {{"prompt", "p"},
                                           {"schedule_type", "interval"},
                                           {"schedule_value", "60000"},
                                           {"context_mode", "shared"}});
  EXPECT_TRUE(mode.is_error);
  EXPECT_THAT(mode.text, HasSubstr("group, isolated"));
  EXPECT_TRUE(request_files(temp.path() / "tasks").empty());
}

TEST_F(HostTools, TaskActionsWriteTheirTypeAndTaskId) {
  for (const char* type : {"pause_task", "resume_task", "cancel_task"}) {
    fs::remove_all(temp.path() / "tasks");
    ToolOutput out = call(type, {{"taskId", "task-1795291314257-ab12"}});
    ASSERT_FALSE(out.is_error) << type << ": " << out.text;
    EXPECT_THAT(out.text, HasSubstr("task-1795291314257-ab12"));
    EXPECT_THAT(out.text, HasSubstr("list_tasks"));
    json::object request = only_request("tasks");
    EXPECT_EQ(request.at("type"), type);
    EXPECT_EQ(request.at("taskId"), "task-1795291314257-ab12");
  }
}

TEST_F(HostTools, TaskActionWithoutTaskIdWritesNothing) {
  ToolOutput out = call("cancel_task", json::object{});
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("'taskId' is required"));
  EXPECT_TRUE(request_files(temp.path() / "tasks").empty());
}

TEST_F(HostTools, RegisterGroupWritesAllFieldsForTheMainGroup) {
  context.is_main = true;
  ToolOutput out = call("register_group", {{"jid", "whatsapp-group:120363@g.us"},
                                           {"name", "Family"},
                                           {"folder", "family-2"},
                                           {"trigger", "@Andy"},
                                           {"requiresTrigger", false}});
  ASSERT_FALSE(out.is_error) << out.text;
  json::object request = only_request("tasks");
  EXPECT_EQ(request.at("type"), "register_group");
  EXPECT_EQ(request.at("jid"), "whatsapp-group:120363@g.us");
  EXPECT_EQ(request.at("name"), "Family");
  EXPECT_EQ(request.at("folder"), "family-2");
  EXPECT_EQ(request.at("trigger"), "@Andy");
  EXPECT_EQ(request.at("requiresTrigger"), false);
}

TEST_F(HostTools, RegisterGroupRefusesAnInvalidFolder) {
  context.is_main = true;
  for (const char* folder : {"../etc", "errors", "-x", "a b"}) {
    ToolOutput out =
        call("register_group",
             {{"jid", "http:carol"}, {"name", "Carol"}, {"folder", folder}, {"trigger", "@Andy"}});
    EXPECT_TRUE(out.is_error) << folder;
    EXPECT_THAT(out.text, HasSubstr("is not valid")) << folder;
  }
  EXPECT_TRUE(request_files(temp.path() / "tasks").empty());
}

TEST_F(HostTools, UnknownToolOutputExplainsRegisterGroupIsMainOnly) {
  tools = make_host_tools(context);
  EXPECT_EQ(find_tool(tools, "register_group"), nullptr);
  ToolOutput out = unknown_tool_output(tools, "register_group");
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("main group only"));
  EXPECT_THAT(out.text, HasSubstr("send_message"));
  ToolOutput other = unknown_tool_output(tools, "rm_rf");
  EXPECT_THAT(other.text, HasSubstr("Unknown tool 'rm_rf'"));
}

TEST_F(HostTools, ToolsReportAMissingIpcDirectoryInsteadOfWritingElsewhere) {
  context.ipc_dir.clear();
  ToolOutput out = call("send_message", {{"text", "hi"}});
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("SWITCHBOARD_IPC_DIR"));
}

TEST_F(HostTools, ListTasksReadsTheSnapshotDirectoryNotTheIpcDirectory) {
  // An agent can write its IPC directory; a task list planted there must not be shown.
  std::ofstream(temp.path() / "current_tasks.json", std::ios::binary)
      << R"([{"id":"task-planted","status":"active"}])";
  context.snapshot_dir.clear();
  ToolOutput unset = call("list_tasks", json::object{});
  EXPECT_TRUE(unset.is_error);
  EXPECT_THAT(unset.text, HasSubstr("SWITCHBOARD_SNAPSHOT_DIR"));
  context.snapshot_dir = temp.path() / "snapshots";
  write_snapshot("[]");
  ToolOutput out = call("list_tasks", json::object{});
  EXPECT_THAT(out.text, ::testing::Not(HasSubstr("task-planted")));
}

TEST_F(HostTools, ListTasksSaysWhenTheSnapshotIsMissing) {
  ToolOutput out = call("list_tasks", json::object{});
  EXPECT_FALSE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("current_tasks.json does not exist"));
}

TEST_F(HostTools, ListTasksSaysWhenThereAreNoTasks) {
  write_snapshot("[]");
  ToolOutput out = call("list_tasks", json::object{});
  EXPECT_FALSE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("No scheduled tasks"));
  EXPECT_THAT(out.text, HasSubstr("start of this run"));
}

TEST_F(HostTools, ListTasksShowsEachTaskReadably) {
  write_snapshot(R"([
    {"id":"task-1","groupFolder":"family","chatJid":"http:alice","prompt":"Summarise\nthe mail",
     "schedule_type":"cron","schedule_value":"0 18 * * 1-5","context_mode":"isolated",
     "status":"active","next_run":"2026-11-23T17:00:00.000Z"},
    {"id":"task-2","groupFolder":"family","chatJid":"http:alice","prompt":"Water the plants",
     "schedule_type":"once","schedule_value":"2026-01-01T09:00","context_mode":"group",
     "status":"completed","next_run":null}])");
  ToolOutput out = call("list_tasks", json::object{});
  ASSERT_FALSE(out.is_error) << out.text;
  EXPECT_THAT(out.text, HasSubstr("2 scheduled tasks"));
  EXPECT_THAT(out.text, HasSubstr("start of this run"));
  EXPECT_THAT(out.text, HasSubstr("- task-1: active, cron '0 18 * * 1-5', isolated context, "
                                  "next run 2026-11-23T17:00:00.000Z, chat http:alice"));
  EXPECT_THAT(out.text, HasSubstr("prompt: Summarise the mail"));
  EXPECT_THAT(out.text, HasSubstr("- task-2: completed, once '2026-01-01T09:00', group context, "
                                  "next run none"));
}

TEST_F(HostTools, ListTasksCutsLongPromptsAndStaysWithinTheOutputLimit) {
  json::array tasks;
  for (int i = 0; i < 500; ++i) {
    tasks.push_back(json::object{{"id", "task-" + std::to_string(i)},
                                 {"status", "active"},
                                 {"prompt", std::string(5000, 'p')}});
  }
  write_snapshot(json::serialize(tasks));
  context.max_output_bytes = 4096;
  ToolOutput out = call("list_tasks", json::object{});
  ASSERT_FALSE(out.is_error) << out.text;
  EXPECT_LE(out.text.size(), 4096u + 100u);
  EXPECT_THAT(out.text, HasSubstr("500 scheduled tasks"));
  EXPECT_THAT(out.text, HasSubstr("more not shown"));
  EXPECT_THAT(out.text, Not(HasSubstr(std::string(201, 'p'))));
}

TEST_F(HostTools, ListTasksReportsAMalformedSnapshot) {
  write_snapshot("{not json");
  ToolOutput out = call("list_tasks", json::object{});
  EXPECT_TRUE(out.is_error);
  EXPECT_THAT(out.text, HasSubstr("not a JSON array"));
}

TEST(CheckToolInput, AcceptsNullForOptionalArgumentsAsAbsent) {
  ToolSpec spec{"t", "d",
                json::parse(R"({"type":"object","properties":{"a":{"type":"string"},
                  "b":{"type":"boolean"}},"required":["a"]})")
                    .as_object()};
  EXPECT_TRUE(check_tool_input(spec, {{"a", "x"}, {"b", nullptr}}).ok());
  EXPECT_FALSE(check_tool_input(spec, {{"a", nullptr}}).ok());
  EXPECT_THAT(check_tool_input(spec, {{"a", "x"}, {"b", "yes"}}).error().message,
              HasSubstr("'b' must be of type boolean"));
}

}  // namespace
}  // namespace sb::agent

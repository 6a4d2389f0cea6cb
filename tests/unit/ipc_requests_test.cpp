#include "host/ipc_requests.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

namespace sb::host {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

IpcRequest parse_ok(std::string_view json, IpcDir dir) {
  auto parsed = parse_ipc_request(json, dir);
  EXPECT_TRUE(parsed.ok()) << (parsed.ok() ? "" : parsed.error().message);
  if (!parsed.ok()) return RefreshGroupsRequest{};
  return std::move(parsed).value();
}

std::string parse_error(std::string_view json, IpcDir dir) {
  auto parsed = parse_ipc_request(json, dir);
  EXPECT_FALSE(parsed.ok()) << "accepted: " << json;
  return parsed.ok() ? "" : parsed.error().message;
}

// ---- parsing: the request types ----

TEST(IpcRequestParse, ReadsAMessage) {
  auto request =
      parse_ok(R"({"type":"message","chatJid":"http:alice","text":"hi"})", IpcDir::messages);
  const auto& message = std::get<SendMessageRequest>(request);
  EXPECT_EQ(message.chat_jid, "http:alice");
  EXPECT_EQ(message.text, "hi");
  EXPECT_EQ(request_type(request), "message");
}

TEST(IpcRequestParse, AcceptsChatAsAnAliasOfChatJid) {
  auto request = parse_ok(R"({"type":"message","chat":"http:bob","text":"x"})", IpcDir::messages);
  EXPECT_EQ(std::get<SendMessageRequest>(request).chat_jid, "http:bob");
}

TEST(IpcRequestParse, AcceptsChatAndChatJidWhenTheyAgree) {
  auto request = parse_ok(R"({"type":"message","chat":"http:bob","chatJid":"http:bob","text":"x"})",
                          IpcDir::messages);
  EXPECT_EQ(std::get<SendMessageRequest>(request).chat_jid, "http:bob");
}

TEST(IpcRequestParse, RefusesChatAndChatJidThatDisagree) {
  EXPECT_THAT(parse_error(R"({"type":"message","chat":"http:a","chatJid":"http:b","text":"x"})",
                          IpcDir::messages),
              HasSubstr("different chats"));
}

TEST(IpcRequestParse, IgnoresUnknownFieldsSuchAsAClaimedIdentity) {
  auto request = parse_ok(
      R"({"type":"message","chatJid":"http:a","text":"x","groupFolder":"main","isMain":true,"timestamp":"2026"})",
      IpcDir::messages);
  EXPECT_EQ(std::get<SendMessageRequest>(request).chat_jid, "http:a");
}

TEST(IpcRequestParse, ReadsAScheduleTaskWithAllFields) {
  auto request = parse_ok(
      R"({"type":"schedule_task","prompt":"check mail","schedule_type":"cron",
          "schedule_value":"0 9 * * 1","context_mode":"group","targetJid":"http:bob"})",
      IpcDir::tasks);
  const auto& task = std::get<ScheduleTaskRequest>(request);
  EXPECT_EQ(task.prompt, "check mail");
  EXPECT_EQ(task.schedule_type, ScheduleType::cron);
  EXPECT_EQ(task.schedule_value, "0 9 * * 1");
  EXPECT_EQ(task.context_mode, ContextMode::group);
  ASSERT_TRUE(task.target_jid.has_value());
  EXPECT_EQ(*task.target_jid, "http:bob");
}

TEST(IpcRequestParse, ScheduleTaskDefaultsToIsolatedAndNoTarget) {
  auto request = parse_ok(
      R"({"type":"schedule_task","prompt":"p","schedule_type":"interval","schedule_value":"60000",
          "targetJid":null})",
      IpcDir::tasks);
  const auto& task = std::get<ScheduleTaskRequest>(request);
  EXPECT_EQ(task.schedule_type, ScheduleType::interval);
  EXPECT_EQ(task.context_mode, ContextMode::isolated);
  EXPECT_FALSE(task.target_jid.has_value());
}

TEST(IpcRequestParse, ReadsTaskActions) {
  const std::pair<const char*, TaskAction> cases[] = {{"pause_task", TaskAction::pause},
                                                      {"resume_task", TaskAction::resume},
                                                      {"cancel_task", TaskAction::cancel}};
  for (const auto& [type, action] : cases) {
    auto request =
        parse_ok(std::string(R"({"type":")") + type + R"(","taskId":"task-7"})", IpcDir::tasks);
    const auto& parsed = std::get<TaskActionRequest>(request);
    EXPECT_EQ(parsed.action, action) << type;
    EXPECT_EQ(parsed.task_id, "task-7");
    EXPECT_EQ(request_type(request), type);
  }
}

TEST(IpcRequestParse, ReadsRegisterGroup) {
  auto request = parse_ok(
      R"({"type":"register_group","jid":"whatsapp-group:123","name":"Family","folder":"family",
          "trigger":"@andy","requiresTrigger":false})",
      IpcDir::tasks);
  const auto& group = std::get<RegisterGroupRequest>(request);
  EXPECT_EQ(group.jid, "whatsapp-group:123");
  EXPECT_EQ(group.name, "Family");
  EXPECT_EQ(group.folder, "family");
  EXPECT_EQ(group.trigger, "@andy");
  EXPECT_FALSE(group.requires_trigger);
}

TEST(IpcRequestParse, RegisterGroupRequiresTriggerByDefault) {
  auto request =
      parse_ok(R"({"type":"register_group","jid":"http:x","name":"X","folder":"x","trigger":"@a"})",
               IpcDir::tasks);
  EXPECT_TRUE(std::get<RegisterGroupRequest>(request).requires_trigger);
}

TEST(IpcRequestParse, ReadsRefreshGroups) {
  auto request = parse_ok(R"({"type":"refresh_groups"})", IpcDir::tasks);
  EXPECT_TRUE(std::holds_alternative<RefreshGroupsRequest>(request));
}

// ---- parsing: errors of every kind ----

TEST(IpcRequestParse, RefusesInvalidJson) {
  EXPECT_THAT(parse_error(R"({"type":"message",)", IpcDir::messages), HasSubstr("not valid JSON"));
  EXPECT_THAT(parse_error("", IpcDir::messages), HasSubstr("not valid JSON"));
}

TEST(IpcRequestParse, RefusesInvalidUtf8) {
  EXPECT_THAT(parse_error("{\"type\":\"message\",\"chatJid\":\"http:a\",\"text\":\"\xff\"}",
                          IpcDir::messages),
              HasSubstr("not valid JSON"));
}

TEST(IpcRequestParse, RefusesATopLevelThatIsNotAnObject) {
  EXPECT_THAT(parse_error(R"(["message"])", IpcDir::messages), HasSubstr("one JSON object"));
  EXPECT_THAT(parse_error(R"("message")", IpcDir::messages), HasSubstr("one JSON object"));
}

TEST(IpcRequestParse, RefusesAMissingOrNonStringType) {
  EXPECT_THAT(parse_error(R"({"chatJid":"http:a","text":"x"})", IpcDir::messages),
              HasSubstr("missing field 'type'"));
  EXPECT_THAT(parse_error(R"({"type":3})", IpcDir::messages), HasSubstr("'type' must be a string"));
}

TEST(IpcRequestParse, RefusesAnUnknownTypeListingTheKnownOnes) {
  auto error = parse_error(R"({"type":"format_disk"})", IpcDir::tasks);
  EXPECT_THAT(error, HasSubstr("unknown request type 'format_disk'"));
  EXPECT_THAT(error, HasSubstr("schedule_task"));
}

TEST(IpcRequestParse, RefusesATypeInTheWrongDirectory) {
  EXPECT_THAT(parse_error(R"({"type":"message","chatJid":"http:a","text":"x"})", IpcDir::tasks),
              HasSubstr("belongs in messages/, not in tasks/"));
  EXPECT_THAT(parse_error(R"({"type":"refresh_groups"})", IpcDir::messages),
              HasSubstr("belongs in tasks/, not in messages/"));
  EXPECT_THAT(parse_error(R"({"type":"cancel_task","taskId":"t"})", IpcDir::messages),
              HasSubstr("belongs in tasks/"));
}

TEST(IpcRequestParse, RefusesMissingFields) {
  EXPECT_THAT(parse_error(R"({"type":"message","text":"x"})", IpcDir::messages),
              HasSubstr("missing field 'chatJid'"));
  EXPECT_THAT(parse_error(R"({"type":"message","chatJid":"http:a"})", IpcDir::messages),
              HasSubstr("missing field 'text'"));
  EXPECT_THAT(parse_error(R"({"type":"message","chatJid":"http:a","text":null})", IpcDir::messages),
              HasSubstr("missing field 'text'"));
  EXPECT_THAT(parse_error(R"({"type":"schedule_task","schedule_type":"once","schedule_value":"x"})",
                          IpcDir::tasks),
              HasSubstr("missing field 'prompt'"));
  EXPECT_THAT(
      parse_error(R"({"type":"schedule_task","prompt":"p","schedule_value":"x"})", IpcDir::tasks),
      HasSubstr("missing field 'schedule_type'"));
  EXPECT_THAT(
      parse_error(R"({"type":"schedule_task","prompt":"p","schedule_type":"once"})", IpcDir::tasks),
      HasSubstr("missing field 'schedule_value'"));
  EXPECT_THAT(parse_error(R"({"type":"pause_task"})", IpcDir::tasks),
              HasSubstr("missing field 'taskId'"));
  for (const char* field : {"jid", "name", "folder", "trigger"}) {
    std::map<std::string, std::string> fields = {
        {"jid", "http:x"}, {"name", "X"}, {"folder", "x"}, {"trigger", "@a"}};
    fields.erase(field);
    std::string json = R"({"type":"register_group")";
    for (const auto& [key, value] : fields) json += ",\"" + key + "\":\"" + value + "\"";
    json += "}";
    EXPECT_THAT(parse_error(json, IpcDir::tasks),
                HasSubstr(std::string("missing field '") + field + "'"));
  }
}

TEST(IpcRequestParse, RefusesFieldsOfTheWrongJsonType) {
  EXPECT_THAT(parse_error(R"({"type":"message","chatJid":"http:a","text":42})", IpcDir::messages),
              HasSubstr("'text' must be a string"));
  EXPECT_THAT(
      parse_error(R"({"type":"message","chatJid":["http:a"],"text":"x"})", IpcDir::messages),
      HasSubstr("'chatJid' must be a string"));
  EXPECT_THAT(parse_error(R"({"type":"cancel_task","taskId":7})", IpcDir::tasks),
              HasSubstr("'taskId' must be a string"));
  EXPECT_THAT(parse_error(R"({"type":"register_group","jid":"http:x","name":"X","folder":"x",
                              "trigger":"@a","requiresTrigger":"yes"})",
                          IpcDir::tasks),
              HasSubstr("'requiresTrigger' must be true or false"));
  EXPECT_THAT(parse_error(R"({"type":"schedule_task","prompt":"p","schedule_type":"once",
                              "schedule_value":"x","targetJid":{}})",
                          IpcDir::tasks),
              HasSubstr("'targetJid' must be a string"));
}

TEST(IpcRequestParse, RefusesEmptyStrings) {
  EXPECT_THAT(parse_error(R"({"type":"message","chatJid":"http:a","text":""})", IpcDir::messages),
              HasSubstr("'text' must not be empty"));
  EXPECT_THAT(parse_error(R"({"type":"resume_task","taskId":""})", IpcDir::tasks),
              HasSubstr("'taskId' must not be empty"));
}

TEST(IpcRequestParse, RefusesBadEnumValues) {
  EXPECT_THAT(parse_error(R"({"type":"schedule_task","prompt":"p","schedule_type":"weekly",
                              "schedule_value":"x"})",
                          IpcDir::tasks),
              HasSubstr("'schedule_type'"));
  EXPECT_THAT(parse_error(R"({"type":"schedule_task","prompt":"p","schedule_type":"once",
                              "schedule_value":"x","context_mode":"shared"})",
                          IpcDir::tasks),
              HasSubstr("use 'group' or 'isolated'"));
}

TEST(IpcRequestParse, RefusesChatIdsWithoutAChannel) {
  EXPECT_THAT(parse_error(R"({"type":"message","chatJid":"alice","text":"x"})", IpcDir::messages),
              HasSubstr("<channel>:<address>"));
  EXPECT_THAT(parse_error(R"({"type":"message","chat":"http:","text":"x"})", IpcDir::messages),
              HasSubstr("'chat'"));
  EXPECT_THAT(parse_error(R"({"type":"schedule_task","prompt":"p","schedule_type":"once",
                              "schedule_value":"x","targetJid":":bob"})",
                          IpcDir::tasks),
              HasSubstr("'targetJid'"));
  EXPECT_THAT(parse_error(R"({"type":"register_group","jid":"nochannel","name":"X","folder":"x",
                              "trigger":"@a"})",
                          IpcDir::tasks),
              HasSubstr("'jid'"));
}

TEST(IpcRequestParse, RefusesFolderNamesThatCouldEscapeOrCollide) {
  for (const char* folder : {"../main", "a/b", ".hidden", "errors", "-x", "with space",
                             "0123456789012345678901234567890123456789012345678901234567890123x"}) {
    std::string json = std::string(R"({"type":"register_group","jid":"http:x","name":"X",)") +
                       R"("trigger":"@a","folder":")" + folder + "\"}";
    EXPECT_THAT(parse_error(json, IpcDir::tasks), HasSubstr("not a valid folder name")) << folder;
  }
}

TEST(IpcRequestParse, EnforcesLengthLimits) {
  const std::string text_at_limit(kMaxIpcTextBytes, 'a');
  parse_ok(R"({"type":"message","chatJid":"http:a","text":")" + text_at_limit + "\"}",
           IpcDir::messages);
  EXPECT_THAT(
      parse_error(R"({"type":"message","chatJid":"http:a","text":")" + text_at_limit + "a\"}",
                  IpcDir::messages),
      HasSubstr("'text' is 65537 bytes long; the limit is 65536"));

  const std::string long_prompt(kMaxIpcPromptBytes + 1, 'p');
  EXPECT_THAT(parse_error(R"({"type":"schedule_task","schedule_type":"once","schedule_value":"x",
                              "prompt":")" +
                              long_prompt + "\"}",
                          IpcDir::tasks),
              HasSubstr("'prompt' is"));

  const std::string long_id(kMaxIpcIdBytes + 1, 'i');
  EXPECT_THAT(parse_error(R"({"type":"cancel_task","taskId":")" + long_id + "\"}", IpcDir::tasks),
              HasSubstr("'taskId' is 257 bytes"));
  EXPECT_THAT(parse_error(R"({"type":"message","chatJid":"http:)" + long_id + R"(","text":"x"})",
                          IpcDir::messages),
              HasSubstr("'chatJid' is"));
}

TEST(IpcRequestParse, RefusesAFileOverOneMebibyte) {
  std::string json = R"({"type":"refresh_groups","padding":")";
  json += std::string(kMaxIpcFileBytes, ' ');
  json += "\"}";
  EXPECT_THAT(parse_error(json, IpcDir::tasks), HasSubstr("the limit is 1048576"));
}

TEST(IpcRequestParse, RefusesDeeplyNestedJsonWithoutCrashing) {
  std::string json =
      R"({"type":"refresh_groups","x":)" + std::string(10000, '[') + std::string(10000, ']') + "}";
  EXPECT_THAT(parse_error(json, IpcDir::tasks), HasSubstr("not valid JSON"));
}

// ---- authorization ----

class IpcAuthorize : public ::testing::Test {
 protected:
  IpcAuthorize() {
    view_.group_of_chat = [this](std::string_view chat) -> std::optional<std::string> {
      auto it = chats_.find(std::string(chat));
      if (it == chats_.end()) return std::nullopt;
      return it->second;
    };
    view_.group_of_task = [this](std::string_view task) -> std::optional<std::string> {
      auto it = tasks_.find(std::string(task));
      if (it == tasks_.end()) return std::nullopt;
      return it->second;
    };
  }

  Result<void> check(const IpcSource& source, const IpcRequest& request) {
    return authorize(source, request, view_);
  }
  static std::string refusal(const Result<void>& result) {
    EXPECT_FALSE(result.ok());
    return result.ok() ? "" : result.error().message;
  }
  static IpcRequest message_to(std::string chat) {
    return SendMessageRequest{std::move(chat), "hello"};
  }
  static IpcRequest schedule_for(std::optional<std::string> target) {
    ScheduleTaskRequest request;
    request.prompt = "p";
    request.schedule_type = ScheduleType::once;
    request.schedule_value = "2030-01-01T00:00:00Z";
    request.target_jid = std::move(target);
    return request;
  }
  static IpcRequest action_on(TaskAction action, std::string task) {
    return TaskActionRequest{action, std::move(task)};
  }
  static IpcRequest register_group() {
    return RegisterGroupRequest{"http:new", "New", "new", "@a", true};
  }

  const IpcSource main_{"main", true};
  const IpcSource alice_{"alice", false};
  std::map<std::string, std::string> chats_ = {{"http:main-chat", "main"},
                                               {"http:alice", "alice"},
                                               {"email:alice@example.org", "alice"},
                                               {"http:bob", "bob"}};
  std::map<std::string, std::string> tasks_ = {
      {"task-main", "main"}, {"task-alice", "alice"}, {"task-bob", "bob"}};
  IpcView view_;
};

TEST_F(IpcAuthorize, NonMainGroupMayMessageItsOwnChats) {
  EXPECT_TRUE(check(alice_, message_to("http:alice")).ok());
  EXPECT_TRUE(check(alice_, message_to("email:alice@example.org")).ok());
}

TEST_F(IpcAuthorize, NonMainGroupCannotMessageAnotherGroupsChat) {
  auto error = refusal(check(alice_, message_to("http:bob")));
  EXPECT_THAT(error, HasSubstr("group 'alice'"));
  EXPECT_THAT(error, HasSubstr("message"));
  EXPECT_THAT(error, HasSubstr("belongs to another group"));
  EXPECT_THAT(error, Not(HasSubstr("'bob'")));  // does not tell which group owns it
  refusal(check(alice_, message_to("http:main-chat")));
}

TEST_F(IpcAuthorize, NoGroupCanMessageAnUnregisteredChat) {
  EXPECT_THAT(refusal(check(alice_, message_to("http:nobody"))), HasSubstr("not registered"));
  auto error = refusal(check(main_, message_to("http:nobody")));
  EXPECT_THAT(error, HasSubstr("group 'main'"));
  EXPECT_THAT(error, HasSubstr("'http:nobody' is not registered"));
}

TEST_F(IpcAuthorize, MainGroupMayMessageAnyRegisteredChat) {
  EXPECT_TRUE(check(main_, message_to("http:main-chat")).ok());
  EXPECT_TRUE(check(main_, message_to("http:alice")).ok());
  EXPECT_TRUE(check(main_, message_to("http:bob")).ok());
}

TEST_F(IpcAuthorize, NonMainGroupMayScheduleForItselfWithOrWithoutTarget) {
  EXPECT_TRUE(check(alice_, schedule_for(std::nullopt)).ok());
  EXPECT_TRUE(check(alice_, schedule_for("http:alice")).ok());
}

TEST_F(IpcAuthorize, NonMainGroupCannotScheduleForAnotherGroup) {
  auto error = refusal(check(alice_, schedule_for("http:bob")));
  EXPECT_THAT(error, HasSubstr("group 'alice'"));
  EXPECT_THAT(error, HasSubstr("schedule_task"));
  EXPECT_THAT(error, HasSubstr("belongs to another group"));
}

TEST_F(IpcAuthorize, NoGroupCanScheduleForAnUnregisteredChat) {
  EXPECT_THAT(refusal(check(alice_, schedule_for("http:nobody"))), HasSubstr("not registered"));
  EXPECT_THAT(refusal(check(main_, schedule_for("http:nobody"))), HasSubstr("not registered"));
}

TEST_F(IpcAuthorize, MainGroupMayScheduleForAnyGroup) {
  EXPECT_TRUE(check(main_, schedule_for(std::nullopt)).ok());
  EXPECT_TRUE(check(main_, schedule_for("http:main-chat")).ok());
  EXPECT_TRUE(check(main_, schedule_for("http:bob")).ok());
}

TEST_F(IpcAuthorize, NonMainGroupMayManageOnlyItsOwnTasks) {
  for (TaskAction action : {TaskAction::pause, TaskAction::resume, TaskAction::cancel}) {
    EXPECT_TRUE(check(alice_, action_on(action, "task-alice")).ok());
    auto error = refusal(check(alice_, action_on(action, "task-bob")));
    EXPECT_THAT(error, HasSubstr("group 'alice'"));
    EXPECT_THAT(error, HasSubstr(std::string(request_type(action_on(action, "x")))));
    EXPECT_THAT(error, HasSubstr("belongs to another group"));
    refusal(check(alice_, action_on(action, "task-main")));
  }
}

TEST_F(IpcAuthorize, NoGroupCanManageATaskThatDoesNotExist) {
  EXPECT_THAT(refusal(check(alice_, action_on(TaskAction::cancel, "task-gone"))),
              HasSubstr("there is no task 'task-gone'"));
  EXPECT_THAT(refusal(check(main_, action_on(TaskAction::pause, "task-gone"))),
              HasSubstr("there is no task 'task-gone'"));
}

TEST_F(IpcAuthorize, MainGroupMayManageAnyGroupsTasks) {
  for (TaskAction action : {TaskAction::pause, TaskAction::resume, TaskAction::cancel}) {
    EXPECT_TRUE(check(main_, action_on(action, "task-main")).ok());
    EXPECT_TRUE(check(main_, action_on(action, "task-alice")).ok());
    EXPECT_TRUE(check(main_, action_on(action, "task-bob")).ok());
  }
}

TEST_F(IpcAuthorize, OnlyMainMayRegisterGroups) {
  EXPECT_TRUE(check(main_, register_group()).ok());
  auto error = refusal(check(alice_, register_group()));
  EXPECT_THAT(error, HasSubstr("group 'alice'"));
  EXPECT_THAT(error, HasSubstr("register_group"));
  EXPECT_THAT(error, HasSubstr("only the main group"));
}

TEST_F(IpcAuthorize, OnlyMainMayRefreshGroups) {
  EXPECT_TRUE(check(main_, RefreshGroupsRequest{}).ok());
  auto error = refusal(check(alice_, RefreshGroupsRequest{}));
  EXPECT_THAT(error, HasSubstr("refresh_groups"));
  EXPECT_THAT(error, HasSubstr("only the main group"));
}

TEST_F(IpcAuthorize, AGroupNamedLikeMainIsNotMainUnlessTheSourceSaysSo) {
  const IpcSource impostor{"main", false};
  refusal(check(impostor, register_group()));
  EXPECT_TRUE(check(impostor, message_to("http:main-chat")).ok());
  refusal(check(impostor, message_to("http:bob")));
}

}  // namespace
}  // namespace sb::host

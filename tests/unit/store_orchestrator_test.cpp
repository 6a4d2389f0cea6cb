// The store methods the orchestrator uses: pending messages, groups, sessions, scheduled tasks,
// the outbox and token usage, and the migration that added them (schema version 2).

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/time.h"
#include "store/migrations.h"
#include "store/sqlite_store.h"
#include "store/store.h"
#include "support/raw_db.h"
#include "support/temp_dir.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

using test::RawDb;
using test::TempDir;

// Runs `call` and returns the std::invalid_argument's message, or "" if it did not throw one.
std::string invalid_argument_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class OrchestratorStoreTest : public ::testing::Test {
 protected:
  fs::path file() const { return dir_.path() / "switchboard.db"; }
  Store& store() {
    if (!store_) store_ = open_sqlite_store(file());
    return *store_;
  }

  Seq add(std::string chat, std::string content = "m", bool from_assistant = false,
          MessageStatus status = MessageStatus::unread, std::optional<std::string> at = {}) {
    NewMessage m;
    m.source = "test";
    m.chat = std::move(chat);
    m.content = std::move(content);
    m.from_assistant = from_assistant;
    m.status = status;
    m.timestamp = std::move(at);
    return store().add_message(m).message.id;
  }

  GroupRecord group(std::string folder, std::vector<std::string> chats, bool is_main = false) {
    GroupRecord g;
    g.folder = folder;
    g.name = "Group " + folder;
    g.chats = std::move(chats);
    g.is_main = is_main;
    return g;
  }

  TaskRecord task(std::string id, std::string folder = "team",
                  std::optional<std::string> next_run = "2026-05-01T10:00:00.000Z") {
    TaskRecord t;
    t.id = std::move(id);
    t.group_folder = std::move(folder);
    t.chat_jid = "http:alice";
    t.prompt = "summarise the day";
    t.schedule_type = "cron";
    t.schedule_value = "0 9 * * *";
    t.next_run = std::move(next_run);
    return t;
  }

  OutboxItem outbox_item(std::string key, std::string chat = "http:alice") {
    OutboxItem item;
    item.idempotency_key = std::move(key);
    item.chat_jid = std::move(chat);
    item.kind = "text";
    item.payload_json = R"({"text":"hello"})";
    return item;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

// The ids of messages, tasks or outbox items, in order.
template <typename Record>
auto ids_of(const std::vector<Record>& records) {
  std::vector<decltype(Record::id)> ids;
  for (const auto& record : records) ids.push_back(record.id);
  return ids;
}

// ---- Migration ----

TEST_F(OrchestratorStoreTest, AVersion1DatabaseUpgradesToTheLatestWithItsDataIntact) {
  ASSERT_EQ(sqlite_migrations().front().version, 1);
  {
    RawDb v1(file());
    v1.exec("BEGIN");
    v1.exec(std::string(sqlite_migrations().front().sql));
    v1.exec("PRAGMA user_version = 1");
    v1.exec(
        "INSERT INTO chats (jid, channel, address, created_at, last_message_at) VALUES "
        "('http:alice', 'http', 'alice', '2026-01-01T00:00:00.000Z', "
        "'2026-01-01T00:00:00.000Z');"
        "INSERT INTO messages (chat_id, source, content, timestamp, stored_at) VALUES "
        "(1, 'http', 'from version 1', '2026-01-01T00:00:00.000Z', "
        "'2026-01-01T00:00:00.000Z');"
        "INSERT INTO groups (folder, name, trigger, is_main, agent_config, created_at, "
        "updated_at) VALUES ('main', 'Main', '@bot', 1, '{\"model\":\"m\"}', "
        "'2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z');"
        "INSERT INTO group_chats (chat_jid, group_folder) VALUES ('http:alice', 'main');"
        "INSERT INTO sessions VALUES ('main', 'session-1', '2026-01-01T00:00:00.000Z');"
        "INSERT INTO scheduled_tasks (id, group_folder, chat_jid, prompt, schedule_type, "
        "schedule_value, next_run, created_at) VALUES ('t1', 'main', 'http:alice', 'p', "
        "'interval', '3600000', '2026-01-01T01:00:00.000Z', '2026-01-01T00:00:00.000Z');"
        "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result) VALUES "
        "('t1', '2026-01-01T00:30:00.000Z', 12, 'success', 'done');"
        "INSERT INTO outbox (idempotency_key, chat_jid, channel, kind, payload, created_at, "
        "updated_at) VALUES ('k1', 'http:alice', 'http', 'text', '{}', "
        "'2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');"
        "INSERT INTO cursors VALUES ('group:main', '1', '2026-01-01T00:00:00.000Z');");
    v1.exec("COMMIT");
  }

  EXPECT_EQ(store().schema_version(), sqlite_schema_version());
  EXPECT_EQ(sqlite_schema_version(), 3);
  EXPECT_EQ(store().message(1)->content, "from version 1");
  EXPECT_EQ(store().counts().total, 1);
  EXPECT_EQ(store().latest_seq(), 1);
  const auto main = store().group("main");
  ASSERT_TRUE(main);
  EXPECT_EQ(main->trigger, "@bot");
  EXPECT_TRUE(main->is_main);
  EXPECT_EQ(main->agent_config_json, R"({"model":"m"})");
  EXPECT_EQ(main->chats, (std::vector<std::string>{"http:alice"}));
  EXPECT_EQ(main->created_at, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(store().group_of_chat("http:alice"), "main");
  EXPECT_EQ(store().session("main"), "session-1");
  ASSERT_TRUE(store().task("t1"));
  EXPECT_EQ(store().task("t1")->schedule_type, "interval");
  ASSERT_EQ(store().task_runs("t1", 10).size(), 1u);
  EXPECT_EQ(store().task_runs("t1", 10)[0].result, "done");
  ASSERT_TRUE(store().outbox_item(1));
  EXPECT_EQ(store().outbox_item(1)->idempotency_key, "k1");
  EXPECT_EQ(store().cursor("group:main"), "1");

  // What version 2 added works on the upgraded file.
  store().add_usage({.group_folder = "main", .run_id = "r1", .input_tokens = 3});
  EXPECT_EQ(store().usage_since("main", "").input_tokens, 3);
  EXPECT_NE(invalid_argument_of([&] { store().put_group(group("other", {"http:alice"})); }), "");
  RawDb raw(file());
  EXPECT_EQ(raw.scalar("PRAGMA user_version"), "3");
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM sqlite_master WHERE name IN "
                       "('group_chats_one_group', 'token_usage_by_group', 'token_usage_by_run')"),
            "3");
}

TEST_F(OrchestratorStoreTest, TheSchemaItselfRefusesAChatInTwoGroupsAndTwoMainGroups) {
  store().put_group(group("a", {"http:alice"}, true));
  store().put_group(group("b", {}));
  RawDb raw(file());  // another writer that skips the store's checks
  EXPECT_THROW(raw.exec("INSERT INTO group_chats VALUES ('http:alice', 'b')"), std::runtime_error);
  EXPECT_THROW(raw.exec("UPDATE groups SET is_main = 1 WHERE folder = 'b'"), std::runtime_error);
}

// ---- Messages ----

TEST_F(OrchestratorStoreTest, LatestSeqIsZeroWhenEmptyAndTheHighestIdOtherwise) {
  EXPECT_EQ(store().latest_seq(), 0);
  add("http:a");
  const Seq last = add("http:b");
  EXPECT_EQ(store().latest_seq(), last);
}

TEST_F(OrchestratorStoreTest, PendingMessagesOfSeveralChatsComeOldestFirstInOneList) {
  const Seq a1 = add("http:a");
  const Seq b1 = add("http:b");
  add("http:c");
  add("http:a", "the agent's reply", true);
  add("http:b", "from a sender who may not command", false, MessageStatus::filtered);
  const Seq b2 = add("http:b", "already read in the UI", false, MessageStatus::read);
  const Seq a2 = add("http:a", "processing", false, MessageStatus::processing);
  NewMessage no_chat;
  no_chat.source = "system";
  no_chat.content = "no chat";
  store().add_message(no_chat);

  const std::vector<std::string> ab = {"http:a", "http:b"};
  EXPECT_EQ(ids_of(store().pending_messages(ab, 0, 100)), (std::vector<Seq>{a1, b1, b2, a2}));
  EXPECT_EQ(ids_of(store().pending_messages(ab, b1, 100)), (std::vector<Seq>{b2, a2}));
  EXPECT_EQ(ids_of(store().pending_messages(ab, 0, 2)), (std::vector<Seq>{a1, b1}));
  EXPECT_TRUE(store().pending_messages(ab, a2, 100).empty());
  EXPECT_TRUE(store().pending_messages(ab, 0, 0).empty());
  EXPECT_TRUE(store().pending_messages({}, 0, 100).empty());
  const std::vector<std::string> unknown = {"http:nobody", "email:\"quoted\"@example.org"};
  EXPECT_TRUE(store().pending_messages(unknown, 0, 100).empty());
  const std::vector<std::string> only_b = {"http:b"};
  const auto messages = store().pending_messages(only_b, 0, 100);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].chat, "http:b");
  EXPECT_EQ(messages[1].content, "already read in the UI");
}

TEST_F(OrchestratorStoreTest, ChatsAreListedMostRecentlyActiveFirst) {
  add("http:old", "m", false, MessageStatus::unread, "2026-01-01T00:00:00Z");
  add("email:bob@example.org", "m", false, MessageStatus::unread, "2026-03-01T00:00:00Z");
  add("http:middle", "m", false, MessageStatus::unread, "2026-02-01T00:00:00Z");
  const auto chats = store().chats(10);
  ASSERT_EQ(chats.size(), 3u);
  EXPECT_EQ(chats[0].jid, "email:bob@example.org");
  EXPECT_EQ(chats[0].channel, "email");
  EXPECT_EQ(chats[0].name, std::nullopt);
  EXPECT_EQ(chats[0].last_message_at, "2026-03-01T00:00:00.000Z");
  EXPECT_EQ(chats[1].jid, "http:middle");
  EXPECT_EQ(chats[2].jid, "http:old");
  EXPECT_EQ(store().chats(1).size(), 1u);
  EXPECT_TRUE(store().chats(0).empty());
}

// ---- Groups ----

TEST_F(OrchestratorStoreTest, PutGroupStoresEveryFieldAndUpdatesByFolder) {
  GroupRecord in = group("team", {"http:alice", "email:bob@example.org"});
  in.trigger = "@andy";
  in.requires_trigger = false;
  in.agent_config_json = R"({"timeout_ms":60000})";
  in.created_at = "ignored";
  store().put_group(in);
  const auto stored = store().group("team");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->name, "Group team");
  EXPECT_EQ(stored->chats, in.chats);
  EXPECT_EQ(stored->trigger, "@andy");
  EXPECT_FALSE(stored->requires_trigger);
  EXPECT_FALSE(stored->is_main);
  EXPECT_EQ(stored->agent_config_json, in.agent_config_json);
  EXPECT_TRUE(parse_iso8601(stored->created_at));
  EXPECT_EQ(stored->updated_at, stored->created_at);

  GroupRecord changed = group("team", {"http:carol", "http:alice"});
  changed.name = "Renamed";
  store().put_group(changed);
  const auto updated = store().group("team");
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->name, "Renamed");
  EXPECT_EQ(updated->trigger, std::nullopt);
  EXPECT_TRUE(updated->requires_trigger);
  EXPECT_EQ(updated->agent_config_json, "{}");
  EXPECT_EQ(updated->chats, (std::vector<std::string>{"http:carol", "http:alice"}));
  EXPECT_EQ(updated->created_at, stored->created_at);
  EXPECT_GE(updated->updated_at, stored->updated_at);
  EXPECT_EQ(store().group_of_chat("http:carol"), "team");
  EXPECT_EQ(store().group_of_chat("email:bob@example.org"), std::nullopt);  // unbound
  EXPECT_EQ(store().group("nope"), std::nullopt);
}

TEST_F(OrchestratorStoreTest, GroupsAreListedByFolderWithTheirChats) {
  store().put_group(group("zeta", {"http:z"}));
  store().put_group(group("alpha", {"http:a1", "http:a2"}));
  store().put_group(group("mid", {}));
  const auto groups = store().groups();
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].folder, "alpha");
  EXPECT_EQ(groups[0].chats, (std::vector<std::string>{"http:a1", "http:a2"}));
  EXPECT_EQ(groups[1].folder, "mid");
  EXPECT_TRUE(groups[1].chats.empty());
  EXPECT_EQ(groups[2].folder, "zeta");
  EXPECT_EQ(groups[2].chats, (std::vector<std::string>{"http:z"}));
}

TEST_F(OrchestratorStoreTest, AChatBoundToAnotherGroupIsRefusedAndNothingChanges) {
  store().put_group(group("team", {"http:alice"}));
  const std::string error = invalid_argument_of([&] {
    store().put_group(group("other", {"http:bob", "http:alice"}));
  });
  EXPECT_TRUE(contains(error, "http:alice")) << error;
  EXPECT_TRUE(contains(error, "team")) << error;
  EXPECT_EQ(store().group("other"), std::nullopt);
  EXPECT_EQ(store().group_of_chat("http:bob"), std::nullopt);
  EXPECT_EQ(store().group_of_chat("http:alice"), "team");

  // Once unbound from its group, the chat can move.
  store().put_group(group("team", {}));
  store().put_group(group("other", {"http:alice"}));
  EXPECT_EQ(store().group_of_chat("http:alice"), "other");
}

TEST_F(OrchestratorStoreTest, OnlyOneGroupCanBeMain) {
  store().put_group(group("main", {}, true));
  const std::string error =
      invalid_argument_of([&] { store().put_group(group("second", {}, true)); });
  EXPECT_TRUE(contains(error, "main")) << error;
  EXPECT_TRUE(contains(error, "second")) << error;
  EXPECT_EQ(store().group("second"), std::nullopt);

  store().put_group(group("main", {"http:admin"}, true));  // the main group itself may change
  store().put_group(group("main", {}, false));
  store().put_group(group("second", {}, true));
  EXPECT_TRUE(store().group("second")->is_main);
}

TEST_F(OrchestratorStoreTest, InvalidGroupsAreRefused) {
  GroupRecord not_object = group("team", {});
  not_object.agent_config_json = "[1]";
  EXPECT_TRUE(
      contains(invalid_argument_of([&] { store().put_group(not_object); }), "agent config"));
  not_object.agent_config_json = "{";
  EXPECT_TRUE(
      contains(invalid_argument_of([&] { store().put_group(not_object); }), "agent config"));
  EXPECT_TRUE(
      contains(invalid_argument_of([&] { store().put_group(group("team", {"alice"})); }), "alice"));
  EXPECT_NE(invalid_argument_of([&] { store().put_group(group("", {})); }), "");
  GroupRecord nameless = group("team", {});
  nameless.name.clear();
  EXPECT_NE(invalid_argument_of([&] { store().put_group(nameless); }), "");
  EXPECT_TRUE(store().groups().empty());
}

TEST_F(OrchestratorStoreTest, ADuplicateChatInOneGroupIsStoredOnce) {
  store().put_group(group("team", {"http:alice", "http:bob", "http:alice"}));
  EXPECT_EQ(store().group("team")->chats, (std::vector<std::string>{"http:alice", "http:bob"}));
}

TEST_F(OrchestratorStoreTest, RemoveGroupTakesItsChatsSessionTasksAndRunLogs) {
  store().put_group(group("team", {"http:alice"}));
  store().put_group(group("other", {"http:bob"}));
  store().set_session("team", "s-team");
  store().set_session("other", "s-other");
  store().add_task(task("t-team", "team"));
  store().add_task(task("t-other", "other"));
  store().record_task_run(
      {.task_id = "t-team", .run_at = "2026-05-01T10:00:00.000Z", .status = "success"},
      std::nullopt, TaskStatus::active);
  store().record_task_run(
      {.task_id = "t-other", .run_at = "2026-05-01T10:00:00.000Z", .status = "success"},
      std::nullopt, TaskStatus::active);
  store().set_cursor("group:team", "5");

  EXPECT_TRUE(store().remove_group("team"));
  EXPECT_EQ(store().group("team"), std::nullopt);
  EXPECT_EQ(store().group_of_chat("http:alice"), std::nullopt);
  EXPECT_EQ(store().session("team"), std::nullopt);
  EXPECT_EQ(store().task("t-team"), std::nullopt);
  RawDb raw(file());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM task_run_logs WHERE task_id = 't-team'"), "0");
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM group_chats WHERE group_folder = 'team'"), "0");

  EXPECT_EQ(store().group_of_chat("http:bob"), "other");
  EXPECT_EQ(store().session("other"), "s-other");
  EXPECT_EQ(store().task_runs("t-other", 10).size(), 1u);
  EXPECT_EQ(store().cursor("group:team"), "5");
  EXPECT_FALSE(store().remove_group("team"));
  store().put_group(group("elsewhere", {"http:alice"}));  // the chat is free again
}

TEST_F(OrchestratorStoreTest, AConflictInsideABatchRollsBackOnlyThatOp) {
  store().put_group(group("team", {"http:alice"}));
  const std::vector<std::function<void()>> ops = {
      [&] { store().put_group(group("other", {"http:alice"})); },
      [&] { store().put_group(group("third", {"http:carol"})); },
  };
  std::vector<std::exception_ptr> errors(ops.size());
  store().atomically(ops, errors);
  ASSERT_NE(errors[0], nullptr);
  EXPECT_THROW(std::rethrow_exception(errors[0]), std::invalid_argument);
  EXPECT_EQ(errors[1], nullptr);
  EXPECT_EQ(store().group("other"), std::nullopt);
  EXPECT_EQ(store().group_of_chat("http:carol"), "third");
}

// ---- Sessions ----

TEST_F(OrchestratorStoreTest, SessionsAreSetReplacedAndCleared) {
  EXPECT_EQ(store().session("team"), std::nullopt);
  store().set_session("team", "s1");
  store().set_session("other", "o1");
  store().set_session("team", "s2");
  EXPECT_EQ(store().session("team"), "s2");
  store().clear_session("team");
  EXPECT_EQ(store().session("team"), std::nullopt);
  EXPECT_EQ(store().session("other"), "o1");
  store().clear_session("never-had-one");
}

// ---- Scheduled tasks ----

TEST_F(OrchestratorStoreTest, AddTaskStoresEveryFieldAndRefusesADuplicateId) {
  TaskRecord in = task("t1");
  in.context_mode = ContextMode::group;
  in.status = TaskStatus::paused;
  in.last_run = "2026-04-30T10:00:00.000Z";
  in.last_result = "earlier";
  in.created_at = "2026-04-01T00:00:00.000Z";
  store().add_task(in);
  const auto t = store().task("t1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->group_folder, "team");
  EXPECT_EQ(t->chat_jid, "http:alice");
  EXPECT_EQ(t->prompt, in.prompt);
  EXPECT_EQ(t->schedule_type, "cron");
  EXPECT_EQ(t->schedule_value, "0 9 * * *");
  EXPECT_EQ(t->context_mode, ContextMode::group);
  EXPECT_EQ(t->status, TaskStatus::paused);
  EXPECT_EQ(t->next_run, in.next_run);
  EXPECT_EQ(t->last_run, in.last_run);
  EXPECT_EQ(t->last_result, "earlier");
  EXPECT_EQ(t->created_at, "2026-04-01T00:00:00.000Z");

  TaskRecord again = task("t1");
  again.prompt = "a different prompt";
  EXPECT_TRUE(contains(invalid_argument_of([&] { store().add_task(again); }), "t1"));
  EXPECT_EQ(store().task("t1")->prompt, in.prompt);
  EXPECT_EQ(store().task("nope"), std::nullopt);
}

TEST_F(OrchestratorStoreTest, AddTaskSetsCreatedAtAndRefusesAnUnknownScheduleType) {
  store().add_task(task("t1", "team", std::nullopt));
  const auto t = store().task("t1");
  ASSERT_TRUE(t);
  EXPECT_TRUE(parse_iso8601(t->created_at));
  EXPECT_EQ(t->next_run, std::nullopt);
  EXPECT_EQ(t->context_mode, ContextMode::isolated);
  EXPECT_EQ(t->status, TaskStatus::active);

  TaskRecord weekly = task("t2");
  weekly.schedule_type = "weekly";
  EXPECT_TRUE(contains(invalid_argument_of([&] { store().add_task(weekly); }), "weekly"));
  EXPECT_NE(invalid_argument_of([&] { store().add_task(task("")); }), "");
  EXPECT_EQ(store().tasks(std::nullopt).size(), 1u);
}

TEST_F(OrchestratorStoreTest, TasksAreListedInCreationOrderForAllOrOneGroup) {
  TaskRecord late = task("a-late", "team");
  late.created_at = "2026-05-03T00:00:00.000Z";
  TaskRecord early = task("z-early", "other");
  early.created_at = "2026-05-01T00:00:00.000Z";
  TaskRecord middle = task("m-middle", "team");
  middle.created_at = "2026-05-02T00:00:00.000Z";
  for (const auto& t : {late, early, middle}) store().add_task(t);
  using Ids = std::vector<std::string>;
  EXPECT_EQ(ids_of(store().tasks(std::nullopt)), (Ids{"z-early", "m-middle", "a-late"}));
  EXPECT_EQ(ids_of(store().tasks("team")), (Ids{"m-middle", "a-late"}));
  EXPECT_TRUE(store().tasks("nobody").empty());
}

TEST_F(OrchestratorStoreTest, DueTasksAreActiveOnesUpToNowEarliestFirst) {
  store().add_task(task("later", "team", "2026-05-01T10:00:02.000Z"));
  store().add_task(task("earliest", "team", "2026-05-01T09:00:00.000Z"));
  store().add_task(task("exactly-now", "team", "2026-05-01T10:00:00.000Z"));
  store().add_task(task("future", "team", "2026-05-01T10:00:00.001Z"));
  store().add_task(task("no-next-run", "team", std::nullopt));
  TaskRecord paused = task("paused", "team", "2026-05-01T08:00:00.000Z");
  paused.status = TaskStatus::paused;
  store().add_task(paused);

  using Ids = std::vector<std::string>;
  EXPECT_EQ(ids_of(store().due_tasks("2026-05-01T10:00:00.000Z", 10)),
            (Ids{"earliest", "exactly-now"}));
  EXPECT_EQ(ids_of(store().due_tasks("2026-05-02T00:00:00.000Z", 2)),
            (Ids{"earliest", "exactly-now"}));
  EXPECT_TRUE(store().due_tasks("2026-05-01T08:59:59.999Z", 10).empty());
  EXPECT_TRUE(store().due_tasks("2026-05-02T00:00:00.000Z", 0).empty());
}

TEST_F(OrchestratorStoreTest, NextTaskDueIsTheEarliestNextRunOfAnActiveTask) {
  EXPECT_EQ(store().next_task_due(), std::nullopt);
  store().add_task(task("none", "team", std::nullopt));
  EXPECT_EQ(store().next_task_due(), std::nullopt);
  TaskRecord paused = task("paused", "team", "2026-05-01T08:00:00.000Z");
  paused.status = TaskStatus::paused;
  store().add_task(paused);
  store().add_task(task("b", "team", "2026-05-01T12:00:00.000Z"));
  store().add_task(task("a", "team", "2026-05-01T11:00:00.000Z"));
  EXPECT_EQ(store().next_task_due(), "2026-05-01T11:00:00.000Z");
  store().set_task_status("a", TaskStatus::cancelled);
  EXPECT_EQ(store().next_task_due(), "2026-05-01T12:00:00.000Z");
}

TEST_F(OrchestratorStoreTest, SetTaskStatusAndNextRunChangeOneTaskOrReportItMissing) {
  store().add_task(task("t1"));
  store().add_task(task("t2"));
  EXPECT_TRUE(store().set_task_status("t1", TaskStatus::paused));
  EXPECT_EQ(store().task("t1")->status, TaskStatus::paused);
  EXPECT_EQ(store().task("t2")->status, TaskStatus::active);
  EXPECT_FALSE(store().set_task_status("nope", TaskStatus::paused));

  EXPECT_TRUE(store().set_task_next_run("t1", "2026-06-01T00:00:00.000Z"));
  EXPECT_EQ(store().task("t1")->next_run, "2026-06-01T00:00:00.000Z");
  EXPECT_TRUE(store().set_task_next_run("t1", std::nullopt));
  EXPECT_EQ(store().task("t1")->next_run, std::nullopt);
  EXPECT_EQ(store().task("t2")->next_run, "2026-05-01T10:00:00.000Z");
  EXPECT_FALSE(store().set_task_next_run("nope", std::nullopt));
}

TEST_F(OrchestratorStoreTest, RecordTaskRunLogsTheRunAndUpdatesTheTask) {
  store().add_task(task("t1"));
  store().record_task_run({.task_id = "t1",
                           .run_at = "2026-05-01T10:00:00.000Z",
                           .duration_ms = 1500,
                           .status = "success",
                           .result = "all good"},
                          "2026-05-02T10:00:00.000Z", TaskStatus::active);
  auto t = store().task("t1");
  EXPECT_EQ(t->last_run, "2026-05-01T10:00:00.000Z");
  EXPECT_EQ(t->last_result, "all good");
  EXPECT_EQ(t->next_run, "2026-05-02T10:00:00.000Z");
  EXPECT_EQ(t->status, TaskStatus::active);

  store().record_task_run({.task_id = "t1",
                           .run_at = "2026-05-02T10:00:00.000Z",
                           .duration_ms = 20,
                           .status = "error",
                           .result = "partial",
                           .error = "agent timed out"},
                          std::nullopt, TaskStatus::completed);
  t = store().task("t1");
  EXPECT_EQ(t->last_result, "agent timed out");
  EXPECT_EQ(t->next_run, std::nullopt);
  EXPECT_EQ(t->status, TaskStatus::completed);

  const auto runs = store().task_runs("t1", 10);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].run_at, "2026-05-02T10:00:00.000Z");  // newest first
  EXPECT_EQ(runs[0].status, "error");
  EXPECT_EQ(runs[0].duration_ms, 20);
  EXPECT_EQ(runs[0].result, "partial");
  EXPECT_EQ(runs[0].error, "agent timed out");
  EXPECT_GT(runs[0].id, runs[1].id);
  EXPECT_EQ(runs[1].result, "all good");
  EXPECT_EQ(runs[1].error, std::nullopt);
  EXPECT_EQ(store().task_runs("t1", 1).size(), 1u);
  EXPECT_TRUE(store().task_runs("t1", 0).empty());
  EXPECT_TRUE(store().task_runs("nope", 10).empty());
}

TEST_F(OrchestratorStoreTest, RecordTaskRunTruncatesLastResultToWholeCharacters) {
  store().add_task(task("t1"));
  // 1999 ASCII characters, then two-byte characters: the cut falls after the first "é".
  std::string result(1999, 'x');
  for (int i = 0; i < 10; ++i) result += "\xC3\xA9";
  store().record_task_run({.task_id = "t1",
                           .run_at = "2026-05-01T10:00:00.000Z",
                           .status = "success",
                           .result = result},
                          std::nullopt, TaskStatus::active);
  EXPECT_EQ(store().task("t1")->last_result, std::string(1999, 'x') + "\xC3\xA9");
  EXPECT_EQ(store().task_runs("t1", 1)[0].result, result);  // the log keeps it whole

  const std::string exactly(2000, 'y');
  store().record_task_run({.task_id = "t1",
                           .run_at = "2026-05-01T11:00:00.000Z",
                           .status = "success",
                           .result = exactly},
                          std::nullopt, TaskStatus::active);
  EXPECT_EQ(store().task("t1")->last_result, exactly);

  store().record_task_run(
      {.task_id = "t1", .run_at = "2026-05-01T12:00:00.000Z", .status = "success"}, std::nullopt,
      TaskStatus::active);
  EXPECT_EQ(store().task("t1")->last_result, std::nullopt);
}

TEST_F(OrchestratorStoreTest, RecordTaskRunOfADeletedTaskDoesNothing) {
  store().record_task_run(
      {.task_id = "gone", .run_at = "2026-05-01T10:00:00.000Z", .status = "success"}, std::nullopt,
      TaskStatus::active);
  EXPECT_TRUE(store().task_runs("gone", 10).empty());
  EXPECT_EQ(store().task("gone"), std::nullopt);
  store().add_task(task("t1"));
  EXPECT_NE(invalid_argument_of([&] {
              store().record_task_run(
                  {.task_id = "t1", .run_at = "2026-05-01T10:00:00.000Z", .status = "ok"},
                  std::nullopt, TaskStatus::active);
            }),
            "");
  EXPECT_TRUE(store().task_runs("t1", 10).empty());
}

TEST_F(OrchestratorStoreTest, DeleteTaskRemovesItAndItsRunLogs) {
  store().add_task(task("t1"));
  store().add_task(task("t2"));
  for (const char* id : {"t1", "t2"}) {
    store().record_task_run(
        {.task_id = id, .run_at = "2026-05-01T10:00:00.000Z", .status = "success"}, std::nullopt,
        TaskStatus::active);
  }
  EXPECT_TRUE(store().delete_task("t1"));
  EXPECT_FALSE(store().delete_task("t1"));
  EXPECT_EQ(store().task("t1"), std::nullopt);
  EXPECT_EQ(RawDb(file()).scalar("SELECT group_concat(task_id) FROM task_run_logs"), "t2");
}

// ---- Outbox ----

TEST_F(OrchestratorStoreTest, EnqueueIsIdempotentByKey) {
  OutboxItem in = outbox_item("reply:42");
  in.next_attempt_at = "2026-05-01T10:00:00.000Z";
  const auto [first, inserted] = store().enqueue_outbox(in);
  EXPECT_TRUE(inserted);
  EXPECT_GT(first.id, 0);
  EXPECT_EQ(first.channel, "http");  // taken from the chat id
  EXPECT_EQ(first.state, OutboxState::pending);
  EXPECT_EQ(first.attempts, 0);
  EXPECT_EQ(first.next_attempt_at, "2026-05-01T10:00:00.000Z");
  EXPECT_TRUE(parse_iso8601(first.created_at));
  EXPECT_EQ(first.updated_at, first.created_at);
  EXPECT_EQ(first.sent_at, std::nullopt);

  const auto stored = store().outbox_item(first.id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->idempotency_key, "reply:42");
  EXPECT_EQ(stored->chat_jid, "http:alice");
  EXPECT_EQ(stored->channel, "http");
  EXPECT_EQ(stored->kind, "text");
  EXPECT_EQ(stored->payload_json, in.payload_json);
  EXPECT_EQ(stored->created_at, first.created_at);
  EXPECT_EQ(stored->next_attempt_at, first.next_attempt_at);

  store().mark_outbox_sent(first.id);
  OutboxItem again = outbox_item("reply:42", "http:bob");
  again.payload_json = R"({"text":"different"})";
  const auto [existing, inserted_again] = store().enqueue_outbox(again);
  EXPECT_FALSE(inserted_again);
  EXPECT_EQ(existing.id, first.id);
  EXPECT_EQ(existing.chat_jid, "http:alice");
  EXPECT_EQ(existing.payload_json, in.payload_json);
  EXPECT_EQ(existing.state, OutboxState::sent);
  EXPECT_EQ(store().outbox(std::nullopt, std::nullopt, 10).size(), 1u);
  EXPECT_EQ(store().outbox_item(first.id + 1), std::nullopt);
}

TEST_F(OrchestratorStoreTest, EnqueueRefusesInvalidItems) {
  OutboxItem explicit_channel = outbox_item("k0", "email:bob@example.org");
  explicit_channel.channel = "email";
  EXPECT_EQ(store().enqueue_outbox(explicit_channel).first.channel, "email");
  OutboxItem bad = outbox_item("k1", "not-a-chat");
  EXPECT_TRUE(contains(invalid_argument_of([&] { store().enqueue_outbox(bad); }), "not-a-chat"));
  bad = outbox_item("k2");
  bad.payload_json = R"(["text"])";
  EXPECT_TRUE(contains(invalid_argument_of([&] { store().enqueue_outbox(bad); }), "payload"));
  bad = outbox_item("");
  EXPECT_NE(invalid_argument_of([&] { store().enqueue_outbox(bad); }), "");
  bad = outbox_item("k3");
  bad.kind.clear();
  EXPECT_NE(invalid_argument_of([&] { store().enqueue_outbox(bad); }), "");
  EXPECT_EQ(store().outbox(std::nullopt, std::nullopt, 10).size(), 1u);
}

TEST_F(OrchestratorStoreTest, DueOutboxIsPendingItemsDueByNowOldestFirst) {
  const auto now_item = store().enqueue_outbox(outbox_item("now")).first;
  OutboxItem past = outbox_item("past");
  past.next_attempt_at = "2026-05-01T09:00:00.000Z";
  const auto past_item = store().enqueue_outbox(past).first;
  OutboxItem exactly = outbox_item("exactly");
  exactly.next_attempt_at = "2026-05-01T10:00:00.000Z";
  const auto exactly_item = store().enqueue_outbox(exactly).first;
  OutboxItem future = outbox_item("future");
  future.next_attempt_at = "2026-05-01T10:00:00.001Z";
  store().enqueue_outbox(future);
  const auto sending = store().enqueue_outbox(outbox_item("sending")).first;
  store().mark_outbox_sending(sending.id);
  const auto sent = store().enqueue_outbox(outbox_item("sent")).first;
  store().mark_outbox_sent(sent.id);
  const auto failed = store().enqueue_outbox(outbox_item("failed")).first;
  store().mark_outbox_failed(failed.id, "no such user");

  const std::string now = "2026-05-01T10:00:00.000Z";
  using Ids = std::vector<std::int64_t>;
  EXPECT_EQ(ids_of(store().due_outbox(now, 10)), (Ids{now_item.id, past_item.id, exactly_item.id}));
  EXPECT_EQ(ids_of(store().due_outbox(now, 2)), (Ids{now_item.id, past_item.id}));
  EXPECT_TRUE(store().due_outbox(now, 0).empty());
}

TEST_F(OrchestratorStoreTest, NextOutboxDueIsTheEarliestPendingAttemptOrNow) {
  EXPECT_EQ(store().next_outbox_due(), std::nullopt);
  OutboxItem later = outbox_item("later");
  later.next_attempt_at = "2030-01-01T00:00:02.000Z";
  store().enqueue_outbox(later);
  OutboxItem sooner = outbox_item("sooner");
  sooner.next_attempt_at = "2030-01-01T00:00:01.000Z";
  store().enqueue_outbox(sooner);
  const auto sending = store().enqueue_outbox(outbox_item("sending")).first;
  store().mark_outbox_sending(sending.id);  // not pending: no due time
  EXPECT_EQ(store().next_outbox_due(), "2030-01-01T00:00:01.000Z");

  const std::string before = format_iso8601(now_utc());
  store().enqueue_outbox(outbox_item("no-time"));
  const auto due = store().next_outbox_due();
  const std::string after = format_iso8601(now_utc());
  ASSERT_TRUE(due);
  EXPECT_GE(*due, before);
  EXPECT_LE(*due, after);
}

TEST_F(OrchestratorStoreTest, RetriesAndFailuresCountAttempts) {
  const auto item = store().enqueue_outbox(outbox_item("k")).first;
  store().mark_outbox_sending(item.id);
  EXPECT_EQ(store().outbox_item(item.id)->state, OutboxState::sending);
  store().mark_outbox_retry(item.id, "2026-05-01T10:00:05.000Z", "connection refused");
  auto stored = store().outbox_item(item.id);
  EXPECT_EQ(stored->state, OutboxState::pending);
  EXPECT_EQ(stored->attempts, 1);
  EXPECT_EQ(stored->next_attempt_at, "2026-05-01T10:00:05.000Z");
  EXPECT_EQ(stored->last_error, "connection refused");
  EXPECT_GE(stored->updated_at, item.updated_at);

  store().mark_outbox_sending(item.id);
  store().mark_outbox_retry(item.id, "2026-05-01T10:00:15.000Z", "timeout");
  EXPECT_EQ(store().outbox_item(item.id)->attempts, 2);
  store().mark_outbox_sending(item.id);
  store().mark_outbox_failed(item.id, "gave up after 3 attempts");
  stored = store().outbox_item(item.id);
  EXPECT_EQ(stored->state, OutboxState::failed);
  EXPECT_EQ(stored->attempts, 3);
  EXPECT_EQ(stored->last_error, "gave up after 3 attempts");
  EXPECT_EQ(stored->next_attempt_at, std::nullopt);
  EXPECT_EQ(stored->sent_at, std::nullopt);

  const auto other = store().enqueue_outbox(outbox_item("k2")).first;
  store().mark_outbox_retry(other.id, "2026-05-01T10:00:05.000Z", "busy");
  store().mark_outbox_sent(other.id);
  stored = store().outbox_item(other.id);
  EXPECT_EQ(stored->state, OutboxState::sent);
  EXPECT_EQ(stored->attempts, 1);  // a success is not a failed attempt
  ASSERT_TRUE(stored->sent_at);
  EXPECT_TRUE(parse_iso8601(*stored->sent_at));

  // Unknown ids change nothing.
  store().mark_outbox_sending(999);
  store().mark_outbox_sent(999);
  store().mark_outbox_retry(999, "2026-05-01T10:00:05.000Z", "x");
  store().mark_outbox_failed(999, "x");
  EXPECT_EQ(store().outbox(std::nullopt, std::nullopt, 10).size(), 2u);
}

TEST_F(OrchestratorStoreTest, RequeueSendingPutsSendsInterruptedByACrashBackAsDue) {
  OutboxItem delayed = outbox_item("a");
  delayed.next_attempt_at = "2030-01-01T00:00:00.000Z";
  const auto a = store().enqueue_outbox(delayed).first;
  const auto b = store().enqueue_outbox(outbox_item("b")).first;
  const auto c = store().enqueue_outbox(outbox_item("c")).first;
  const auto d = store().enqueue_outbox(outbox_item("d")).first;
  store().mark_outbox_sending(a.id);
  store().mark_outbox_sending(b.id);
  store().mark_outbox_sending(c.id);
  store().mark_outbox_sent(c.id);

  store_.reset();  // the crash
  EXPECT_EQ(store().requeue_sending_outbox(), 2);
  EXPECT_EQ(store().outbox_item(a.id)->state, OutboxState::pending);
  EXPECT_EQ(store().outbox_item(a.id)->attempts, 0);
  EXPECT_EQ(store().outbox_item(b.id)->state, OutboxState::pending);
  EXPECT_EQ(store().outbox_item(c.id)->state, OutboxState::sent);
  using Ids = std::vector<std::int64_t>;
  EXPECT_EQ(ids_of(store().due_outbox("2026-01-01T00:00:00.000Z", 10)), (Ids{a.id, b.id, d.id}));
  EXPECT_EQ(store().requeue_sending_outbox(), 0);
}

TEST_F(OrchestratorStoreTest, OutboxListsNewestFirstByStateAndChat) {
  const auto a1 = store().enqueue_outbox(outbox_item("a1", "http:alice")).first;
  const auto b1 = store().enqueue_outbox(outbox_item("b1", "http:bob")).first;
  const auto a2 = store().enqueue_outbox(outbox_item("a2", "http:alice")).first;
  const auto b2 = store().enqueue_outbox(outbox_item("b2", "http:bob")).first;
  store().mark_outbox_sent(a1.id);
  store().mark_outbox_sent(b2.id);

  using Ids = std::vector<std::int64_t>;
  EXPECT_EQ(ids_of(store().outbox(std::nullopt, std::nullopt, 10)),
            (Ids{b2.id, a2.id, b1.id, a1.id}));
  EXPECT_EQ(ids_of(store().outbox(std::nullopt, std::nullopt, 2)), (Ids{b2.id, a2.id}));
  EXPECT_EQ(ids_of(store().outbox(OutboxState::sent, std::nullopt, 10)), (Ids{b2.id, a1.id}));
  EXPECT_EQ(ids_of(store().outbox(std::nullopt, "http:alice", 10)), (Ids{a2.id, a1.id}));
  EXPECT_EQ(ids_of(store().outbox(OutboxState::pending, "http:bob", 10)), (Ids{b1.id}));
  EXPECT_TRUE(store().outbox(OutboxState::failed, std::nullopt, 10).empty());
  EXPECT_TRUE(store().outbox(std::nullopt, std::nullopt, 0).empty());
}

// ---- Token usage ----

TEST_F(OrchestratorStoreTest, UsageIsSummedPerGroupSinceATime) {
  store().add_usage({"team", "r1", "claude", 100, 10, "2026-05-01T10:00:00.000Z"});
  store().add_usage({"team", "r1", "claude", 200, 20, "2026-05-01T10:00:01.000Z"});
  store().add_usage({"team", "r2", "gpt", 400, 40, "2026-05-02T10:00:00.000Z"});
  store().add_usage({"other", "r3", "", 1000, 100, "2026-05-02T11:00:00.000Z"});

  const auto all = store().usage_since("team", "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(all.input_tokens, 700);
  EXPECT_EQ(all.output_tokens, 70);
  EXPECT_EQ(all.requests, 3);
  const auto recent = store().usage_since("team", "2026-05-01T10:00:01.000Z");  // inclusive
  EXPECT_EQ(recent.input_tokens, 600);
  EXPECT_EQ(recent.requests, 2);
  const auto none = store().usage_since("nobody", "");
  EXPECT_EQ(none.input_tokens, 0);
  EXPECT_EQ(none.output_tokens, 0);
  EXPECT_EQ(none.requests, 0);

  const auto by_group = store().usage_by_group("2026-05-01T10:00:01.000Z");
  ASSERT_EQ(by_group.size(), 2u);
  EXPECT_EQ(by_group[0].first, "other");
  EXPECT_EQ(by_group[0].second.input_tokens, 1000);
  EXPECT_EQ(by_group[0].second.requests, 1);
  EXPECT_EQ(by_group[1].first, "team");
  EXPECT_EQ(by_group[1].second.input_tokens, 600);
  EXPECT_EQ(by_group[1].second.output_tokens, 60);
  EXPECT_EQ(by_group[1].second.requests, 2);
  EXPECT_TRUE(store().usage_by_group("2027-01-01T00:00:00.000Z").empty());
}

TEST_F(OrchestratorStoreTest, UsageByRunListsTheLatestRunsWithTheirTotals) {
  store().add_usage({"team", "r1", "m", 1, 2, "2026-05-01T10:00:00.000Z"});
  store().add_usage({"team", "r1", "m", 3, 4, "2026-05-01T10:00:05.000Z"});
  store().add_usage({"other", "r2", "m", 10, 20, "2026-05-01T11:00:00.000Z"});
  store().add_usage({"team", "r3", "m", 100, 200, "2026-05-01T12:00:00.000Z"});
  store().add_usage({"team", "r3", "m", 100, 200, "2026-05-01T12:00:01.000Z"});

  const auto runs = store().usage_by_run(std::nullopt, 10);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].run_id, "r3");
  EXPECT_EQ(runs[0].group_folder, "team");
  EXPECT_EQ(runs[0].first_at, "2026-05-01T12:00:00.000Z");
  EXPECT_EQ(runs[0].totals.input_tokens, 200);
  EXPECT_EQ(runs[0].totals.output_tokens, 400);
  EXPECT_EQ(runs[0].totals.requests, 2);
  EXPECT_EQ(runs[1].run_id, "r2");
  EXPECT_EQ(runs[1].group_folder, "other");
  EXPECT_EQ(runs[2].run_id, "r1");
  EXPECT_EQ(runs[2].first_at, "2026-05-01T10:00:00.000Z");
  EXPECT_EQ(runs[2].totals.input_tokens, 4);
  EXPECT_EQ(runs[2].totals.output_tokens, 6);

  const auto team = store().usage_by_run("team", 10);
  ASSERT_EQ(team.size(), 2u);
  EXPECT_EQ(team[0].run_id, "r3");
  EXPECT_EQ(team[1].run_id, "r1");
  const auto latest = store().usage_by_run(std::nullopt, 1);
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0].run_id, "r3");
  EXPECT_TRUE(store().usage_by_run("nobody", 10).empty());
  EXPECT_TRUE(store().usage_by_run(std::nullopt, 0).empty());
}

TEST_F(OrchestratorStoreTest, AddUsageStampsTheTimeAndRefusesNonsense) {
  const std::string before = format_iso8601(now_utc());
  store().add_usage({.group_folder = "team", .run_id = "r1", .input_tokens = 5});
  EXPECT_EQ(store().usage_since("team", before).input_tokens, 5);
  EXPECT_EQ(store().usage_by_run("team", 1).at(0).totals.output_tokens, 0);
  EXPECT_NE(invalid_argument_of([&] { store().add_usage({.group_folder = "team"}); }), "");
  EXPECT_NE(invalid_argument_of([&] { store().add_usage({.run_id = "r"}); }), "");
  EXPECT_NE(invalid_argument_of([&] {
              store().add_usage({.group_folder = "team", .run_id = "r", .input_tokens = -1});
            }),
            "");
  EXPECT_EQ(store().usage_since("team", "").requests, 1);
}

// ---- Query plans ----

TEST_F(OrchestratorStoreTest, OrchestratorQueriesUseIndexes) {
  // Enough rows that a scan would be a real choice for the planner.
  std::vector<std::function<void()>> ops;
  for (int i = 0; i < 500; ++i) {
    ops.emplace_back([this, i] {
      add("http:user" + std::to_string(i % 20));
      store().enqueue_outbox(outbox_item("k" + std::to_string(i)));
      store().add_usage(
          {"group" + std::to_string(i % 5), "run" + std::to_string(i / 10), "m", 1, 1, ""});
    });
  }
  std::vector<std::exception_ptr> errors(ops.size());
  store().atomically(ops, errors);
  for (const auto& e : errors) ASSERT_EQ(e, nullptr);

  // The index each query must use; a sort is allowed only where noted.
  const std::map<std::string, std::string> expected = {
      {"pending_messages", "messages_by_chat"},  // sorts the rows found, not the table
      {"chats", "chats_by_activity"},
      {"group_chats", "group_chats_by_folder"},
      {"group_of_chat", "group_chats_one_group"},
      {"due_tasks", "scheduled_tasks_due"},
      {"next_task_due", "scheduled_tasks_due"},
      {"task_runs", "task_run_logs_by_task"},
      {"due_outbox", "outbox_by_state"},
      {"next_outbox_due", "outbox_due"},
      {"outbox_by_state", "outbox_by_state"},
      {"outbox_by_chat", "outbox_by_chat"},
      {"usage_since", "token_usage_by_group"},
      {"usage_by_group", "token_usage_by_time"},
      {"usage_by_run_of_group", "token_usage_by_group"},
      {"usage_by_run", "token_usage_by_time"},
      {"run_totals", "token_usage_by_run"},
  };
  RawDb raw(file());
  ASSERT_EQ(sqlite_named_queries().size(), expected.size());
  for (const auto& [name, sql] : sqlite_named_queries()) {
    const std::string plan = raw.plan(std::string(sql));
    SCOPED_TRACE(std::string(name) + ": " + std::string(sql) + "\n" + plan);
    ASSERT_EQ(expected.count(std::string(name)), 1u);
    EXPECT_TRUE(contains(plan, "INDEX " + expected.at(std::string(name))));
    // A full scan is only acceptable along an index that gives the order and stops at LIMIT.
    for (const char* table : {"messages", "chats", "group_chats", "scheduled_tasks",
                              "task_run_logs", "outbox", "token_usage"}) {
      EXPECT_FALSE(contains(plan, std::string("SCAN ") + table + "\n"));
    }
    const bool sorts = contains(plan, "TEMP B-TREE");
    if (name == "pending_messages") {
      EXPECT_TRUE(contains(plan, "SEARCH m USING INDEX messages_by_chat (chat_id=? AND id>?)"));
    } else if (name == "usage_by_group") {
      EXPECT_TRUE(contains(plan, "SEARCH token_usage USING INDEX token_usage_by_time (at>?)"));
    } else {
      EXPECT_FALSE(sorts);
    }
  }
}

TEST(StoreRecordNames, RoundTripAndRejectUnknownNames) {
  for (auto s :
       {TaskStatus::active, TaskStatus::paused, TaskStatus::completed, TaskStatus::cancelled}) {
    EXPECT_EQ(parse_task_status(to_string(s)), s);
  }
  for (auto m : {ContextMode::group, ContextMode::isolated}) {
    EXPECT_EQ(parse_context_mode(to_string(m)), m);
  }
  for (auto s :
       {OutboxState::pending, OutboxState::sending, OutboxState::sent, OutboxState::failed}) {
    EXPECT_EQ(parse_outbox_state(to_string(s)), s);
  }
  EXPECT_EQ(to_string(TaskStatus::cancelled), "cancelled");
  EXPECT_EQ(to_string(OutboxState::sending), "sending");
  EXPECT_EQ(parse_task_status("Active"), std::nullopt);
  EXPECT_EQ(parse_context_mode(""), std::nullopt);
  EXPECT_EQ(parse_outbox_state("done"), std::nullopt);
}

}  // namespace
}  // namespace sb

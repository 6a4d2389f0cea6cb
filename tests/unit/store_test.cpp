#include "store/store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/message.h"
#include "store/migrations.h"
#include "store/sqlite_store.h"
#include "support/raw_db.h"
#include "support/temp_dir.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

using test::RawDb;
using test::TempDir;

NewMessage text_message(std::string content, std::optional<std::string> chat = std::nullopt) {
  NewMessage m;
  m.source = "test";
  m.chat = std::move(chat);
  m.content = std::move(content);
  return m;
}

std::vector<Seq> ids_of(const std::vector<Message>& messages) {
  std::vector<Seq> ids;
  for (const auto& m : messages) ids.push_back(m.id);
  return ids;
}

class StoreTest : public ::testing::Test {
 protected:
  fs::path file() const { return dir_.path() / "data" / "switchboard.db"; }
  Store& store() {
    if (!store_) store_ = open_sqlite_store(file());
    return *store_;
  }
  void reopen() {
    store_.reset();
    store_ = open_sqlite_store(file());
  }
  Seq add(std::string content, std::optional<std::string> chat = std::nullopt,
          MessageStatus status = MessageStatus::unread) {
    NewMessage m = text_message(std::move(content), std::move(chat));
    m.status = status;
    return store().add_message(m).message.id;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, OpeningCreatesTheDirectoryAndAWalDatabase) {
  store();
  EXPECT_TRUE(fs::exists(file()));
  RawDb raw(file());
  EXPECT_EQ(raw.scalar("PRAGMA journal_mode"), "wal");
}

TEST_F(StoreTest, MigrationsRunOnceAndRecordVersion) {
  EXPECT_EQ(store().schema_version(), sqlite_schema_version());
  add("kept");
  reopen();  // a second run of the migrations would fail on CREATE TABLE
  EXPECT_EQ(store().schema_version(), sqlite_schema_version());
  RawDb raw(file());
  EXPECT_EQ(raw.scalar("PRAGMA user_version"), std::to_string(sqlite_schema_version()));
  const auto tables = raw.rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  for (const char* table :
       {"chats", "messages", "message_stats", "groups", "group_chats", "sessions",
        "scheduled_tasks", "task_run_logs", "outbox", "cursors", "token_usage"}) {
    EXPECT_NE(std::find(tables.begin(), tables.end(), table), tables.end()) << table;
  }
  EXPECT_EQ(store().counts().total, 1);
}

TEST_F(StoreTest, NewerSchemaIsRefused) {
  store();
  store_.reset();
  RawDb(file()).exec("PRAGMA user_version = 999");
  try {
    open_sqlite_store(file());
    FAIL() << "opened a database with a newer schema";
  } catch (const StoreError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(file().string()), std::string::npos) << message;
    EXPECT_NE(message.find("999"), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(sqlite_schema_version())), std::string::npos) << message;
  }
}

TEST_F(StoreTest, AFileThatIsNotADatabaseIsAStoreErrorNamingTheFile) {
  fs::create_directories(file().parent_path());
  std::ofstream(file()) << "this is not a database, just some text that is long enough\n";
  try {
    open_sqlite_store(file());
    FAIL() << "opened a text file";
  } catch (const StoreError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(file().string()), std::string::npos) << message;
    EXPECT_NE(message.find("not a database"), std::string::npos) << message;
  }
}

TEST_F(StoreTest, ConcurrentOpensOfANewDatabaseMigrateOnce) {
  constexpr int kOpeners = 4;
  std::vector<std::thread> threads;
  std::vector<std::string> failures(kOpeners);
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] {
      try {
        auto s = open_sqlite_store(file());
        s->add_message(text_message("from opener " + std::to_string(i)));
      } catch (const std::exception& e) {
        failures[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& failure : failures) EXPECT_EQ(failure, "");
  EXPECT_EQ(store().schema_version(), sqlite_schema_version());
  EXPECT_EQ(store().counts().total, kOpeners);
}

TEST_F(StoreTest, AddReturnsTheStoredMessageWithDefaults) {
  NewMessage in = text_message("hello", "http:alice");
  in.sender = "alice";
  in.subject = "greeting";
  const AddResult added = store().add_message(in);
  ASSERT_TRUE(added.inserted);
  const Message& m = added.message;
  EXPECT_GT(m.id, 0);
  EXPECT_EQ(m.chat, "http:alice");
  EXPECT_EQ(m.sender, "alice");
  EXPECT_EQ(m.sender_name, std::nullopt);
  EXPECT_EQ(m.subject, "greeting");
  EXPECT_EQ(m.content, "hello");
  EXPECT_EQ(m.status, MessageStatus::unread);
  EXPECT_EQ(m.metadata_json, "{}");
  EXPECT_EQ(m.timestamp, m.stored_at);  // no timestamp given: the time of storing
  EXPECT_EQ(m.stored_at.size(), std::string("2026-05-18T10:20:30.123Z").size());
  EXPECT_EQ(m.stored_at.back(), 'Z');

  const auto read_back = store().message(m.id);
  ASSERT_TRUE(read_back);
  EXPECT_EQ(read_back->chat, m.chat);
  EXPECT_EQ(read_back->content, m.content);
  EXPECT_EQ(read_back->timestamp, m.timestamp);
  EXPECT_EQ(read_back->stored_at, m.stored_at);
  EXPECT_EQ(read_back->subject, m.subject);
  EXPECT_EQ(read_back->sender_name, std::nullopt);
}

TEST_F(StoreTest, EveryFieldRoundTrips) {
  NewMessage in =
      text_message(std::string("line one\nline two, \xE2\x9C\x93 and a NUL: \0 end", 39),
                   "email:bob@example.org");
  in.sender = "bob@example.org";
  in.sender_name = "Bob";
  in.subject = "Re: plans";
  in.timestamp = "2026-05-18T12:20:30.5+02:00";
  in.status = MessageStatus::filtered;
  in.from_assistant = true;
  in.metadata_json = R"({"message_id":"<x@y>","n":12345678901234567890123})";
  in.external_id = "email:<x@y>";
  const Seq id = store().add_message(in).message.id;
  const auto m = store().message(id);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->content, in.content);
  EXPECT_EQ(m->chat, in.chat);
  EXPECT_EQ(m->sender, in.sender);
  EXPECT_EQ(m->sender_name, in.sender_name);
  EXPECT_EQ(m->subject, in.subject);
  EXPECT_EQ(m->timestamp, "2026-05-18T10:20:30.500Z");  // normalised to UTC
  EXPECT_EQ(m->status, MessageStatus::filtered);
  EXPECT_TRUE(m->from_assistant);
  EXPECT_EQ(m->metadata_json, in.metadata_json);  // kept as written, big numbers intact
  EXPECT_EQ(m->external_id, in.external_id);
  EXPECT_EQ(store().message_by_external_id("email:<x@y>")->id, id);
  EXPECT_EQ(store().message(id + 1), std::nullopt);
  EXPECT_EQ(store().message_by_external_id("nope"), std::nullopt);
}

TEST_F(StoreTest, InvalidInputIsRejectedAndNothingIsStored) {
  EXPECT_THROW(store().add_message(text_message("x", "no-colon")), std::invalid_argument);
  EXPECT_THROW(store().add_message(text_message("x", "Bad Channel:x")), std::invalid_argument);
  NewMessage bad_metadata = text_message("x");
  bad_metadata.metadata_json = "[1, 2]";
  EXPECT_THROW(store().add_message(bad_metadata), std::invalid_argument);
  bad_metadata.metadata_json = "{\"a\": ";
  EXPECT_THROW(store().add_message(bad_metadata), std::invalid_argument);
  NewMessage bad_time = text_message("x");
  bad_time.timestamp = "2026-02-30T00:00:00Z";
  EXPECT_THROW(store().add_message(bad_time), std::invalid_argument);
  EXPECT_EQ(store().counts().total, 0);
  EXPECT_EQ(RawDb(file()).scalar("SELECT count(*) FROM chats"), "0");
}

TEST_F(StoreTest, IdsGrowMonotonicallyAndAreNeverReused) {
  const Seq a = add("a");
  const Seq b = add("b");
  const Seq c = add("c");
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  RawDb(file()).exec("DELETE FROM messages WHERE id = " + std::to_string(c));
  EXPECT_GT(add("d"), c);
}

TEST_F(StoreTest, ExternalIdMakesAddIdempotent) {
  NewMessage in = text_message("once", "http:alice");
  in.external_id = "import:1";
  const AddResult first = store().add_message(in);
  in.content = "a different body under the same external id";
  const AddResult second = store().add_message(in);
  EXPECT_TRUE(first.inserted);
  EXPECT_FALSE(second.inserted);
  EXPECT_EQ(second.message.id, first.message.id);
  EXPECT_EQ(second.message.content, "once");
  EXPECT_EQ(store().counts().total, 1);
}

TEST_F(StoreTest, ChatsAreCreatedOnceAndTrackTheLatestMessage) {
  NewMessage m = text_message("1", "http:alice");
  m.timestamp = "2026-05-02T00:00:00Z";
  store().add_message(m);
  m.timestamp = "2026-05-03T00:00:00Z";
  store().add_message(m);
  m.timestamp = "2026-05-01T00:00:00Z";  // an old message arriving late
  store().add_message(m);
  store().add_message(text_message("other", "http:bob"));
  RawDb raw(file());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM chats"), "2");
  EXPECT_EQ(raw.scalar("SELECT channel || '|' || address || '|' || last_message_at FROM chats "
                       "WHERE jid = 'http:alice'"),
            "http|alice|2026-05-03T00:00:00.000Z");
}

class StoreQueryTest : public StoreTest {
 protected:
  void SetUp() override {
    // ids 1..10; chat a: 1,3,5,7,9; chat b: 2,4,6,8,10; 4 and 7 are read.
    for (int i = 1; i <= 10; ++i) {
      const bool read = i == 4 || i == 7;
      add("m" + std::to_string(i), i % 2 ? "http:a" : "http:b",
          read ? MessageStatus::read : MessageStatus::unread);
    }
  }
  std::vector<Seq> query(MessageQuery q) { return ids_of(store().messages(q)); }
};

TEST_F(StoreQueryTest, NewestFirstUpToTheLimit) {
  EXPECT_EQ(query({.limit = 3}), (std::vector<Seq>{10, 9, 8}));
  EXPECT_EQ(query({.limit = 100}).size(), 10u);
  EXPECT_TRUE(query({.limit = 0}).empty());
}

TEST_F(StoreQueryTest, AscendingWithSinceAndBefore) {
  EXPECT_EQ(query({.limit = 3, .since = 4, .ascending = true}), (std::vector<Seq>{5, 6, 7}));
  EXPECT_EQ(query({.limit = 50, .since = 4, .before = 7}), (std::vector<Seq>{6, 5}));
  EXPECT_EQ(query({.limit = 2, .before = 4}), (std::vector<Seq>{3, 2}));
  EXPECT_TRUE(query({.limit = 50, .since = 10}).empty());
}

TEST_F(StoreQueryTest, UnreadOnlyFollowsStatus) {
  EXPECT_EQ(query({.limit = 4, .unread_only = true}), (std::vector<Seq>{10, 9, 8, 6}));
  store().set_status(9, MessageStatus::processing);  // still unread: not yet answered
  store().set_status(8, MessageStatus::read);
  store().set_status(10, MessageStatus::filtered);
  store().set_status(4, MessageStatus::replied);
  EXPECT_EQ(query({.limit = 4, .unread_only = true}), (std::vector<Seq>{9, 6, 5, 4}));
}

TEST_F(StoreQueryTest, ByChatIncludingUnknownChats) {
  EXPECT_EQ(query({.limit = 50, .chat = "http:a"}), (std::vector<Seq>{9, 7, 5, 3, 1}));
  EXPECT_TRUE(query({.limit = 50, .chat = "http:nobody"}).empty());
  const auto messages = store().messages({.limit = 1, .chat = "http:b"});
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].chat, "http:b");
}

TEST_F(StoreQueryTest, FiltersCombine) {
  EXPECT_EQ(
      query({.limit = 2, .unread_only = true, .chat = "http:a", .since = 1, .ascending = true}),
      (std::vector<Seq>{3, 5}));
  EXPECT_EQ(query({.limit = 50, .unread_only = true, .chat = "http:b", .before = 8}),
            (std::vector<Seq>{6, 2}));
}

TEST_F(StoreTest, MainQueryShapesUseIndexesAndNeverSort) {
  std::vector<std::function<void()>> ops;
  for (int i = 0; i < 2000; ++i) {
    ops.emplace_back([this, i] {
      add("m", "http:user" + std::to_string(i % 50),
          i % 20 ? MessageStatus::read : MessageStatus::unread);
    });
  }
  std::vector<std::exception_ptr> errors(ops.size());
  store().atomically(ops, errors);
  RawDb raw(file());
  for (int shape = 0; shape < 32; ++shape) {
    MessageQuery q;
    q.unread_only = shape & 1;
    if (shape & 2) q.chat = "http:user1";
    if (shape & 4) q.since = 100;
    if (shape & 8) q.before = 1900;
    q.ascending = shape & 16;
    const std::string sql = sqlite_message_query_sql(q);
    std::string plan;
    for (const auto& line : raw.rows("EXPLAIN QUERY PLAN " + sql, 3)) plan += line + "\n";
    SCOPED_TRACE(sql + "\n" + plan);
    EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos);
    if (q.unread_only || q.chat) {
      EXPECT_NE(plan.find(q.chat ? "INDEX messages_" : "INDEX messages_unread"), std::string::npos);
      EXPECT_EQ(plan.find("SCAN m\n"), std::string::npos);
    } else if (q.since || q.before) {
      EXPECT_NE(plan.find("SEARCH m USING INTEGER PRIMARY KEY"), std::string::npos);
    }
    // Otherwise "SCAN m" is the walk along the rowid, newest (or oldest) first, that stops
    // at the limit.
    EXPECT_EQ(plan.find("SCAN c"), std::string::npos);
    EXPECT_EQ(plan.find("SCAN chats"), std::string::npos);
  }
}

TEST_F(StoreTest, SetStatusReturnsFalseForAnUnknownMessage) {
  const Seq id = add("x");
  EXPECT_TRUE(store().set_status(id, MessageStatus::read));
  EXPECT_EQ(store().message(id)->status, MessageStatus::read);
  EXPECT_FALSE(store().set_status(id + 100, MessageStatus::read));
}

TEST_F(StoreTest, UnreadCountFollowsStatusChanges) {
  const Seq a = add("a");
  const Seq b = add("b");
  add("c", std::nullopt, MessageStatus::read);
  EXPECT_EQ(store().counts().total, 3);
  EXPECT_EQ(store().counts().unread, 2);
  store().set_status(a, MessageStatus::processing);
  EXPECT_EQ(store().counts().unread, 2);
  store().set_status(a, MessageStatus::replied);
  EXPECT_EQ(store().counts().unread, 2);
  store().set_status(a, MessageStatus::read);
  EXPECT_EQ(store().counts().unread, 1);
  store().set_status(b, MessageStatus::filtered);
  EXPECT_EQ(store().counts().unread, 0);
  store().set_status(b, MessageStatus::unread);
  EXPECT_EQ(store().counts().unread, 1);
  EXPECT_EQ(store().counts().total, 3);
}

TEST_F(StoreTest, CountsMatchAFullRecountAfterManyChanges) {
  std::mt19937 random(7);
  std::vector<Seq> ids;
  constexpr MessageStatus kStatuses[] = {MessageStatus::unread, MessageStatus::processing,
                                         MessageStatus::replied, MessageStatus::read,
                                         MessageStatus::filtered};
  for (int i = 0; i < 300; ++i) {
    if (ids.empty() || random() % 3 == 0) {
      ids.push_back(add("m", std::nullopt, kStatuses[random() % 5]));
    } else {
      store().set_status(ids[random() % ids.size()], kStatuses[random() % 5]);
    }
  }
  RawDb raw(file());
  EXPECT_EQ(std::to_string(store().counts().total), raw.scalar("SELECT count(*) FROM messages"));
  EXPECT_EQ(std::to_string(store().counts().unread),
            raw.scalar("SELECT count(*) FROM messages "
                       "WHERE status IN ('unread', 'processing', 'replied')"));
}

TEST_F(StoreTest, CountsStayRightWhenAnotherProcessWrites) {
  add("mine");
  auto other = open_sqlite_store(file());
  other->add_message(text_message("theirs"));
  EXPECT_EQ(store().counts().total, 2);
  RawDb(file()).exec("DELETE FROM messages WHERE content = 'mine'");
  EXPECT_EQ(store().counts().total, 1);
  EXPECT_EQ(store().counts().unread, 1);
}

TEST_F(StoreTest, CursorsRoundTripAndOverwrite) {
  EXPECT_EQ(store().cursor("imap:INBOX"), std::nullopt);
  store().set_cursor("imap:INBOX", "uidvalidity=1;uid=41");
  store().set_cursor("group:main", "17");
  store().set_cursor("imap:INBOX", "uidvalidity=1;uid=42");
  EXPECT_EQ(store().cursor("imap:INBOX"), "uidvalidity=1;uid=42");
  EXPECT_EQ(store().cursor("group:main"), "17");
  reopen();
  EXPECT_EQ(store().cursor("imap:INBOX"), "uidvalidity=1;uid=42");
}

TEST_F(StoreTest, DataSurvivesReopen) {
  const Seq id = add("durable", "http:alice");
  store().set_status(id, MessageStatus::replied);
  reopen();
  const auto m = store().message(id);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->content, "durable");
  EXPECT_EQ(m->chat, "http:alice");
  EXPECT_EQ(m->status, MessageStatus::replied);
  EXPECT_EQ(store().counts().total, 1);
  EXPECT_EQ(store().counts().unread, 1);
  EXPECT_GT(add("next"), id);
}

TEST_F(StoreTest, AtomicallyIsolatesAFailingOp) {
  const std::vector<std::function<void()>> ops = {
      [&] { add("first", "http:a"); },
      [&] {
        add("rolled back", "http:only-in-the-failing-op");
        store().set_cursor("k", "from the failing op");
        throw std::runtime_error("op failed");
      },
      [&] { add("bad chat", "not a chat id"); },
      [&] { store().set_cursor("k", "v"); },
  };
  std::vector<std::exception_ptr> errors(ops.size());
  store().atomically(ops, errors);
  EXPECT_EQ(errors[0], nullptr);
  ASSERT_NE(errors[1], nullptr);
  EXPECT_THROW(std::rethrow_exception(errors[1]), std::runtime_error);
  ASSERT_NE(errors[2], nullptr);
  EXPECT_THROW(std::rethrow_exception(errors[2]), std::invalid_argument);
  EXPECT_EQ(errors[3], nullptr);

  EXPECT_EQ(store().counts().total, 1);
  EXPECT_EQ(store().cursor("k"), "v");
  RawDb raw(file());
  EXPECT_EQ(raw.scalar("SELECT group_concat(jid) FROM chats"), "http:a");
}

TEST_F(StoreTest, AtomicallyCommitsAllOpsAtOnce) {
  auto observer = open_sqlite_store(file());
  std::int64_t seen_mid_batch = -1;
  const std::vector<std::function<void()>> ops = {
      [&] { add("one"); },
      [&] { seen_mid_batch = observer->counts().total; },
      [&] { add("two"); },
  };
  std::vector<std::exception_ptr> errors(ops.size());
  store().atomically(ops, errors);
  for (const auto& e : errors) EXPECT_EQ(e, nullptr);
  EXPECT_EQ(seen_mid_batch, 0);
  EXPECT_EQ(observer->counts().total, 2);
}

TEST_F(StoreTest, AtomicallyFailsEveryOpWhenTheTransactionCannotStart) {
  store_ = open_sqlite_store(file(), {.busy_timeout_ms = 50});
  RawDb other(file());
  other.exec("BEGIN IMMEDIATE");  // another process holds the write lock
  bool ran = false;
  const std::vector<std::function<void()>> ops = {[&] { ran = true; }, [&] { add("x"); }};
  std::vector<std::exception_ptr> errors(ops.size());
  store().atomically(ops, errors);
  other.exec("ROLLBACK");
  EXPECT_FALSE(ran);
  for (const auto& e : errors) {
    ASSERT_NE(e, nullptr);
    try {
      std::rethrow_exception(e);
    } catch (const StoreError& error) {
      EXPECT_NE(std::string(error.what()).find(file().string()), std::string::npos);
      EXPECT_NE(std::string(error.what()).find("locked"), std::string::npos) << error.what();
    }
  }
  EXPECT_EQ(store().counts().total, 0);
}

TEST_F(StoreTest, AtomicallyNeedsOneErrorSlotPerOp) {
  const std::vector<std::function<void()>> ops = {[] {}, [] {}};
  std::vector<std::exception_ptr> errors(1);
  EXPECT_THROW(store().atomically(ops, errors), std::invalid_argument);
}

TEST_F(StoreTest, AWriteBlockedByAnotherProcessIsAStoreErrorNamingTheFile) {
  store_ = open_sqlite_store(file(), {.busy_timeout_ms = 50});
  RawDb other(file());
  other.exec("BEGIN IMMEDIATE");
  try {
    store().set_cursor("k", "v");
    FAIL() << "wrote while another connection held the write lock";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(file().string()), std::string::npos) << e.what();
  }
  other.exec("ROLLBACK");
  store().set_cursor("k", "v");  // the failed attempt left no transaction open
  EXPECT_EQ(store().cursor("k"), "v");
}

TEST(StoreMessageModel, StatusNamesRoundTrip) {
  for (auto status : {MessageStatus::unread, MessageStatus::processing, MessageStatus::replied,
                      MessageStatus::read, MessageStatus::filtered}) {
    EXPECT_EQ(parse_message_status(to_string(status)), status);
  }
  EXPECT_EQ(to_string(MessageStatus::processing), "processing");
  EXPECT_EQ(parse_message_status("Unread"), std::nullopt);
  EXPECT_EQ(parse_message_status(""), std::nullopt);
}

TEST(StoreMessageModel, ChatIdsNeedAChannelAndAnAddress) {
  const auto chat = parse_chat_id("whatsapp-group:120363@g.us");
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->channel, "whatsapp-group");
  EXPECT_EQ(chat->address, "120363@g.us");
  EXPECT_EQ(chat->str(), "whatsapp-group:120363@g.us");
  EXPECT_EQ(parse_chat_id("x:a:b")->address, "a:b");
  EXPECT_TRUE(parse_chat_id("email:Ünïcode@example.org"));
  EXPECT_TRUE(parse_chat_id(std::string(32, 'c') + ":a"));
  EXPECT_TRUE(parse_chat_id("http:" + std::string(512, 'a')));

  for (const std::string& bad : std::vector<std::string>{
           "alice", ":alice", "http:", "HTTP:alice", "ht_tp:alice", "http :alice", "http:a\nb",
           "http:a\x7f", std::string(33, 'c') + ":a", "http:" + std::string(513, 'a')}) {
    EXPECT_EQ(parse_chat_id(bad), std::nullopt) << bad;
  }
}

// Schema v3 rebuilt the messages table (status "failed"): a version-2 database keeps its
// messages, its counts and its id high-water mark.
TEST_F(StoreTest, AVersion2DatabaseMigratesKeepingMessagesCountsAndIds) {
  fs::create_directories(file().parent_path());
  {
    RawDb raw(file());
    for (const SqliteMigration& migration : sqlite_migrations()) {
      if (migration.version > 2) break;
      raw.exec(std::string(migration.sql));
    }
    raw.exec("PRAGMA user_version = 2");
    raw.exec(
        "INSERT INTO chats (jid, channel, address, created_at) VALUES "
        "('http:alice', 'http', 'alice', '2026-01-01T00:00:00.000Z')");
    for (int i = 1; i <= 3; ++i) {
      raw.exec(
          "INSERT INTO messages (chat_id, source, content, timestamp, stored_at, status) "
          "VALUES (1, 'http', 'm" +
          std::to_string(i) + "', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '" +
          (i == 1 ? "read" : "unread") + "')");
    }
    raw.exec("DELETE FROM messages WHERE id = 3");  // the newest gone: id 3 is never reused
  }
  EXPECT_EQ(store().schema_version(), sqlite_schema_version());
  EXPECT_EQ(store().counts().total, 2);
  EXPECT_EQ(store().counts().unread, 1);
  EXPECT_GT(store().add_message(text_message("after the migration")).message.id, 3);
  EXPECT_TRUE(store().set_status(2, MessageStatus::failed));
  EXPECT_EQ(store().message(2)->status, MessageStatus::failed);
  EXPECT_EQ(store().counts().unread, 1) << "failed is not unread; the new one is";
  RawDb raw(file());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM sqlite_master WHERE tbl_name = 'messages' AND "
                       "type IN ('index', 'trigger') AND name NOT LIKE 'sqlite_%'"),
            "6");
}

}  // namespace
}  // namespace sb

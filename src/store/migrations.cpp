#include "store/migrations.h"

#include <array>

namespace sb {

namespace {

// Version 1 holds every table the daemon needs, so later work adds methods, not rework.
// Times are ISO-8601 UTC text ("2026-05-18T10:20:30.123Z"), which sorts in time order.
// A message is "unread" for counts and queries when its status is unread, processing or
// replied; the partial indexes and the message_stats triggers repeat that list, and queries
// must spell it exactly so for SQLite to pick the partial indexes.
constexpr std::string_view kVersion1 = R"sql(
CREATE TABLE chats (
  id INTEGER PRIMARY KEY,
  jid TEXT NOT NULL UNIQUE,          -- "<channel>:<address>"
  channel TEXT NOT NULL,
  address TEXT NOT NULL,
  name TEXT,
  created_at TEXT NOT NULL,
  last_message_at TEXT
);

-- id is the message's sequence number: AUTOINCREMENT so that it only grows and is never
-- reused, even after the newest rows are deleted (cursors rely on it).
CREATE TABLE messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  chat_id INTEGER REFERENCES chats(id),
  source TEXT NOT NULL,
  sender TEXT,
  sender_name TEXT,
  subject TEXT,
  content TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  stored_at TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'unread'
    CHECK (status IN ('unread', 'processing', 'replied', 'read', 'filtered')),
  from_assistant INTEGER NOT NULL DEFAULT 0 CHECK (from_assistant IN (0, 1)),
  metadata TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
  external_id TEXT UNIQUE
);
-- Newest first overall is the rowid order itself. These serve a chat's messages and the
-- unread ones, newest or oldest first, without a sort.
CREATE INDEX messages_by_chat ON messages(chat_id, id);
CREATE INDEX messages_unread ON messages(id)
  WHERE status IN ('unread', 'processing', 'replied');
CREATE INDEX messages_unread_by_chat ON messages(chat_id, id)
  WHERE status IN ('unread', 'processing', 'replied');

-- One row, kept by triggers so counts are O(1) and right whoever writes (the daemon, the
-- import command in another process).
CREATE TABLE message_stats (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  total INTEGER NOT NULL,
  unread INTEGER NOT NULL
);
INSERT INTO message_stats (id, total, unread) VALUES (1, 0, 0);
CREATE TRIGGER message_stats_insert AFTER INSERT ON messages BEGIN
  UPDATE message_stats
     SET total = total + 1,
         unread = unread + (NEW.status IN ('unread', 'processing', 'replied'))
   WHERE id = 1;
END;
CREATE TRIGGER message_stats_delete AFTER DELETE ON messages BEGIN
  UPDATE message_stats
     SET total = total - 1,
         unread = unread - (OLD.status IN ('unread', 'processing', 'replied'))
   WHERE id = 1;
END;
CREATE TRIGGER message_stats_update AFTER UPDATE OF status ON messages
  WHEN (OLD.status IN ('unread', 'processing', 'replied'))
    <> (NEW.status IN ('unread', 'processing', 'replied'))
BEGIN
  UPDATE message_stats
     SET unread = unread + (NEW.status IN ('unread', 'processing', 'replied'))
                         - (OLD.status IN ('unread', 'processing', 'replied'))
   WHERE id = 1;
END;

CREATE TABLE groups (
  folder TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  trigger TEXT,
  requires_trigger INTEGER NOT NULL DEFAULT 1 CHECK (requires_trigger IN (0, 1)),
  is_main INTEGER NOT NULL DEFAULT 0 CHECK (is_main IN (0, 1)),
  agent_config TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(agent_config)),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE group_chats (
  chat_jid TEXT NOT NULL,
  group_folder TEXT NOT NULL REFERENCES groups(folder) ON DELETE CASCADE,
  PRIMARY KEY (chat_jid, group_folder)
);
CREATE INDEX group_chats_by_folder ON group_chats(group_folder);

CREATE TABLE sessions (
  group_folder TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE scheduled_tasks (
  id TEXT PRIMARY KEY,
  group_folder TEXT NOT NULL,
  chat_jid TEXT NOT NULL,
  prompt TEXT NOT NULL,
  schedule_type TEXT NOT NULL CHECK (schedule_type IN ('cron', 'interval', 'once')),
  schedule_value TEXT NOT NULL,
  context_mode TEXT NOT NULL DEFAULT 'isolated' CHECK (context_mode IN ('group', 'isolated')),
  status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'paused', 'completed', 'cancelled')),
  next_run TEXT,
  last_run TEXT,
  last_result TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX scheduled_tasks_due ON scheduled_tasks(status, next_run);
CREATE INDEX scheduled_tasks_by_group ON scheduled_tasks(group_folder);

CREATE TABLE task_run_logs (
  id INTEGER PRIMARY KEY,
  task_id TEXT NOT NULL REFERENCES scheduled_tasks(id) ON DELETE CASCADE,
  run_at TEXT NOT NULL,
  duration_ms INTEGER NOT NULL,
  status TEXT NOT NULL,
  result TEXT,
  error TEXT
);
CREATE INDEX task_run_logs_by_task ON task_run_logs(task_id, run_at);

CREATE TABLE outbox (
  id INTEGER PRIMARY KEY,
  idempotency_key TEXT NOT NULL UNIQUE,
  chat_jid TEXT NOT NULL,
  channel TEXT NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL CHECK (json_valid(payload)),
  state TEXT NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT,
  last_error TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  sent_at TEXT
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);

CREATE TABLE cursors (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
)sql";

// Version 2, for the orchestrator: a chat belongs to at most one group and at most one group
// is main (the store also checks both to give a clear error; the indexes make them hold
// whoever writes), token usage per agent run, and indexes for the listings the API and the
// outbox worker page through (recent chats, outbox by state or chat, usage since a time).
constexpr std::string_view kVersion2 = R"sql(
CREATE UNIQUE INDEX group_chats_one_group ON group_chats(chat_jid);
CREATE UNIQUE INDEX groups_one_main ON groups(is_main) WHERE is_main = 1;

CREATE INDEX chats_by_activity ON chats(last_message_at);

CREATE INDEX outbox_by_state ON outbox(state, id);
CREATE INDEX outbox_by_chat ON outbox(chat_jid, id);

-- One row per model request of an agent run.
CREATE TABLE token_usage (
  id INTEGER PRIMARY KEY,
  group_folder TEXT NOT NULL,
  run_id TEXT NOT NULL,
  model TEXT NOT NULL DEFAULT '',
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX token_usage_by_group ON token_usage(group_folder, at);
CREATE INDEX token_usage_by_run ON token_usage(run_id);
CREATE INDEX token_usage_by_time ON token_usage(at);
)sql";

// Version 3: a message can be "failed" (the agent could not answer it: the chat was told,
// and it is retried or set aside; docs/orchestrator.md). SQLite cannot change a CHECK
// constraint in place, so the table is rebuilt the documented way (create, copy, drop,
// rename), its indexes and triggers made again, and its AUTOINCREMENT high-water mark kept so
// that no id is ever reused. "failed" is not among the unread statuses.
constexpr std::string_view kVersion3 = R"sql(
CREATE TABLE messages_v3 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  chat_id INTEGER REFERENCES chats(id),
  source TEXT NOT NULL,
  sender TEXT,
  sender_name TEXT,
  subject TEXT,
  content TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  stored_at TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'unread'
    CHECK (status IN ('unread', 'processing', 'replied', 'read', 'filtered', 'failed')),
  from_assistant INTEGER NOT NULL DEFAULT 0 CHECK (from_assistant IN (0, 1)),
  metadata TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
  external_id TEXT UNIQUE
);
INSERT INTO messages_v3 SELECT * FROM messages;
DELETE FROM sqlite_sequence WHERE name = 'messages_v3';
INSERT INTO sqlite_sequence (name, seq) SELECT 'messages_v3', seq FROM sqlite_sequence
  WHERE name = 'messages';
DROP TABLE messages;
ALTER TABLE messages_v3 RENAME TO messages;
CREATE INDEX messages_by_chat ON messages(chat_id, id);
CREATE INDEX messages_unread ON messages(id)
  WHERE status IN ('unread', 'processing', 'replied');
CREATE INDEX messages_unread_by_chat ON messages(chat_id, id)
  WHERE status IN ('unread', 'processing', 'replied');
CREATE TRIGGER message_stats_insert AFTER INSERT ON messages BEGIN
  UPDATE message_stats
     SET total = total + 1,
         unread = unread + (NEW.status IN ('unread', 'processing', 'replied'))
   WHERE id = 1;
END;
CREATE TRIGGER message_stats_delete AFTER DELETE ON messages BEGIN
  UPDATE message_stats
     SET total = total - 1,
         unread = unread - (OLD.status IN ('unread', 'processing', 'replied'))
   WHERE id = 1;
END;
CREATE TRIGGER message_stats_update AFTER UPDATE OF status ON messages
  WHEN (OLD.status IN ('unread', 'processing', 'replied'))
    <> (NEW.status IN ('unread', 'processing', 'replied'))
BEGIN
  UPDATE message_stats
     SET unread = unread + (NEW.status IN ('unread', 'processing', 'replied'))
                         - (OLD.status IN ('unread', 'processing', 'replied'))
   WHERE id = 1;
END;
)sql";

constexpr std::array<SqliteMigration, 3> kMigrations{{
    {1, kVersion1},
    {2, kVersion2},
    {3, kVersion3},
}};

}  // namespace

std::span<const SqliteMigration> sqlite_migrations() { return kMigrations; }

int sqlite_schema_version() { return kMigrations.back().version; }

}  // namespace sb

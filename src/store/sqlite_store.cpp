#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/time.h"
#include "store/migrations.h"
#include "store/store.h"

namespace sb {

namespace {

// A message counts as unread while its status is one of these. This must stay the same
// expression as the WHERE of the partial indexes in migrations.cpp, or SQLite will not use
// them (a unit test checks the query plans).
constexpr std::string_view kUnreadCondition = "m.status IN ('unread', 'processing', 'replied')";

constexpr std::string_view kSelectMessage =
    "SELECT m.id, c.jid, m.source, m.sender, m.sender_name, m.subject, m.content, "
    "m.timestamp, m.stored_at, m.status, m.from_assistant, m.metadata, m.external_id "
    "FROM messages m LEFT JOIN chats c ON c.id = m.chat_id";

// The chat's row id; a new chat is created, a known one has last_message_at moved forward
// (never back: imports of old messages arrive late).
constexpr std::string_view kUpsertChat =
    "INSERT INTO chats (jid, channel, address, created_at, last_message_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (jid) DO UPDATE SET "
    "last_message_at = max(coalesce(last_message_at, ''), excluded.last_message_at) "
    "RETURNING id";

constexpr std::string_view kInsertMessage =
    "INSERT INTO messages (chat_id, source, sender, sender_name, subject, content, timestamp, "
    "stored_at, status, from_assistant, metadata, external_id) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

// The dispatcher's view of a group's chats: the messages an agent has not seen yet. ?1 is a
// JSON array of chat ids so that any number of chats is one prepared statement; SQLite
// searches messages_by_chat once per chat and sorts only the rows found.
constexpr std::string_view kPendingMessages =
    "SELECT m.id, c.jid, m.source, m.sender, m.sender_name, m.subject, m.content, "
    "m.timestamp, m.stored_at, m.status, m.from_assistant, m.metadata, m.external_id "
    "FROM messages m LEFT JOIN chats c ON c.id = m.chat_id "
    "WHERE m.chat_id IN (SELECT id FROM chats WHERE jid IN (SELECT value FROM json_each(?1))) "
    "AND m.id > ?2 AND m.from_assistant = 0 AND m.status <> 'filtered' "
    "ORDER BY m.id LIMIT ?3";

constexpr std::string_view kChats =
    "SELECT jid, channel, name, last_message_at FROM chats "
    "ORDER BY last_message_at DESC LIMIT ?1";

constexpr std::string_view kSelectGroup =
    "SELECT folder, name, trigger, requires_trigger, is_main, agent_config, created_at, "
    "updated_at FROM groups";
constexpr std::string_view kGroupChats =
    "SELECT chat_jid FROM group_chats WHERE group_folder = ?1 ORDER BY rowid";
constexpr std::string_view kGroupOfChat =
    "SELECT group_folder FROM group_chats WHERE chat_jid = ?1";

constexpr std::string_view kSelectTask =
    "SELECT id, group_folder, chat_jid, prompt, schedule_type, schedule_value, context_mode, "
    "status, next_run, last_run, last_result, created_at FROM scheduled_tasks";
constexpr std::string_view kDueTasks =
    "SELECT id, group_folder, chat_jid, prompt, schedule_type, schedule_value, context_mode, "
    "status, next_run, last_run, last_result, created_at FROM scheduled_tasks "
    "WHERE status = 'active' AND next_run <= ?1 ORDER BY next_run LIMIT ?2";
constexpr std::string_view kNextTaskDue =
    "SELECT next_run FROM scheduled_tasks WHERE status = 'active' AND next_run IS NOT NULL "
    "ORDER BY next_run LIMIT 1";
constexpr std::string_view kTaskRuns =
    "SELECT id, task_id, run_at, duration_ms, status, result, error FROM task_run_logs "
    "WHERE task_id = ?1 ORDER BY run_at DESC, id DESC LIMIT ?2";

// A macro, not a constant, so that the queries below stay string literals (constexpr, listed
// in kNamedQueries).
#define SB_OUTBOX_COLUMNS                                                           \
  "SELECT id, idempotency_key, chat_jid, channel, kind, payload, state, attempts, " \
  "next_attempt_at, last_error, created_at, updated_at, sent_at FROM outbox"
constexpr std::string_view kSelectOutbox = SB_OUTBOX_COLUMNS;
// Pending items are few: outbox_by_state walks them in id order and the filter drops the
// ones not yet due.
constexpr std::string_view kDueOutbox = SB_OUTBOX_COLUMNS
    " WHERE state = 'pending' AND (next_attempt_at IS NULL OR "
    "next_attempt_at <= ?1) ORDER BY id LIMIT ?2";
// NULL sorts first: a pending item without next_attempt_at comes out before the others.
constexpr std::string_view kNextOutboxDue =
    "SELECT next_attempt_at FROM outbox WHERE state = 'pending' ORDER BY next_attempt_at "
    "LIMIT 1";
constexpr std::string_view kOutboxAll = SB_OUTBOX_COLUMNS " ORDER BY id DESC LIMIT ?3";
constexpr std::string_view kOutboxByState =
    SB_OUTBOX_COLUMNS " WHERE state = ?1 ORDER BY id DESC LIMIT ?3";
constexpr std::string_view kOutboxByChat =
    SB_OUTBOX_COLUMNS " WHERE chat_jid = ?2 ORDER BY id DESC LIMIT ?3";
constexpr std::string_view kOutboxByStateAndChat =
    SB_OUTBOX_COLUMNS " WHERE state = ?1 AND chat_jid = ?2 ORDER BY id DESC LIMIT ?3";
#undef SB_OUTBOX_COLUMNS

constexpr std::string_view kUsageSince =
    "SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), count(*) "
    "FROM token_usage WHERE group_folder = ?1 AND at >= ?2";
// Without statistics SQLite would rather walk token_usage_by_group in folder order (no sort
// for the GROUP BY) than search the time range, which reads the whole table.
constexpr std::string_view kUsageByGroup =
    "SELECT group_folder, sum(input_tokens), sum(output_tokens), count(*) "
    "FROM token_usage INDEXED BY token_usage_by_time WHERE at >= ?1 "
    "GROUP BY group_folder ORDER BY group_folder";
constexpr std::string_view kRecentRunsOfGroup =
    "SELECT run_id FROM token_usage WHERE group_folder = ?1 ORDER BY at DESC, id DESC";
constexpr std::string_view kRecentRuns = "SELECT run_id FROM token_usage ORDER BY at DESC, id DESC";
constexpr std::string_view kRunTotals =
    "SELECT min(group_folder), min(at), sum(input_tokens), sum(output_tokens), count(*) "
    "FROM token_usage WHERE run_id = ?1";

constexpr std::array<NamedSql, 16> kNamedQueries{{
    {"pending_messages", kPendingMessages},
    {"chats", kChats},
    {"group_chats", kGroupChats},
    {"group_of_chat", kGroupOfChat},
    {"due_tasks", kDueTasks},
    {"next_task_due", kNextTaskDue},
    {"task_runs", kTaskRuns},
    {"due_outbox", kDueOutbox},
    {"next_outbox_due", kNextOutboxDue},
    {"outbox_by_state", kOutboxByState},
    {"outbox_by_chat", kOutboxByChat},
    {"usage_since", kUsageSince},
    {"usage_by_group", kUsageByGroup},
    {"usage_by_run_of_group", kRecentRunsOfGroup},
    {"usage_by_run", kRecentRuns},
    {"run_totals", kRunTotals},
}};

// The stored last_result of a task is a preview; the run log keeps the whole text.
constexpr std::size_t kMaxLastResultChars = 2000;

// The first `max_chars` characters of UTF-8 `text`, never cutting a character in two.
std::string truncate_utf8(std::string_view text, std::size_t max_chars) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool starts_character = (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
    if (starts_character && chars++ == max_chars) return std::string(text.substr(0, i));
  }
  return std::string(text);
}

// Throws std::invalid_argument unless `json` is a JSON object; `what` names it.
void require_json_object(std::string_view json, std::string_view what) {
  boost::system::error_code ec;
  const boost::json::value value = boost::json::parse(json, ec);
  if (ec) throw std::invalid_argument(std::string(what) + " is not valid JSON: " + ec.message());
  if (!value.is_object()) throw std::invalid_argument(std::string(what) + " is not a JSON object");
}

ChatId require_chat_id(std::string_view chat, std::string_view what) {
  auto parsed = parse_chat_id(chat);
  if (!parsed) {
    throw std::invalid_argument(std::string(what) + " '" + std::string(chat) +
                                "' is not a chat id: expected <channel>:<address>");
  }
  return std::move(*parsed);
}

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;
using StatementHandle = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

// The shape of a MessageQuery: which of the 2^5 prepared statements serves it.
constexpr unsigned kUnreadOnly = 1;
constexpr unsigned kByChat = 2;
constexpr unsigned kSince = 4;
constexpr unsigned kBefore = 8;
constexpr unsigned kAscending = 16;
constexpr unsigned kShapeCount = 32;

unsigned shape_of(const MessageQuery& query) {
  return (query.unread_only ? kUnreadOnly : 0u) | (query.chat ? kByChat : 0u) |
         (query.since ? kSince : 0u) | (query.before ? kBefore : 0u) |
         (query.ascending ? kAscending : 0u);
}

std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an unknown exception";
  }
}

class SqliteStore;

// One use of a prepared statement: bind, step, read columns. Resets the statement and
// clears its bindings when destroyed, so the cached statement is ready for the next use.
// Bound text is not copied: it must outlive this object.
class Use {
 public:
  Use(const SqliteStore& store, sqlite3_stmt* statement);
  ~Use() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  void bind(int index, std::string_view text) {
    check(sqlite3_bind_text64(statement_, index, text.data(), text.size(), SQLITE_STATIC,
                              SQLITE_UTF8));
  }
  void bind(int index, const std::string& text) { bind(index, std::string_view(text)); }
  void bind(int index, std::string&&) = delete;  // would dangle
  void bind(int index, const std::optional<std::string>& text) {
    if (text) {
      bind(index, std::string_view(*text));
    } else {
      bind_null(index);
    }
  }
  void bind(int index, std::optional<std::string_view> text) {
    if (text) {
      bind(index, *text);
    } else {
      bind_null(index);
    }
  }
  void bind(int index, std::int64_t value) { check(sqlite3_bind_int64(statement_, index, value)); }
  void bind_null(int index) { check(sqlite3_bind_null(statement_, index)); }

  // True while there is a row to read.
  bool step();
  // Runs a statement that returns no rows.
  void run() {
    while (step()) {
    }
  }

  std::int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
  std::string_view text_view(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
    if (data == nullptr) return {};
    return {data, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))};
  }
  std::string text(int column) const { return std::string(text_view(column)); }
  std::optional<std::string> optional_text(int column) const {
    if (sqlite3_column_type(statement_, column) == SQLITE_NULL) return std::nullopt;
    return text(column);
  }

 private:
  void check(int rc) const;

  const SqliteStore& store_;
  sqlite3_stmt* statement_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(const std::filesystem::path& file, const SqliteOptions& options);

  AddResult add_message(const NewMessage& message) override;
  std::optional<Message> message(Seq id) override;
  std::optional<Message> message_by_external_id(std::string_view external_id) override;
  std::vector<Message> messages(const MessageQuery& query) override;
  bool set_status(Seq id, MessageStatus status) override;
  MessageCounts counts() override;
  std::optional<std::string> cursor(std::string_view key) override;
  void set_cursor(std::string_view key, std::string_view value) override;
  void atomically(std::span<const std::function<void()>> ops,
                  std::span<std::exception_ptr> errors) override;
  int schema_version() override;

  Seq latest_seq() override;
  std::vector<Message> pending_messages(std::span<const std::string> chats, Seq after,
                                        int limit) override;
  std::vector<ChatInfo> chats(int limit) override;

  std::vector<GroupRecord> groups() override;
  std::optional<GroupRecord> group(std::string_view folder) override;
  std::optional<std::string> group_of_chat(std::string_view chat) override;
  void put_group(const GroupRecord& group) override;
  bool remove_group(std::string_view folder) override;

  std::optional<std::string> session(std::string_view folder) override;
  void set_session(std::string_view folder, std::string_view session_id) override;
  void clear_session(std::string_view folder) override;

  void add_task(const TaskRecord& task) override;
  std::optional<TaskRecord> task(std::string_view id) override;
  std::vector<TaskRecord> tasks(std::optional<std::string_view> folder) override;
  std::vector<TaskRecord> due_tasks(std::string_view now, int limit) override;
  std::optional<std::string> next_task_due() override;
  bool set_task_status(std::string_view id, TaskStatus status) override;
  bool set_task_next_run(std::string_view id, std::optional<std::string_view> next_run) override;
  void record_task_run(const TaskRunLog& log, std::optional<std::string_view> next_run,
                       TaskStatus status_after) override;
  std::vector<TaskRunLog> task_runs(std::string_view task_id, int limit) override;
  bool delete_task(std::string_view id) override;

  std::pair<OutboxItem, bool> enqueue_outbox(const OutboxItem& item) override;
  std::optional<OutboxItem> outbox_item(std::int64_t id) override;
  std::vector<OutboxItem> due_outbox(std::string_view now, int limit) override;
  std::optional<std::string> next_outbox_due() override;
  void mark_outbox_sending(std::int64_t id) override;
  void mark_outbox_sent(std::int64_t id) override;
  void mark_outbox_retry(std::int64_t id, std::string_view next_attempt_at,
                         std::string_view error) override;
  void mark_outbox_failed(std::int64_t id, std::string_view error) override;
  std::vector<OutboxItem> outbox(std::optional<OutboxState> state,
                                 std::optional<std::string_view> chat, int limit) override;
  int requeue_sending_outbox() override;

  void add_usage(const UsageRecord& usage) override;
  UsageTotals usage_since(std::string_view folder, std::string_view since) override;
  std::vector<std::pair<std::string, UsageTotals>> usage_by_group(std::string_view since) override;
  std::vector<RunUsage> usage_by_run(std::optional<std::string_view> folder, int limit) override;

  // Throws StoreError naming the file, `what` failed, and SQLite's explanation.
  [[noreturn]] void fail(std::string_view what) const;
  [[noreturn]] void fail(std::string_view what, int rc) const;

  sqlite3* db() const { return db_.get(); }

  // The cached prepared statement for `sql` (one statement).
  sqlite3_stmt* statement(std::string_view sql);
  // Runs a cached statement that returns no rows.
  void exec(std::string_view sql) { Use(*this, statement(sql)).run(); }
  // Runs SQL text (several statements allowed) without caching; for one-off work.
  void exec_script(std::string_view sql, std::string_view what);
  // Rolls back, ignoring errors: for unwinding, where the original error is what matters.
  void rollback_quietly(const char* sql) noexcept {
    if (!sqlite3_get_autocommit(db_.get())) sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
  }

 private:
  StatementHandle prepare(std::string_view sql);
  void switch_to_wal(int busy_timeout_ms);
  void migrate();
  Message read_message(const Use& row);
  // A group row (kSelectGroup's columns) with its chats.
  GroupRecord read_group(const Use& row);
  std::vector<std::string> group_chats(std::string_view folder);
  TaskRecord read_task(const Use& row);
  OutboxItem read_outbox(const Use& row);
  // Runs a one-statement write in its own transaction; returns the number of rows changed.
  // `bind` binds the statement's parameters.
  template <typename Bind>
  int write(std::string_view sql, Bind&& bind);
  // The rows changed by the latest statement on this connection.
  int changes() const { return sqlite3_changes(db_.get()); }

  std::string file_;
  DbHandle db_;
  std::unordered_map<std::string, StatementHandle, StringHash, std::equal_to<>> statements_;
  std::array<StatementHandle, kShapeCount> message_queries_;
};

Use::Use(const SqliteStore& store, sqlite3_stmt* statement) : store_(store), statement_(statement) {
  if (sqlite3_stmt_busy(statement_)) {
    // A cached statement re-entered while a result is being read would lose its place.
    throw std::logic_error(std::string("statement used re-entrantly: ") + sqlite3_sql(statement_));
  }
}

bool Use::step() {
  const int rc = sqlite3_step(statement_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  store_.fail(sqlite3_sql(statement_), rc);
}

void Use::check(int rc) const {
  if (rc != SQLITE_OK) store_.fail(std::string("binding ") + sqlite3_sql(statement_), rc);
}

// Makes one store method atomic: its own BEGIN IMMEDIATE ... COMMIT, or a savepoint when a
// transaction is already open (inside atomically()). Rolls back unless commit() is reached.
class WriteTransaction {
 public:
  explicit WriteTransaction(SqliteStore& store)
      : store_(store), nested_(!sqlite3_get_autocommit(store.db())) {
    store_.exec(nested_ ? "SAVEPOINT sb_write" : "BEGIN IMMEDIATE");
  }
  ~WriteTransaction() {
    if (done_) return;
    store_.rollback_quietly(nested_ ? "ROLLBACK TO sb_write; RELEASE sb_write" : "ROLLBACK");
  }
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;

  void commit() {
    store_.exec(nested_ ? "RELEASE sb_write" : "COMMIT");
    done_ = true;
  }

 private:
  SqliteStore& store_;
  bool nested_;
  bool done_ = false;
};

SqliteStore::SqliteStore(const std::filesystem::path& file, const SqliteOptions& options)
    : file_(file.string()) {
  if (file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) {
      throw StoreError(file_ + ": cannot create the directory " + file.parent_path().string() +
                       ": " + ec.message());
    }
  }
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(file_.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  db_.reset(raw);
  if (rc != SQLITE_OK) {
    if (!db_) throw StoreError(file_ + ": cannot open the database: " + sqlite3_errstr(rc));
    fail("cannot open the database", rc);
  }
  sqlite3_extended_result_codes(db_.get(), 1);
  sqlite3_busy_timeout(db_.get(), options.busy_timeout_ms);

  switch_to_wal(options.busy_timeout_ms);
  exec_script(
      options.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
      "setting synchronous");
  exec_script("PRAGMA foreign_keys = ON", "enabling foreign keys");
  migrate();
}

// Switching a new database to WAL takes an exclusive lock, and SQLite answers SQLITE_BUSY
// without calling the busy handler when another connection is switching it at the same
// moment (two processes opening a fresh data directory). The switch is retried until the
// busy timeout instead.
void SqliteStore::switch_to_wal(int busy_timeout_ms) {
  const StatementHandle wal = prepare("PRAGMA journal_mode = WAL");
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms);
  for (;;) {
    const int rc = sqlite3_step(wal.get());
    if (rc == SQLITE_ROW) break;
    sqlite3_reset(wal.get());
    if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() >= deadline) {
      fail("PRAGMA journal_mode = WAL", rc);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto* mode = reinterpret_cast<const char*>(sqlite3_column_text(wal.get(), 0));
  const std::string journal = mode != nullptr ? mode : "";
  sqlite3_reset(wal.get());
  if (journal != "wal") {
    throw StoreError(file_ + ": cannot switch the database to WAL mode (journal_mode is '" +
                     journal + "'); is it on a file system without shared memory?");
  }
}

void SqliteStore::fail(std::string_view what) const { fail(what, sqlite3_errcode(db_.get())); }

void SqliteStore::fail(std::string_view what, int rc) const {
  std::string message = file_;
  message += ": ";
  message += what;
  message += ": ";
  // errmsg describes the latest failure on this connection, which is `rc`'s unless the
  // failure happened before the connection existed.
  message += (db_ && sqlite3_extended_errcode(db_.get()) == rc) ? sqlite3_errmsg(db_.get())
                                                                : sqlite3_errstr(rc);
  message += " (SQLite code " + std::to_string(rc) + ")";
  throw StoreError(message);
}

StatementHandle SqliteStore::prepare(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &raw, &tail);
  StatementHandle statement(raw);
  if (rc != SQLITE_OK) fail(std::string("preparing ") + std::string(sql), rc);
  if (statement == nullptr || tail != sql.data() + sql.size()) {
    throw std::logic_error("not exactly one SQL statement: " + std::string(sql));
  }
  return statement;
}

sqlite3_stmt* SqliteStore::statement(std::string_view sql) {
  if (auto it = statements_.find(sql); it != statements_.end()) return it->second.get();
  return statements_.emplace(std::string(sql), prepare(sql)).first->second.get();
}

void SqliteStore::exec_script(std::string_view sql, std::string_view what) {
  const std::string text(sql);
  const int rc = sqlite3_exec(db_.get(), text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) fail(what, rc);
}

void SqliteStore::migrate() {
  // BEGIN IMMEDIATE takes the write lock before reading the version, so when two processes
  // open a new database at once, the second waits and then finds nothing left to do.
  exec_script("BEGIN IMMEDIATE", "starting the schema migration");
  try {
    const int current = schema_version();
    const int latest = sqlite_schema_version();
    if (current > latest) {
      throw StoreError(file_ + ": the database has schema version " + std::to_string(current) +
                       ", newer than version " + std::to_string(latest) +
                       " that this switchboard knows; run a newer switchboard on it");
    }
    for (const SqliteMigration& migration : sqlite_migrations()) {
      if (migration.version <= current) continue;
      const std::string version = std::to_string(migration.version);
      exec_script(migration.sql, "migrating the schema to version " + version);
      exec_script("PRAGMA user_version = " + version, "recording schema version " + version);
    }
    exec_script("COMMIT", "committing the schema migration");
  } catch (...) {
    rollback_quietly("ROLLBACK");
    throw;
  }
}

Message SqliteStore::read_message(const Use& row) {
  Message m;
  m.id = row.integer(0);
  m.chat = row.optional_text(1);
  m.source = row.text(2);
  m.sender = row.optional_text(3);
  m.sender_name = row.optional_text(4);
  m.subject = row.optional_text(5);
  m.content = row.text(6);
  m.timestamp = row.text(7);
  m.stored_at = row.text(8);
  const auto status = parse_message_status(row.text_view(9));
  if (!status) {
    throw StoreError(file_ + ": message " + std::to_string(m.id) + " has an unknown status '" +
                     row.text(9) + "'");
  }
  m.status = *status;
  m.from_assistant = row.integer(10) != 0;
  m.metadata_json = row.text(11);
  m.external_id = row.optional_text(12);
  return m;
}

AddResult SqliteStore::add_message(const NewMessage& in) {
  std::optional<ChatId> chat;
  if (in.chat) {
    chat = parse_chat_id(*in.chat);
    if (!chat) {
      throw std::invalid_argument("invalid chat id '" + *in.chat +
                                  "': expected <channel>:<address>");
    }
  }
  boost::system::error_code ec;
  const boost::json::value metadata = boost::json::parse(in.metadata_json, ec);
  if (ec) throw std::invalid_argument("message metadata is not valid JSON: " + ec.message());
  if (!metadata.is_object()) throw std::invalid_argument("message metadata is not a JSON object");

  const std::string stored_at = format_iso8601(now_utc());
  std::string timestamp = stored_at;
  if (in.timestamp) {
    const auto parsed = parse_iso8601(*in.timestamp);
    if (!parsed) {
      throw std::invalid_argument("message timestamp '" + *in.timestamp +
                                  "' is not an ISO-8601 date-time");
    }
    timestamp = format_iso8601(*parsed);
  }

  WriteTransaction transaction(*this);
  if (in.external_id) {
    if (auto existing = message_by_external_id(*in.external_id)) {
      transaction.commit();
      return AddResult{std::move(*existing), false};
    }
  }
  std::optional<std::int64_t> chat_row;
  if (chat) {
    Use upsert(*this, statement(kUpsertChat));
    upsert.bind(1, *in.chat);
    upsert.bind(2, chat->channel);
    upsert.bind(3, chat->address);
    upsert.bind(4, stored_at);
    upsert.bind(5, timestamp);
    if (!upsert.step()) throw StoreError(file_ + ": creating chat " + *in.chat + " gave no row id");
    chat_row = upsert.integer(0);
  }
  {
    Use insert(*this, statement(kInsertMessage));
    if (chat_row) {
      insert.bind(1, *chat_row);
    } else {
      insert.bind_null(1);
    }
    insert.bind(2, in.source);
    insert.bind(3, in.sender);
    insert.bind(4, in.sender_name);
    insert.bind(5, in.subject);
    insert.bind(6, in.content);
    insert.bind(7, timestamp);
    insert.bind(8, stored_at);
    insert.bind(9, to_string(in.status));
    insert.bind(10, std::int64_t{in.from_assistant ? 1 : 0});
    insert.bind(11, in.metadata_json);
    insert.bind(12, in.external_id);
    insert.run();
  }
  const Seq id = sqlite3_last_insert_rowid(db_.get());
  transaction.commit();

  Message out;
  out.id = id;
  out.source = in.source;
  out.chat = in.chat;
  out.sender = in.sender;
  out.sender_name = in.sender_name;
  out.subject = in.subject;
  out.content = in.content;
  out.timestamp = std::move(timestamp);
  out.stored_at = stored_at;
  out.status = in.status;
  out.from_assistant = in.from_assistant;
  out.metadata_json = in.metadata_json;
  out.external_id = in.external_id;
  return AddResult{std::move(out), true};
}

std::optional<Message> SqliteStore::message(Seq id) {
  static const std::string sql = std::string(kSelectMessage) + " WHERE m.id = ?1";
  Use row(*this, statement(sql));
  row.bind(1, std::int64_t{id});
  if (!row.step()) return std::nullopt;
  return read_message(row);
}

std::optional<Message> SqliteStore::message_by_external_id(std::string_view external_id) {
  static const std::string sql = std::string(kSelectMessage) + " WHERE m.external_id = ?1";
  Use row(*this, statement(sql));
  row.bind(1, external_id);
  if (!row.step()) return std::nullopt;
  return read_message(row);
}

std::vector<Message> SqliteStore::messages(const MessageQuery& query) {
  std::vector<Message> out;
  if (query.limit <= 0) return out;
  StatementHandle& cached = message_queries_[shape_of(query)];
  if (!cached) cached = prepare(sqlite_message_query_sql(query));

  Use rows(*this, cached.get());
  int index = 1;
  if (query.chat) rows.bind(index++, *query.chat);
  if (query.since) rows.bind(index++, std::int64_t{*query.since});
  if (query.before) rows.bind(index++, std::int64_t{*query.before});
  rows.bind(index, std::int64_t{query.limit});
  out.reserve(static_cast<std::size_t>(std::min(query.limit, 1000)));
  while (rows.step()) out.push_back(read_message(rows));
  return out;
}

bool SqliteStore::set_status(Seq id, MessageStatus status) {
  WriteTransaction transaction(*this);
  {
    Use update(*this, statement("UPDATE messages SET status = ?1 WHERE id = ?2"));
    update.bind(1, to_string(status));
    update.bind(2, std::int64_t{id});
    update.run();
  }
  const bool found = sqlite3_changes(db_.get()) > 0;
  transaction.commit();
  return found;
}

MessageCounts SqliteStore::counts() {
  Use row(*this, statement("SELECT total, unread FROM message_stats WHERE id = 1"));
  if (!row.step()) throw StoreError(file_ + ": the message_stats row is missing");
  return MessageCounts{row.integer(0), row.integer(1)};
}

std::optional<std::string> SqliteStore::cursor(std::string_view key) {
  Use row(*this, statement("SELECT value FROM cursors WHERE key = ?1"));
  row.bind(1, key);
  if (!row.step()) return std::nullopt;
  return row.text(0);
}

void SqliteStore::set_cursor(std::string_view key, std::string_view value) {
  const std::string now = format_iso8601(now_utc());
  WriteTransaction transaction(*this);
  {
    Use upsert(*this, statement("INSERT INTO cursors (key, value, updated_at) VALUES (?1, ?2, ?3) "
                                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                                "updated_at = excluded.updated_at"));
    upsert.bind(1, key);
    upsert.bind(2, value);
    upsert.bind(3, now);
    upsert.run();
  }
  transaction.commit();
}

void SqliteStore::atomically(std::span<const std::function<void()>> ops,
                             std::span<std::exception_ptr> errors) {
  if (ops.size() != errors.size()) {
    throw std::invalid_argument("atomically: " + std::to_string(ops.size()) + " ops but " +
                                std::to_string(errors.size()) + " error slots");
  }
  const bool nested = !sqlite3_get_autocommit(db_.get());
  try {
    if (!nested) exec("BEGIN IMMEDIATE");
    for (std::size_t i = 0; i < ops.size(); ++i) {
      exec("SAVEPOINT sb_op");
      try {
        ops[i]();
        exec("RELEASE sb_op");
      } catch (...) {
        errors[i] = std::current_exception();
        if (sqlite3_get_autocommit(db_.get())) {
          // Some failures (disk full, I/O error) make SQLite roll back the whole
          // transaction: the ops before this one are gone too.
          throw StoreError(file_ + ": the batch was rolled back after an operation failed: " +
                           describe(errors[i]));
        }
        exec("ROLLBACK TO sb_op");
        exec("RELEASE sb_op");
      }
    }
    if (!nested) exec("COMMIT");
  } catch (...) {
    if (nested) throw;
    rollback_quietly("ROLLBACK");
    const auto error = std::current_exception();
    for (auto& slot : errors) slot = error;
  }
}

int SqliteStore::schema_version() {
  Use row(*this, statement("PRAGMA user_version"));
  if (!row.step()) fail("reading the schema version");
  return static_cast<int>(row.integer(0));
}

template <typename Bind>
int SqliteStore::write(std::string_view sql, Bind&& bind) {
  WriteTransaction transaction(*this);
  {
    Use statement_use(*this, statement(sql));
    bind(statement_use);
    statement_use.run();
  }
  const int changed = changes();
  transaction.commit();
  return changed;
}

Seq SqliteStore::latest_seq() {
  Use row(*this, statement("SELECT coalesce(max(id), 0) FROM messages"));
  if (!row.step()) fail("reading the latest message id");
  return row.integer(0);
}

std::vector<Message> SqliteStore::pending_messages(std::span<const std::string> chats, Seq after,
                                                   int limit) {
  std::vector<Message> out;
  if (chats.empty() || limit <= 0) return out;
  boost::json::array list;
  list.reserve(chats.size());
  for (const auto& chat : chats) list.emplace_back(chat);
  const std::string chats_json = boost::json::serialize(list);

  Use rows(*this, statement(kPendingMessages));
  rows.bind(1, chats_json);
  rows.bind(2, std::int64_t{after});
  rows.bind(3, std::int64_t{limit});
  while (rows.step()) out.push_back(read_message(rows));
  return out;
}

std::vector<ChatInfo> SqliteStore::chats(int limit) {
  std::vector<ChatInfo> out;
  if (limit <= 0) return out;
  Use rows(*this, statement(kChats));
  rows.bind(1, std::int64_t{limit});
  while (rows.step()) {
    out.push_back(
        ChatInfo{rows.text(0), rows.text(1), rows.optional_text(2), rows.optional_text(3)});
  }
  return out;
}

std::vector<std::string> SqliteStore::group_chats(std::string_view folder) {
  std::vector<std::string> out;
  Use rows(*this, statement(kGroupChats));
  rows.bind(1, folder);
  while (rows.step()) out.push_back(rows.text(0));
  return out;
}

GroupRecord SqliteStore::read_group(const Use& row) {
  GroupRecord g;
  g.folder = row.text(0);
  g.name = row.text(1);
  g.trigger = row.optional_text(2);
  g.requires_trigger = row.integer(3) != 0;
  g.is_main = row.integer(4) != 0;
  g.agent_config_json = row.text(5);
  g.created_at = row.text(6);
  g.updated_at = row.text(7);
  return g;
}

std::vector<GroupRecord> SqliteStore::groups() {
  static const std::string sql = std::string(kSelectGroup) + " ORDER BY folder";
  std::vector<GroupRecord> out;
  {
    Use rows(*this, statement(sql));
    while (rows.step()) out.push_back(read_group(rows));
  }
  for (auto& g : out) g.chats = group_chats(g.folder);
  return out;
}

std::optional<GroupRecord> SqliteStore::group(std::string_view folder) {
  static const std::string sql = std::string(kSelectGroup) + " WHERE folder = ?1";
  std::optional<GroupRecord> out;
  {
    Use row(*this, statement(sql));
    row.bind(1, folder);
    if (!row.step()) return std::nullopt;
    out = read_group(row);
  }
  out->chats = group_chats(out->folder);
  return out;
}

std::optional<std::string> SqliteStore::group_of_chat(std::string_view chat) {
  Use row(*this, statement(kGroupOfChat));
  row.bind(1, chat);
  if (!row.step()) return std::nullopt;
  return row.text(0);
}

void SqliteStore::put_group(const GroupRecord& in) {
  if (in.folder.empty()) throw std::invalid_argument("a group needs a folder");
  if (in.name.empty()) throw std::invalid_argument("group " + in.folder + " needs a name");
  require_json_object(in.agent_config_json, "the agent config of group " + in.folder);
  std::vector<std::string_view> chats;
  for (const auto& chat : in.chats) {
    require_chat_id(chat, "group " + in.folder + ": chat");
    if (std::find(chats.begin(), chats.end(), chat) == chats.end()) chats.push_back(chat);
  }
  const std::string now = format_iso8601(now_utc());

  WriteTransaction transaction(*this);
  if (in.is_main) {
    Use row(*this, statement("SELECT folder FROM groups WHERE is_main = 1 AND folder <> ?1"));
    row.bind(1, in.folder);
    if (row.step()) {
      throw std::invalid_argument("group " + in.folder + " cannot be main: group " + row.text(0) +
                                  " already is; only one group can be main");
    }
  }
  for (const auto chat : chats) {
    const auto owner = group_of_chat(chat);
    if (owner && *owner != in.folder) {
      throw std::invalid_argument("chat " + std::string(chat) + " is already bound to group " +
                                  *owner + "; unbind it there before binding it to group " +
                                  in.folder);
    }
  }
  {
    Use upsert(*this, statement("INSERT INTO groups (folder, name, trigger, requires_trigger, "
                                "is_main, agent_config, created_at, updated_at) "
                                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) "
                                "ON CONFLICT (folder) DO UPDATE SET name = excluded.name, "
                                "trigger = excluded.trigger, "
                                "requires_trigger = excluded.requires_trigger, "
                                "is_main = excluded.is_main, "
                                "agent_config = excluded.agent_config, "
                                "updated_at = excluded.updated_at"));
    upsert.bind(1, in.folder);
    upsert.bind(2, in.name);
    upsert.bind(3, in.trigger);
    upsert.bind(4, std::int64_t{in.requires_trigger ? 1 : 0});
    upsert.bind(5, std::int64_t{in.is_main ? 1 : 0});
    upsert.bind(6, in.agent_config_json);
    upsert.bind(7, now);
    upsert.run();
  }
  {
    Use unbind(*this, statement("DELETE FROM group_chats WHERE group_folder = ?1"));
    unbind.bind(1, in.folder);
    unbind.run();
  }
  for (const auto chat : chats) {
    Use insert(*this,
               statement("INSERT INTO group_chats (chat_jid, group_folder) VALUES (?1, ?2)"));
    insert.bind(1, chat);
    insert.bind(2, in.folder);
    insert.run();
  }
  transaction.commit();
}

bool SqliteStore::remove_group(std::string_view folder) {
  // The tasks' run logs and the group's chat bindings go by ON DELETE CASCADE.
  constexpr std::array<std::string_view, 3> kDeletes = {
      "DELETE FROM sessions WHERE group_folder = ?1",
      "DELETE FROM scheduled_tasks WHERE group_folder = ?1",
      "DELETE FROM groups WHERE folder = ?1",  // last: its changes() is the answer
  };
  WriteTransaction transaction(*this);
  for (const std::string_view sql : kDeletes) {
    Use remove(*this, statement(sql));
    remove.bind(1, folder);
    remove.run();
  }
  const bool found = changes() > 0;
  transaction.commit();
  return found;
}

std::optional<std::string> SqliteStore::session(std::string_view folder) {
  Use row(*this, statement("SELECT session_id FROM sessions WHERE group_folder = ?1"));
  row.bind(1, folder);
  if (!row.step()) return std::nullopt;
  return row.text(0);
}

void SqliteStore::set_session(std::string_view folder, std::string_view session_id) {
  const std::string now = format_iso8601(now_utc());
  write(
      "INSERT INTO sessions (group_folder, session_id, updated_at) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (group_folder) DO UPDATE SET session_id = excluded.session_id, "
      "updated_at = excluded.updated_at",
      [&](Use& use) {
        use.bind(1, folder);
        use.bind(2, session_id);
        use.bind(3, now);
      });
}

void SqliteStore::clear_session(std::string_view folder) {
  write("DELETE FROM sessions WHERE group_folder = ?1", [&](Use& use) { use.bind(1, folder); });
}

TaskRecord SqliteStore::read_task(const Use& row) {
  TaskRecord t;
  t.id = row.text(0);
  t.group_folder = row.text(1);
  t.chat_jid = row.text(2);
  t.prompt = row.text(3);
  t.schedule_type = row.text(4);
  t.schedule_value = row.text(5);
  const auto mode = parse_context_mode(row.text_view(6));
  const auto status = parse_task_status(row.text_view(7));
  if (!mode || !status) {
    throw StoreError(file_ + ": task " + t.id + " has an unknown context mode '" + row.text(6) +
                     "' or status '" + row.text(7) + "'");
  }
  t.context_mode = *mode;
  t.status = *status;
  t.next_run = row.optional_text(8);
  t.last_run = row.optional_text(9);
  t.last_result = row.optional_text(10);
  t.created_at = row.text(11);
  return t;
}

void SqliteStore::add_task(const TaskRecord& in) {
  if (in.id.empty()) throw std::invalid_argument("a task needs an id");
  if (in.schedule_type != "cron" && in.schedule_type != "interval" && in.schedule_type != "once") {
    throw std::invalid_argument("task " + in.id + ": unknown schedule type '" + in.schedule_type +
                                "' (expected cron, interval or once)");
  }
  const std::string created_at = in.created_at.empty() ? format_iso8601(now_utc()) : in.created_at;

  WriteTransaction transaction(*this);
  {
    Use row(*this, statement("SELECT 1 FROM scheduled_tasks WHERE id = ?1"));
    row.bind(1, in.id);
    if (row.step()) throw std::invalid_argument("a task with id " + in.id + " already exists");
  }
  {
    Use insert(*this, statement("INSERT INTO scheduled_tasks (id, group_folder, chat_jid, "
                                "prompt, schedule_type, schedule_value, context_mode, status, "
                                "next_run, last_run, last_result, created_at) "
                                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"));
    insert.bind(1, in.id);
    insert.bind(2, in.group_folder);
    insert.bind(3, in.chat_jid);
    insert.bind(4, in.prompt);
    insert.bind(5, in.schedule_type);
    insert.bind(6, in.schedule_value);
    insert.bind(7, to_string(in.context_mode));
    insert.bind(8, to_string(in.status));
    insert.bind(9, in.next_run);
    insert.bind(10, in.last_run);
    insert.bind(11, in.last_result);
    insert.bind(12, created_at);
    insert.run();
  }
  transaction.commit();
}

std::optional<TaskRecord> SqliteStore::task(std::string_view id) {
  static const std::string sql = std::string(kSelectTask) + " WHERE id = ?1";
  Use row(*this, statement(sql));
  row.bind(1, id);
  if (!row.step()) return std::nullopt;
  return read_task(row);
}

std::vector<TaskRecord> SqliteStore::tasks(std::optional<std::string_view> folder) {
  static const std::string all = std::string(kSelectTask) + " ORDER BY created_at, id";
  static const std::string of_group =
      std::string(kSelectTask) + " WHERE group_folder = ?1 ORDER BY created_at, id";
  std::vector<TaskRecord> out;
  Use rows(*this, statement(folder ? of_group : all));
  if (folder) rows.bind(1, *folder);
  while (rows.step()) out.push_back(read_task(rows));
  return out;
}

std::vector<TaskRecord> SqliteStore::due_tasks(std::string_view now, int limit) {
  std::vector<TaskRecord> out;
  if (limit <= 0) return out;
  Use rows(*this, statement(kDueTasks));
  rows.bind(1, now);
  rows.bind(2, std::int64_t{limit});
  while (rows.step()) out.push_back(read_task(rows));
  return out;
}

std::optional<std::string> SqliteStore::next_task_due() {
  Use row(*this, statement(kNextTaskDue));
  if (!row.step()) return std::nullopt;
  return row.text(0);
}

bool SqliteStore::set_task_status(std::string_view id, TaskStatus status) {
  return write("UPDATE scheduled_tasks SET status = ?1 WHERE id = ?2", [&](Use& use) {
           use.bind(1, to_string(status));
           use.bind(2, id);
         }) > 0;
}

bool SqliteStore::set_task_next_run(std::string_view id, std::optional<std::string_view> next_run) {
  return write("UPDATE scheduled_tasks SET next_run = ?1 WHERE id = ?2", [&](Use& use) {
           use.bind(1, next_run);
           use.bind(2, id);
         }) > 0;
}

void SqliteStore::record_task_run(const TaskRunLog& log, std::optional<std::string_view> next_run,
                                  TaskStatus status_after) {
  if (log.status != "success" && log.status != "error") {
    throw std::invalid_argument("task " + log.task_id + ": run status '" + log.status +
                                "' is neither success nor error");
  }
  std::optional<std::string> last_result;
  if (const auto& text = log.error ? log.error : log.result) {
    last_result = truncate_utf8(*text, kMaxLastResultChars);
  }

  WriteTransaction transaction(*this);
  {
    Use row(*this, statement("SELECT 1 FROM scheduled_tasks WHERE id = ?1"));
    row.bind(1, log.task_id);
    if (!row.step()) {
      transaction.commit();
      return;
    }
  }
  {
    Use insert(*this, statement("INSERT INTO task_run_logs (task_id, run_at, duration_ms, "
                                "status, result, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
    insert.bind(1, log.task_id);
    insert.bind(2, log.run_at);
    insert.bind(3, log.duration_ms);
    insert.bind(4, log.status);
    insert.bind(5, log.result);
    insert.bind(6, log.error);
    insert.run();
  }
  {
    Use update(*this, statement("UPDATE scheduled_tasks SET last_run = ?1, last_result = ?2, "
                                "next_run = ?3, status = ?4 WHERE id = ?5"));
    update.bind(1, log.run_at);
    update.bind(2, last_result);
    update.bind(3, next_run);
    update.bind(4, to_string(status_after));
    update.bind(5, log.task_id);
    update.run();
  }
  transaction.commit();
}

std::vector<TaskRunLog> SqliteStore::task_runs(std::string_view task_id, int limit) {
  std::vector<TaskRunLog> out;
  if (limit <= 0) return out;
  Use rows(*this, statement(kTaskRuns));
  rows.bind(1, task_id);
  rows.bind(2, std::int64_t{limit});
  while (rows.step()) {
    TaskRunLog log;
    log.id = rows.integer(0);
    log.task_id = rows.text(1);
    log.run_at = rows.text(2);
    log.duration_ms = rows.integer(3);
    log.status = rows.text(4);
    log.result = rows.optional_text(5);
    log.error = rows.optional_text(6);
    out.push_back(std::move(log));
  }
  return out;
}

bool SqliteStore::delete_task(std::string_view id) {
  // The run logs go by ON DELETE CASCADE.
  return write("DELETE FROM scheduled_tasks WHERE id = ?1", [&](Use& use) { use.bind(1, id); }) > 0;
}

OutboxItem SqliteStore::read_outbox(const Use& row) {
  OutboxItem item;
  item.id = row.integer(0);
  item.idempotency_key = row.text(1);
  item.chat_jid = row.text(2);
  item.channel = row.text(3);
  item.kind = row.text(4);
  item.payload_json = row.text(5);
  const auto state = parse_outbox_state(row.text_view(6));
  if (!state) {
    throw StoreError(file_ + ": outbox item " + std::to_string(item.id) +
                     " has an unknown state '" + row.text(6) + "'");
  }
  item.state = *state;
  item.attempts = static_cast<int>(row.integer(7));
  item.next_attempt_at = row.optional_text(8);
  item.last_error = row.optional_text(9);
  item.created_at = row.text(10);
  item.updated_at = row.text(11);
  item.sent_at = row.optional_text(12);
  return item;
}

std::pair<OutboxItem, bool> SqliteStore::enqueue_outbox(const OutboxItem& in) {
  if (in.idempotency_key.empty()) throw std::invalid_argument("an outbox item needs a key");
  const ChatId chat = require_chat_id(in.chat_jid, "outbox item " + in.idempotency_key + ": chat");
  if (in.kind.empty()) {
    throw std::invalid_argument("outbox item " + in.idempotency_key + " needs a kind");
  }
  require_json_object(in.payload_json, "the payload of outbox item " + in.idempotency_key);
  const std::string& channel = in.channel.empty() ? chat.channel : in.channel;
  const std::string now = format_iso8601(now_utc());

  static const std::string by_key = std::string(kSelectOutbox) + " WHERE idempotency_key = ?1";
  WriteTransaction transaction(*this);
  {
    Use row(*this, statement(by_key));
    row.bind(1, in.idempotency_key);
    if (row.step()) {
      OutboxItem existing = read_outbox(row);
      transaction.commit();
      return {std::move(existing), false};
    }
  }
  {
    Use insert(*this,
               statement("INSERT INTO outbox (idempotency_key, chat_jid, channel, kind, "
                         "payload, state, attempts, next_attempt_at, created_at, "
                         "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7, ?7)"));
    insert.bind(1, in.idempotency_key);
    insert.bind(2, in.chat_jid);
    insert.bind(3, channel);
    insert.bind(4, in.kind);
    insert.bind(5, in.payload_json);
    insert.bind(6, in.next_attempt_at);
    insert.bind(7, now);
    insert.run();
  }
  const std::int64_t id = sqlite3_last_insert_rowid(db_.get());
  transaction.commit();

  OutboxItem out = in;
  out.id = id;
  out.channel = channel;
  out.state = OutboxState::pending;
  out.attempts = 0;
  out.last_error.reset();
  out.created_at = now;
  out.updated_at = now;
  out.sent_at.reset();
  return {std::move(out), true};
}

std::optional<OutboxItem> SqliteStore::outbox_item(std::int64_t id) {
  static const std::string sql = std::string(kSelectOutbox) + " WHERE id = ?1";
  Use row(*this, statement(sql));
  row.bind(1, id);
  if (!row.step()) return std::nullopt;
  return read_outbox(row);
}

std::vector<OutboxItem> SqliteStore::due_outbox(std::string_view now, int limit) {
  std::vector<OutboxItem> out;
  if (limit <= 0) return out;
  Use rows(*this, statement(kDueOutbox));
  rows.bind(1, now);
  rows.bind(2, std::int64_t{limit});
  while (rows.step()) out.push_back(read_outbox(rows));
  return out;
}

std::optional<std::string> SqliteStore::next_outbox_due() {
  Use row(*this, statement(kNextOutboxDue));
  if (!row.step()) return std::nullopt;
  if (auto at = row.optional_text(0)) return at;
  return format_iso8601(now_utc());
}

void SqliteStore::mark_outbox_sending(std::int64_t id) {
  const std::string now = format_iso8601(now_utc());
  write("UPDATE outbox SET state = 'sending', updated_at = ?1 WHERE id = ?2", [&](Use& use) {
    use.bind(1, now);
    use.bind(2, id);
  });
}

void SqliteStore::mark_outbox_sent(std::int64_t id) {
  const std::string now = format_iso8601(now_utc());
  write("UPDATE outbox SET state = 'sent', sent_at = ?1, updated_at = ?1 WHERE id = ?2",
        [&](Use& use) {
          use.bind(1, now);
          use.bind(2, id);
        });
}

void SqliteStore::mark_outbox_retry(std::int64_t id, std::string_view next_attempt_at,
                                    std::string_view error) {
  const std::string now = format_iso8601(now_utc());
  write(
      "UPDATE outbox SET state = 'pending', attempts = attempts + 1, next_attempt_at = ?1, "
      "last_error = ?2, updated_at = ?3 WHERE id = ?4",
      [&](Use& use) {
        use.bind(1, next_attempt_at);
        use.bind(2, error);
        use.bind(3, now);
        use.bind(4, id);
      });
}

void SqliteStore::mark_outbox_failed(std::int64_t id, std::string_view error) {
  const std::string now = format_iso8601(now_utc());
  write(
      "UPDATE outbox SET state = 'failed', attempts = attempts + 1, next_attempt_at = NULL, "
      "last_error = ?1, updated_at = ?2 WHERE id = ?3",
      [&](Use& use) {
        use.bind(1, error);
        use.bind(2, now);
        use.bind(3, id);
      });
}

std::vector<OutboxItem> SqliteStore::outbox(std::optional<OutboxState> state,
                                            std::optional<std::string_view> chat, int limit) {
  std::vector<OutboxItem> out;
  if (limit <= 0) return out;
  const std::string_view sql =
      state ? (chat ? kOutboxByStateAndChat : kOutboxByState) : (chat ? kOutboxByChat : kOutboxAll);
  Use rows(*this, statement(sql));
  if (state) rows.bind(1, to_string(*state));
  if (chat) rows.bind(2, *chat);
  rows.bind(3, std::int64_t{limit});
  while (rows.step()) out.push_back(read_outbox(rows));
  return out;
}

int SqliteStore::requeue_sending_outbox() {
  const std::string now = format_iso8601(now_utc());
  return write(
      "UPDATE outbox SET state = 'pending', next_attempt_at = NULL, updated_at = ?1 "
      "WHERE state = 'sending'",
      [&](Use& use) { use.bind(1, now); });
}

void SqliteStore::add_usage(const UsageRecord& in) {
  if (in.group_folder.empty() || in.run_id.empty()) {
    throw std::invalid_argument("token usage needs a group folder and a run id");
  }
  if (in.input_tokens < 0 || in.output_tokens < 0) {
    throw std::invalid_argument("token usage of run " + in.run_id + " has a negative count");
  }
  const std::string at = in.at.empty() ? format_iso8601(now_utc()) : in.at;
  write(
      "INSERT INTO token_usage (group_folder, run_id, model, input_tokens, output_tokens, at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
      [&](Use& use) {
        use.bind(1, in.group_folder);
        use.bind(2, in.run_id);
        use.bind(3, in.model);
        use.bind(4, in.input_tokens);
        use.bind(5, in.output_tokens);
        use.bind(6, at);
      });
}

UsageTotals SqliteStore::usage_since(std::string_view folder, std::string_view since) {
  Use row(*this, statement(kUsageSince));
  row.bind(1, folder);
  row.bind(2, since);
  if (!row.step()) fail("summing token usage");
  return UsageTotals{row.integer(0), row.integer(1), row.integer(2)};
}

std::vector<std::pair<std::string, UsageTotals>> SqliteStore::usage_by_group(
    std::string_view since) {
  std::vector<std::pair<std::string, UsageTotals>> out;
  Use rows(*this, statement(kUsageByGroup));
  rows.bind(1, since);
  while (rows.step()) {
    out.emplace_back(rows.text(0), UsageTotals{rows.integer(1), rows.integer(2), rows.integer(3)});
  }
  return out;
}

std::vector<RunUsage> SqliteStore::usage_by_run(std::optional<std::string_view> folder, int limit) {
  std::vector<RunUsage> out;
  if (limit <= 0) return out;
  // Walks the usage newest first until `limit` distinct runs are seen, so the cost is the
  // rows of those runs, not the table; then sums each run through token_usage_by_run.
  std::vector<std::string> run_ids;
  {
    Use rows(*this, statement(folder ? kRecentRunsOfGroup : kRecentRuns));
    if (folder) rows.bind(1, *folder);
    while (run_ids.size() < static_cast<std::size_t>(limit) && rows.step()) {
      const std::string_view run_id = rows.text_view(0);
      if (std::find(run_ids.begin(), run_ids.end(), run_id) == run_ids.end()) {
        run_ids.emplace_back(run_id);
      }
    }
  }
  out.reserve(run_ids.size());
  for (auto& run_id : run_ids) {
    Use row(*this, statement(kRunTotals));
    row.bind(1, run_id);
    if (!row.step()) fail("summing the token usage of run " + run_id);
    RunUsage run;
    run.group_folder = row.text(0);
    run.first_at = row.text(1);
    run.totals = UsageTotals{row.integer(2), row.integer(3), row.integer(4)};
    run.run_id = std::move(run_id);
    out.push_back(std::move(run));
  }
  return out;
}

}  // namespace

std::string sqlite_message_query_sql(const MessageQuery& query) {
  std::string sql(kSelectMessage);
  std::string_view joiner = " WHERE ";
  auto condition = [&](std::string_view text) {
    sql += joiner;
    sql += text;
    joiner = " AND ";
  };
  int index = 1;
  if (query.unread_only) condition(kUnreadCondition);
  if (query.chat) {
    condition("m.chat_id = (SELECT id FROM chats WHERE jid = ?" + std::to_string(index++) + ")");
  }
  if (query.since) condition("m.id > ?" + std::to_string(index++));
  if (query.before) condition("m.id < ?" + std::to_string(index++));
  sql += query.ascending ? " ORDER BY m.id ASC" : " ORDER BY m.id DESC";
  sql += " LIMIT ?" + std::to_string(index);
  return sql;
}

std::span<const NamedSql> sqlite_named_queries() { return kNamedQueries; }

std::unique_ptr<Store> open_sqlite_store(const std::filesystem::path& file,
                                         const SqliteOptions& options) {
  return std::make_unique<SqliteStore>(file, options);
}

}  // namespace sb

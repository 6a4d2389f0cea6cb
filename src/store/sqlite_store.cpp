#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
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
  void migrate();
  Message read_message(const Use& row);

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

  {
    const StatementHandle wal = prepare("PRAGMA journal_mode = WAL");
    Use journal(*this, wal.get());
    if (!journal.step() || journal.text_view(0) != "wal") {
      throw StoreError(file_ + ": cannot switch the database to WAL mode (journal_mode is '" +
                       journal.text(0) + "'); is it on a file system without shared memory?");
    }
  }
  exec_script(
      options.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
      "setting synchronous");
  exec_script("PRAGMA foreign_keys = ON", "enabling foreign keys");
  migrate();
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

std::unique_ptr<Store> open_sqlite_store(const std::filesystem::path& file,
                                         const SqliteOptions& options) {
  return std::make_unique<SqliteStore>(file, options);
}

}  // namespace sb

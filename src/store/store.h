#pragma once
// The store: every message, chat, group, session, scheduled task, outbox row and cursor the
// daemon keeps. This interface is defined by what the daemon needs, not by SQL, so that a
// PostgreSQL implementation can sit beside the SQLite one.
//
// Threading: an instance is not thread-safe. Use one instance per thread (each opens its
// own connection to the same database); the daemon keeps one for reads on the event-loop
// thread and one for the writer thread (store/write_queue.h).
//
// Errors: a failing database (disk full, corrupt file, locked for too long) throws
// StoreError. Invalid arguments (a malformed chat id, metadata that is not a JSON object)
// throw std::invalid_argument; callers validate input first so that this is a bug.

#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/message.h"

namespace sb {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct AddResult {
  Message message;
  bool inserted = true;  // false: a message with the same external_id was already stored
};

class Store {
 public:
  virtual ~Store() = default;

  // Stores a message and creates its chat if new. Committed when this returns, unless
  // called inside atomically(). If `external_id` is set and already stored, nothing is
  // written and the stored message is returned with inserted = false.
  virtual AddResult add_message(const NewMessage& message) = 0;

  // The message with this id, or nullopt.
  virtual std::optional<Message> message(Seq id) = 0;
  virtual std::optional<Message> message_by_external_id(std::string_view external_id) = 0;

  // A page of messages matching `query`; uses indexes, never loads the table.
  virtual std::vector<Message> messages(const MessageQuery& query) = 0;

  // Sets a message's status. Returns false if there is no such message.
  virtual bool set_status(Seq id, MessageStatus status) = 0;

  // Counts over all messages; O(1) (kept up to date by the store).
  virtual MessageCounts counts() = 0;

  // Key-value cursors (a channel's sync state, a group's delivered-to-agent sequence).
  virtual std::optional<std::string> cursor(std::string_view key) = 0;
  virtual void set_cursor(std::string_view key, std::string_view value) = 0;

  // Runs `ops` in one durable commit (group commit). Each op is isolated: if it throws, its
  // own effects are undone, the exception is stored in errors[i], and the others still
  // commit. If the commit itself fails, every op's error is set. `errors.size()` must equal
  // `ops.size()`; entries of ops that succeeded are left null.
  virtual void atomically(std::span<const std::function<void()>> ops,
                          std::span<std::exception_ptr> errors) = 0;

  // The schema version after migrations.
  virtual int schema_version() = 0;
};

struct SqliteOptions {
  // synchronous=FULL: a commit survives power loss. NORMAL: it survives a crash of the
  // process (kill -9) but the last commits may be lost if the machine loses power.
  bool synchronous_full = true;
  int busy_timeout_ms = 5000;
};

// Opens (creating if needed) the SQLite database at `file` in WAL mode and runs pending
// migrations. Creates the parent directory. Throws StoreError naming the file on failure,
// including a database whose schema is newer than this binary knows.
std::unique_ptr<Store> open_sqlite_store(const std::filesystem::path& file,
                                         const SqliteOptions& options = {});

}  // namespace sb

#pragma once
// The store: every message, chat, group, session, scheduled task, outbox row, cursor and
// token count the daemon keeps. This interface is defined by what the daemon needs, not by SQL, so
// that a PostgreSQL implementation can sit beside the SQLite one.
//
// Threading: an instance is not thread-safe. Use one instance per thread (each opens its
// own connection to the same database); the daemon keeps one for reads on the event-loop
// thread and one for the writer thread (store/write_queue.h).
//
// Errors: a failing database (disk full, corrupt file, locked for too long) throws
// StoreError. Invalid arguments (a malformed chat id, metadata that is not a JSON object)
// throw std::invalid_argument; callers validate input first so that this is a bug. A few
// conflicts only the store can see (a chat already bound to another group, a duplicate task
// id) also throw std::invalid_argument, with a message that says which.
//
// Times are ISO-8601 UTC text as common/time.h writes it ("2026-05-18T10:20:30.123Z"); the
// store compares them as text, so callers pass times in exactly that form.

#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
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

// A conversation group: one agent, one folder, one or more chats routed to it.
struct GroupRecord {
  std::string folder;  // primary key
  std::string name;
  std::vector<std::string> chats;  // chat ids bound to this group (each chat to at most one group)
  std::optional<std::string> trigger;  // absent: the default "@<assistant_name>"
  bool requires_trigger = true;
  bool is_main = false;
  std::string agent_config_json = "{}";  // a JSON object
  std::string created_at;                // set by the store
  std::string updated_at;                // set by the store
};

enum class TaskStatus { active, paused, completed, cancelled };
std::string_view to_string(TaskStatus status);
std::optional<TaskStatus> parse_task_status(std::string_view text);

// Whether a scheduled task runs in its group's agent session or in a fresh one.
enum class ContextMode { group, isolated };
std::string_view to_string(ContextMode mode);
std::optional<ContextMode> parse_context_mode(std::string_view text);

struct TaskRecord {
  std::string id;  // chosen by the caller (unique)
  std::string group_folder;
  std::string chat_jid;
  std::string prompt;
  std::string schedule_type;  // "cron" | "interval" | "once" (validated by the caller)
  std::string schedule_value;
  ContextMode context_mode = ContextMode::isolated;
  TaskStatus status = TaskStatus::active;
  std::optional<std::string> next_run;  // ISO-8601 Z
  std::optional<std::string> last_run;
  std::optional<std::string> last_result;
  std::string created_at;  // set by the store when empty
};

struct TaskRunLog {
  std::int64_t id = 0;  // set by the store
  std::string task_id;
  std::string run_at;  // ISO-8601 Z
  std::int64_t duration_ms = 0;
  std::string status;  // "success" | "error"
  std::optional<std::string> result;
  std::optional<std::string> error;
};

// pending -> sending -> sent, or back to pending (retry), or failed (given up).
enum class OutboxState { pending, sending, sent, failed };
std::string_view to_string(OutboxState state);
std::optional<OutboxState> parse_outbox_state(std::string_view text);

struct OutboxItem {
  std::int64_t id = 0;
  std::string idempotency_key;
  std::string chat_jid;
  std::string channel;       // the chat id's channel ("http", "email", ...)
  std::string kind;          // "text" for now
  std::string payload_json;  // a JSON object
  OutboxState state = OutboxState::pending;
  int attempts = 0;  // failed attempts so far
  std::optional<std::string> next_attempt_at;
  std::optional<std::string> last_error;
  std::string created_at, updated_at;
  std::optional<std::string> sent_at;
};

struct ChatInfo {
  std::string jid;
  std::string channel;
  std::optional<std::string> name;
  std::optional<std::string> last_message_at;
};

// The tokens of one model request made during an agent run.
struct UsageRecord {
  std::string group_folder;
  std::string run_id;
  std::string model;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::string at;  // set by the store when empty
};

struct UsageTotals {
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t requests = 0;  // usage records summed
};

struct RunUsage {
  std::string run_id;
  std::string group_folder;
  std::string first_at;  // the run's earliest usage record
  UsageTotals totals;
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

  // ---- Messages, for the dispatcher ----
  // Every method below that takes a `limit` returns an empty list when it is <= 0.

  // The highest message id stored, 0 when there is none.
  virtual Seq latest_seq() = 0;

  // Messages of these chats with id > `after`, oldest first, at most `limit` (one query
  // whatever the number of chats). Excludes the assistant's own messages and filtered ones.
  // Unknown chats match nothing; no chats or limit <= 0 gives an empty list.
  virtual std::vector<Message> pending_messages(std::span<const std::string> chats, Seq after,
                                                int limit) = 0;

  // Up to `limit` known chats, most recently active first (chats without messages last).
  virtual std::vector<ChatInfo> chats(int limit) = 0;

  // ---- Groups ----

  // Every group, ordered by folder.
  virtual std::vector<GroupRecord> groups() = 0;
  // The group in `folder`, or nullopt.
  virtual std::optional<GroupRecord> group(std::string_view folder) = 0;
  // The folder of the group `chat` is bound to, or nullopt.
  virtual std::optional<std::string> group_of_chat(std::string_view chat) = 0;

  // Inserts or updates (by folder) and replaces its chat bindings; created_at is kept on
  // update, updated_at set to now. Throws std::invalid_argument (message says which) if a
  // chat is bound to another group, or is not a valid chat id, or if is_main is set while
  // another group is main, or agent_config is not a JSON object, or folder or name is empty.
  // A chat listed twice is bound once; the chats read back in the order given.
  virtual void put_group(const GroupRecord& group) = 0;

  // Removes the group, its chat bindings, its session and its tasks (and their run logs).
  // False if there was none. Cursors and token usage are left alone.
  virtual bool remove_group(std::string_view folder) = 0;

  // ---- Agent sessions, one per group folder ----

  // The group's agent session id, or nullopt.
  virtual std::optional<std::string> session(std::string_view folder) = 0;
  // Sets (or replaces) the group's session id.
  virtual void set_session(std::string_view folder, std::string_view session_id) = 0;
  // Forgets the group's session: its next run starts a new one. No effect if there is none.
  virtual void clear_session(std::string_view folder) = 0;

  // ---- Scheduled tasks ----

  // Stores a new task; created_at is now if empty. Throws std::invalid_argument on a
  // duplicate id, an empty id, or a schedule_type other than cron, interval and once.
  virtual void add_task(const TaskRecord& task) = 0;
  // The task with this id, or nullopt.
  virtual std::optional<TaskRecord> task(std::string_view id) = 0;
  // All tasks, or one group's, ordered by created_at (then id).
  virtual std::vector<TaskRecord> tasks(std::optional<std::string_view> folder) = 0;
  // Up to `limit` active tasks with next_run <= now, earliest next_run first.
  virtual std::vector<TaskRecord> due_tasks(std::string_view now, int limit) = 0;
  // The earliest next_run among active tasks, or nullopt if none has one.
  virtual std::optional<std::string> next_task_due() = 0;
  // Sets a task's status. False if there is no such task.
  virtual bool set_task_status(std::string_view id, TaskStatus status) = 0;
  // Sets (or with nullopt clears) a task's next_run. False if there is no such task.
  virtual bool set_task_next_run(std::string_view id, std::optional<std::string_view> next_run) = 0;
  // Appends the run log and updates the task's last_run (= run_at), last_result (the error
  // if set, else the result, truncated to 2000 characters), next_run and status, in one
  // transaction. Does nothing if the task is gone (deleted while it ran). Throws
  // std::invalid_argument if log.status is not "success" or "error".
  virtual void record_task_run(const TaskRunLog& log, std::optional<std::string_view> next_run,
                               TaskStatus status_after) = 0;
  // Up to `limit` runs of the task, newest first.
  virtual std::vector<TaskRunLog> task_runs(std::string_view task_id, int limit) = 0;
  // Deletes the task and its run logs. False if there was none.
  virtual bool delete_task(std::string_view id) = 0;

  // ---- Outbox ----
  // `attempts` counts failed attempts: retry and failed add one, sent does not.
  // The mark_* methods do nothing for an unknown id.

  // Adds a pending item (attempts 0, the given next_attempt_at, created_at = updated_at =
  // now; channel taken from chat_jid when empty), or returns the existing one with the same
  // idempotency key unchanged (second = false). Throws std::invalid_argument if the key or
  // kind is empty, chat_jid is not a valid chat id, or the payload is not a JSON object.
  virtual std::pair<OutboxItem, bool> enqueue_outbox(const OutboxItem& item) = 0;
  // The item with this id, or nullopt.
  virtual std::optional<OutboxItem> outbox_item(std::int64_t id) = 0;
  // Up to `limit` pending items whose next_attempt_at is null or <= now, oldest first.
  virtual std::vector<OutboxItem> due_outbox(std::string_view now, int limit) = 0;
  // When the next pending item is due: the earliest next_attempt_at, or the current time if a
  // pending item has none (it is due now); nullopt when nothing is pending.
  virtual std::optional<std::string> next_outbox_due() = 0;
  // The item is being sent (a crash leaves it there; see requeue_sending_outbox).
  virtual void mark_outbox_sending(std::int64_t id) = 0;
  // The remote accepted it: state sent, sent_at now.
  virtual void mark_outbox_sent(std::int64_t id) = 0;
  // Sending failed and will be retried: attempts + 1, back to pending at next_attempt_at.
  virtual void mark_outbox_retry(std::int64_t id, std::string_view next_attempt_at,
                                 std::string_view error) = 0;
  // Sending failed for good: attempts + 1, state failed, next_attempt_at cleared.
  virtual void mark_outbox_failed(std::int64_t id, std::string_view error) = 0;
  // Up to `limit` items, newest first, optionally only those in `state` and/or of `chat`.
  virtual std::vector<OutboxItem> outbox(std::optional<OutboxState> state,
                                         std::optional<std::string_view> chat, int limit) = 0;
  // Items left in `sending` by a crash go back to pending, due now (call at start-up, before
  // the outbox worker runs); returns how many. Attempts are not counted: the idempotency key
  // lets the remote drop a send that had in fact gone through.
  virtual int requeue_sending_outbox() = 0;

  // ---- Token usage ----

  // Records one model request's tokens; `at` is now if empty. Throws std::invalid_argument
  // if group_folder or run_id is empty or a count is negative.
  virtual void add_usage(const UsageRecord& usage) = 0;
  // The group's totals over records with at >= since.
  virtual UsageTotals usage_since(std::string_view folder, std::string_view since) = 0;
  // Totals per group folder over records with at >= since, ordered by folder; groups without
  // such records are absent.
  virtual std::vector<std::pair<std::string, UsageTotals>> usage_by_group(
      std::string_view since) = 0;
  // Up to `limit` runs (all groups' or one group's) with their totals, the run with the latest
  // usage first.
  virtual std::vector<RunUsage> usage_by_run(std::optional<std::string_view> folder, int limit) = 0;
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

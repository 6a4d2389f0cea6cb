#pragma once
// GroupQueue: decides when each conversation group's agent runs (docs/orchestrator.md,
// "Group queue"). It is a state machine that starts nothing itself: it tells a QueueDriver
// (the dispatcher) what to start and is told back when a run ends. It guarantees:
//   - at most one run per group at a time;
//   - at most max_concurrent runs overall; groups that find no free slot wait, in arrival
//     order, each at most once in the waiting list;
//   - when a run ends, the same group's pending tasks (in arrival order) run first, then its
//     pending messages, then waiting groups fill the free slots (a group's tasks first);
//   - a failed message run is retried after retry_base * 2^(n-1) for failure n (5, 10, 20,
//     40, 80 s); after max_retries retries it goes on being retried at the longest of these
//     waits until a run succeeds (the driver decides what a run does with messages that keep
//     failing: failures() tells it how many runs failed in a row). A success resets the
//     count. Failed task runs are not retried here (the scheduler owns tasks);
//   - an agent that answered and sits idle is asked to close as soon as a task waits for its
//     group, and as soon as another group waits for a slot (the longest idle agent first,
//     one per waiting group), so nobody waits for an idle timeout;
//   - after shutdown() nothing more starts.
//
// Threading: construct and call everything on the event-loop thread. The driver is called
// synchronously from inside these calls and may call back into the queue (enqueue_*,
// finished(), agent_*) from inside its callbacks; the queue updates its state before each
// driver call, so nothing is started twice.
//
// Ownership: the driver and the timer are borrowed and must outlive the queue. The queue
// keeps a small record for every group it has been told about (groups are the configured
// ones, so this is bounded by the configuration).

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/timer.h"

namespace sb::core {

enum class RunKind { messages, task };

// "messages" or "task".
std::string_view to_string(RunKind kind);

// What the queue asks of the dispatcher. Implementations must not throw: a run that cannot
// be started is reported by calling GroupQueue::finished(group, false), which may be done
// from inside start_*.
class QueueDriver {
 public:
  virtual ~QueueDriver() = default;
  // Start an agent run that processes the group's unprocessed messages. Call
  // GroupQueue::finished(group, success) exactly once when it has ended.
  virtual void start_messages(const std::string& group) = 0;
  // Start the run of scheduled task `task_id` in the group. Call finished() when it ended.
  virtual void start_task(const std::string& group, const std::string& task_id) = 0;
  // Ask the group's running agent to finish (it is idle, and a task waits for the group or
  // another group for a slot). Called at most once per run. The run still ends with
  // finished().
  virtual void request_close(const std::string& group) = 0;
};

struct QueueOptions {
  // Runs at the same time over all groups; at least 1.
  int max_concurrent = 5;
  // Wait before the first retry of a failed message run; doubled for each further failure.
  // Between 1 ms and 24 h.
  std::chrono::milliseconds retry_base{5000};
  // Retries of a failing message run with a growing wait; later ones wait as long as the
  // last of these. 0 to 30.
  int max_retries = 5;
};

class GroupQueue {
 public:
  // One group's state, for /health and for tests.
  struct GroupStatus {
    std::string group;
    std::optional<RunKind> active_kind;       // set while a run is active
    std::optional<std::string> running_task;  // the task id of an active task run
    bool idle = false;                        // the active agent answered and waits
    bool close_requested = false;             // request_close was sent to the active run
    std::size_t pending_tasks = 0;
    bool pending_messages = false;
    bool waiting = false;  // in the waiting list for a free slot
    int failures = 0;      // consecutive failed message runs (the retry count)
    bool retry_scheduled = false;
  };

  // Throws std::invalid_argument, naming the option, when an option is out of range.
  GroupQueue(QueueDriver& driver, Timer& timer, QueueOptions options = {});
  ~GroupQueue();  // cancels the retry timers
  GroupQueue(const GroupQueue&) = delete;
  GroupQueue& operator=(const GroupQueue&) = delete;

  // New messages wait for `group`. Idle group and a free slot: start_messages now. Active
  // group: remembered, a messages run follows the current run (the dispatcher pipes what it
  // can to a running message agent; this catches the rest). No free slot: the group waits.
  // Cancels a scheduled retry when it starts the run (the run replaces the retry).
  void enqueue_messages(const std::string& group);

  // Scheduled task `task_id` wants to run in `group`. Ignored when that task id is already
  // pending or running in the group. Otherwise queued behind the group's other tasks; when
  // the group's active agent is idle it is asked to close.
  void enqueue_task(const std::string& group, const std::string& task_id);

  // The group's running agent answered and now waits for input. If a task waits for the
  // group, or another group for a slot, the agent is asked to close. Ignored when the group
  // has no active run.
  void agent_idle(const std::string& group);
  // The group's running agent got input again (a message was piped to it): no longer idle.
  void agent_busy(const std::string& group);

  // The run started by start_* for `group` ended. Frees the slot and starts what is next.
  // `success` = false for a message run schedules its retry. For a group without an active
  // run this is a bug in the caller: logged as an error and ignored.
  void finished(const std::string& group, bool success);

  // Nothing starts any more (enqueue_* and finished() still update the state), and
  // scheduled retries are cancelled. Active runs are not touched; finished() them as usual.
  void shutdown();

  bool is_active(const std::string& group) const;
  // Message runs of the group that failed in a row (0 after a success).
  int failures(const std::string& group) const;
  std::optional<RunKind> active_kind(const std::string& group) const;
  // True for an active messages run that has not been asked to close: the dispatcher may
  // pipe new messages to it (then call agent_busy). Otherwise enqueue_messages.
  bool accepts_input(const std::string& group) const;
  int active_count() const { return active_count_; }
  // Groups waiting for a free slot, first to start first.
  std::vector<std::string> waiting_groups() const;
  bool is_shut_down() const { return shut_down_; }
  const QueueOptions& options() const { return options_; }
  // Every group the queue knows, ordered by name.
  std::vector<GroupStatus> snapshot() const;

 private:
  struct Group {
    std::optional<RunKind> active_kind;
    std::optional<std::string> running_task;
    bool idle = false;
    std::chrono::steady_clock::time_point idle_since{};
    bool close_requested = false;
    std::deque<std::string> pending_tasks;
    bool pending_messages = false;
    bool waiting = false;
    int failures = 0;
    std::optional<Timer::Handle> retry_timer;

    bool has_pending() const { return !pending_tasks.empty() || pending_messages; }
  };

  const Group* find(const std::string& group) const;
  void add_waiting(const std::string& group, bool in_front);
  void start_waiting();
  void start_next(const std::string& name, Group& group);
  void request_close(const std::string& name, Group& group, std::string_view why);
  // Asks idle agents, longest idle first, to close until every waiting group has a slot that
  // is free or being freed.
  void free_idle_slots();
  void after_failed_messages(const std::string& name, Group& group);
  void retry_due(const std::string& name);
  void cancel_retry(Group& group);

  QueueDriver& driver_;
  Timer& timer_;
  const QueueOptions options_;
  // std::map: references to a Group stay valid while the driver calls back (no erasure).
  std::map<std::string, Group, std::less<>> groups_;
  std::deque<std::string> waiting_;
  int active_count_ = 0;
  bool shut_down_ = false;
  // Set while start_waiting() runs; a nested call (from a driver callback) leaves the work to
  // the outer loop, which re-checks the state after every start.
  bool starting_ = false;
};

}  // namespace sb::core

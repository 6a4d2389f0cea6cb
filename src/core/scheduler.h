#pragma once
// Scheduled tasks: creating, pausing, resuming and cancelling them (for the API, the CLI and
// agents' IPC requests), and the timer that hands due tasks to the group queue.
//
// The scheduler sleeps until the earliest next_run (no polling). When a task is due it is
// "claimed" (next_run cleared in the store, so it is not handed out twice) and enqueued;
// the run's end records the run log and the next run computed from the time it ended, which
// is what makes a task overdue after downtime run once, not once per missed slot. A task
// claimed but never finished (the daemon died) runs once at the next start-up.
//
// Threading: everything on the event-loop thread.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"
#include "core/schedule.h"
#include "store/store.h"
#include "store/write_queue.h"

namespace sb::core {

struct NewTask {
  std::string group_folder;
  std::string chat_jid;
  std::string prompt;
  std::string schedule_type;  // cron | interval | once
  std::string schedule_value;
  std::string context_mode = "isolated";  // group | isolated
};

class Scheduler {
 public:
  // `enqueue(folder, task_id)` hands a due task to the group queue.
  using Enqueue = std::function<void(const std::string& folder, const std::string& task_id)>;
  Scheduler(boost::asio::any_io_executor executor, Store& reader, WriteQueue& writer, TimeZone zone,
            Enqueue enqueue);

  // Recovers tasks claimed before a crash, then arms the timer. Call once at start-up.
  boost::asio::awaitable<void> start();
  void stop();

  // Validates and stores a new task (id generated); its first run is computed in the
  // configured zone. The error says what is valid (cron fields, interval, once format).
  boost::asio::awaitable<Result<TaskRecord>> add(NewTask task);
  // pause / resume / cancel. nullopt on success; the error names the problem (no such
  // task, already cancelled ...).
  boost::asio::awaitable<std::optional<std::string>> pause(std::string id);
  boost::asio::awaitable<std::optional<std::string>> resume(std::string id);
  boost::asio::awaitable<std::optional<std::string>> cancel(std::string id);

  // Records a finished run: log line, last result, next run (nullopt → once completed).
  boost::asio::awaitable<void> finish_run(TaskRecord task, SysTime started, bool success,
                                          std::optional<std::string> result,
                                          std::optional<std::string> error);

  // Re-reads the earliest due time and re-arms the timer (after any change to tasks). Does
  // nothing before start().
  void refresh();

  const TimeZone& zone() const { return zone_; }

 private:
  boost::asio::awaitable<void> fire();
  boost::asio::awaitable<std::optional<std::string>> set_status(std::string id, TaskStatus from,
                                                                TaskStatus to, const char* verb);

  boost::asio::any_io_executor executor_;
  Store& reader_;
  WriteQueue& writer_;
  TimeZone zone_;
  Enqueue enqueue_;
  boost::asio::steady_timer timer_;
  bool started_ = false;  // nothing is handed out before start() recovered interrupted runs
  bool stopped_ = false;
  bool firing_ = false;
  std::uint64_t generation_ = 0;
};

}  // namespace sb::core

#include "core/scheduler.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "common/async.h"
#include "common/ids.h"
#include "common/time.h"

namespace sb::core {
namespace {

constexpr std::size_t kMaxPromptBytes = 64 * 1024;
constexpr int kDueBatch = 100;
// The timer re-reads the wall clock at least this often, so a clock step (NTP, suspend)
// delays a task by at most this much.
constexpr auto kMaxSleep = std::chrono::minutes(30);

}  // namespace

Scheduler::Scheduler(boost::asio::any_io_executor executor, Store& reader, WriteQueue& writer,
                     TimeZone zone, Enqueue enqueue)
    : executor_(executor),
      reader_(reader),
      writer_(writer),
      zone_(std::move(zone)),
      enqueue_(std::move(enqueue)),
      timer_(executor) {}

boost::asio::awaitable<void> Scheduler::start() {
  std::vector<std::string> interrupted;
  for (const TaskRecord& task : reader_.tasks(std::nullopt)) {
    if (task.status == TaskStatus::active && !task.next_run) interrupted.push_back(task.id);
  }
  if (!interrupted.empty()) {
    const std::string now = format_iso8601(now_utc());
    auto recover = [interrupted, now](Store& store) {
      for (const std::string& id : interrupted) store.set_task_next_run(id, now);
    };
    co_await writer_.run(std::move(recover));
    spdlog::warn("scheduler: {} task run(s) were interrupted by a stop; they run once now",
                 interrupted.size());
  }
  started_ = true;
  refresh();
}

void Scheduler::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Scheduler::refresh() {
  if (stopped_ || !started_) return;
  ++generation_;
  timer_.cancel();
  const auto next = reader_.next_task_due();
  if (!next) return;
  const auto due = parse_iso8601(*next);
  auto delay = due ? std::chrono::duration_cast<std::chrono::milliseconds>(*due - now_utc())
                   : std::chrono::milliseconds(0);
  delay = std::clamp<std::chrono::milliseconds>(delay, std::chrono::milliseconds(0), kMaxSleep);
  timer_.expires_after(delay);
  auto on_timer = [this, generation = generation_](const boost::system::error_code& ec) {
    if (ec || stopped_ || generation != generation_) return;
    auto run = [this]() -> boost::asio::awaitable<void> { co_await fire(); };
    boost::asio::co_spawn(executor_, std::move(run), log_failure("scheduler"));
  };
  timer_.async_wait(std::move(on_timer));
}

boost::asio::awaitable<void> Scheduler::fire() {
  if (firing_) co_return;
  firing_ = true;
  const std::string now = format_iso8601(now_utc());
  std::vector<TaskRecord> due = reader_.due_tasks(now, kDueBatch);
  if (!due.empty()) {
    std::vector<std::string> ids;
    for (const TaskRecord& task : due) ids.push_back(task.id);
    // Claimed before they are handed out, so a refresh cannot hand them out again.
    auto claim = [ids](Store& store) {
      for (const std::string& id : ids) store.set_task_next_run(id, std::nullopt);
    };
    try {
      co_await writer_.run(std::move(claim));
      for (const TaskRecord& task : due) {
        spdlog::info("scheduler: task {} of group '{}' is due", task.id, task.group_folder);
        enqueue_(task.group_folder, task.id);
      }
    } catch (const std::exception& e) {
      spdlog::error("scheduler: cannot claim {} due task(s): {}", due.size(), e.what());
    }
  }
  firing_ = false;
  refresh();
}

boost::asio::awaitable<Result<TaskRecord>> Scheduler::add(NewTask request) {
  auto type = parse_schedule_type(request.schedule_type);
  if (!type) co_return type.error();
  auto schedule = parse_schedule(*type, request.schedule_value, zone_);
  if (!schedule) co_return schedule.error();
  const auto mode = parse_context_mode(request.context_mode);
  if (!mode) {
    co_return make_error(
        "context_mode must be \"group\" (continue the group's conversation) or "
        "\"isolated\" (a fresh session), not '" +
        request.context_mode + "'");
  }
  if (request.prompt.empty() || request.prompt.size() > kMaxPromptBytes) {
    co_return make_error("a task's prompt must be 1 to 65536 bytes");
  }
  if (!parse_chat_id(request.chat_jid)) {
    co_return make_error("'" + request.chat_jid + "' is not a chat id (<channel>:<address>)");
  }
  TaskRecord task;
  task.id = random_id("task");
  task.group_folder = request.group_folder;
  task.chat_jid = request.chat_jid;
  task.prompt = std::move(request.prompt);
  task.schedule_type = std::string(to_string(*type));
  task.schedule_value = schedule->text();
  task.context_mode = *mode;
  task.status = TaskStatus::active;
  if (auto first = first_run(*schedule, now_utc())) task.next_run = format_iso8601(*first);
  auto save = [task](Store& store) {
    store.add_task(task);
    return *store.task(task.id);
  };
  TaskRecord saved = co_await writer_.run(std::move(save));
  spdlog::info("scheduler: task {} added for group '{}' ({} {}), first run {}", saved.id,
               saved.group_folder, saved.schedule_type, saved.schedule_value,
               saved.next_run.value_or("never"));
  refresh();
  co_return saved;
}

boost::asio::awaitable<std::optional<std::string>> Scheduler::set_status(std::string id,
                                                                         TaskStatus from,
                                                                         TaskStatus to,
                                                                         const char* verb) {
  auto task = reader_.task(id);
  if (!task) co_return "no task '" + id + "'";
  if (task->status == to) co_return std::nullopt;
  if (to != TaskStatus::cancelled && task->status != from) {
    co_return "task " + id + " is " + std::string(to_string(task->status)) + "; only " +
        std::string(to_string(from)) + " tasks can be " + verb;
  }
  if (task->status == TaskStatus::completed || task->status == TaskStatus::cancelled) {
    co_return "task " + id + " is already " + std::string(to_string(task->status));
  }
  std::optional<std::string> next = task->next_run;
  if (to == TaskStatus::active) {
    // A resumed task continues from now; slots missed while paused are not made up.
    auto type = parse_schedule_type(task->schedule_type);
    auto schedule =
        type ? parse_schedule(*type, task->schedule_value, zone_) : Result<Schedule>(type.error());
    if (!schedule) co_return "task " + id + " has an invalid schedule: " + schedule.error().message;
    const auto first = first_run(*schedule, now_utc());
    next = first ? std::optional(format_iso8601(*first)) : std::nullopt;
  }
  auto save = [id, to, next](Store& store) {
    store.set_task_status(id, to);
    if (to == TaskStatus::active) store.set_task_next_run(id, next);
  };
  co_await writer_.run(std::move(save));
  spdlog::info("scheduler: task {} {}", id, verb);
  refresh();
  co_return std::nullopt;
}

boost::asio::awaitable<std::optional<std::string>> Scheduler::pause(std::string id) {
  co_return co_await set_status(std::move(id), TaskStatus::active, TaskStatus::paused, "paused");
}

boost::asio::awaitable<std::optional<std::string>> Scheduler::resume(std::string id) {
  co_return co_await set_status(std::move(id), TaskStatus::paused, TaskStatus::active, "resumed");
}

boost::asio::awaitable<std::optional<std::string>> Scheduler::cancel(std::string id) {
  co_return co_await set_status(std::move(id), TaskStatus::active, TaskStatus::cancelled,
                                "cancelled");
}

boost::asio::awaitable<void> Scheduler::finish_run(TaskRecord task, SysTime started, bool success,
                                                   std::optional<std::string> result,
                                                   std::optional<std::string> error) {
  const SysTime ended = now_utc();
  TaskRunLog log;
  log.task_id = task.id;
  log.run_at = format_iso8601(started);
  log.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ended - started).count();
  log.status = success ? "success" : "error";
  log.result = std::move(result);
  log.error = std::move(error);

  std::optional<std::string> next;
  auto type = parse_schedule_type(task.schedule_type);
  auto schedule =
      type ? parse_schedule(*type, task.schedule_value, zone_) : Result<Schedule>(type.error());
  if (schedule) {
    // An interval counts from the run's start, so that the time a run takes does not push
    // every later run back.
    const SysTime from = *type == ScheduleType::interval ? started : ended;
    if (auto at = next_run(*schedule, from)) next = format_iso8601(*at);
  } else {
    spdlog::error("scheduler: task {} has an invalid schedule ({}); completing it", task.id,
                  schedule.error().message);
  }
  // Paused or cancelled while it ran: keep that.
  const auto current = reader_.task(task.id);
  TaskStatus after = next ? TaskStatus::active : TaskStatus::completed;
  if (current && current->status != TaskStatus::active) after = current->status;
  auto save = [log, next, after](Store& store) { store.record_task_run(log, next, after); };
  try {
    co_await writer_.run(std::move(save));
  } catch (const std::exception& e) {
    spdlog::error("scheduler: cannot record the run of task {}: {}", task.id, e.what());
  }
  spdlog::info("scheduler: task {} ran in {} ms ({}), next run {}", task.id, log.duration_ms,
               log.status,
               next.value_or(after == TaskStatus::completed ? "none (completed)" : "none"));
  refresh();
}

}  // namespace sb::core

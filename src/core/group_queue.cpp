#include "core/group_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace sb::core {

std::string_view to_string(RunKind kind) { return kind == RunKind::messages ? "messages" : "task"; }

namespace {

QueueOptions validated(QueueOptions options) {
  if (options.max_concurrent < 1) {
    throw std::invalid_argument("group queue: max_concurrent must be at least 1, got " +
                                std::to_string(options.max_concurrent));
  }
  if (options.retry_base < std::chrono::milliseconds{1} ||
      options.retry_base > std::chrono::hours{24}) {
    throw std::invalid_argument("group queue: retry_base must be between 1 ms and 24 h, got " +
                                std::to_string(options.retry_base.count()) + " ms");
  }
  // 30 doublings of at most 24 h stay far inside the 64-bit millisecond range.
  if (options.max_retries < 0 || options.max_retries > 30) {
    throw std::invalid_argument("group queue: max_retries must be between 0 and 30, got " +
                                std::to_string(options.max_retries));
  }
  return options;
}

}  // namespace

GroupQueue::GroupQueue(QueueDriver& driver, Timer& timer, QueueOptions options)
    : driver_(driver), timer_(timer), options_(validated(options)) {}

GroupQueue::~GroupQueue() {
  for (auto& [name, group] : groups_) cancel_retry(group);
}

void GroupQueue::enqueue_messages(const std::string& name) {
  if (shut_down_) {
    spdlog::debug("queue: {}: shutting down, messages not started", name);
    return;
  }
  Group& group = groups_[name];
  group.pending_messages = true;
  if (group.active_kind) {
    spdlog::debug("queue: {}: run active, messages wait for it", name);
    return;
  }
  add_waiting(name, false);
  start_waiting();
}

void GroupQueue::enqueue_task(const std::string& name, const std::string& task_id) {
  if (shut_down_) {
    spdlog::debug("queue: {}: shutting down, task {} not started", name, task_id);
    return;
  }
  Group& group = groups_[name];
  const bool already = group.running_task == task_id ||
                       std::find(group.pending_tasks.begin(), group.pending_tasks.end(), task_id) !=
                           group.pending_tasks.end();
  if (already) {
    spdlog::debug("queue: {}: task {} already pending or running, ignored", name, task_id);
    return;
  }
  group.pending_tasks.push_back(task_id);
  if (group.active_kind) {
    spdlog::debug("queue: {}: run active, task {} waits for it", name, task_id);
    if (group.idle) request_close(name, group, "a task waits");
    return;
  }
  add_waiting(name, false);
  start_waiting();
}

void GroupQueue::agent_idle(const std::string& name) {
  const auto it = groups_.find(name);
  if (it == groups_.end() || !it->second.active_kind) {
    spdlog::debug("queue: {}: idle reported without an active run, ignored", name);
    return;
  }
  Group& group = it->second;
  group.idle = true;
  group.idle_since = std::chrono::steady_clock::now();
  if (!group.pending_tasks.empty()) {
    request_close(name, group, "a task waits");
  } else {
    free_idle_slots();
  }
}

void GroupQueue::agent_busy(const std::string& name) {
  const auto it = groups_.find(name);
  if (it == groups_.end() || !it->second.active_kind) return;
  it->second.idle = false;
}

void GroupQueue::finished(const std::string& name, bool success) {
  const auto it = groups_.find(name);
  if (it == groups_.end() || !it->second.active_kind) {
    spdlog::error("queue: {}: finished() without an active run (a bug in the caller), ignored",
                  name);
    return;
  }
  Group& group = it->second;
  const RunKind kind = *group.active_kind;
  group.active_kind.reset();
  group.idle = false;
  group.close_requested = false;
  --active_count_;
  if (kind == RunKind::task) {
    if (!success) {
      spdlog::debug("queue: {}: task {} failed (the scheduler decides about it)", name,
                    *group.running_task);
    }
    group.running_task.reset();
  } else if (success) {
    group.failures = 0;
  } else {
    after_failed_messages(name, group);
  }
  if (shut_down_) return;
  // The group's own pending work takes the slot it just freed, before the waiting groups.
  if (group.has_pending()) add_waiting(name, true);
  start_waiting();
}

void GroupQueue::shutdown() {
  shut_down_ = true;
  for (auto& [name, group] : groups_) cancel_retry(group);
  spdlog::info("queue: shutting down: no new runs; {} run(s) still active", active_count_);
}

const GroupQueue::Group* GroupQueue::find(const std::string& name) const {
  const auto it = groups_.find(name);
  return it == groups_.end() ? nullptr : &it->second;
}

int GroupQueue::failures(const std::string& name) const {
  const Group* group = find(name);
  return group == nullptr ? 0 : group->failures;
}

bool GroupQueue::is_active(const std::string& name) const {
  const Group* group = find(name);
  return group != nullptr && group->active_kind.has_value();
}

std::optional<RunKind> GroupQueue::active_kind(const std::string& name) const {
  const Group* group = find(name);
  return group == nullptr ? std::nullopt : group->active_kind;
}

bool GroupQueue::accepts_input(const std::string& name) const {
  const Group* group = find(name);
  return group != nullptr && group->active_kind == RunKind::messages && !group->close_requested;
}

std::vector<std::string> GroupQueue::waiting_groups() const {
  return {waiting_.begin(), waiting_.end()};
}

std::vector<GroupQueue::GroupStatus> GroupQueue::snapshot() const {
  std::vector<GroupStatus> result;
  result.reserve(groups_.size());
  for (const auto& [name, group] : groups_) {
    result.push_back(GroupStatus{
        .group = name,
        .active_kind = group.active_kind,
        .running_task = group.running_task,
        .idle = group.idle,
        .close_requested = group.close_requested,
        .pending_tasks = group.pending_tasks.size(),
        .pending_messages = group.pending_messages,
        .waiting = group.waiting,
        .failures = group.failures,
        .retry_scheduled = group.retry_timer.has_value(),
    });
  }
  return result;
}

// Invariant: a waiting group is not active and has pending work.
void GroupQueue::add_waiting(const std::string& name, bool in_front) {
  Group& group = groups_[name];
  if (group.waiting) return;
  group.waiting = true;
  if (in_front) {
    waiting_.push_front(name);
  } else {
    waiting_.push_back(name);
  }
}

void GroupQueue::start_waiting() {
  if (starting_) return;
  starting_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{starting_};
  // The driver may change anything from inside start_*, so every round re-reads the state.
  while (!shut_down_ && active_count_ < options_.max_concurrent && !waiting_.empty()) {
    const std::string name = std::move(waiting_.front());
    waiting_.pop_front();
    Group& group = groups_[name];
    group.waiting = false;
    start_next(name, group);
  }
  free_idle_slots();
}

void GroupQueue::free_idle_slots() {
  if (shut_down_ || waiting_.empty() || active_count_ < options_.max_concurrent) return;
  std::size_t closing = 0;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> idle;
  for (const auto& [name, group] : groups_) {
    if (!group.active_kind) continue;
    if (group.close_requested) {
      ++closing;
    } else if (group.idle) {
      idle.emplace_back(group.idle_since, name);
    }
  }
  if (closing >= waiting_.size()) return;
  std::sort(idle.begin(), idle.end());
  const std::size_t wanted = std::min(waiting_.size() - closing, idle.size());
  for (std::size_t i = 0; i < wanted; ++i) {
    request_close(idle[i].second, groups_[idle[i].second], "another group waits for a slot");
  }
}

// Marks the run active before calling the driver, so that a call back from inside start_*
// sees the group busy and the slot taken.
void GroupQueue::start_next(const std::string& name, Group& group) {
  group.idle = false;
  group.close_requested = false;
  ++active_count_;
  if (!group.pending_tasks.empty()) {
    std::string task_id = std::move(group.pending_tasks.front());
    group.pending_tasks.pop_front();
    group.active_kind = RunKind::task;
    group.running_task = task_id;
    spdlog::debug("queue: {}: starting task {} ({} active)", name, task_id, active_count_);
    driver_.start_task(name, task_id);
    return;
  }
  group.pending_messages = false;
  group.active_kind = RunKind::messages;
  cancel_retry(group);
  spdlog::debug("queue: {}: starting messages run ({} active)", name, active_count_);
  driver_.start_messages(name);
}

void GroupQueue::request_close(const std::string& name, Group& group, std::string_view why) {
  if (group.close_requested) return;
  group.close_requested = true;
  spdlog::info("queue: {}: idle agent asked to close, {}", name, why);
  driver_.request_close(name);
}

void GroupQueue::after_failed_messages(const std::string& name, Group& group) {
  ++group.failures;
  if (shut_down_) return;
  // The longest wait is that before retry max_retries (retry_base when there are none).
  const int step = std::min(group.failures, std::max(options_.max_retries, 1)) - 1;
  const auto delay = options_.retry_base * (std::int64_t{1} << step);
  spdlog::info("queue: {}: message run failed {} time(s) in a row; retried in {} ms", name,
               group.failures, delay.count());
  cancel_retry(group);
  group.retry_timer = timer_.after(delay, [this, name] { retry_due(name); });
}

void GroupQueue::retry_due(const std::string& name) {
  Group& group = groups_[name];
  group.retry_timer.reset();
  if (shut_down_) return;
  // A messages run started since the retry was scheduled cancels it, so this cannot double
  // a run; an active task run gets the messages run after it.
  enqueue_messages(name);
}

void GroupQueue::cancel_retry(Group& group) {
  if (!group.retry_timer) return;
  timer_.cancel(*group.retry_timer);
  group.retry_timer.reset();
}

}  // namespace sb::core

#include "core/dispatcher.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/async.h"
#include "common/ids.h"
#include "common/safe_files.h"
#include "common/time.h"
#include "core/formatting.h"
#include "host/ipc_files.h"
#include "sandbox/agent_folders.h"

namespace sb::core {
namespace json = boost::json;

namespace {

constexpr int kMaxChatsListed = 500;
// Daemon stops with the same message at an agent before it is set aside (recover()).
constexpr int kMaxRecoveries = 3;

std::string cursor_map_key(std::string_view folder, std::string_view chat) {
  return std::string(folder) + "\n" + std::string(chat);
}

// The first line of a run's error, at most 300 bytes, for a notice in the chat.
std::string short_reason(std::string_view error) {
  std::string_view line = error.substr(0, error.find('\n'));
  if (line.starts_with("the agent reported an error: ")) line.remove_prefix(29);
  std::string out(line.substr(0, 300));
  while (!out.empty() && (out.back() == '.' || out.back() == ' ')) out.pop_back();
  return out.empty() ? "the agent failed without saying why" : out;
}

std::string day_start_utc() {
  std::string now = format_iso8601(now_utc());
  return now.substr(0, 10) + "T00:00:00.000Z";
}

// "20261121T101530" for log file names.
std::string compact_time() {
  std::string now = format_iso8601(now_utc());
  std::string out;
  for (char c : now.substr(0, 19)) {
    if (c != '-' && c != ':') out += c;
  }
  return out;
}

}  // namespace

struct Dispatcher::ActiveRun {
  std::string folder;
  std::string run_id;
  std::string kind;
  std::string chat;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::unique_ptr<sandbox::AgentRun> agent;
  int results = 0;
  int replies = 0;  // numbers the replies: their outbox keys are "<run_id>:<n>"
  bool isolated = false;
  std::optional<std::string> last_result;
  std::optional<std::string> last_error;
  // Messages delivered in this run (status processing) that no reply has covered yet, in
  // order: a reply marks them replied and empties the list.
  std::vector<Seq> unanswered;
  // What was delivered, in order: the first batch, then each follow-up written to input/.
  struct Batch {
    Seq before = 0;    // the chat's delivered cursor before this batch
    Seq first = 0;     // its first message
    std::string file;  // the follow-up's file in input/; empty for the first batch
  };
  std::vector<Batch> batches;
  // The batch that holds message `id` (a delivered one).
  const Batch& batch_of(Seq id) const {
    for (auto it = batches.rbegin(); it != batches.rend(); ++it) {
      if (it->first <= id) return *it;
    }
    return batches.front();
  }
};

Dispatcher::Dispatcher(boost::asio::any_io_executor executor, Store& reader, WriteQueue& writer,
                       GroupRegistry& groups, Scheduler& scheduler, Outbox& outbox,
                       host::ModelProxy& proxy, MetricsRegistry& metrics, DispatcherOptions options)
    : executor_(executor),
      reader_(reader),
      writer_(writer),
      groups_(groups),
      scheduler_(scheduler),
      outbox_(outbox),
      proxy_(proxy),
      options_(std::move(options)),
      runs_started_(metrics.counter("switchboard_agent_runs_total", "Agent runs started.")),
      runs_failed_(metrics.counter("switchboard_agent_runs_failed_total",
                                   "Agent runs that ended in an error.")),
      replies_(metrics.counter("switchboard_agent_replies_total", "Agent results sent to a chat.")),
      piped_(metrics.counter("switchboard_agent_piped_total",
                             "Message batches handed to an already running agent.")),
      input_tokens_(metrics.counter("switchboard_model_input_tokens_total",
                                    "Input tokens reported by the model provider.")),
      output_tokens_(metrics.counter("switchboard_model_output_tokens_total",
                                     "Output tokens reported by the model provider.")),
      run_seconds_(metrics.histogram("switchboard_agent_run_duration_seconds",
                                     "Duration of one agent run, start to exit.")) {}

Dispatcher::~Dispatcher() = default;

std::shared_ptr<Dispatcher::ActiveRun> Dispatcher::new_run(const GroupRecord& group,
                                                           std::string kind, std::string chat) {
  auto run = std::make_shared<ActiveRun>();
  run->folder = group.folder;
  run->run_id = random_id("run");
  run->kind = std::move(kind);
  run->chat = std::move(chat);
  return run;
}

void Dispatcher::spawn(std::function<boost::asio::awaitable<void>()> work, std::string what) {
  boost::asio::co_spawn(executor_, std::move(work), log_failure(std::move(what)));
}

Seq Dispatcher::delivered(const std::string& folder, const std::string& chat) {
  const std::string key = cursor_map_key(folder, chat);
  if (auto it = delivered_.find(key); it != delivered_.end()) return it->second;
  Seq seq = 0;
  if (auto value = reader_.cursor(delivered_cursor_key(folder, chat))) {
    std::from_chars(value->data(), value->data() + value->size(), seq);
  }
  delivered_[key] = seq;
  return seq;
}

boost::asio::awaitable<void> Dispatcher::set_delivered(std::string folder, std::string chat,
                                                       Seq seq) {
  delivered_[cursor_map_key(folder, chat)] = seq;
  auto save = [key = delivered_cursor_key(folder, chat),
               value = std::to_string(seq)](Store& store) { store.set_cursor(key, value); };
  co_await writer_.run(std::move(save));
}

std::optional<Dispatcher::Batch> Dispatcher::next_batch(const GroupRecord& group,
                                                        std::optional<std::string> only_chat) {
  auto matcher = TriggerMatcher::make(groups_.triggers(group));
  if (!matcher) {
    spdlog::error("group '{}': {}", group.folder, matcher.error().message);
    return std::nullopt;
  }
  std::optional<Batch> best;
  for (const std::string& chat : group.chats) {
    if (only_chat && chat != *only_chat) continue;
    const std::string chats[] = {chat};
    const GatingRules rules{.is_main = group.is_main, .requires_trigger = group.requires_trigger};
    const auto limit = static_cast<int>(options_.max_batch_messages);
    std::vector<Message> pending =
        reader_.pending_messages(chats, delivered(group.folder, chat), limit);
    std::vector<Message> selected = messages_for_agent(pending, rules, matcher.value());
    // A full page without a trigger: slide the context window so that a trigger further on
    // is still seen; the oldest untriggered messages are no longer given as context.
    for (int guard = 0;
         selected.empty() && pending.size() >= static_cast<std::size_t>(limit) && guard < 1000;
         ++guard) {
      const Seq skip_to = pending[pending.size() / 2].id;
      spdlog::info(
          "group '{}': {} messages in {} without a trigger; the oldest are dropped from "
          "the context",
          group.folder, pending.size(), chat);
      delivered_[cursor_map_key(group.folder, chat)] = skip_to;
      auto save = [key = delivered_cursor_key(group.folder, chat),
                   value = std::to_string(skip_to)](Store& store) { store.set_cursor(key, value); };
      auto persist = [this, save]() -> boost::asio::awaitable<void> { co_await writer_.run(save); };
      spawn(std::move(persist), "group '" + group.folder + "': sliding the context window");
      pending = reader_.pending_messages(chats, skip_to, limit);
      selected = messages_for_agent(pending, rules, matcher.value());
    }
    if (selected.empty()) continue;
    if (!best || pending.front().id < best->messages.front().id) {
      best = Batch{chat, std::move(selected), pending.back().id};
    }
  }
  return best;
}

void Dispatcher::group_changed(const std::string& folder) {
  // Cursors of a removed or re-registered group come from the store again.
  const std::string prefix = folder + "\n";
  for (auto it = delivered_.lower_bound(prefix);
       it != delivered_.end() && it->first.starts_with(prefix);) {
    it = delivered_.erase(it);
  }
}

void Dispatcher::message_stored(const Message& message) {
  if (stopping_ || !message.chat || message.from_assistant ||
      message.status == MessageStatus::filtered) {
    return;
  }
  const GroupRecord* group = groups_.for_chat(*message.chat);
  if (!group) return;
  auto run = runs_.find(group->folder);
  if (queue_->accepts_input(group->folder) && run != runs_.end() && run->second->agent &&
      run->second->chat == *message.chat) {
    pipe_to_running(*group);
    return;
  }
  queue_->enqueue_messages(group->folder);
}

void Dispatcher::pipe_to_running(const GroupRecord& group) {
  auto& run = runs_.at(group.folder);
  auto batch = next_batch(group, run->chat);
  if (!batch) return;
  auto written = host::write_input_message(groups_.paths().ipc_root(), group.folder,
                                           format_messages(batch->messages));
  if (!written) {
    spdlog::error("group '{}': cannot hand messages to the running agent: {}; queued instead",
                  group.folder, written.error().message);
    queue_->enqueue_messages(group.folder);
    return;
  }
  run->batches.push_back(
      {delivered(group.folder, batch->chat), batch->messages.front().id, written.value()});
  for (const Message& m : batch->messages) run->unanswered.push_back(m.id);
  run->agent->input_sent();
  queue_->agent_busy(group.folder);
  piped_.inc();
  spdlog::debug("group '{}': {} message(s) handed to the running agent", group.folder,
                batch->messages.size());
  // The in-memory cursor moves now, so a second message before the commit is not sent twice.
  delivered_[cursor_map_key(group.folder, batch->chat)] = batch->last;
  std::vector<Seq> ids;
  for (const Message& m : batch->messages) ids.push_back(m.id);
  auto save = [key = delivered_cursor_key(group.folder, batch->chat),
               value = std::to_string(batch->last), ids](Store& store) {
    store.set_cursor(key, value);
    for (Seq id : ids) store.set_status(id, MessageStatus::processing);
  };
  auto persist = [this, save]() -> boost::asio::awaitable<void> { co_await writer_.run(save); };
  spawn(std::move(persist), "group '" + group.folder + "': saving the delivered cursor");
}

boost::asio::awaitable<void> Dispatcher::recover() {
  // Messages left "processing" were with an agent when the daemon died, and nothing was
  // sent for them (a reply marks them "replied"): deliver them again.
  for (const GroupRecord& group : groups_.all()) {
    for (const std::string& chat : group.chats) {
      MessageQuery query;
      query.chat = chat;
      query.unread_only = true;
      query.ascending = true;
      query.limit = 1000;
      std::vector<Seq> in_flight;
      for (const Message& m : reader_.messages(query)) {
        if (m.status == MessageStatus::processing && !m.from_assistant) in_flight.push_back(m.id);
      }
      if (in_flight.empty() || in_flight.front() > delivered(group.folder, chat)) continue;
      // A message that was with the agent at every one of the last kMaxRecoveries stops of
      // the daemon may be what brings it down: it is set aside instead of delivered again,
      // so that it cannot cause a crash loop.
      const std::string key = "recovered:" + delivered_cursor_key(group.folder, chat);
      int times = 1;
      if (auto seen = reader_.cursor(key)) {
        Seq seq = 0;
        const char* end = seen->data() + seen->size();
        auto parsed = std::from_chars(seen->data(), end, seq);
        if (seq == in_flight.front() && parsed.ptr != end && *parsed.ptr == ' ') {
          std::from_chars(parsed.ptr + 1, end, times);
          ++times;
        }
      }
      const bool set_aside = times >= kMaxRecoveries;
      auto remember = [key, value = std::to_string(in_flight.front()) + " " + std::to_string(times),
                       ids = in_flight, set_aside](Store& store) {
        store.set_cursor(key, value);
        if (set_aside) {
          for (Seq id : ids) store.set_status(id, MessageStatus::failed);
        }
      };
      co_await writer_.run(std::move(remember));
      if (set_aside) {
        spdlog::error(
            "group '{}': messages from {} on were with the agent at each of the last {} "
            "stops of the daemon; they are set aside (status failed)",
            group.folder, in_flight.front(), times);
        auto notice = outbox_.enqueue_text(
            chat,
            "I could not answer your message and have set it aside: the service stopped "
            "while working on it " +
                std::to_string(times) + " times. Please send it again if you still need an answer.",
            "recovery:" + group.folder + ":" + std::to_string(in_flight.front()));
        co_await std::move(notice);
        continue;
      }
      spdlog::warn(
          "group '{}': messages from {} on were with the agent when the daemon "
          "stopped, without an answer; delivering them again",
          group.folder, in_flight.front());
      co_await set_delivered(group.folder, chat, in_flight.front() - 1);
    }
  }
  for (const GroupRecord& group : groups_.all()) {
    if (next_batch(group, std::nullopt)) {
      spdlog::info("group '{}' has undelivered messages from before the restart; queued",
                   group.folder);
      queue_->enqueue_messages(group.folder);
    }
  }
}

void Dispatcher::start_messages(const std::string& group) {
  auto work = [this, group]() -> boost::asio::awaitable<void> { co_await run_messages(group); };
  spawn(std::move(work), "group '" + group + "': message run");
}

void Dispatcher::start_task(const std::string& group, const std::string& task_id) {
  auto work = [this, group, task_id]() -> boost::asio::awaitable<void> {
    co_await run_task(group, task_id);
  };
  spawn(std::move(work), "group '" + group + "': task run");
}

void Dispatcher::request_close(const std::string& group) {
  auto it = runs_.find(group);
  if (it != runs_.end() && it->second->agent) it->second->agent->request_close();
}

boost::asio::awaitable<void> Dispatcher::run_messages(std::string folder) {
  const GroupRecord* found = groups_.find(folder);
  std::optional<Batch> batch;
  if (found && !stopping_) batch = next_batch(*found, std::nullopt);
  if (!batch) {
    queue_->finished(folder, true);
    co_return;
  }
  const GroupRecord group = *found;
  auto run = new_run(group, "messages", batch->chat);
  for (const Message& m : batch->messages) run->unanswered.push_back(m.id);
  run->batches.push_back({delivered(folder, batch->chat), batch->messages.front().id, {}});

  Settled settled;
  try {
    // Durable before the agent sees anything: a crash after this re-delivers nothing twice
    // unless the run fails without answering, which rolls back below.
    auto advance = [key = delivered_cursor_key(folder, batch->chat),
                    value = std::to_string(batch->last), ids = run->unanswered](Store& store) {
      store.set_cursor(key, value);
      for (Seq id : ids) store.set_status(id, MessageStatus::processing);
    };
    delivered_[cursor_map_key(folder, batch->chat)] = batch->last;
    co_await writer_.run(std::move(advance));

    if (auto refusal = budget_refusal(folder)) {
      spdlog::warn("group '{}': {}", folder, *refusal);
      co_await send_reply(run, *refusal, std::exchange(run->unanswered, {}));
      queue_->finished(folder, true);
      co_return;
    }
    const auto session = reader_.session(folder);
    runs_[folder] = run;
    const sandbox::RunOutcome outcome =
        co_await run_agent(run, group, format_messages(batch->messages), session);
    settled = co_await settle(run, outcome);
  } catch (const std::exception& e) {
    // What is unanswered stays "processing" in the store (recovery delivers it at the next
    // start); the in-memory cursor goes back so that the retry delivers it now.
    spdlog::error("group '{}': message run failed: {}", folder, e.what());
    if (!run->unanswered.empty()) {
      delivered_[cursor_map_key(folder, run->chat)] = run->batch_of(run->unanswered.front()).before;
      settled.ok = false;
    }
  }
  end_run(folder);
  // Follow-ups the agent never read run again at once: the group's pending messages take
  // the slot its run frees.
  if (settled.again) queue_->enqueue_messages(folder);
  queue_->finished(folder, settled.ok);
}

boost::asio::awaitable<Dispatcher::Settled> Dispatcher::settle(std::shared_ptr<ActiveRun> run,
                                                               const sandbox::RunOutcome& outcome) {
  const std::string& folder = run->folder;
  Settled settled;
  // Follow-ups still in input/ were never read: the agent exited before it took them. Every
  // later one was not read either (the agent takes them in order), and all are removed.
  std::optional<Seq> untaken;
  for (const ActiveRun::Batch& piped : run->batches) {
    if (piped.file.empty()) continue;
    auto left = host::withdraw_input_message(groups_.paths().ipc_root(), folder, piped.file);
    if (!left) {
      spdlog::warn("group '{}': cannot check the follow-up {}: {}; delivering it again", folder,
                   piped.file, left.error().message);
    }
    if ((!left || left.value()) && !untaken) untaken = piped.first;
  }
  std::vector<Seq> unread;   // not read by the agent: delivered again at once
  std::vector<Seq> failed;   // read, and the run failed without answering them
  std::vector<Seq> handled;  // read, and the agent chose to say nothing
  for (Seq id : run->unanswered) {
    if (untaken && id >= *untaken) {
      unread.push_back(id);
    } else if (!outcome.success) {
      failed.push_back(id);
    } else {
      handled.push_back(id);
    }
  }
  if (!unread.empty()) {
    spdlog::info("group '{}': the agent ended without reading {} follow-up message(s); {}", folder,
                 unread.size(),
                 failed.empty() ? "delivering them again now" : "they are retried too");
    settled.again = failed.empty();
  }

  std::vector<Seq> back = unread;  // return to the queue, from the first of them on
  MessageStatus back_status = MessageStatus::unread;
  if (!failed.empty()) {
    runs_failed_.inc();
    const int failures = queue_->failures(folder) + 1;
    const int retries = queue_->options().max_retries;
    const bool retries_used_up = failures == retries + 1;
    const std::string reason = short_reason(outcome.error);
    if (outcome.ended_in_error || failures <= retries) {
      // The agent ran and reported why it could not answer (the model provider failed, for
      // instance), or retries remain: retried, for as long as it takes.
      failing_[folder] = reason;
      spdlog::error(
          "group '{}': run {} failed without answering {} message(s) ({} in a row): {}; "
          "they are retried",
          folder, run->run_id, failed.size(), failures, outcome.error);
      if (retries_used_up && notified_.insert(folder).second) {
        co_await send_notice(run, "I could not answer your message: " + reason +
                                      ". I will keep trying and answer as soon as it works.");
      }
      if (notified_.contains(folder)) back_status = MessageStatus::failed;
      back.insert(back.begin(), failed.begin(), failed.end());
      settled.ok = false;
      settled.again = false;
    } else {
      // The agent itself fails on these messages (a crash, a timeout, no answer) every time:
      // they are set aside, so that they cannot hold up the group for ever.
      spdlog::error(
          "group '{}': run {} failed {} times in a row without answering ({}); {} message(s) "
          "set aside",
          folder, run->run_id, failures, outcome.error, failed.size());
      auto set_aside = [ids = failed](Store& store) {
        for (Seq id : ids) store.set_status(id, MessageStatus::failed);
      };
      co_await writer_.run(std::move(set_aside));
      co_await send_notice(run, "I could not answer your message and have set it aside: " + reason +
                                    ". Please send it again if you still need an answer.");
      failing_.erase(folder);
    }
  } else {
    if (!handled.empty()) {
      // Handled without anything to say: no longer "processing" (which recovery re-delivers).
      auto read = [ids = handled](Store& store) {
        for (Seq id : ids) store.set_status(id, MessageStatus::read);
      };
      co_await writer_.run(std::move(read));
    }
    if (outcome.success) {
      failing_.erase(folder);
      notified_.erase(folder);
    } else {
      spdlog::warn("group '{}': run {} failed after answering everything ({})", folder, run->run_id,
                   outcome.error);
    }
  }
  if (!back.empty()) {
    const Seq cursor = run->batch_of(back.front()).before;
    delivered_[cursor_map_key(folder, run->chat)] = cursor;
    auto rollback = [key = delivered_cursor_key(folder, run->chat), value = std::to_string(cursor),
                     ids = back, back_status](Store& store) {
      store.set_cursor(key, value);
      for (Seq id : ids) store.set_status(id, back_status);
    };
    co_await writer_.run(std::move(rollback));
  }
  co_return settled;
}

boost::asio::awaitable<void> Dispatcher::run_task(std::string folder, std::string task_id) {
  const GroupRecord* found = groups_.find(folder);
  auto task = reader_.task(task_id);
  if (!found || !task || task->status != TaskStatus::active || stopping_) {
    if (task && !found) {
      spdlog::warn("task {}: group '{}' no longer exists; the task is cancelled", task_id, folder);
      auto cancel = [task_id](Store& store) {
        store.set_task_status(task_id, TaskStatus::cancelled);
      };
      co_await writer_.run(std::move(cancel));
    }
    // A task claimed but not run because the daemon is stopping runs at the next start-up
    // (Scheduler::start).
    queue_->finished(folder, true);
    co_return;
  }
  const GroupRecord group = *found;
  auto run = new_run(group, "task", task->chat_jid);
  run->isolated = task->context_mode == ContextMode::isolated;
  const SysTime started = now_utc();
  bool ok = false;
  std::optional<std::string> error;
  try {
    if (auto refusal = budget_refusal(folder)) {
      error = *refusal;
    } else {
      std::optional<std::string> session;
      if (!run->isolated) session = reader_.session(folder);
      runs_[folder] = run;
      const sandbox::RunOutcome outcome = co_await run_agent(run, group, task->prompt, session);
      ok = outcome.success;
      if (!ok) error = outcome.error.empty() ? run->last_error : outcome.error;
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  end_run(folder);
  if (!ok) runs_failed_.inc();
  co_await scheduler_.finish_run(*task, started, ok, run->last_result, error);
  queue_->finished(folder, ok);
}

std::optional<std::string> Dispatcher::prepare_sandbox(const GroupRecord& group,
                                                       const GroupSettings& settings) {
  const GroupPaths& paths = groups_.paths();
  if (settings.network.value_or(options_.default_network) && !options_.network_refusal.empty()) {
    return options_.network_refusal;
  }
  if (options_.max_disk > 0) {
    std::uint64_t used = 0;
    for (const auto& dir : agent_dirs(group.folder)) {
      auto usage = sandbox::disk_usage(dir, options_.max_disk);
      if (!usage) return "cannot measure the group's disk use: " + usage.error().message;
      used += usage->bytes;
      if (usage->stopped || used > options_.max_disk) {
        return "the group's folders use more than max_disk (" +
               std::to_string(options_.max_disk >> 20) + " MiB" +
               (usage->entries >= sandbox::kMaxWalkEntries ? ", or too many files" : "") +
               "): remove files from " + paths.group_dir(group.folder).string() + " or " +
               paths.session_dir(group.folder).string();
      }
    }
  }
  if (options_.run_as) {
    // What the agent writes, relative to data_dir (host-owned): handed to the agent's user.
    const std::filesystem::path folder(group.folder);
    std::vector<std::pair<std::filesystem::path, bool>> dirs{
        {"groups" / folder, false},
        {"sessions" / folder, true},
        {"ipc" / folder, false},
        {paths.proxy_socket(group.folder).parent_path().lexically_relative(paths.data_dir), true}};
    for (std::string_view sub : {host::kMessagesDir, host::kTasksDir, host::kInputDir}) {
      dirs.emplace_back("ipc" / folder / sub, false);
    }
    if (group.is_main) dirs.emplace_back("groups/global", false);
    for (const auto& [below, private_dir] : dirs) {
      if (auto handed = sandbox::hand_over(paths.data_dir, below, *options_.run_as, private_dir);
          !handed) {
        return "cannot prepare the agent's folders: " + handed.error().message;
      }
    }
  }
  return std::nullopt;
}

std::vector<std::filesystem::path> Dispatcher::agent_dirs(const std::string& folder) const {
  const GroupPaths& paths = groups_.paths();
  return {paths.group_dir(folder), paths.session_dir(folder), paths.ipc_dir(folder)};
}

sandbox::RunSpec Dispatcher::build_spec(const GroupRecord& group, const GroupSettings& settings,
                                        const std::string& input_json, const std::string& run_id,
                                        const std::string& chat) {
  const GroupPaths& paths = groups_.paths();
  const bool none = options_.runtime == sandbox::Runtime::none;
  sandbox::RunSpec spec;
  spec.runtime = options_.runtime;
  spec.group = group.folder;
  spec.input_json = input_json;
  spec.host_dir = paths.data_dir;
  spec.input_dir = paths.ipc_dir(group.folder) / "input";
  spec.log_file = paths.log_dir(group.folder) / ("agent-" + compact_time() + "-" + run_id + ".log");
  spec.hard_timeout = settings.timeout.value_or(options_.timeout);
  spec.idle_timeout = options_.idle_timeout;
  spec.kill_grace = options_.kill_grace;
  spec.max_output_bytes = options_.max_output_bytes;

  sandbox::SandboxSpec& box = spec.sandbox;
  box.argv = options_.agent_command;
  box.image = options_.image;
  box.instance_label = options_.instance_label;
  box.name = "switchboard-" + group.folder + "-" + run_id;
  box.network = settings.network.value_or(options_.default_network);
  box.run_as = options_.run_as;
  box.limits = options_.limits;
  box.seccomp = options_.runtime == sandbox::Runtime::bwrap;  // sandbox/seccomp_filter.h
  spec.max_disk = options_.max_disk;
  spec.disk_dirs = agent_dirs(group.folder);
  const auto socket_dir = paths.proxy_socket(group.folder).parent_path();
  struct Place {
    std::filesystem::path host;
    std::string inside;
    bool read_only;
    const char* env;
  };
  std::vector<Place> places = {
      {paths.group_dir(group.folder), "/workspace/group", false, "SWITCHBOARD_WORKSPACE"},
      {paths.ipc_dir(group.folder), "/workspace/ipc", false, "SWITCHBOARD_IPC_DIR"},
      {paths.session_dir(group.folder), "/workspace/session", false, "SWITCHBOARD_SESSION_DIR"},
      {paths.snapshot_dir(group.folder), "/workspace/snapshots", true, "SWITCHBOARD_SNAPSHOT_DIR"},
      {socket_dir, "/run/switchboard", true, nullptr},
  };
  // Main is trusted with the shared memory; the others only read it.
  places.push_back(
      {paths.global_dir(), "/workspace/global", !group.is_main, "SWITCHBOARD_GLOBAL_DIR"});
  for (const Place& place : places) {
    // Created from data_dir down without following symlinks (common/safe_files.h).
    if (auto made = SafeDir::open(paths.data_dir, place.host.lexically_relative(paths.data_dir),
                                  MissingDirs::create);
        !made) {
      spdlog::error("group '{}': {}", group.folder, made.error().message);
    }
    const std::string location = none ? place.host.string() : place.inside;
    if (!none) box.mounts.push_back({place.host, place.inside, place.read_only});
    if (place.env) box.env.emplace_back(place.env, location);
  }
  box.env.emplace_back("SWITCHBOARD_MODEL_SOCKET",
                       none ? paths.proxy_socket(group.folder).string()
                            : std::string("/run/switchboard/model.sock"));
  // Dotfiles of the agent's tools go to the session directory, not the group's folder.
  box.env.emplace_back(
      "HOME", none ? paths.session_dir(group.folder).string() : std::string("/workspace/session"));
  box.env.emplace_back("PATH", "/usr/local/bin:/usr/bin:/bin");
  // Who the agent works for, for tools that do not get the input object (switchboard mcp).
  box.env.emplace_back("SWITCHBOARD_GROUP_FOLDER", group.folder);
  box.env.emplace_back("SWITCHBOARD_CHAT_JID", chat);
  box.env.emplace_back("SWITCHBOARD_IS_MAIN", group.is_main ? "1" : "0");
  box.env.emplace_back("LANG", "C.UTF-8");
  box.workdir = none ? paths.group_dir(group.folder).string() : "/workspace/group";

  const auto mounts = sandbox::validate_mounts(options_.allowlist, settings.mounts, group.is_main,
                                               options_.protected_paths, group.folder);
  for (const auto& mount : mounts) {
    if (!none) box.mounts.push_back({mount.host_path, mount.container_path, mount.read_only});
  }
  if (!none && !mounts.empty()) box.env.emplace_back("SWITCHBOARD_EXTRA_DIR", "/workspace/extra");
  return spec;
}

boost::asio::awaitable<sandbox::RunOutcome> Dispatcher::run_agent(
    std::shared_ptr<ActiveRun> shared, const GroupRecord& group, std::string prompt,
    std::optional<std::string> session) {
  ActiveRun& run = *shared;
  auto settings = parse_group_settings(group.agent_config_json);
  if (!settings) {
    sandbox::RunOutcome failed;
    failed.error =
        "group '" + group.folder + "' has invalid agent_config: " + settings.error().message;
    co_return failed;
  }
  const GroupPaths& paths = groups_.paths();
  // Fresh input/ (stale follow-ups or a _close from an earlier run must not reach this one).
  if (auto dirs = host::ensure_group_ipc_dirs(paths.ipc_root(), group.folder); !dirs) {
    sandbox::RunOutcome failed;
    failed.error = "cannot prepare the IPC directory: " + dirs.error().message;
    co_return failed;
  }
  if (auto refused = prepare_sandbox(group, *settings)) {
    sandbox::RunOutcome failed;
    failed.error = *refused;
    co_return failed;
  }
  write_snapshots(group);

  json::object input{{"prompt", prompt},
                     {"groupFolder", group.folder},
                     {"chatJid", run.chat},
                     {"isMain", group.is_main},
                     {"isScheduledTask", run.kind == "task"},
                     {"assistantName", options_.assistant_name},
                     {"runId", run.run_id},
                     {"provider", options_.provider},
                     {"network", settings->network.value_or(options_.default_network)},
                     {"limits", options_.agent_limits}};
  if (!options_.timezone.empty()) input["timezone"] = options_.timezone;
  if (session) input["sessionId"] = *session;
  if (auto model = settings->model.value_or(options_.model); !model.empty()) {
    input["model"] = model;
  }
  sandbox::RunSpec spec =
      build_spec(group, *settings, json::serialize(input), run.run_id, run.chat);

  if (auto opened = proxy_.open(group.folder, paths.proxy_socket(group.folder)); !opened) {
    sandbox::RunOutcome failed;
    failed.error = "cannot open the model proxy socket: " + opened.error().message;
    co_return failed;
  }
  if (options_.run_as) {
    const auto socket = paths.proxy_socket(group.folder);
    if (::lchown(socket.c_str(), options_.run_as->uid, options_.run_as->gid) != 0) {
      proxy_.close(group.folder);
      sandbox::RunOutcome failed;
      failed.error = "cannot hand the model proxy socket to the agent's user: " +
                     std::string(std::strerror(errno));
      co_return failed;
    }
  }
  runs_started_.inc();
  spdlog::info("group '{}': {} run {} started ({} chars of input, session {})", group.folder,
               run.kind, run.run_id, prompt.size(), session.value_or("new"));

  // Results arrive on the event loop while run() is suspended.
  // Weak: the callback lives inside the AgentRun that the ActiveRun owns.
  std::weak_ptr<ActiveRun> weak = shared;
  auto on_result = [this, weak, folder = group.folder,
                    isolated = run.isolated](const sandbox::AgentResult& result) {
    std::shared_ptr<ActiveRun> shared = weak.lock();
    if (!shared) return;
    ++shared->results;
    if (result.new_session_id && !isolated) {
      auto save = [folder, id = *result.new_session_id](Store& store) {
        store.set_session(folder, id);
      };
      auto persist = [this, save]() -> boost::asio::awaitable<void> { co_await writer_.run(save); };
      spawn(std::move(persist), "group '" + folder + "': saving the session");
    }
    if (result.status == sandbox::AgentResult::Status::error) {
      shared->last_error = result.error.value_or("the agent reported an error");
      spdlog::warn("group '{}': agent error: {}", folder, *shared->last_error);
    }
    if (result.result) {
      std::string text = strip_internal(*result.result);
      if (!text.empty()) {
        shared->last_result = text;
        if (result.status == sandbox::AgentResult::Status::success) {
          // The agent answers again: the group is no longer failing.
          failing_.erase(folder);
          notified_.erase(folder);
        }
        // The reply answers what the agent has read: everything delivered so far but the
        // follow-ups still waiting in input/. What it answers is never rolled back.
        auto send = [this, shared, text,
                     ids = take_answered(*shared)]() -> boost::asio::awaitable<void> {
          co_await send_reply(shared, text, ids);
        };
        spawn(std::move(send), "group '" + folder + "': sending a reply");
      }
    }
    if (shared->kind == "messages") {
      queue_->agent_idle(folder);
    } else if (shared->agent) {
      // A task has one prompt and gets no follow-ups: once it answered, the run is done.
      shared->agent->request_close();
    }
  };
  run.agent = std::make_unique<sandbox::AgentRun>(executor_, std::move(spec), on_result);
  const auto started = std::chrono::steady_clock::now();
  sandbox::RunOutcome outcome = co_await run.agent->run();
  run.agent.reset();  // the process is reaped; nothing may reach it any more
  run_seconds_.observe(std::chrono::steady_clock::now() - started);
  proxy_.close(group.folder);
  spdlog::info("group '{}': run {} ended: {} after {} ms, {} result(s){}", group.folder, run.run_id,
               outcome.success ? "success" : "error", outcome.duration.count(), outcome.results,
               outcome.error.empty() ? "" : " — " + outcome.error);
  co_return outcome;
}

boost::asio::awaitable<void> Dispatcher::send_reply(std::shared_ptr<ActiveRun> run,
                                                    std::string text,
                                                    std::vector<Seq> answered_ids) {
  const int index = ++run->replies;
  // One commit: the reply and "these messages are answered", so a crash cannot leave the
  // messages looking unanswered (re-delivered, answered twice) after the reply was queued.
  auto answered = [ids = std::move(answered_ids)](Store& store) {
    for (Seq id : ids) store.set_status(id, MessageStatus::replied);
  };
  auto sending = outbox_.enqueue_text(run->chat, text, run->run_id + ":" + std::to_string(index),
                                      std::move(answered));
  co_await std::move(sending);
  replies_.inc();
}

std::vector<Seq> Dispatcher::take_answered(ActiveRun& run) {
  std::optional<Seq> unread_from;
  for (const ActiveRun::Batch& batch : run.batches) {
    if (batch.file.empty() || run.unanswered.empty() || batch.first < run.unanswered.front()) {
      continue;
    }
    auto waiting = host::input_message_waiting(groups_.paths().ipc_root(), run.folder, batch.file);
    if (!waiting || waiting.value()) {
      unread_from = batch.first;
      break;
    }
  }
  std::vector<Seq> answered;
  std::vector<Seq> rest;
  for (Seq id : run.unanswered) (unread_from && id >= *unread_from ? rest : answered).push_back(id);
  run.unanswered = std::move(rest);
  return answered;
}

boost::asio::awaitable<void> Dispatcher::send_notice(std::shared_ptr<ActiveRun> run,
                                                     std::string text) {
  auto sending = outbox_.enqueue_text(run->chat, text, run->run_id + ":notice");
  co_await std::move(sending);
  spdlog::info("group '{}': told {}: {}", run->folder, run->chat, text);
}

std::map<std::string, std::string> Dispatcher::failing_groups() const {
  return {failing_.begin(), failing_.end()};
}

void Dispatcher::write_snapshots(const GroupRecord& group) {
  const GroupPaths& paths = groups_.paths();
  json::array tasks;
  for (const TaskRecord& task : reader_.tasks(
           group.is_main ? std::nullopt : std::optional<std::string_view>(group.folder))) {
    tasks.push_back(json::object{
        {"id", task.id},
        {"groupFolder", task.group_folder},
        {"chatJid", task.chat_jid},
        {"prompt", task.prompt},
        {"schedule_type", task.schedule_type},
        {"schedule_value", task.schedule_value},
        {"context_mode", to_string(task.context_mode)},
        {"status", to_string(task.status)},
        {"next_run", task.next_run ? json::value(*task.next_run) : json::value(nullptr)}});
  }
  if (auto written = host::write_snapshot(paths.snapshot_root(), group.folder, "current_tasks.json",
                                          json::serialize(tasks));
      !written) {
    spdlog::warn("group '{}': cannot write the tasks snapshot: {}", group.folder,
                 written.error().message);
  }
  if (!group.is_main) return;
  json::array chats;
  for (const ChatInfo& chat : reader_.chats(kMaxChatsListed)) {
    const GroupRecord* owner = groups_.for_chat(chat.jid);
    chats.push_back(
        json::object{{"jid", chat.jid},
                     {"channel", chat.channel},
                     {"name", chat.name ? json::value(*chat.name) : json::value(nullptr)},
                     {"lastActivity", chat.last_message_at ? json::value(*chat.last_message_at)
                                                           : json::value(nullptr)},
                     {"isRegistered", owner != nullptr},
                     {"groupFolder", owner ? json::value(owner->folder) : json::value(nullptr)}});
  }
  json::array groups;
  for (const GroupRecord& g : groups_.all()) {
    json::array bound;
    for (const std::string& chat : g.chats) bound.push_back(json::value(chat));
    groups.push_back(json::object{{"folder", g.folder},
                                  {"name", g.name},
                                  {"chats", bound},
                                  {"isMain", g.is_main},
                                  {"requiresTrigger", g.requires_trigger}});
  }
  json::object snapshot{
      {"chats", chats}, {"groups", groups}, {"lastSync", format_iso8601(now_utc())}};
  if (auto written = host::write_snapshot(paths.snapshot_root(), group.folder,
                                          "available_groups.json", json::serialize(snapshot));
      !written) {
    spdlog::warn("group '{}': cannot write the groups snapshot: {}", group.folder,
                 written.error().message);
  }
}

void Dispatcher::record_usage(const std::string& group, const host::TokenUsage& usage) {
  input_tokens_.inc(static_cast<std::uint64_t>(std::max<std::int64_t>(usage.input_tokens, 0)));
  output_tokens_.inc(static_cast<std::uint64_t>(std::max<std::int64_t>(usage.output_tokens, 0)));
  UsageRecord record;
  record.group_folder = group;
  auto run = runs_.find(group);
  record.run_id = run != runs_.end() ? run->second->run_id : "outside-a-run";
  record.model = usage.model;
  record.input_tokens = usage.input_tokens;
  record.output_tokens = usage.output_tokens;
  auto save = [record](Store& store) { store.add_usage(record); };
  auto persist = [this, save]() -> boost::asio::awaitable<void> { co_await writer_.run(save); };
  spawn(std::move(persist), "group '" + group + "': recording token usage");
}

std::optional<std::string> Dispatcher::budget_refusal(const std::string& folder) {
  const GroupRecord* group = groups_.find(folder);
  std::int64_t budget = options_.default_daily_budget;
  if (group) {
    if (auto settings = parse_group_settings(group->agent_config_json);
        settings && settings->daily_token_budget) {
      budget = *settings->daily_token_budget;
    }
  }
  if (budget <= 0) return std::nullopt;
  const UsageTotals used = reader_.usage_since(folder, day_start_utc());
  if (used.input_tokens + used.output_tokens < budget) return std::nullopt;
  return "This group's daily token budget (" + std::to_string(budget) +
         " tokens) is used up; I can answer again after 00:00 UTC.";
}

void Dispatcher::end_run(const std::string& folder) {
  runs_.erase(folder);
  if (run_ended_) run_ended_->cancel();
}

std::vector<Dispatcher::RunInfo> Dispatcher::active_runs() const {
  std::vector<RunInfo> out;
  for (const auto& [folder, run] : runs_) {
    out.push_back({folder, run->run_id, run->kind, run->chat, run->started, run->results});
  }
  return out;
}

boost::asio::awaitable<void> Dispatcher::shutdown(std::chrono::milliseconds grace) {
  stopping_ = true;
  queue_->shutdown();
  if (runs_.empty()) co_return;
  spdlog::info("waiting up to {} ms for {} running agent(s) to finish", grace.count(),
               runs_.size());
  for (auto& [folder, run] : runs_) {
    if (run->agent) run->agent->request_close();
  }
  // end_run() cancels the timer, so each ended run wakes this loop (no polling).
  boost::asio::steady_timer timer(executor_);
  run_ended_ = &timer;
  auto wait_for_runs =
      [&](std::chrono::steady_clock::time_point until) -> boost::asio::awaitable<void> {
    while (!runs_.empty() && std::chrono::steady_clock::now() < until) {
      timer.expires_at(until);
      boost::system::error_code ec;
      co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
  };
  co_await wait_for_runs(std::chrono::steady_clock::now() + grace);
  for (auto& [folder, run] : runs_) {
    spdlog::warn("group '{}': agent still running after the grace period; stopping it", folder);
    if (run->agent) run->agent->stop();
  }
  // Stopped agents are killed after [agent] kill_grace; their runs then end.
  co_await wait_for_runs(std::chrono::steady_clock::now() + std::chrono::hours(24));
  run_ended_ = nullptr;
}

}  // namespace sb::core

namespace sb::core {

void Dispatcher::refresh_snapshots(const std::string& folder) {
  // Looked up again: the group may have changed while the request was carried out.
  if (const GroupRecord* group = groups_.find(folder)) write_snapshots(*group);
}

boost::asio::awaitable<Result<void>> Dispatcher::handle_ipc(const host::IpcSource& source,
                                                            const host::IpcRequest& request) {
  const GroupRecord* group = groups_.find(source.folder);
  if (!group) co_return make_error("group '" + source.folder + "' is not registered");

  if (const auto* message = std::get_if<host::SendMessageRequest>(&request)) {
    static std::uint64_t counter = 0;
    const std::string key =
        "ipc:" + source.folder + ":" + random_id("run") + ":" + std::to_string(++counter);
    auto sending = outbox_.enqueue_text(message->chat_jid, message->text, key);
    co_await std::move(sending);
    replies_.inc();
    spdlog::info("group '{}' sent a message to {} ({} bytes)", source.folder, message->chat_jid,
                 message->text.size());
    co_return Result<void>{};
  }
  if (const auto* schedule = std::get_if<host::ScheduleTaskRequest>(&request)) {
    NewTask task;
    task.chat_jid = schedule->target_jid.value_or(group->chats.front());
    const GroupRecord* owner = groups_.for_chat(task.chat_jid);
    task.group_folder = owner ? owner->folder : group->folder;
    task.prompt = schedule->prompt;
    task.schedule_type = std::string(to_string(schedule->schedule_type));
    task.schedule_value = schedule->schedule_value;
    task.context_mode = schedule->context_mode == host::ContextMode::group ? "group" : "isolated";
    auto adding = scheduler_.add(std::move(task));
    auto added = co_await std::move(adding);
    if (!added) co_return make_error("schedule_task refused: " + added.error().message);
    refresh_snapshots(source.folder);
    co_return Result<void>{};
  }
  if (const auto* action = std::get_if<host::TaskActionRequest>(&request)) {
    auto changing = action->action == host::TaskAction::pause ? scheduler_.pause(action->task_id)
                    : action->action == host::TaskAction::resume
                        ? scheduler_.resume(action->task_id)
                        : scheduler_.cancel(action->task_id);
    auto problem = co_await std::move(changing);
    if (problem) co_return make_error(*problem);
    refresh_snapshots(source.folder);
    co_return Result<void>{};
  }
  if (const auto* registration = std::get_if<host::RegisterGroupRequest>(&request)) {
    GroupChange change;
    change.folder = registration->folder;
    change.name = registration->name;
    change.chats = std::vector<std::string>{registration->jid};
    if (!registration->trigger.empty()) change.trigger = registration->trigger;
    change.requires_trigger = registration->requires_trigger;
    auto creating = groups_.create(std::move(change));
    auto created = co_await std::move(creating);
    if (auto* failure = std::get_if<GroupRegistry::Failure>(&created)) {
      co_return make_error("register_group refused: " + failure->message);
    }
    refresh_snapshots(source.folder);
    co_return Result<void>{};
  }
  // refresh_groups
  refresh_snapshots(source.folder);
  co_return Result<void>{};
}

}  // namespace sb::core

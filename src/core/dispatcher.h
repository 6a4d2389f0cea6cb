#pragma once
// The dispatcher: turns committed messages and due tasks into agent runs, and agent output
// into replies. It is the group queue's driver.
//
//  - message_stored() is called after every commit of a message; it wakes the group that
//    owns the chat (no polling). If that group's agent is running and accepting input, the
//    new messages are handed to it as an IPC input file; otherwise the group is queued.
//  - A message run takes the pending messages of one chat of the group (oldest chat first),
//    gated by the trigger rules, advances that chat's delivered-to-agent cursor durably,
//    and runs the agent in its sandbox. Each result is stripped of <internal> blocks and
//    sent through the outbox to the chat. A run that fails before anything was sent rolls
//    the cursor back (the queue retries it); once output was sent it does not, so a reply
//    is never doubled.
//  - A task run runs a scheduled task's prompt (in the group's session or a fresh one) and
//    sends its output to the task's chat; the scheduler records it.
//  - At start-up, recover() queues every group with undelivered messages.
//
// Threading: everything on the event-loop thread.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/metrics.h"
#include "core/group_queue.h"
#include "core/groups.h"
#include "core/outbox.h"
#include "core/scheduler.h"
#include "host/ipc_requests.h"
#include "host/model_proxy.h"
#include "sandbox/agent_runner.h"
#include "sandbox/mount_allowlist.h"
#include "sandbox/sandbox_command.h"
#include "store/store.h"
#include "store/write_queue.h"

namespace sb::core {

struct DispatcherOptions {
  sandbox::Runtime runtime = sandbox::Runtime::bwrap;
  std::vector<std::string> agent_command;
  std::string image;
  std::string instance_label;
  std::string assistant_name = "Andy";
  std::string model;
  std::string provider = "anthropic";  // the wire format the built-in agent speaks
  std::string timezone;                // for the agent's idea of local time
  boost::json::object agent_limits;    // the input's "limits" (docs/agent-protocol.md)
  std::chrono::milliseconds timeout{30 * 60'000};
  std::chrono::milliseconds idle_timeout{10 * 60'000};
  std::chrono::milliseconds kill_grace{5'000};
  std::size_t max_output_bytes = 10 * 1024 * 1024;
  std::size_t max_batch_messages = 200;
  bool default_network = false;
  std::int64_t default_daily_budget = 0;  // tokens per group and UTC day; 0 = unlimited
  std::optional<sandbox::MountAllowlist> allowlist;
  sandbox::ProtectedPaths protected_paths;
  // The host user agents run as (the daemon runs as root): their folders are handed to it.
  std::optional<sandbox::Identity> run_as;
  sandbox::SandboxLimits limits;
  std::uint64_t max_disk = 0;  // group folder + IPC + session directories; 0: no limit
  // Non-empty: why no group may have network here (the reason a run with it fails).
  std::string network_refusal;
};

class Dispatcher final : public QueueDriver {
 public:
  Dispatcher(boost::asio::any_io_executor executor, Store& reader, WriteQueue& writer,
             GroupRegistry& groups, Scheduler& scheduler, Outbox& outbox, host::ModelProxy& proxy,
             MetricsRegistry& metrics, DispatcherOptions options);
  ~Dispatcher() override;

  // The queue is built with this dispatcher as its driver; attach it before anything runs.
  void attach_queue(GroupQueue& queue) { queue_ = &queue; }

  // A group was saved or removed: forget what is cached about it.
  void group_changed(const std::string& folder);

  // A message was committed. Cheap; never blocks.
  void message_stored(const Message& message);

  // Crash recovery, at start-up: messages that were with an agent when the daemon died
  // without an answer become undelivered again, and every group with undelivered messages
  // is queued.
  boost::asio::awaitable<void> recover();

  // QueueDriver
  void start_messages(const std::string& group) override;
  void start_task(const std::string& group, const std::string& task_id) override;
  void request_close(const std::string& group) override;

  // Carries out an authorized IPC request from `source` (IpcWatcher's handler).
  boost::asio::awaitable<Result<void>> handle_ipc(const host::IpcSource& source,
                                                  const host::IpcRequest& request);

  // Writes the snapshots an agent reads: its tasks (all tasks for main) and, for main, the
  // available chats and groups.
  void write_snapshots(const GroupRecord& group);
  void refresh_snapshots(const std::string& folder);

  // Stops taking work, asks running agents to finish, and stops those still running after
  // `grace`. Messages of runs that end without output stay undelivered (next start).
  boost::asio::awaitable<void> shutdown(std::chrono::milliseconds grace);

  // Token usage reported by the model proxy for a group's current run.
  void record_usage(const std::string& group, const host::TokenUsage& usage);
  // Why a group may not use the model now (its daily budget is spent), or nullopt.
  std::optional<std::string> budget_refusal(const std::string& group);

  struct RunInfo {
    std::string group;
    std::string run_id;
    std::string kind;  // "messages" | "task"
    std::string chat;
    std::chrono::steady_clock::time_point started;
    int results = 0;
  };
  std::vector<RunInfo> active_runs() const;
  // Groups whose latest message run failed without answering, with the reason (shown by
  // /health, which is degraded while there are any).
  std::map<std::string, std::string> failing_groups() const;

 private:
  struct ActiveRun;
  static std::shared_ptr<ActiveRun> new_run(const GroupRecord& group, std::string kind,
                                            std::string chat);
  boost::asio::awaitable<void> run_messages(std::string folder);
  boost::asio::awaitable<void> run_task(std::string folder, std::string task_id);
  // Runs the agent for `run`; results go to run.chat. Returns the runner's outcome.
  boost::asio::awaitable<sandbox::RunOutcome> run_agent(std::shared_ptr<ActiveRun> run,
                                                        const GroupRecord& group,
                                                        std::string prompt,
                                                        std::optional<std::string> session);
  // Sends `text` to the run's chat as the answer to `answered_ids` (marked replied with it).
  boost::asio::awaitable<void> send_reply(std::shared_ptr<ActiveRun> run, std::string text,
                                          std::vector<Seq> answered_ids);
  // The messages a result of `run` answers, taken out of run.unanswered: all but the
  // follow-ups the agent has not taken from input/ yet.
  std::vector<Seq> take_answered(ActiveRun& run);
  // Tells the run's chat that something went wrong (answers no message).
  boost::asio::awaitable<void> send_notice(std::shared_ptr<ActiveRun> run, std::string text);
  // After a message run: what the agent answered is done; what it did not read goes back to
  // the queue at once (`again`); what it read and failed to answer rolls back and is retried
  // (`ok` false), or after the retries is set aside with a notice (docs/orchestrator.md).
  struct Settled {
    bool ok = true;
    bool again = false;
  };
  boost::asio::awaitable<Settled> settle(std::shared_ptr<ActiveRun> run,
                                         const sandbox::RunOutcome& outcome);
  // Forgets a finished run and wakes shutdown() if it waits for runs to end.
  void end_run(const std::string& folder);
  // The chat of `group` whose oldest undelivered message is oldest, with what to deliver
  // (gated by the trigger rules); nullopt when nothing should run.
  struct Batch {
    std::string chat;
    std::vector<Message> messages;  // to format for the agent
    Seq last = 0;                   // the cursor after delivery (includes skipped ones)
  };
  std::optional<Batch> next_batch(const GroupRecord& group, std::optional<std::string> only_chat);
  Seq delivered(const std::string& folder, const std::string& chat);
  boost::asio::awaitable<void> set_delivered(std::string folder, std::string chat, Seq seq);
  void pipe_to_running(const GroupRecord& group);
  // Gets the group's folders ready for its sandbox (handed to the agent's user when the
  // daemon is root) and returns nullopt, or why the sandbox may not start: network without
  // an API token, folders over max_disk, folders that cannot be handed over. Blocking file
  // system work on the event loop, bounded by kMaxWalkEntries.
  std::optional<std::string> prepare_sandbox(const GroupRecord& group,
                                             const GroupSettings& settings);
  // The host folders an agent of `folder` writes: group folder, session, IPC.
  std::vector<std::filesystem::path> agent_dirs(const std::string& folder) const;
  sandbox::RunSpec build_spec(const GroupRecord& group, const GroupSettings& settings,
                              const std::string& input_json, const std::string& run_id,
                              const std::string& chat);
  void spawn(std::function<boost::asio::awaitable<void>()> work, std::string what);

  boost::asio::any_io_executor executor_;
  Store& reader_;
  WriteQueue& writer_;
  GroupRegistry& groups_;
  Scheduler& scheduler_;
  Outbox& outbox_;
  host::ModelProxy& proxy_;
  DispatcherOptions options_;
  GroupQueue* queue_ = nullptr;
  bool stopping_ = false;
  boost::asio::steady_timer* run_ended_ = nullptr;  // shutdown()'s timer while it waits
  std::map<std::string, std::shared_ptr<ActiveRun>, std::less<>> runs_;
  // In-memory delivered cursors, "folder\nchat" → seq; the store holds the durable copy.
  std::map<std::string, Seq, std::less<>> delivered_;
  std::map<std::string, std::string, std::less<>> failing_;  // folder → why its runs fail
  std::set<std::string, std::less<>> notified_;  // folders whose chat was told of the failure
  Counter& runs_started_;
  Counter& runs_failed_;
  Counter& replies_;
  Counter& piped_;
  Counter& input_tokens_;
  Counter& output_tokens_;
  Histogram& run_seconds_;
};

}  // namespace sb::core

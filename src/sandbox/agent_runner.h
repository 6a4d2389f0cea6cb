#pragma once
// AgentRun: one run of an agent program in its sandbox, from start to exit
// (docs/agent-protocol.md).
//
// The run writes the input JSON to the agent's stdin and closes it, parses stdout as it
// streams and hands each result to `on_result` as soon as it is complete, logs stderr (never
// parses it), and watches three clocks:
//   - hard timeout: no result for this long (counted from the start, then from the latest
//     result) → SIGTERM to the sandbox, SIGKILL `kill_grace` later;
//   - idle timeout: this long after a result with no follow-up sent (input_sent()) → the
//     run writes input/_close, asking the agent to finish;
//   - output cap: stdout beyond max_output_bytes → SIGKILL at once;
//   - disk: the agent's folders over max_disk → SIGKILL, the run fails with that reason.
// A timeout after at least one result counts as success: the agent said what it had to say,
// unless its last result was an error result, which makes the run a failed one.
//
// Leftovers: under bwrap and none nothing survives the daemon: the sandbox process runs in
// its own process group, which is SIGKILLed when its leader exits or the run is destroyed,
// and bwrap's --die-with-parent takes the sandbox (its own PID namespace) down with it if
// the daemon itself dies. docker/podman containers can outlive a killed CLI process; the
// run removes them (`rm -f`) after a SIGKILL, and cleanup_leftovers() removes those left by
// a crashed daemon at start-up.
//
// Threading: construct, call every member and co_await run() on the thread of `executor`
// (the event loop). Keep the AgentRun alive until run() has completed.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/safe_files.h"
#include "sandbox/output_parser.h"
#include "sandbox/process.h"
#include "sandbox/sandbox_command.h"

namespace sb::sandbox {

struct RunSpec {
  Runtime runtime = Runtime::bwrap;
  SandboxSpec sandbox;
  std::string input_json;  // written to the agent's stdin as is
  // A directory of the host's that no agent can write (the daemon's data_dir); input_dir and
  // log_file must lie below it. Every component below it is opened without following
  // symlinks (common/safe_files.h): an agent that swaps its input/ for a symlink makes the
  // close request fail instead of land elsewhere.
  std::filesystem::path host_dir;
  // Host path of the agent's IPC input/ directory (where _close goes); created if missing.
  std::filesystem::path input_dir;
  // The run's log, in a directory agents cannot write: directories created (0700), the file
  // appended to (0600, O_NOFOLLOW); empty: no log file.
  std::filesystem::path log_file;
  std::chrono::milliseconds hard_timeout{std::chrono::minutes(30)};
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(30)};
  std::chrono::milliseconds kill_grace{std::chrono::seconds(2)};
  std::size_t max_output_bytes = 10 * 1024 * 1024;  // stdout, all results and noise
  std::string group;                                // the group's folder, for log lines
  // The folders the agent writes and the most they may use together (0: no limit), measured
  // every kDiskCheckInterval while it runs; over it the run is killed and fails.
  std::vector<std::filesystem::path> disk_dirs;
  std::uint64_t max_disk = 0;
};

inline constexpr std::chrono::seconds kDiskCheckInterval{10};

struct RunOutcome {
  // True when the agent did its job: it exited 0, or produced at least one result (even if it
  // then timed out or exited non-zero), and its last result was not an error result. False
  // otherwise, and `error` says why.
  bool success = false;
  bool had_output = false;  // at least one result was delivered
  // The last result was an error result ("status":"error": the agent could not do its job,
  // for instance because the model provider failed); `error` quotes it.
  bool ended_in_error = false;
  bool timed_out = false;  // the hard timeout fired
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string error;  // empty on success
  std::chrono::milliseconds duration{0};
  std::size_t results = 0;
};

class AgentRun {
 public:
  // Called on the executor for each result, in stdout order, while the agent runs. An
  // exception thrown from it is logged and otherwise ignored.
  using ResultHandler = std::function<void(const AgentResult&)>;

  AgentRun(boost::asio::any_io_executor executor, RunSpec spec, ResultHandler on_result);
  ~AgentRun();  // kills and reaps the sandbox process if it still runs
  AgentRun(const AgentRun&) = delete;
  AgentRun& operator=(const AgentRun&) = delete;

  // Starts the agent and completes when it has exited and its output has been handled.
  // Call once. Never throws for a failing agent: every failure is in the outcome (a spawn
  // failure, for instance, is success=false with the reason in `error`).
  boost::asio::awaitable<RunOutcome> run();

  // Asks the agent to finish by creating input_dir/_close (an O_EXCL temporary with a random
  // name, renamed into place through the directory's handle, so the agent never sees a
  // partial file and a symlink it planted is never followed). Idempotent: only the first call
  // writes. A failure to write is logged.
  void request_close();

  // Tells the run that a follow-up was put into input/: the idle timer stops until the next
  // result, so the agent is not closed while it works on it.
  void input_sent();

  // Ends the run now: SIGTERM, SIGKILL after kill_grace. No-op when not running.
  void stop();

  // Between the start of run() and the agent's exit.
  bool running() const { return process_ && process_->running(); }

 private:
  boost::asio::awaitable<void> write_stdin();
  boost::asio::awaitable<void> read_stdout();
  boost::asio::awaitable<void> read_stderr();
  boost::asio::awaitable<void> watch(boost::asio::steady_timer& timer, void (AgentRun::*fire)());
  boost::asio::awaitable<void> remove_container();
  void start_task(boost::asio::awaitable<void> task);
  void reader_done();
  void handle(OutputParser::Output output);
  void stderr_line(std::string_view line);
  void on_hard_timeout();
  void on_idle();
  void on_kill_due();
  void on_disk_check();
  void escalate();
  void kill_now();
  void log(std::string_view line);
  // Opens `dir`, which must lie below spec_.host_dir, from host_dir down without following
  // symlinks, creating what is missing with `mode`.
  Result<SafeDir> open_below_host_dir(const std::filesystem::path& dir, mode_t mode) const;
  RunOutcome outcome(const ExitStatus& status) const;

  boost::asio::any_io_executor executor_;
  RunSpec spec_;
  ResultHandler on_result_;
  OutputParser parser_;
  std::unique_ptr<Process> process_;
  UniqueFd log_;
  std::chrono::steady_clock::time_point started_at_;

  boost::asio::steady_timer hard_timer_;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer kill_timer_;
  boost::asio::steady_timer disk_timer_;
  boost::asio::steady_timer drained_;     // cancelled when both readers are done
  boost::asio::steady_timer tasks_done_;  // cancelled when the last task ends
  int tasks_ = 0;
  int readers_ = 0;

  bool started_ = false;
  bool finished_ = false;
  bool timed_out_ = false;
  bool output_exceeded_ = false;
  bool disk_exceeded_ = false;
  bool stopped_ = false;
  bool escalated_ = false;
  bool killed_ = false;
  bool close_requested_ = false;
  std::size_t results_ = 0;
  std::optional<std::string> last_error_;  // of the last result, when it was an error result
  std::size_t stdout_bytes_ = 0;
  std::size_t stderr_logged_ = 0;
  std::deque<std::string> stderr_tail_;
};

// Removes what earlier daemons of this instance left behind: for docker/podman the containers
// labelled switchboard.instance=<instance_label> (`ps -aq --filter`, then `rm -f`); nothing
// for bwrap and none (see above). Returns how many it removed, or why it could not list or
// remove them. Blocks: call once at start-up, before the event loop runs.
Result<std::size_t> cleanup_leftovers(Runtime runtime, std::string_view instance_label);

}  // namespace sb::sandbox

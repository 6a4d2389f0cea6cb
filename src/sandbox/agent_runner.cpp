#include "sandbox/agent_runner.h"

#include <errno.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <exception>
#include <system_error>

#include "common/time.h"
#include "sandbox/agent_folders.h"
#include "sandbox/seccomp_filter.h"

namespace sb::sandbox {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxStderrLine = 4096;
constexpr std::size_t kMaxStderrLogged = 1024 * 1024;
constexpr std::size_t kStderrTailLines = 10;
// `rm -f` of a killed container; a runtime that hangs longer is killed too.
constexpr auto kContainerRemoveTimeout = std::chrono::seconds(30);
constexpr std::string_view kCloseRequestName = "_close";  // docs/agent-protocol.md

std::string seconds(milliseconds duration) {
  return fmt::format("{:g} s", static_cast<double>(duration.count()) / 1000.0);
}

// Starts the sandbox process of `launch`: bwrap gets its arguments on kArgsFd (its
// /proc/1/cmdline then shows no host path) and the seccomp program on kSeccompFd.
Result<std::unique_ptr<Process>> spawn_sandbox(const asio::any_io_executor& executor,
                                               const LaunchCommand& launch) {
  ProcessOptions options{launch.argv, launch.env, launch.cwd, launch.setup};
  UniqueFd args_fd, seccomp_fd;  // the child gets dups; ours close when this returns
  if (launch.args_on_fd) {
    // bwrap reads its options from the descriptor; the command stays on the command line.
    const auto separator = std::find(launch.argv.begin(), launch.argv.end(), "--");
    std::string args;
    for (auto it = launch.argv.begin() + 1; it < separator; ++it) {
      args += *it;
      args += '\0';
    }
    auto fd = memory_file("bwrap-args", args);
    if (!fd) return fd.error();
    args_fd = std::move(fd).value();
    options.argv = {launch.argv[0], "--args", std::to_string(kArgsFd)};
    options.argv.insert(options.argv.end(), separator, launch.argv.end());
    options.setup.fds.push_back(args_fd.get());
  }
  if (launch.seccomp) {
    if (!launch.args_on_fd) return make_error("the seccomp filter needs bwrap's --args");
    auto program = seccomp_program();
    if (!program) return make_error("cannot build the seccomp filter: " + program.error().message);
    auto fd = memory_file("switchboard-seccomp", *program);
    if (!fd) return fd.error();
    seccomp_fd = std::move(fd).value();
    options.setup.fds.push_back(seccomp_fd.get());
  }
  return Process::spawn(executor, options);
}

}  // namespace

AgentRun::AgentRun(asio::any_io_executor executor, RunSpec spec, ResultHandler on_result)
    : executor_(std::move(executor)),
      spec_(std::move(spec)),
      on_result_(std::move(on_result)),
      hard_timer_(executor_, steady_clock::time_point::max()),
      idle_timer_(executor_, steady_clock::time_point::max()),
      kill_timer_(executor_, steady_clock::time_point::max()),
      disk_timer_(executor_, steady_clock::time_point::max()),
      drained_(executor_, steady_clock::time_point::max()),
      tasks_done_(executor_, steady_clock::time_point::max()) {}

AgentRun::~AgentRun() = default;

asio::awaitable<RunOutcome> AgentRun::run() {
  if (started_) {
    RunOutcome refused;
    refused.error = "AgentRun::run() called twice";
    co_return refused;
  }
  started_ = true;
  started_at_ = steady_clock::now();

  if (!spec_.log_file.empty()) {
    auto dir = open_below_host_dir(spec_.log_file.parent_path(), 0700);
    auto opened = dir ? dir->open_append(spec_.log_file.filename().string(), 0600)
                      : Result<UniqueFd>(dir.error());
    if (opened) {
      log_ = std::move(opened).value();
    } else {
      spdlog::warn("[{}] cannot open the agent run log {}: {}; running without it", spec_.group,
                   spec_.log_file.string(), opened.error().message);
    }
  }
  const LaunchCommand launch = launch_command(spec_.runtime, spec_.sandbox);
  log("=== agent run of " + (spec_.group.empty() ? "(no group)" : spec_.group) + " started " +
      format_iso8601(now_utc()));
  log("runtime: " + std::string(to_string(spec_.runtime)));
  log("argv: " + fmt::format("{}", fmt::join(redact_env_values(spec_.runtime, launch.argv), " ")));
  log("input: " + std::to_string(spec_.input_json.size()) + " bytes");

  auto spawned = spawn_sandbox(executor_, launch);
  if (!spawned) {
    ExitStatus none;
    RunOutcome failed = outcome(none);
    failed.success = false;
    failed.error = "cannot start the agent: " + spawned.error().message;
    log("error: " + failed.error);
    spdlog::error("[{}] {}", spec_.group, failed.error);
    co_return failed;
  }
  process_ = std::move(spawned).value();
  spdlog::debug("[{}] agent started (pid {}, {})", spec_.group, process_->pid(),
                to_string(spec_.runtime));

  hard_timer_.expires_after(spec_.hard_timeout);
  readers_ = 2;
  start_task(write_stdin());
  start_task(read_stdout());
  start_task(read_stderr());
  start_task(watch(hard_timer_, &AgentRun::on_hard_timeout));
  start_task(watch(idle_timer_, &AgentRun::on_idle));
  start_task(watch(kill_timer_, &AgentRun::on_kill_due));
  if (spec_.max_disk > 0 && !spec_.disk_dirs.empty()) {
    disk_timer_.expires_after(kDiskCheckInterval);
    start_task(watch(disk_timer_, &AgentRun::on_disk_check));
  }

  const ExitStatus status = co_await process_->wait();
  // What the agent wrote just before exiting may still be in the pipes. Something it left
  // running outside its process group could hold them open forever: wait a bounded time.
  if (readers_ > 0) {
    drained_.expires_after(spec_.kill_grace);
    co_await drained_.async_wait(kAsTuple);
  }
  finished_ = true;
  boost::system::error_code ignored;
  process_->stdin_pipe().close(ignored);
  process_->stdout_pipe().close(ignored);
  process_->stderr_pipe().close(ignored);
  hard_timer_.cancel();
  idle_timer_.cancel();
  kill_timer_.cancel();
  disk_timer_.cancel();
  if (tasks_ > 0) co_await tasks_done_.async_wait(kAsTuple);
  if (!output_exceeded_) handle(parser_.finish());

  const RunOutcome result = outcome(status);
  log("exit: " + describe(status));
  log("results: " + std::to_string(result.results));
  log(fmt::format("duration: {} ms", result.duration.count()));
  log(fmt::format("timed out: {}, output capped: {}, stopped: {}, close requested: {}",
                  timed_out_ ? "yes" : "no", output_exceeded_ ? "yes" : "no",
                  stopped_ ? "yes" : "no", close_requested_ ? "yes" : "no"));
  log(result.success ? "outcome: success" : "outcome: error: " + result.error);
  if (result.success) {
    spdlog::debug("[{}] agent finished ({}, {} results, {} ms)", spec_.group, describe(status),
                  result.results, result.duration.count());
  } else {
    spdlog::warn("[{}] agent run failed: {}", spec_.group, result.error);
  }
  co_return result;
}

RunOutcome AgentRun::outcome(const ExitStatus& status) const {
  RunOutcome out;
  out.duration = std::chrono::duration_cast<milliseconds>(steady_clock::now() - started_at_);
  out.results = results_;
  out.had_output = results_ > 0;
  out.timed_out = timed_out_;
  out.exit_code = status.exit_code;
  out.signal = status.signal;
  if (output_exceeded_) {
    out.error = "agent output exceeded " + std::to_string(spec_.max_output_bytes) + " bytes";
  } else if (disk_exceeded_) {
    out.error = "the agent's folders exceeded max_disk (" + std::to_string(spec_.max_disk >> 20) +
                " MiB); the agent was stopped";
  } else if (timed_out_) {
    if (!out.had_output) {
      out.error = "agent timed out after " + seconds(spec_.hard_timeout) + " without output";
    }
  } else if (stopped_) {
    if (!out.had_output) out.error = "agent was stopped before it produced output";
  } else if (status.exit_code != 0 && !out.had_output) {
    out.error = "agent ended with " + describe(status) + " without output";
    if (!stderr_tail_.empty()) {
      out.error += "; last stderr lines:";
      for (const auto& line : stderr_tail_) out.error += "\n" + line;
    }
  }
  if (out.error.empty() && last_error_) {
    out.ended_in_error = true;
    out.error = "the agent reported an error: " + *last_error_;
  }
  out.success = out.error.empty();
  return out;
}

void AgentRun::start_task(asio::awaitable<void> task) {
  ++tasks_;
  auto done = [this](std::exception_ptr error) {
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        spdlog::error("[{}] agent run task failed: {}", spec_.group, e.what());
      } catch (...) {  // rethrown from here it would end the event loop
        spdlog::error("[{}] agent run task failed: unknown exception", spec_.group);
      }
    }
    if (--tasks_ == 0) tasks_done_.cancel();
  };
  asio::co_spawn(executor_, std::move(task), std::move(done));
}

asio::awaitable<void> AgentRun::write_stdin() {
  auto& pipe = process_->stdin_pipe();
  const auto [ec, written] =
      co_await asio::async_write(pipe, asio::buffer(spec_.input_json), kAsTuple);
  if (ec && !finished_) {
    log(fmt::format("stdin: wrote {} of {} bytes: {}", written, spec_.input_json.size(),
                    ec.message()));
  }
  boost::system::error_code ignored;
  pipe.close(ignored);
}

asio::awaitable<void> AgentRun::read_stdout() {
  std::array<char, 65536> buffer;
  while (true) {
    const auto [ec, n] =
        co_await process_->stdout_pipe().async_read_some(asio::buffer(buffer), kAsTuple);
    if (ec) break;
    const std::size_t room = spec_.max_output_bytes - stdout_bytes_;
    const std::size_t take = std::min(n, room);
    stdout_bytes_ += take;
    handle(parser_.feed(std::string_view(buffer.data(), take)));
    if (take < n) {
      output_exceeded_ = true;
      log("stdout exceeded " + std::to_string(spec_.max_output_bytes) +
          " bytes: killing the agent");
      kill_now();
      break;
    }
  }
  reader_done();
}

asio::awaitable<void> AgentRun::read_stderr() {
  std::array<char, 16384> buffer;
  std::string line;
  bool overlong = false;
  while (true) {
    const auto [ec, n] =
        co_await process_->stderr_pipe().async_read_some(asio::buffer(buffer), kAsTuple);
    if (ec) break;
    for (std::size_t i = 0; i < n; ++i) {
      if (buffer[i] == '\n') {
        if (overlong) line += " …[truncated]";
        stderr_line(line);
        line.clear();
        overlong = false;
      } else if (line.size() < kMaxStderrLine) {
        line += buffer[i];
      } else {
        overlong = true;
      }
    }
  }
  if (!line.empty()) stderr_line(line);
  reader_done();
}

void AgentRun::reader_done() {
  if (--readers_ == 0) drained_.cancel();
}

void AgentRun::stderr_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  spdlog::debug("[{}] agent stderr: {}", spec_.group, line);
  stderr_tail_.emplace_back(line);
  if (stderr_tail_.size() > kStderrTailLines) stderr_tail_.pop_front();
  if (stderr_logged_ < kMaxStderrLogged) {
    stderr_logged_ += line.size() + 1;
    log("stderr: " + std::string(line));
    if (stderr_logged_ >= kMaxStderrLogged) {
      log("stderr: (more than " + std::to_string(kMaxStderrLogged) + " bytes; not logged further)");
    }
  }
}

void AgentRun::handle(OutputParser::Output output) {
  for (const auto& noise : output.noise) {
    spdlog::debug("[{}] agent stdout (not a result): {}", spec_.group, noise);
    log("stdout: " + noise);
  }
  for (const auto& result : output.results) {
    ++results_;
    if (!finished_) {
      hard_timer_.expires_after(spec_.hard_timeout);
      idle_timer_.expires_after(spec_.idle_timeout);
    }
    log(fmt::format("result {}: {}{}", results_, to_string(result.status),
                    result.error ? " (" + *result.error + ")" : ""));
    if (result.status == AgentResult::Status::error) {
      last_error_ = result.error.value_or("no reason given");
    } else {
      last_error_.reset();
    }
    if (!on_result_) continue;
    try {
      on_result_(result);
    } catch (const std::exception& e) {
      spdlog::error("[{}] handling an agent result failed: {}", spec_.group, e.what());
    }
  }
}

asio::awaitable<void> AgentRun::watch(asio::steady_timer& timer, void (AgentRun::*fire)()) {
  while (!finished_) {
    co_await timer.async_wait(kAsTuple);
    if (finished_) break;
    // A wait also ends when the timer is re-armed (a result, input_sent()): only a deadline
    // that has really passed fires.
    if (timer.expiry() > steady_clock::now()) continue;
    timer.expires_at(steady_clock::time_point::max());
    (this->*fire)();
  }
}

void AgentRun::on_hard_timeout() {
  timed_out_ = true;
  log("hard timeout: no result for " + seconds(spec_.hard_timeout) + "; terminating the agent");
  spdlog::warn("[{}] agent timed out (no result for {}); terminating it", spec_.group,
               seconds(spec_.hard_timeout));
  escalate();
}

void AgentRun::on_idle() {
  log("idle for " + seconds(spec_.idle_timeout) + " after its last result: asking it to close");
  request_close();
}

void AgentRun::on_kill_due() {
  if (!running()) return;
  log("still running " + seconds(spec_.kill_grace) + " after SIGTERM: killing the agent");
  kill_now();
}

void AgentRun::on_disk_check() {
  if (!running()) return;
  std::uint64_t used = 0;
  bool over = false;
  for (const auto& dir : spec_.disk_dirs) {
    const auto usage = disk_usage(dir, spec_.max_disk);
    if (!usage) continue;
    used += usage->bytes;
    if (usage->stopped || used > spec_.max_disk) over = true;
  }
  if (!over) {
    disk_timer_.expires_after(kDiskCheckInterval);
    return;
  }
  disk_exceeded_ = true;
  log(fmt::format("the agent's folders use more than max_disk ({} bytes): killing the agent",
                  spec_.max_disk));
  spdlog::warn("[{}] the agent's folders use more than max_disk; stopping it", spec_.group);
  kill_now();
}

void AgentRun::escalate() {
  if (!running() || escalated_) return;
  escalated_ = true;
  process_->terminate();
  kill_timer_.expires_after(spec_.kill_grace);
}

void AgentRun::kill_now() {
  if (!running() || killed_) return;
  killed_ = true;
  process_->kill();
  if (spec_.runtime == Runtime::docker || spec_.runtime == Runtime::podman) {
    start_task(remove_container());
  }
}

asio::awaitable<void> AgentRun::remove_container() {
  const auto argv = container_remove_argv(spec_.runtime, spec_.sandbox.name);
  if (argv.empty() || spec_.sandbox.name.empty()) co_return;
  auto remover = Process::spawn(executor_, ProcessOptions{argv, host_environment(), {}});
  if (!remover) {
    spdlog::warn("[{}] cannot remove container {}: {}", spec_.group, spec_.sandbox.name,
                 remover.error().message);
    co_return;
  }
  Process& process = **remover;
  boost::system::error_code ignored;
  process.stdin_pipe().close(ignored);
  asio::steady_timer guard(executor_, kContainerRemoveTimeout);
  auto on_guard = [&process](boost::system::error_code ec) {
    if (!ec) process.kill();
  };
  guard.async_wait(on_guard);
  const ExitStatus status = co_await process.wait();
  guard.cancel();
  log("container " + spec_.sandbox.name + " removed: " + describe(status));
}

void AgentRun::request_close() {
  if (close_requested_) return;
  close_requested_ = true;
  if (spec_.input_dir.empty()) {
    spdlog::warn("[{}] cannot ask the agent to close: no IPC input directory", spec_.group);
    return;
  }
  auto input = open_below_host_dir(spec_.input_dir, 0777);
  auto written =
      input ? input->write_file(kCloseRequestName, "", Durable::no) : Result<void>(input.error());
  if (!written) {
    spdlog::warn("[{}] cannot ask the agent to close: {}", spec_.group, written.error().message);
    log("close request failed: " + written.error().message);
    return;
  }
  log("close requested");
}

void AgentRun::input_sent() {
  if (finished_) return;
  idle_timer_.expires_at(steady_clock::time_point::max());
}

void AgentRun::stop() {
  if (!running()) return;
  stopped_ = true;
  log("stop requested");
  escalate();
}

Result<SafeDir> AgentRun::open_below_host_dir(const fs::path& dir, mode_t mode) const {
  const fs::path below = dir.lexically_relative(spec_.host_dir);
  if (spec_.host_dir.empty() || below.empty() || *below.begin() == "..") {
    return make_error(dir.string() + " is not below the host's own directory '" +
                      spec_.host_dir.string() + "'; refusing to write there");
  }
  return SafeDir::open(spec_.host_dir, below, MissingDirs::create, mode);
}

void AgentRun::log(std::string_view line) {
  if (!log_.valid()) return;
  const auto elapsed =
      started_at_ == steady_clock::time_point{}
          ? 0
          : std::chrono::duration_cast<milliseconds>(steady_clock::now() - started_at_).count();
  // A full disk loses log lines, never the run.
  write_all(log_.get(), fmt::format("+{}ms {}\n", elapsed, line));
}

Result<std::size_t> cleanup_leftovers(Runtime runtime, std::string_view instance_label) {
  const auto list = container_list_argv(runtime, instance_label);
  if (list.empty()) return std::size_t{0};
  const auto env = host_environment();
  const auto listed = run_captured(list, env, 1024 * 1024, std::chrono::seconds(60));
  if (!listed) return make_error("cannot list leftover containers: " + listed.error().message);
  if (listed->status.exit_code != 0) {
    return make_error("cannot list leftover containers (" +
                      fmt::format("{}", fmt::join(list, " ")) + " ended with " +
                      describe(listed->status) + "): " + listed->err);
  }
  std::vector<std::string> ids;
  std::string_view text = listed->out;
  while (!text.empty()) {
    const auto newline = text.find('\n');
    const auto id = text.substr(0, newline);
    if (!id.empty()) ids.emplace_back(id);
    if (newline == std::string_view::npos) break;
    text.remove_prefix(newline + 1);
  }
  if (ids.empty()) return std::size_t{0};
  std::vector<std::string> remove{std::string(to_string(runtime)), "rm", "-f"};
  remove.insert(remove.end(), ids.begin(), ids.end());
  const auto removed = run_captured(remove, env, 1024 * 1024, std::chrono::seconds(120));
  if (!removed) return make_error("cannot remove leftover containers: " + removed.error().message);
  if (removed->status.exit_code != 0) {
    return make_error("cannot remove leftover containers " +
                      fmt::format("{}", fmt::join(ids, " ")) + ": " + removed->err);
  }
  spdlog::info("removed {} leftover {} container(s) of instance {}: {}", ids.size(),
               to_string(runtime), instance_label, fmt::format("{}", fmt::join(ids, " ")));
  return ids.size();
}

}  // namespace sb::sandbox

#include "agent/bash_tool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "agent/workspace_tools.h"
#include "common/spawn.h"

extern char** environ;

namespace sb::agent {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// One argument of execve may not exceed 128 KiB (MAX_ARG_STRLEN); stay below it.
constexpr std::size_t kMaxCommandBytes = 100 * 1024;
constexpr std::int64_t kMaxTimeoutSeconds = 24 * 3600;
// Between SIGTERM and SIGKILL at the deadline.
constexpr auto kKillGrace = 2s;
// After the shell exits, how long background processes may still write before their group
// is killed.
constexpr auto kLinger = 200ms;
// How often the child's exit is checked while waiting for output.
constexpr auto kTick = 10ms;
// After the group is killed, how long to wait for the pipe to close; only a process that
// left the group (setsid) can hold it open that long.
constexpr auto kFinalDrain = 1s;

std::string errno_text(int error) { return std::generic_category().message(error); }

Result<pid_t> spawn_shell(const std::string& command, const fs::path& cwd, int output) {
  const char* shell = ::access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
  std::string arg0 = shell, dash_c = "-c", script = command;
  char* argv[] = {arg0.data(), dash_c.data(), script.data(), nullptr};

  // The agent's connection to the model proxy must not end up in a command's hands.
  return spawn_in_own_group(shell, argv, environ, -1, output, output, cwd);
}

// Whether the child has exited. It stays a zombie until reaped, so its pid, which is also its
// process group's id, cannot be reused meanwhile and signalling the group stays safe.
bool has_exited(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// The read end of the output pipe, drained into an OutputCap.
class OutputPipe {
 public:
  OutputPipe(int fd, OutputCap& cap) : fd_(fd), cap_(cap) {}
  ~OutputPipe() { ::close(fd_); }
  OutputPipe(const OutputPipe&) = delete;
  OutputPipe& operator=(const OutputPipe&) = delete;

  bool at_eof() const { return eof_; }

  // Reads what arrives within `wait` (returning as soon as something does); at end of file
  // just waits.
  void drain(std::chrono::milliseconds wait) {
    if (eof_) {
      ::poll(nullptr, 0, static_cast<int>(wait.count()));
      return;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return;
    char buffer[64 * 1024];
    const ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n > 0) {
      cap_.append(std::string_view(buffer, static_cast<std::size_t>(n)));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      eof_ = true;
    }
  }

 private:
  int fd_;
  OutputCap& cap_;
  bool eof_ = false;
};

std::chrono::milliseconds until(Clock::time_point deadline, std::chrono::milliseconds at_most) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return std::clamp(left, 0ms, at_most);
}

}  // namespace

BashTool::BashTool(const ToolContext& context) {
  const std::string timeout = seconds_text(context.timeout);
  spec_.name = "bash";
  spec_.description =
      "Run a shell command with bash in the group folder (the working directory) and return "
      "its stdout and stderr together. No stdin: nothing interactive. Times out after "
      "timeout_seconds (default and maximum " +
      timeout +
      "); the command and everything it started are then killed. Processes left running in "
      "the background are killed when the command ends. Output over " +
      std::to_string(context.max_output_bytes) +
      " bytes keeps its beginning and end. A non-zero exit status makes the result an error.";
  spec_.input_schema = json::parse(R"({"type":"object","properties":{
      "command":{"type":"string","description":"The command line, run with bash -c."},
      "timeout_seconds":{"type":"integer","minimum":1,
                         "description":"Time limit in seconds (capped at the default)."}},
      "required":["command"]})")
                           .as_object();
}

ToolOutput BashTool::run(const json::object& input, const ToolContext& context) {
  auto command = required_string(input, "command");
  if (!command) return ToolOutput::error(command.error().message);
  if (command->find_first_not_of(" \t\r\n") == std::string::npos) {
    return ToolOutput::error("'command' is empty");
  }
  if (command->size() > kMaxCommandBytes) {
    return ToolOutput::error("'command' is " + std::to_string(command->size()) +
                             " bytes, over the limit of " + std::to_string(kMaxCommandBytes) +
                             "; write a script with write_file and run that");
  }
  if (command->find('\0') != std::string::npos) {
    return ToolOutput::error("'command' contains a NUL byte");
  }
  auto timeout_seconds = optional_integer(input, "timeout_seconds", 1, kMaxTimeoutSeconds);
  if (!timeout_seconds) return ToolOutput::error(timeout_seconds.error().message);
  std::chrono::milliseconds limit = context.timeout;
  if (*timeout_seconds) {
    limit = std::min(limit, std::chrono::milliseconds(**timeout_seconds * 1000));
  }
  std::error_code ec;
  if (!fs::is_directory(context.workspace, ec)) {
    return ToolOutput::error("the workspace " + context.workspace.string() +
                             " is not a directory; cannot run commands");
  }

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return ToolOutput::error("cannot create a pipe: " + errno_text(errno));
  }
  OutputCap cap(context.max_output_bytes);
  OutputPipe output(fds[0], cap);
  auto pid = spawn_shell(*command, context.workspace, fds[1]);
  ::close(fds[1]);
  if (!pid) return ToolOutput::error(pid.error().message);

  const auto deadline = Clock::now() + limit;
  bool timed_out = false;
  std::optional<Clock::time_point> exited_at;
  while (true) {
    if (!exited_at && has_exited(*pid)) exited_at = Clock::now();
    if (exited_at && (output.at_eof() || Clock::now() >= *exited_at + kLinger)) break;
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    output.drain(until(deadline, kTick));
  }
  if (timed_out) {
    ::kill(-*pid, SIGTERM);
    const auto grace_end = Clock::now() + kKillGrace;
    while (!has_exited(*pid) && Clock::now() < grace_end) output.drain(until(grace_end, kTick));
  }
  ::kill(-*pid, SIGKILL);
  const int status = reap(*pid);
  const auto drain_end = Clock::now() + kFinalDrain;
  while (!output.at_eof() && Clock::now() < drain_end) output.drain(until(drain_end, 50ms));

  std::string text = cap.finish();
  std::string note;
  if (timed_out) {
    note = "[timed out after " + seconds_text(limit) + "; the command was killed]";
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    note = "[exit status " + std::to_string(WEXITSTATUS(status)) + "]";
  } else if (WIFSIGNALED(status)) {
    note = "[killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           ::strsignal(WTERMSIG(status)) + ")]";
  }
  if (note.empty()) return {text.empty() ? "(no output)" : std::move(text), false};
  if (!text.empty() && text.back() != '\n') text += '\n';
  return ToolOutput::error(text + note);
}

}  // namespace sb::agent

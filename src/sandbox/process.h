#pragma once
// Process: a child process with pipes on its stdin, stdout and stderr, driven by Boost.Asio.
//
// The child gets exactly the environment and working directory it is given (nothing of the
// daemon's environment leaks in), only fds 0-2 (every other fd of the daemon is closed),
// default signal dispositions and an empty signal mask, and its own process group, so
// terminate()/kill() reach whatever it forked in that group. Its exit is awaited through a
// pidfd (Linux >= 5.3), so no SIGCHLD handler is involved and no other child is reaped.
//
// The child is always reaped: when its exit is observed, anything left in its process group
// is SIGKILLed first; the destructor SIGKILLs the group and reaps the child if it is still
// running (blocking briefly).
//
// Spawning ignores SIGPIPE in the daemon (once, process-wide): writing to the stdin of an
// agent that has exited must be an EPIPE error, not the death of the daemon. Children get
// SIGPIPE back at its default.
//
// Threading: everything on the thread of the executor given to spawn().

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/safe_files.h"

namespace sb::sandbox {

struct ExitStatus {
  std::optional<int> exit_code;  // set when the child exited normally
  std::optional<int> signal;     // set when a signal ended it
};

// "exit code 3" or "signal 9 (Killed)".
std::string describe(const ExitStatus& status);

// A host user a child runs as.
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
};

// setrlimit(resource, {soft, hard}) in the child; RLIM_INFINITY for "none".
struct ResourceLimit {
  int resource = 0;
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

// What a sandbox's child process does between fork and exec, in this order:
//  1. staged: each host path is bind-mounted (recursively) at staged_path(i), on a tmpfs that
//     covers /tmp in a private mount namespace of the child. A child that then drops to
//     `run_as` reaches them there, even below directories that user could not traverse.
//     Needs root (CAP_SYS_ADMIN); the paths are opened by the parent before the fork.
//  2. fds: the child gets these descriptors as 3, 4, … in this order (and no others).
//  3. limits: setrlimit for each.
//  4. run_as: supplementary groups cleared, then setresgid and setresuid to the identity.
// An empty setup starts the child with posix_spawn, as before.
struct ChildSetup {
  std::vector<std::filesystem::path> staged;
  std::vector<int> fds;
  std::vector<ResourceLimit> limits;
  std::optional<Identity> run_as;
  bool empty() const { return staged.empty() && fds.empty() && limits.empty() && !run_as; }
};

// A sealed memory file (memfd) holding `content`, at offset 0, close-on-exec: something a
// child reads from a descriptor of ChildSetup::fds (bwrap's --args, its seccomp program).
// One per child: reading moves the offset its dups share. Error: memfd_create, the write or
// the seals failed, with the system's reason.
Result<UniqueFd> memory_file(const char* name, std::string_view content);

// Where ChildSetup::staged[index] appears to the child: "/tmp/<index>".
std::string staged_path(std::size_t index);

struct ProcessOptions {
  std::vector<std::string> argv;  // argv[0]: a path, or a name looked up on the daemon's PATH
  std::vector<std::pair<std::string, std::string>> env;  // the child's whole environment
  std::filesystem::path cwd;                             // empty: the daemon's working directory
  ChildSetup setup;
};

class Process {
 public:
  // Starts the child. Fails, naming the program, when argv is empty, the program is not
  // found or cannot be executed (ENOENT, EACCES, a bad ELF…), the working directory cannot
  // be entered, a step of options.setup fails (naming the step), or pipes/pidfd cannot be
  // created. On failure no child is left behind.
  static Result<std::unique_ptr<Process>> spawn(const boost::asio::any_io_executor& executor,
                                                const ProcessOptions& options);

  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }

  // The parent's ends of the pipes. Close stdin_pipe() to send EOF.
  boost::asio::posix::stream_descriptor& stdin_pipe() { return stdin_; }
  boost::asio::posix::stream_descriptor& stdout_pipe() { return stdout_; }
  boost::asio::posix::stream_descriptor& stderr_pipe() { return stderr_; }

  // Completes when the child has exited and been reaped, with how it ended. At most one
  // wait() at a time; after the exit, returns the same status at once.
  boost::asio::awaitable<ExitStatus> wait();

  // The status once reaped; nullopt while the child runs.
  const std::optional<ExitStatus>& exit_status() const { return status_; }
  bool running() const { return !status_.has_value(); }

  // SIGTERM / SIGKILL to the child's process group; no-ops once it has been reaped.
  void terminate();
  void kill();

 private:
  Process(const boost::asio::any_io_executor& executor, pid_t pid);
  void reap(bool block);

  pid_t pid_;
  boost::asio::posix::stream_descriptor stdin_;
  boost::asio::posix::stream_descriptor stdout_;
  boost::asio::posix::stream_descriptor stderr_;
  boost::asio::posix::stream_descriptor pidfd_;
  std::optional<ExitStatus> status_;
};

// `name` if it contains a '/', else the first executable regular file called `name` in the
// directories of `path_env` (the daemon's PATH when nullopt). nullopt when not found.
std::optional<std::filesystem::path> find_executable(
    std::string_view name, std::optional<std::string_view> path_env = std::nullopt);

// What run_captured saw.
struct Captured {
  ExitStatus status;
  std::string out;  // stdout, at most max_output bytes
  std::string err;  // stderr, at most max_output bytes
};

// Runs argv to completion synchronously with stdin from /dev/null, the environment `env`
// (exactly), capturing stdout and stderr up to `max_output` bytes each. SIGKILLs the child
// (and its group) after `timeout`, reporting that as an error. Blocks the calling thread:
// for start-up work (runtime detection, leftover cleanup), never on the event loop.
Result<Captured> run_captured(const std::vector<std::string>& argv,
                              const std::vector<std::pair<std::string, std::string>>& env,
                              std::size_t max_output, std::chrono::milliseconds timeout,
                              const ChildSetup& setup = {});

}  // namespace sb::sandbox

#include "sandbox/process.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <mutex>
#include <system_error>

#include "common/safe_files.h"
#include "common/spawn.h"

namespace sb::sandbox {
namespace {

namespace fs = std::filesystem;

std::string errno_text(int error) {
  return std::error_code(error, std::generic_category()).message();
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return make_error("cannot create a pipe: " + errno_text(errno));
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

// The steps of ChildSetup, named in the error a failing child reports.
enum class Step : int { staging, descriptors, limits, identity, directory, exec };

const char* step_name(Step step) {
  switch (step) {
    case Step::staging:
      return "staging the sandbox's mounts";
    case Step::descriptors:
      return "passing descriptors";
    case Step::limits:
      return "setting resource limits";
    case Step::identity:
      return "dropping to the agent user";
    case Step::directory:
      return "entering the working directory";
    case Step::exec:
      return "exec";
  }
  return "?";
}

struct ChildFailure {
  int step = 0;
  int error = 0;
};

// In the child, between fork and exec: only system calls (async-signal-safe), every string
// prepared by the parent. Reports a failure on `report` (close-on-exec) and exits 127.
[[noreturn]] void child_fail(int report, Step step) {
  const ChildFailure failure{static_cast<int>(step), errno};
  [[maybe_unused]] const ssize_t ignored = ::write(report, &failure, sizeof failure);
  ::_exit(127);
}

struct StagedSource {
  std::string host_path;   // opened by the child, inside its own mount namespace
  std::string mount_path;  // staged_path(i)
  char fd_path[32] = {};   // /proc/self/fd/<n>, written by the child
};

// Writes "/proc/self/fd/<fd>" into `out` without allocating (async-signal-safe).
void fd_path(int fd, char (&out)[32]) {
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd > 0 && n < 15);
  constexpr char kPrefix[] = "/proc/self/fd/";
  std::size_t at = 0;
  for (; kPrefix[at] != '\0'; ++at) out[at] = kPrefix[at];
  while (n > 0) out[at++] = digits[--n];
  out[at] = '\0';
}

// fork + the ChildSetup steps + execve. The child has its own process group, default signal
// dispositions and an empty mask, fds 0-2 from in/out/err, then setup.fds as 3, 4, ….
Result<pid_t> fork_with_setup(const std::string& program, char* const argv[], char* const envp[],
                              int in, int out, int err, const ProcessOptions& options) {
  const ChildSetup& setup = options.setup;
  if (setup.staged.size() > 64 || setup.fds.size() > 60) {
    return make_error("cannot start " + program + ": too many staged paths or descriptors");
  }
  std::vector<StagedSource> staged;
  for (std::size_t i = 0; i < setup.staged.size(); ++i) {
    const auto& path = setup.staged[i];
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
      return make_error("cannot start " + program + ": cannot open " + path.string() +
                        " for the sandbox: " + errno_text(errno));
    }
    staged.push_back(StagedSource{path.string(), staged_path(i)});
  }
  UniqueFd null;
  if (in < 0) {
    null = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (null.get() < 0) return make_error("cannot open /dev/null: " + errno_text(errno));
    in = null.get();
  }
  // The descriptors the child ends up with, in order: 0, 1, 2, 3, ….
  std::vector<int> wanted{in, out, err};
  wanted.insert(wanted.end(), setup.fds.begin(), setup.fds.end());
  int highest = 2;
  for (int fd : wanted) highest = std::max(highest, fd);
  std::vector<rlimit> limits;
  for (const auto& limit : setup.limits) {
    limits.push_back(rlimit{static_cast<rlim_t>(limit.soft), static_cast<rlim_t>(limit.hard)});
  }
  const std::string cwd = options.cwd.string();

  auto report = make_pipe();
  if (!report) return report.error();
  const pid_t pid = ::fork();
  if (pid < 0) return make_error("cannot start " + program + ": fork: " + errno_text(errno));
  if (pid == 0) {
    const int channel = report->write.get();
    ::setpgid(0, 0);
    struct sigaction defaults {};
    defaults.sa_handler = SIG_DFL;
    for (int signal = 1; signal < NSIG; ++signal) {
      if (signal != SIGKILL && signal != SIGSTOP) ::sigaction(signal, &defaults, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);

    if (!staged.empty()) {
      if (::unshare(CLONE_NEWNS) != 0 ||
          ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        child_fail(channel, Step::staging);
      }
      // Opened here: a bind mount's source must belong to this mount namespace. All are
      // opened before the tmpfs covers /tmp, where some of them may live.
      int opened[64];
      bool directory[64];
      const std::size_t sources = std::min<std::size_t>(staged.size(), 64);
      for (std::size_t i = 0; i < sources; ++i) {
        opened[i] = ::open(staged[i].host_path.c_str(), O_PATH | O_CLOEXEC);
        struct stat info {};
        if (opened[i] < 0 || ::fstat(opened[i], &info) != 0) child_fail(channel, Step::staging);
        directory[i] = S_ISDIR(info.st_mode);
        fd_path(opened[i], staged[i].fd_path);
      }
      if (::mount("switchboard-stage", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0755,size=64k") != 0) {
        child_fail(channel, Step::staging);
      }
      for (std::size_t i = 0; i < sources; ++i) {
        const char* target = staged[i].mount_path.c_str();
        if (directory[i]) {
          if (::mkdir(target, 0755) != 0) child_fail(channel, Step::staging);
        } else {
          const int made = ::open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
          if (made < 0) child_fail(channel, Step::staging);
          ::close(made);
        }
        if (::mount(staged[i].fd_path, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
          child_fail(channel, Step::staging);
        }
        ::close(opened[i]);
      }
      if (::chdir("/") != 0) child_fail(channel, Step::staging);
    }

    // Move every wanted descriptor above all of them first, so that no dup2 below overwrites
    // one that is still to be placed.
    int moved[64];
    const std::size_t count = std::min<std::size_t>(wanted.size(), 64);
    for (std::size_t i = 0; i < count; ++i) {
      moved[i] = ::fcntl(wanted[i], F_DUPFD_CLOEXEC, highest + 1);
      if (moved[i] < 0) child_fail(channel, Step::descriptors);
    }
    for (std::size_t i = 0; i < count; ++i) {
      if (::dup2(moved[i], static_cast<int>(i)) < 0) child_fail(channel, Step::descriptors);
    }
    // Everything else closes at the exec (the report channel too).
    if (::syscall(SYS_close_range, static_cast<unsigned>(count), ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      child_fail(channel, Step::descriptors);
    }

    for (std::size_t i = 0; i < limits.size(); ++i) {
      if (::setrlimit(setup.limits[i].resource, &limits[i]) != 0) child_fail(channel, Step::limits);
    }
    if (setup.run_as) {
      const gid_t gid = setup.run_as->gid;
      const uid_t uid = setup.run_as->uid;
      if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
          ::setresuid(uid, uid, uid) != 0) {
        child_fail(channel, Step::identity);
      }
    }
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) child_fail(channel, Step::directory);
    ::execve(program.c_str(), argv, envp);
    child_fail(channel, Step::exec);
  }

  report->write.reset();
  ChildFailure failure;
  ssize_t got = 0;
  do {
    got = ::read(report->read.get(), &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return make_error("cannot start " + program + ": " +
                      step_name(static_cast<Step>(failure.step)) + ": " +
                      errno_text(failure.error));
  }
  return pid;
}

// Starts argv with the given fds as 0, 1, 2, in its own process group. Returns its pid.
Result<pid_t> spawn_child(const ProcessOptions& options, int in, int out, int err) {
  if (options.argv.empty()) return make_error("cannot start a process: empty command line");
  const std::string& name = options.argv[0];
  const auto program = find_executable(name);
  if (!program) return make_error("cannot start " + name + ": not found on PATH");
  if (!options.cwd.empty()) {
    std::error_code ec;
    if (!fs::is_directory(options.cwd, ec)) {
      return make_error("cannot start " + name + ": working directory " + options.cwd.string() +
                        " does not exist");
    }
  }

  std::vector<char*> argv;
  for (const auto& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  env_strings.reserve(options.env.size());
  for (const auto& [key, value] : options.env) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  // The daemon's sockets and files (listeners, the database) must not reach an agent.
  if (options.setup.empty()) {
    return spawn_in_own_group(program->c_str(), argv.data(), envp.data(), in, out, err,
                              options.cwd);
  }
  return fork_with_setup(program->string(), argv.data(), envp.data(), in, out, err, options);
}

ExitStatus decode(int status) {
  ExitStatus result;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Sends `signal` to the process group led by `pid`, or to `pid` alone if it left its group.
void signal_group(pid_t pid, int signal) {
  if (::kill(-pid, signal) != 0 && errno == ESRCH) ::kill(pid, signal);
}

ExitStatus kill_and_reap(pid_t pid) {
  signal_group(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return decode(status);
}

}  // namespace

std::optional<fs::path> find_executable(std::string_view name,
                                        std::optional<std::string_view> path_env) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string_view::npos) return fs::path(name);
  std::string_view path;
  if (path_env) {
    path = *path_env;
  } else if (const char* env = ::getenv("PATH")) {
    path = env;
  } else {
    path = "/usr/local/bin:/usr/bin:/bin";
  }
  while (true) {
    const auto colon = path.find(':');
    const auto dir = path.substr(0, colon);
    if (!dir.empty()) {
      const fs::path candidate = fs::path(dir) / name;
      std::error_code ec;
      if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) {
        return candidate;
      }
    }
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  return std::nullopt;
}

std::string staged_path(std::size_t index) { return "/tmp/" + std::to_string(index); }

Result<UniqueFd> memory_file(const char* name, std::string_view content) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return make_error("memfd_create: " + errno_text(errno));
  if (const int error = write_all(fd.get(), content); error != 0) {
    return make_error(std::string("writing the memory file ") + name + ": " + errno_text(error));
  }
  // Sealed, so nothing that gets hold of the descriptor can change what the child reads.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) !=
          0 ||
      ::lseek(fd.get(), 0, SEEK_SET) != 0) {
    return make_error(std::string("sealing the memory file ") + name + ": " + errno_text(errno));
  }
  return fd;
}

std::string describe(const ExitStatus& status) {
  if (status.exit_code) return "exit code " + std::to_string(*status.exit_code);
  if (status.signal) {
    return "signal " + std::to_string(*status.signal) + " (" + ::strsignal(*status.signal) + ")";
  }
  return "unknown exit status";
}

Process::Process(const boost::asio::any_io_executor& executor, pid_t pid)
    : pid_(pid), stdin_(executor), stdout_(executor), stderr_(executor), pidfd_(executor) {}

Result<std::unique_ptr<Process>> Process::spawn(const boost::asio::any_io_executor& executor,
                                                const ProcessOptions& options) {
  ignore_sigpipe_once();
  auto in = make_pipe();
  if (!in) return in.error();
  auto out = make_pipe();
  if (!out) return out.error();
  auto err = make_pipe();
  if (!err) return err.error();
  auto pid = spawn_child(options, in->read.get(), out->write.get(), err->write.get());
  if (!pid) return pid.error();
  const int pidfd = pidfd_open(*pid);
  if (pidfd < 0) {
    const int error = errno;
    kill_and_reap(*pid);
    return make_error("cannot watch process " + options.argv[0] +
                      " (pidfd_open needs Linux 5.3): " + errno_text(error));
  }
  std::unique_ptr<Process> process(new Process(executor, *pid));
  process->pidfd_.assign(pidfd);
  process->stdin_.assign(in->write.release());
  process->stdout_.assign(out->read.release());
  process->stderr_.assign(err->read.release());
  return process;
}

Process::~Process() {
  if (!status_) status_ = kill_and_reap(pid_);
}

boost::asio::awaitable<ExitStatus> Process::wait() {
  if (status_) co_return *status_;
  const auto [ec] = co_await pidfd_.async_wait(boost::asio::posix::descriptor_base::wait_read,
                                               boost::asio::as_tuple(boost::asio::use_awaitable));
  if (ec) throw boost::system::system_error(ec, "waiting for process " + std::to_string(pid_));
  if (!status_) reap(false);
  co_return *status_;
}

void Process::reap(bool block) {
  // The leader has exited but is not reaped yet, so its group id cannot have been reused:
  // whatever it left behind in the group is killed without risk of hitting a stranger.
  if (!block) ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = decode(status);
  boost::system::error_code ignored;
  pidfd_.close(ignored);
}

void Process::terminate() {
  if (!status_) signal_group(pid_, SIGTERM);
}

void Process::kill() {
  if (!status_) signal_group(pid_, SIGKILL);
}

Result<Captured> run_captured(const std::vector<std::string>& argv,
                              const std::vector<std::pair<std::string, std::string>>& env,
                              std::size_t max_output, std::chrono::milliseconds timeout,
                              const ChildSetup& setup) {
  ignore_sigpipe_once();
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null.get() < 0) return make_error("cannot open /dev/null: " + errno_text(errno));
  auto out = make_pipe();
  if (!out) return out.error();
  auto err = make_pipe();
  if (!err) return err.error();
  const ProcessOptions options{argv, env, {}, setup};
  auto pid = spawn_child(options, null.get(), out->write.get(), err->write.get());
  if (!pid) return pid.error();
  out->write.reset();
  err->write.reset();

  Captured captured;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<pollfd, 2> fds{pollfd{out->read.get(), POLLIN, 0}, pollfd{err->read.get(), POLLIN, 0}};
  std::array<std::string*, 2> sinks{&captured.out, &captured.err};
  int open_pipes = 2;
  while (open_pipes > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill_and_reap(*pid);
      return make_error(argv[0] + " did not finish within " + std::to_string(timeout.count()) +
                        " ms");
    }
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) {
      const int error = errno;
      kill_and_reap(*pid);
      return make_error("waiting for " + argv[0] + ": " + errno_text(error));
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;
        --open_pipes;
        continue;
      }
      auto& sink = *sinks[i];
      sink.append(buffer, std::min(static_cast<std::size_t>(n),
                                   max_output - std::min(max_output, sink.size())));
    }
  }
  // Both pipes are closed; the child is normally gone too, but it may have closed them and
  // gone on running.
  int status = 0;
  pid_t reaped = 0;
  while ((reaped = ::waitpid(*pid, &status, WNOHANG)) == 0 || (reaped < 0 && errno == EINTR)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill_and_reap(*pid);
      return make_error(argv[0] + " did not finish within " + std::to_string(timeout.count()) +
                        " ms");
    }
    ::usleep(1000);
  }
  captured.status = decode(status);
  return captured;
}

}  // namespace sb::sandbox

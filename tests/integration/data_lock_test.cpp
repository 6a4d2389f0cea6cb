// One daemon per data directory (src/daemon/data_lock.h), with the real binary: a second
// daemon on the same data_dir exits at once naming the first, the first keeps serving, and
// the lock neither outlives the daemon nor reaches its agents.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "chat_helpers.h"
#include "daemon_fixture.h"
#include "support/child_process.h"

namespace sb::test {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Runs `switchboard run` with a config of its own (data_dir `data_dir`, a free port) and
// waits up to `limit` for it to exit. The exit code, or nullopt if it was still running (it
// is killed then); its log in `log`.
std::optional<int> run_second_daemon(const fs::path& dir, const fs::path& data_dir,
                                     std::string& log, std::uint16_t& port,
                                     std::chrono::seconds limit = 15s) {
  port = free_port();
  const auto config = dir / "second.toml";
  std::ofstream(config) << "data_dir = \"" << data_dir.string()
                        << "\"\n[api]\nlisten = \"127.0.0.1:" << port << "\"\n";
  const auto log_file = dir / "second.log";
  const pid_t pid =
      spawn_logged({SWITCHBOARD_BINARY, "run", "--config", config.string()}, log_file);
  if (pid < 0) return std::nullopt;
  std::optional<int> code;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!code && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else {
      std::this_thread::sleep_for(10ms);
    }
  }
  if (!code) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  log = read_file(log_file);
  return code;
}

// The processes other than `except` that have `file` open, by pid.
std::vector<std::string> holders_of(const fs::path& file, pid_t except) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator proc("/proc", ec), end; !ec && proc != end; proc.increment(ec)) {
    const std::string pid = proc->path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (pid == std::to_string(except)) continue;
    std::error_code fd_ec;
    for (fs::directory_iterator fd(proc->path() / "fd", fd_ec), fd_end; !fd_ec && fd != fd_end;
         fd.increment(fd_ec)) {
      std::error_code link_ec;
      if (fs::read_symlink(fd->path(), link_ec) == file) out.push_back(pid);
    }
  }
  return out;
}

// The `flags:` line of the daemon's descriptor for `file` (from /proc/<pid>/fdinfo), as a
// number; nullopt if the daemon does not have the file open.
std::optional<long> open_flags(pid_t pid, const fs::path& file) {
  const fs::path proc = "/proc/" + std::to_string(pid);
  for (const auto& fd : fs::directory_iterator(proc / "fd")) {
    std::error_code ec;
    if (fs::read_symlink(fd.path(), ec) != file) continue;
    std::ifstream info(proc / "fdinfo" / fd.path().filename());
    std::string line;
    while (std::getline(info, line)) {
      if (line.starts_with("flags:")) return std::stol(line.substr(6), nullptr, 8);
    }
  }
  return std::nullopt;
}

TEST(DaemonDataLock, ASecondDaemonOnTheSameDataDirectoryExitsAtOnceNamingTheFirst) {
  TempDir dir;
  Daemon first(dir.path());
  ASSERT_TRUE(first.start()) << first.log();
  const auto data = dir.path() / "data";
  const auto lock = data / "switchboard.lock";
  first.json("POST", "/messages", 201, R"({"source":"me","content":"before","chat":"http:a"})");

  TempDir other;
  std::string log;
  std::uint16_t port = 0;
  const auto code = run_second_daemon(other.path(), data, log, port);
  ASSERT_TRUE(code.has_value()) << "the second daemon kept running:\n" << log;
  EXPECT_EQ(*code, 1) << log;
  EXPECT_NE(log.find("data directory " + data.string() + " is in use by switchboard pid " +
                     std::to_string(first.pid()) + " (lock " + lock.string() + ")"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("listening"), std::string::npos) << log;
  EXPECT_LT(connect_loopback(port), 0) << "the second daemon listened";

  // The same directory reached through a symlink is the same lock.
  fs::create_symlink(data, other.path() / "link");
  const auto through_link = run_second_daemon(other.path(), other.path() / "link", log, port);
  ASSERT_TRUE(through_link.has_value()) << log;
  EXPECT_EQ(*through_link, 1) << log;
  EXPECT_NE(log.find("is in use by switchboard pid " + std::to_string(first.pid())),
            std::string::npos)
      << log;

  // The first one still serves, reads and writes.
  first.json("POST", "/messages", 201, R"({"source":"me","content":"after","chat":"http:a"})");
  const auto listed = first.json("GET", "/messages?chat=http:a&order=asc", 200).as_array();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[1].at("content"), "after");
  EXPECT_EQ(first.json("GET", "/health", 200).at("status"), "ok");
  EXPECT_EQ(first.terminate(), 0) << first.log();
}

TEST(DaemonDataLock, ImportStillWorksWhileTheDaemonRuns) {
  TempDir dir;
  Daemon daemon(dir.path());
  ASSERT_TRUE(daemon.start()) << daemon.log();
  const auto messages = dir.path() / "messages.jsonl";
  std::ofstream(messages)
      << R"({"id": "m1", "timestamp": "2026-05-01T10:00:00Z", "source": "email", "content": "imported", "read": false})"
      << "\n";
  const auto imported =
      run_cli({"import", "--config", daemon.config_file().string(), messages.string()});
  EXPECT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(daemon.json("GET", "/messages/m1", 200).at("content"), "imported");
}

TEST(DaemonDataLock, ARestartRightAfterKill9TakesTheLock) {
  TempDir dir;
  Daemon daemon(dir.path());
  ASSERT_TRUE(daemon.start()) << daemon.log();
  const pid_t killed = daemon.pid();
  daemon.kill9();
  ASSERT_TRUE(daemon.start()) << daemon.log();
  // The pid in the file is the new holder's; the dead one's decided nothing.
  EXPECT_EQ(read_file(dir.path() / "data" / "switchboard.lock"),
            std::to_string(daemon.pid()) + "\n");
  EXPECT_NE(daemon.pid(), killed);
  EXPECT_EQ(daemon.terminate(), 0) << daemon.log();
  ASSERT_TRUE(daemon.start()) << daemon.log();  // and after a clean stop
  EXPECT_EQ(daemon.terminate(), 0) << daemon.log();
}

TEST(DaemonDataLock, AgentsDoNotInheritTheLockAndARestartWhileTheyRunSucceeds) {
  SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox");
  TempDir dir;
  Daemon daemon(dir.path(), "", bwrap_test_agent_toml(dir.path()));
  ASSERT_TRUE(daemon.start()) << daemon.log();
  const auto lock = dir.path() / "data" / "switchboard.lock";
  const auto flags = open_flags(daemon.pid(), lock);
  ASSERT_TRUE(flags.has_value()) << "the daemon does not hold " << lock;
  EXPECT_NE(*flags & O_CLOEXEC, 0) << std::oct << *flags;

  add_group(daemon, "family", "http:alice");
  post_message(daemon, "http:alice", "reply started\nsleep 30000");
  ASSERT_EQ(assistant_replies(daemon, "http:alice", 1).size(), 1u) << daemon.log();
  // The agent runs now (bwrap and the agent are the daemon's descendants): none of them has
  // the lock file open.
  EXPECT_EQ(daemon.json("GET", "/health", 200).at("agents").at("runs").as_array().size(), 1u);
  EXPECT_EQ(holders_of(lock, daemon.pid()), std::vector<std::string>{});

  // What systemd does after a crash: the daemon dies, a new one starts at once.
  daemon.kill9();
  ASSERT_TRUE(daemon.start()) << daemon.log();
  EXPECT_EQ(daemon.log().find("is in use"), std::string::npos) << daemon.log();
  EXPECT_EQ(daemon.terminate(), 0) << daemon.log();
}

}  // namespace
}  // namespace sb::test

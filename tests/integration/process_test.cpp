#include "sandbox/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <fstream>
#include <iterator>
#include <string>

#include "support/proc_scan.h"
#include "support/require_peer.h"
#include "support/temp_dir.h"

namespace sb::sandbox {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct Finished {
  ExitStatus status;
  std::string out;
  bool done = false;
};

// Runs `options` to completion on a fresh io_context, collecting stdout.
Finished run(const ProcessOptions& options) {
  asio::io_context io;
  Finished finished;
  auto process = Process::spawn(io.get_executor(), options);
  EXPECT_TRUE(process.ok()) << (process.ok() ? "" : process.error().message);
  if (!process.ok()) return finished;
  Process& p = **process;
  p.stdin_pipe().close();
  auto body = [&]() -> asio::awaitable<void> {
    auto [ec, n] = co_await asio::async_read(p.stdout_pipe(), asio::dynamic_buffer(finished.out),
                                             asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec, asio::error::eof);
    EXPECT_EQ(n, finished.out.size());
    finished.status = co_await p.wait();
    finished.done = true;
  };
  asio::co_spawn(io, body, asio::detached);
  io.run_for(10s);
  EXPECT_TRUE(finished.done);
  return finished;
}

TEST(Process, GivesTheChildExactlyItsEnvironment) {
  ::setenv("SB_TEST_SECRET", "hunter2", 1);
  const auto finished = run({{"/usr/bin/env"}, {{"ONLY", "this"}, {"AND", "that"}}, {}});
  ::unsetenv("SB_TEST_SECRET");
  EXPECT_EQ(finished.out, "ONLY=this\nAND=that\n");
  EXPECT_EQ(finished.status.exit_code, 0);
}

TEST(Process, StartsInTheGivenWorkingDirectoryAndFindsProgramsOnPath) {
  sb::test::TempDir dir;
  const auto finished = run({{"pwd"}, {}, dir.path()});
  EXPECT_EQ(finished.out, dir.path().string() + "\n");
}

TEST(Process, ReportsExitCodesAndSignals) {
  EXPECT_EQ(run({{"/bin/sh", "-c", "exit 7"}, {}, {}}).status.exit_code, 7);
  const auto killed = run({{"/bin/sh", "-c", "kill -KILL $$"}, {}, {}});
  EXPECT_FALSE(killed.status.exit_code.has_value());
  EXPECT_EQ(killed.status.signal, SIGKILL);
  EXPECT_EQ(describe(killed.status).rfind("signal 9", 0), 0u) << describe(killed.status);
}

TEST(Process, PassesOnlyTheThreeStandardDescriptors) {
  const int leaked = ::open("/dev/null", O_RDONLY);  // deliberately not close-on-exec
  ASSERT_GE(leaked, 3);
  const auto finished = run({{"/bin/sh", "-c", "ls /proc/$$/fd"}, {}, {}});
  ::close(leaked);
  EXPECT_EQ(finished.out, "0\n1\n2\n");
}

// Bit `signal` of a /proc/<pid>/status signal mask line ("SigIgn:\t0000000000001000").
bool mask_has(const std::string& status, const std::string& field, int signal) {
  const auto at = status.find(field + ":\t");
  if (at == std::string::npos) return false;
  const auto mask = std::stoull(status.substr(at + field.size() + 2, 16), nullptr, 16);
  return (mask >> (signal - 1)) & 1u;
}

TEST(Process, ResetsIgnoredAndBlockedSignalsForTheChild) {
  sigset_t term, saved;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &term, &saved);
  const auto finished = run({{"/bin/cat", "/proc/self/status"}, {}, {}});
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  std::ifstream own("/proc/self/status");
  const std::string parent(std::istreambuf_iterator<char>(own), {});
  // Spawning made the daemon ignore SIGPIPE; the child must get the default back, and an
  // agent that cannot be terminated because the daemon blocked SIGTERM is no use.
  EXPECT_TRUE(mask_has(parent, "SigIgn", SIGPIPE));
  EXPECT_FALSE(mask_has(finished.out, "SigIgn", SIGPIPE)) << finished.out;
  EXPECT_FALSE(mask_has(finished.out, "SigBlk", SIGTERM)) << finished.out;
}

TEST(Process, FailsClearlyForAMissingProgramOrDirectory) {
  asio::io_context io;
  const auto missing = Process::spawn(io.get_executor(), {{"/nonexistent/agent"}, {}, {}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/agent"), std::string::npos);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos)
      << missing.error().message;
  const auto not_on_path = Process::spawn(io.get_executor(), {{"no-such-agent-xyz"}, {}, {}});
  ASSERT_FALSE(not_on_path.ok());
  EXPECT_NE(not_on_path.error().message.find("not found on PATH"), std::string::npos);
  const auto bad_dir = Process::spawn(io.get_executor(), {{"/bin/true"}, {}, "/nonexistent/dir"});
  ASSERT_FALSE(bad_dir.ok());
  EXPECT_NE(bad_dir.error().message.find("/nonexistent/dir"), std::string::npos);
}

TEST(Process, FailsClearlyForAFileThatIsNotExecutable) {
  sb::test::TempDir dir;
  std::ofstream(dir.path() / "agent") << "data";
  asio::io_context io;
  const auto spawned =
      Process::spawn(io.get_executor(), {{(dir.path() / "agent").string()}, {}, {}});
  ASSERT_FALSE(spawned.ok());
  EXPECT_NE(spawned.error().message.find("Permission denied"), std::string::npos)
      << spawned.error().message;
}

TEST(Process, KillsWhatTheChildLeftInItsGroupWhenItExits) {
  const auto finished = run({{"/bin/sh", "-c", "sleep 31337.25 >/dev/null 2>&1 & exit 0"}, {}, {}});
  EXPECT_EQ(finished.status.exit_code, 0);
  EXPECT_TRUE(sb::test::processes_with_marker_gone("31337.25"));
}

TEST(Process, TerminateReachesTheWholeGroup) {
  asio::io_context io;
  auto process = Process::spawn(io.get_executor(),
                                {{"/bin/sh", "-c", "sleep 31337.5 & sleep 31337.5; true"}, {}, {}});
  ASSERT_TRUE(process.ok());
  Process& p = **process;
  ExitStatus status;
  auto body = [&]() -> asio::awaitable<void> {
    asio::steady_timer settle(io, 100ms);
    co_await settle.async_wait(asio::use_awaitable);
    p.terminate();
    status = co_await p.wait();
  };
  asio::co_spawn(io, body, asio::detached);
  io.run_for(10s);
  EXPECT_EQ(status.signal, SIGTERM);
  EXPECT_FALSE(p.running());
  EXPECT_TRUE(sb::test::processes_with_marker_gone("31337.5"));
}

TEST(Process, DestructorKillsAndReapsARunningChild) {
  asio::io_context io;
  pid_t pid = -1;
  {
    auto process = Process::spawn(io.get_executor(), {{"/bin/sleep", "31337.75"}, {}, {}});
    ASSERT_TRUE(process.ok());
    pid = (*process)->pid();
    EXPECT_EQ(::kill(pid, 0), 0);  // running
  }
  errno = 0;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);  // already reaped: no zombie left
  EXPECT_FALSE(sb::test::process_with_marker_exists("31337.75"));
}

TEST(RunCaptured, CollectsBoundedOutputAndTheExitStatus) {
  const auto captured = run_captured(
      {"/bin/sh", "-c", "echo out; echo err >&2; head -c 100000 /dev/zero; exit 3"}, {}, 1000, 10s);
  ASSERT_TRUE(captured.ok()) << captured.error().message;
  EXPECT_EQ(captured.value().status.exit_code, 3);
  EXPECT_EQ(captured.value().out.size(), 1000u);
  EXPECT_EQ(captured.value().out.substr(0, 4), "out\n");
  EXPECT_EQ(captured.value().err, "err\n");
}

TEST(RunCaptured, KillsAChildThatOverstaysItsTimeout) {
  const auto start = std::chrono::steady_clock::now();
  const auto captured = run_captured({"/bin/sleep", "31337.125"}, {}, 1000, 200ms);
  ASSERT_FALSE(captured.ok());
  EXPECT_NE(captured.error().message.find("did not finish within 200 ms"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(sb::test::processes_with_marker_gone("31337.125"));
}

}  // namespace
}  // namespace sb::sandbox

namespace sb::sandbox {
namespace {

ProcessOptions shell(const std::string& script, ChildSetup setup) {
  return ProcessOptions{
      {"/bin/sh", "-c", script}, {{"PATH", "/usr/bin:/bin"}}, {}, std::move(setup)};
}

TEST(ProcessSetup, PassesTheGivenDescriptorsAsThreeFourAndNoOthers) {
  int first[2], second[2];
  ASSERT_EQ(::pipe2(first, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(second, O_CLOEXEC), 0);
  ASSERT_EQ(::write(first[1], "one", 3), 3);
  ASSERT_EQ(::write(second[1], "two", 3), 3);
  ::close(first[1]);
  ::close(second[1]);
  ChildSetup setup;
  setup.fds = {first[0], second[0]};
  const auto got = run(shell("cat <&3; cat <&4; ls /proc/self/fd | wc -l", setup));
  ::close(first[0]);
  ::close(second[0]);
  // 0, 1, 2, 3, 4 and the directory ls reads.
  EXPECT_EQ(got.out, "onetwo6\n");
  EXPECT_EQ(got.status.exit_code, 0);
}

TEST(ProcessSetup, AppliesResourceLimits) {
  ChildSetup setup;
  setup.limits = {{RLIMIT_NOFILE, 77, 77}, {RLIMIT_FSIZE, 4096, 4096}};
  sb::test::TempDir dir;
  const auto got = run(shell("ulimit -n; ulimit -f; head -c 10000 /dev/zero > " +
                                 (dir.path() / "big").string() + " 2>/dev/null; echo $?",
                             setup));
  // ulimit -f counts 512-byte blocks; the write beyond 4096 bytes fails (SIGXFSZ: 153).
  EXPECT_EQ(got.out, "77\n8\n153\n");
}

TEST(ProcessSetup, DropsToTheAgentUserAndReachesStagedPathsItCouldNotTraverse) {
  SKIP_OR_FAIL_WITHOUT(::geteuid() == 0, "root");
  sb::test::TempDir dir;  // 0700, owned by root: nobody cannot enter it
  std::filesystem::create_directories(dir.path() / "group");
  std::ofstream(dir.path() / "group" / "memo") << "staged";
  ChildSetup setup;
  setup.staged = {dir.path() / "group"};
  setup.run_as = Identity{65534, 65534};
  const auto got =
      run(shell("id -u; id -G; cat " + staged_path(0) + "/memo; cat " +
                    (dir.path() / "group" / "memo").string() + " 2>/dev/null || echo denied",
                setup));
  EXPECT_EQ(got.out, "65534\n65534\nstageddenied\n");
  // The staging happened in the child's own mount namespace: the host's /tmp is unchanged.
  EXPECT_FALSE(std::filesystem::exists(staged_path(0) + "/memo"));
}

TEST(ProcessSetup, NamesTheStepThatFailed) {
  SKIP_OR_FAIL_WITHOUT(::geteuid() == 0, "root");
  asio::io_context io;
  ChildSetup setup;
  setup.run_as = Identity{65534, 65534};
  sb::test::TempDir dir;  // 0700, owned by root: nobody cannot enter it
  auto failed =
      Process::spawn(io.get_executor(), ProcessOptions{{"/bin/true"}, {}, dir.path(), setup});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("entering the working directory"), std::string::npos)
      << failed.error().message;
}

}  // namespace
}  // namespace sb::sandbox

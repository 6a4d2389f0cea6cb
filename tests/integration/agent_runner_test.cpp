#include "sandbox/agent_runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "support/proc_scan.h"
#include "support/require_peer.h"
#include "support/temp_dir.h"

namespace sb::sandbox {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

bool bwrap_works() {
  static const bool works = [] {
    SandboxSpec probe;
    probe.argv = {"true"};
    const auto trial = run_captured(sandbox_argv(Runtime::bwrap, probe), {}, 4096, 10s);
    return trial.ok() && trial.value().status.exit_code == 0;
  }();
  return works;
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Puts a follow-up into input/ the way the host does: temp file, then rename.
void send_follow_up(const fs::path& input_dir, const std::string& name, const std::string& text) {
  boost::json::object message{{"type", "message"}, {"text", text}};
  std::ofstream(input_dir / ("." + name + ".tmp")) << boost::json::serialize(message);
  fs::rename(input_dir / ("." + name + ".tmp"), input_dir / (name + ".json"));
}

struct Record {
  RunOutcome outcome;
  std::vector<AgentResult> results;
  bool finished = false;

  std::vector<std::string> texts() const {
    std::vector<std::string> out;
    for (const auto& r : results) out.push_back(r.result.value_or(r.error.value_or("(null)")));
    return out;
  }
};

using OnResult = std::function<void(AgentRun&, const AgentResult&, std::size_t index)>;

class AgentRunTest : public ::testing::TestWithParam<Runtime> {
 protected:
  void SetUp() override {
    if (GetParam() == Runtime::bwrap)
      SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox");
    fs::create_directories(group_dir());
    fs::create_directories(input_dir());
    // A word in the agent's command line that is unique to this test, to find leftovers.
    marker_ = "--test-marker=" + root_.path().filename().string();
  }

  fs::path group_dir() const { return root_.path() / "group"; }
  fs::path ipc_dir() const { return root_.path() / "ipc"; }
  fs::path input_dir() const { return ipc_dir() / "input"; }
  fs::path log_file() const { return root_.path() / "logs" / "run.log"; }

  RunSpec spec(const std::string& prompt) const {
    RunSpec s;
    s.runtime = GetParam();
    s.sandbox.argv = {SWITCHBOARD_TEST_AGENT, marker_};
    s.sandbox.mounts = {{group_dir(), "/workspace/group", false},
                        {ipc_dir(), "/workspace/ipc", false}};
    s.sandbox.env = {{"HOME", "/workspace/group"},
                     {"PATH", "/usr/bin:/bin"},
                     {"LANG", "C.UTF-8"},
                     {"SWITCHBOARD_WORKSPACE", "/workspace/group"},
                     {"SWITCHBOARD_IPC_DIR", "/workspace/ipc"},
                     {"SB_VISIBLE", "value-must-not-be-logged"}};
    s.sandbox.workdir = "/workspace/group";
    boost::json::object input{{"prompt", prompt},         {"groupFolder", "family"},
                              {"chatJid", "http:alice"},  {"isMain", false},
                              {"isScheduledTask", false}, {"assistantName", "Andy"}};
    s.input_json = boost::json::serialize(input);
    s.host_dir = root_.path();
    s.input_dir = input_dir();
    s.log_file = log_file();
    s.hard_timeout = 10s;
    s.idle_timeout = 10s;
    s.kill_grace = 200ms;
    s.group = "family";
    return s;
  }

  // Runs the agent to completion; `on_result` may act on the run after each result.
  Record run(RunSpec spec, OnResult on_result = {}) {
    asio::io_context io;
    Record record;
    AgentRun* self = nullptr;
    AgentRun agent(io.get_executor(), std::move(spec),
                   [&record, &self, &on_result](const AgentResult& result) {
                     record.results.push_back(result);
                     if (on_result) on_result(*self, result, record.results.size() - 1);
                   });
    self = &agent;
    auto body = [&]() -> asio::awaitable<void> {
      record.outcome = co_await agent.run();
      record.finished = true;
    };
    asio::co_spawn(io, body, asio::detached);
    io.run_for(20s);
    EXPECT_TRUE(record.finished) << "the run did not finish";
    EXPECT_TRUE(sb::test::processes_with_marker_gone(marker_)) << "the agent is still running";
    return record;
  }

  // Closes the agent once it has produced `count` results.
  static OnResult close_after(std::size_t count) {
    return [count](AgentRun& run, const AgentResult&, std::size_t index) {
      if (index + 1 == count) run.request_close();
    };
  }

  sb::test::TempDir root_;
  std::string marker_;
};

TEST_P(AgentRunTest, DeliversAReplyAndEndsWithSuccessWhenAskedToClose) {
  const auto record = run(spec("reply hello"), close_after(1));
  EXPECT_EQ(record.texts(), std::vector<std::string>{"hello"});
  EXPECT_EQ(record.results.at(0).status, AgentResult::Status::success);
  EXPECT_TRUE(record.results.at(0).new_session_id.has_value());
  EXPECT_TRUE(record.outcome.success) << record.outcome.error;
  EXPECT_TRUE(record.outcome.had_output);
  EXPECT_FALSE(record.outcome.timed_out);
  EXPECT_EQ(record.outcome.exit_code, 0);
  EXPECT_EQ(record.outcome.results, 1u);
  EXPECT_FALSE(fs::exists(input_dir() / "_close"));  // the agent consumed it
}

TEST_P(AgentRunTest, PassesTheInputJsonOnStdin) {
  const auto record = run(spec("whoami"), close_after(1));
  ASSERT_EQ(record.results.size(), 1u);
  const auto input = boost::json::parse(*record.results[0].result).as_object();
  EXPECT_EQ(input.at("prompt"), "whoami");
  EXPECT_EQ(input.at("chatJid"), "http:alice");
  EXPECT_EQ(input.at("isMain"), false);
}

TEST_P(AgentRunTest, FollowUpReachesTheRunningAgentAndItsAnswerComesBack) {
  const auto follow_up = [this](AgentRun& run, const AgentResult&, std::size_t index) {
    if (index == 0) {
      send_follow_up(input_dir(), "0001",
                     "<messages><message sender=\"bob\">reply second &amp; &lt;more&gt;</message>"
                     "</messages>");
      run.input_sent();
    } else {
      run.request_close();
    }
  };
  const auto record = run(spec("reply first"), follow_up);
  EXPECT_EQ(record.texts(), (std::vector<std::string>{"first", "second & <more>"}));
  EXPECT_TRUE(record.outcome.success) << record.outcome.error;
  EXPECT_EQ(record.outcome.exit_code, 0);
}

TEST_P(AgentRunTest, HostEnvironmentDoesNotReachTheAgent) {
  ::setenv("SB_TEST_SECRET", "hunter2", 1);
  const auto record = run(spec("env SB_TEST_SECRET\nenv SB_VISIBLE\nenv HOME"), close_after(3));
  ::unsetenv("SB_TEST_SECRET");
  ASSERT_EQ(record.results.size(), 3u);
  EXPECT_EQ(record.texts()[0], "(unset)");
  EXPECT_EQ(record.texts()[1], "value-must-not-be-logged");
  EXPECT_EQ(record.texts()[2],
            GetParam() == Runtime::none ? group_dir().string() : "/workspace/group");
}

TEST_P(AgentRunTest, TimeoutBeforeOutputIsAnErrorAndTheAgentIsGone) {
  auto s = spec("sleep 20000");
  s.hard_timeout = 300ms;
  const auto record = run(s);
  EXPECT_FALSE(record.outcome.success);
  EXPECT_TRUE(record.outcome.timed_out);
  EXPECT_FALSE(record.outcome.had_output);
  EXPECT_EQ(record.outcome.error, "agent timed out after 0.3 s without output");
  EXPECT_GE(record.outcome.duration, 300ms);
  EXPECT_LT(record.outcome.duration, 5s);
}

TEST_P(AgentRunTest, TimeoutAfterOutputCountsAsSuccess) {
  auto s = spec("reply early\nsleep 20000");
  s.hard_timeout = 300ms;
  const auto record = run(s);
  EXPECT_TRUE(record.outcome.success) << record.outcome.error;
  EXPECT_TRUE(record.outcome.timed_out);
  EXPECT_TRUE(record.outcome.had_output);
  EXPECT_EQ(record.texts(), std::vector<std::string>{"early"});
}

TEST_P(AgentRunTest, EachResultResetsTheHardTimeout) {
  auto s = spec("sleep 200\nreply a\nsleep 200\nreply b\nsleep 200\nreply c");
  s.hard_timeout = 400ms;
  s.idle_timeout = 100ms;  // the agent is busy with its first script, so it closes after "c"
  const auto record = run(s);
  EXPECT_EQ(record.texts(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(record.outcome.timed_out);
  EXPECT_TRUE(record.outcome.success) << record.outcome.error;
}

TEST_P(AgentRunTest, IdleTimeoutWritesCloseAndTheAgentExits) {
  auto s = spec("reply done");
  s.idle_timeout = 100ms;
  const auto record = run(s);
  EXPECT_TRUE(record.outcome.success) << record.outcome.error;
  EXPECT_FALSE(record.outcome.timed_out);
  EXPECT_EQ(record.outcome.exit_code, 0);
  EXPECT_LT(record.outcome.duration, 5s);
  const auto log = slurp(log_file());
  EXPECT_NE(log.find("close requested"), std::string::npos) << log;
}

TEST_P(AgentRunTest, InputSentHoldsTheIdleTimerUntilTheNextResult) {
  auto s = spec("reply first");
  s.idle_timeout = 150ms;
  const auto slow_follow_up = [this](AgentRun& run, const AgentResult&, std::size_t index) {
    if (index == 0) {
      send_follow_up(input_dir(), "0001", "sleep 400\nreply second");
      run.input_sent();
    }
  };
  const auto record = run(s, slow_follow_up);
  // Had the idle timer kept running, _close would have ended the agent before "second".
  EXPECT_EQ(record.texts(), (std::vector<std::string>{"first", "second"}));
  EXPECT_TRUE(record.outcome.success) << record.outcome.error;
}

TEST_P(AgentRunTest, OutputBeyondTheCapKillsTheAgent) {
  auto s = spec("reply first\nbig 100000\nsleep 20000");
  s.max_output_bytes = 20000;
  const auto record = run(s);
  EXPECT_FALSE(record.outcome.success);
  EXPECT_EQ(record.outcome.error, "agent output exceeded 20000 bytes");
  EXPECT_TRUE(record.outcome.had_output);
  EXPECT_EQ(record.texts(), std::vector<std::string>{"first"});
  EXPECT_EQ(record.outcome.signal, SIGKILL);
  EXPECT_LT(record.outcome.duration, 5s);
}

TEST_P(AgentRunTest, ExitCodeAndStderrReachTheOutcomeAndTheLog) {
  const auto record = run(spec("noise just chatting\nstderr something broke\nexit 3"));
  EXPECT_FALSE(record.outcome.success);
  EXPECT_EQ(record.outcome.exit_code, 3);
  EXPECT_NE(record.outcome.error.find("exit code 3"), std::string::npos) << record.outcome.error;
  EXPECT_NE(record.outcome.error.find("something broke"), std::string::npos)
      << record.outcome.error;
  const auto log = slurp(log_file());
  EXPECT_NE(log.find("runtime: " + std::string(to_string(GetParam()))), std::string::npos) << log;
  EXPECT_NE(log.find("stderr: something broke"), std::string::npos) << log;
  EXPECT_NE(log.find("stdout: just chatting"), std::string::npos) << log;
  EXPECT_NE(log.find("exit: exit code 3"), std::string::npos) << log;
  EXPECT_NE(log.find("input: "), std::string::npos) << log;
}

TEST_P(AgentRunTest, LogRecordsResultsButNeverEnvironmentValues) {
  const auto record = run(spec("env SB_VISIBLE\nfail on purpose"), close_after(2));
  ASSERT_EQ(record.results.size(), 2u);
  const auto log = slurp(log_file());
  EXPECT_NE(log.find("result 1: success"), std::string::npos) << log;
  EXPECT_NE(log.find("result 2: error (on purpose)"), std::string::npos) << log;
  // The last result was an error result: the run failed, saying why.
  EXPECT_NE(log.find("outcome: error: the agent reported an error: on purpose"), std::string::npos)
      << log;
  EXPECT_FALSE(record.outcome.success);
  EXPECT_TRUE(record.outcome.ended_in_error);
  EXPECT_EQ(log.find("value-must-not-be-logged"), std::string::npos) << log;
}

TEST_P(AgentRunTest, AnErrorResultFollowedByASuccessfulOneIsASuccess) {
  const auto record = run(spec("fail first\nreply then fine"), close_after(2));
  ASSERT_EQ(record.results.size(), 2u);
  EXPECT_TRUE(record.outcome.success) << record.outcome.error;
  EXPECT_FALSE(record.outcome.ended_in_error);
}

TEST_P(AgentRunTest, AnAgentIgnoringSigtermIsKilledAfterTheGrace) {
  auto s = spec("hang");
  s.hard_timeout = 200ms;
  s.kill_grace = 300ms;
  const auto record = run(s);
  EXPECT_FALSE(record.outcome.success);
  EXPECT_TRUE(record.outcome.timed_out);
  EXPECT_LT(record.outcome.duration, 5s);
  if (GetParam() == Runtime::none) {
    // bwrap itself dies of the SIGTERM (taking the sandbox with it); a bare agent ignores it.
    EXPECT_EQ(record.outcome.signal, SIGKILL);
    EXPECT_GE(record.outcome.duration, 500ms);
  }
}

TEST_P(AgentRunTest, StopEndsTheRun) {
  const auto stop = [](AgentRun& run, const AgentResult&, std::size_t) { run.stop(); };
  const auto record = run(spec("reply before stop\nsleep 20000"), stop);
  EXPECT_TRUE(record.outcome.success) << record.outcome.error;  // it had answered
  EXPECT_FALSE(record.outcome.timed_out);
  EXPECT_LT(record.outcome.duration, 5s);
  EXPECT_NE(slurp(log_file()).find("stop requested"), std::string::npos);
}

TEST_P(AgentRunTest, AMissingProgramIsAClearError) {
  auto s = spec("reply never");
  s.sandbox.argv = {"/nonexistent/agent"};
  const auto record = run(s);
  EXPECT_FALSE(record.outcome.success);
  EXPECT_FALSE(record.outcome.had_output);
  EXPECT_NE(record.outcome.error.find("/nonexistent/agent"), std::string::npos)
      << record.outcome.error;
  EXPECT_NE(record.outcome.error.find("No such file or directory"), std::string::npos)
      << record.outcome.error;
}

TEST_P(AgentRunTest, DoesNotWriteItsLogThroughASymlinkedLogDirectory) {
  const fs::path outside = root_.path() / "outside";
  fs::create_directories(outside);
  fs::create_directory_symlink(outside, root_.path() / "logs");
  const auto record = run(spec("reply hello"), close_after(1));
  EXPECT_TRUE(record.outcome.success) << record.outcome.error;  // the run goes on without it
  EXPECT_TRUE(fs::is_empty(outside));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, AgentRunTest, ::testing::Values(Runtime::bwrap, Runtime::none),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// request_close() against an agent that plants symlinks in its input/ (issue 12): nothing
// outside the agent's own directories may be created, truncated or written. No process is
// needed: the close request is a file the host writes.
class AgentRunClose : public ::testing::Test {
 protected:
  AgentRunClose() {
    fs::create_directories(input_dir());
    fs::create_directories(outside());
    std::ofstream(host_file()) << "the host's data";
  }
  fs::path input_dir() const { return root_.path() / "ipc" / "family" / "input"; }
  fs::path outside() const { return root_.path() / "outside"; }
  fs::path host_file() const { return root_.path() / "host-file"; }

  void request_close() {
    asio::io_context io;
    RunSpec spec;
    spec.host_dir = root_.path();
    spec.input_dir = input_dir();
    spec.group = "family";
    AgentRun run(io.get_executor(), std::move(spec), {});
    run.request_close();
  }

  sb::test::TempDir root_;
};

TEST_F(AgentRunClose, WritesAnEmptyCloseFile) {
  request_close();
  EXPECT_TRUE(fs::is_regular_file(input_dir() / "_close"));
  EXPECT_EQ(fs::file_size(input_dir() / "_close"), 0u);
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(input_dir())) ++entries;
  EXPECT_EQ(entries, 1u) << "no temporary left behind";
}

TEST_F(AgentRunClose, DoesNotFollowAnInputDirectoryReplacedByASymlink) {
  fs::remove(input_dir());
  fs::create_directory_symlink(outside(), input_dir());
  request_close();
  EXPECT_TRUE(fs::is_empty(outside()));
}

TEST_F(AgentRunClose, DoesNotWriteThroughACloseFilePlantedAsASymlink) {
  fs::create_symlink(host_file(), input_dir() / "_close");
  request_close();
  EXPECT_EQ(slurp(host_file()), "the host's data");
  EXPECT_FALSE(fs::is_symlink(input_dir() / "_close"));
}

TEST_F(AgentRunClose, DoesNotTruncateAFileThroughAGuessedTemporaryName) {
  // The attack that worked: the temporary's name was `.close-<pid>-<n>.tmp`, opened without
  // O_NOFOLLOW|O_EXCL, so a symlink planted under it had the host truncate the target.
  for (int n = 0; n < 64; ++n) {
    fs::create_symlink(host_file(), input_dir() / (".close-" + std::to_string(::getpid()) + "-" +
                                                   std::to_string(n) + ".tmp"));
  }
  request_close();
  EXPECT_EQ(slurp(host_file()), "the host's data");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(input_dir() / "_close")));
}

// What only a real sandbox can promise.
class BwrapSandbox : public AgentRunTest {};

TEST_P(BwrapSandbox, CannotReadAHostFileOutsideItsMounts) {
  sb::test::TempDir elsewhere;
  std::ofstream(elsewhere.path() / "secret.txt") << "top secret";
  const auto record =
      run(spec("read " + (elsewhere.path() / "secret.txt").string() + "\nread /etc/hostname"),
          close_after(2));
  EXPECT_EQ(record.texts(), (std::vector<std::string>{"ERROR: No such file or directory",
                                                      "ERROR: No such file or directory"}));
}

TEST_P(BwrapSandbox, ReadsAndWritesItsGroupFolder) {
  std::ofstream(group_dir() / "memory.md") << "remember the milk";
  const auto record =
      run(spec("read /workspace/group/memory.md\nwrite /workspace/group/note.txt from inside\n"
               "read note.txt"),
          close_after(2));
  EXPECT_EQ(record.texts(), (std::vector<std::string>{"remember the milk", "from inside"}));
  EXPECT_EQ(slurp(group_dir() / "note.txt"), "from inside");
}

TEST_P(BwrapSandbox, CannotWriteToAReadOnlyMount) {
  sb::test::TempDir global;
  std::ofstream(global.path() / "shared.md") << "shared";
  auto s = spec("write /workspace/global/shared.md overwritten\nread /workspace/global/shared.md");
  s.sandbox.mounts.push_back({global.path(), "/workspace/global", true});
  const auto record = run(s, close_after(2));
  ASSERT_EQ(record.results.size(), 2u);
  EXPECT_EQ(record.results[0].status, AgentResult::Status::error);
  EXPECT_NE(record.results[0].error->find("Read-only file system"), std::string::npos)
      << *record.results[0].error;
  EXPECT_EQ(record.texts()[1], "shared");
  EXPECT_EQ(slurp(global.path() / "shared.md"), "shared");
}

TEST_P(BwrapSandbox, ReachesTheHostNetworkOnlyWhenAllowed) {
  asio::io_context io;
  asio::ip::tcp::acceptor listener(io, {asio::ip::make_address("127.0.0.1"), 0});
  const std::string target =
      "connect 127.0.0.1 " + std::to_string(listener.local_endpoint().port());
  const auto closed = run(spec(target), close_after(1));
  ASSERT_EQ(closed.results.size(), 1u);
  EXPECT_EQ(closed.texts()[0].rfind("ERROR:", 0), 0u) << closed.texts()[0];
  auto s = spec(target);
  s.sandbox.network = true;
  const auto open = run(s, close_after(1));
  EXPECT_EQ(open.texts(), std::vector<std::string>{"connected"});
}

TEST_P(BwrapSandbox, SeesOnlyItsOwnProcesses) {
  const auto record = run(spec("read /proc/1/cmdline"), close_after(1));
  ASSERT_EQ(record.results.size(), 1u);
  // PID 1 is bwrap's own init in the sandbox's PID namespace, not the host's init.
  EXPECT_NE(record.texts()[0].find("bwrap"), std::string::npos) << record.texts()[0];
}

INSTANTIATE_TEST_SUITE_P(Bwrap, BwrapSandbox, ::testing::Values(Runtime::bwrap),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace sb::sandbox

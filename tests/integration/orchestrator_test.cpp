// End to end: the real daemon, real bwrap sandboxes, the test agent (tests/support/
// test_agent.cpp) and the mock model server. Messages go in through the API; replies come
// back through the outbox and the HTTP channel.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "chat_helpers.h"
#include "daemon_fixture.h"
#include "support/mock_model_server.h"

namespace sb::test {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

const std::string kModelKey = "sk-e2e-model-key-4242";

// A TCP listener on loopback, for "can the agent reach the network" checks.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 8);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() { ::close(fd_); }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

class Orchestrator : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox");
    ASSERT_NE(mock.port(), 0) << "mock model server did not start";
    std::ofstream(dir.path() / "secret.txt") << "top secret";
    daemon = std::make_unique<Daemon>(dir.path(), "", toml());
    ASSERT_TRUE(daemon->start({"SB_E2E_MODEL_KEY=" + kModelKey})) << daemon->log();
  }

  std::string toml() const {
    return "assistant_name = \"Andy\"\n"
           "[agent]\n"
           "runtime = \"bwrap\"\n"
           "command = [\"" SWITCHBOARD_TEST_AGENT
           "\"]\n"
           "timeout = \"30s\"\n"
           "idle_timeout = \"3s\"\n"
           "kill_grace = \"1s\"\n"
           "shutdown_grace = \"2s\"\n"
           "mount_allowlist = \"" +
           (dir.path() / "no-allowlist.json").string() +
           "\"\n"
           "[model]\n"
           "provider = \"anthropic\"\n"
           "base_url = \"" +
           mock.url() +
           "\"\n"
           "api_key_env = \"SB_E2E_MODEL_KEY\"\n";
  }

  void add_group(const std::string& folder, const std::string& chat, bool main = false,
                 bool requires_trigger = false) {
    test::add_group(*daemon, folder, chat, main, requires_trigger);
  }
  std::int64_t post(const std::string& chat, const std::string& text) {
    return post_message(*daemon, chat, text);
  }
  std::vector<std::string> replies(const std::string& chat, std::size_t count,
                                   std::chrono::seconds limit = 20s) {
    return assistant_replies(*daemon, chat, count, limit);
  }

  TempDir dir;
  MockServer mock{dir.path(), ""};
  std::unique_ptr<Daemon> daemon;
};

TEST_F(Orchestrator, AMessageReachesTheAgentAndItsReplyComesBack) {
  add_group("family", "http:alice", false, false);
  post("http:alice", "reply hello from the sandbox");
  auto got = replies("http:alice", 1);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "hello from the sandbox");
  // The run left its log in the host's log directory, not in the agent-writable group folder.
  bool has_log = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() / "data/logs/family")) {
    has_log |= entry.path().filename().string().starts_with("agent-");
  }
  EXPECT_TRUE(has_log);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "data/groups/family/logs"));
  // The snapshots are the host's too: beside the run logs, not in the agent's IPC directory.
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "data/snapshots/family/current_tasks.json"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "data/ipc/family/current_tasks.json"));
}

TEST_F(Orchestrator, AFollowUpReachesTheRunningAgentInsteadOfANewOne) {
  add_group("family", "http:alice", false, false);
  post("http:alice", "whoami");
  auto first = replies("http:alice", 1);
  ASSERT_EQ(first.size(), 1u) << daemon->log();
  const auto first_input = json::parse(first[0]).as_object();
  EXPECT_EQ(first_input.at("groupFolder"), "family");
  EXPECT_EQ(first_input.at("chatJid"), "http:alice");
  EXPECT_EQ(first_input.at("isMain"), false);
  // While the agent idles (idle_timeout 3 s), the next message is piped to it.
  post("http:alice", "env SWITCHBOARD_WORKSPACE");
  auto both = replies("http:alice", 2);
  ASSERT_EQ(both.size(), 2u) << daemon->log();
  EXPECT_EQ(both[1], "/workspace/group");
  auto metrics = daemon->call("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("switchboard_agent_runs_total 1\n"), std::string::npos)
      << metrics->body.substr(0, 4000);
  EXPECT_NE(metrics->body.find("switchboard_agent_piped_total 1\n"), std::string::npos);
}

TEST_F(Orchestrator, TheAgentCannotReadOutsideItsMountsReachTheNetworkOrSeeTheModelKey) {
  add_group("family", "http:alice", false, false);
  Listener listener;
  post("http:alice", "read " + (dir.path() / "secret.txt").string() + "\nread " +
                         (dir.path() / "data/switchboard.db").string() + "\nconnect 127.0.0.1 " +
                         std::to_string(listener.port()) +
                         "\nenvdump\nread /workspace/group/CLAUDE.md");
  auto got = replies("http:alice", 5);
  ASSERT_EQ(got.size(), 5u) << daemon->log();
  EXPECT_TRUE(got[0].starts_with("ERROR")) << got[0];
  EXPECT_TRUE(got[1].starts_with("ERROR")) << got[1];
  EXPECT_TRUE(got[2].starts_with("ERROR")) << got[2];
  EXPECT_EQ(got[3].find(kModelKey), std::string::npos) << got[3];
  EXPECT_NE(got[3].find("SWITCHBOARD_MODEL_SOCKET=/run/switchboard/model.sock"), std::string::npos);
  EXPECT_NE(got[4].find("# family"), std::string::npos) << "its own memory file is readable";
}

TEST_F(Orchestrator, ModelRequestsGoThroughTheProxyWhichAddsTheKeyAndRecordsUsage) {
  add_group("family", "http:alice", false, false);
  post(
      "http:alice",
      R"(model /v1/messages {"model":"claude-test","max_tokens":50,"messages":[{"role":"user","content":"hi"}]})");
  auto got = replies("http:alice", 1);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_NE(got[0].find("\"type\""), std::string::npos) << got[0];
  auto requests = mock.log();
  ASSERT_EQ(requests.size(), 1u);
  const auto& headers = requests[0].at("headers").as_object();
  EXPECT_EQ(headers.at("x-api-key").as_string(), kModelKey);
  // Usage is recorded per group (written after the response; give the writer a moment).
  json::value usage;
  for (int i = 0; i < 50; ++i) {
    usage = daemon->json("GET", "/usage?group=family", 200);
    if (usage.at("groups").as_object().contains("family")) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(usage.at("groups").as_object().contains("family")) << json::serialize(usage);
  EXPECT_GT(usage.at("groups").at("family").at("input_tokens").as_int64(), 0);
}

TEST_F(Orchestrator, ANonMainAgentCannotMessageAnotherGroupsChat) {
  add_group("family", "http:alice", false, false);
  add_group("work", "http:bob", false, false);
  post("http:bob",
       R"(ipc messages {"type":"message","chatJid":"http:alice","text":"hijacked"}
ipc messages {"type":"message","chatJid":"http:bob","text":"to my own chat"}
reply done)");
  auto own = replies("http:bob", 2);
  ASSERT_EQ(own.size(), 2u) << daemon->log();
  EXPECT_TRUE(std::ranges::find(own, "to my own chat") != own.end());
  auto alice = daemon->json("GET", "/messages?chat=http:alice", 200).as_array();
  EXPECT_TRUE(alice.empty()) << json::serialize(alice);
  EXPECT_NE(daemon->log().find("refused"), std::string::npos);
}

TEST_F(Orchestrator, MainGroupAgentsCanMessageAnyRegisteredChat) {
  add_group("admin", "http:me", true, false);
  add_group("family", "http:alice", false, true);
  post("http:me", R"(ipc messages {"type":"message","chatJid":"http:alice","text":"from main"})"
                  "\nreply sent");
  auto got = replies("http:alice", 1);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "from main");
}

TEST_F(Orchestrator, WithoutTheTriggerMessagesWaitAndArriveAsContextWithTheNextTrigger) {
  add_group("family", "http:alice", false, true);
  post("http:alice", "reply context seen");
  std::this_thread::sleep_for(300ms);
  auto before = daemon->json("GET", "/messages?chat=http:alice", 200).as_array();
  EXPECT_EQ(before.size(), 1u) << "no run without the trigger";
  post("http:alice", "@andy reply triggered");  // case-insensitive
  auto got = replies("http:alice", 2);
  ASSERT_EQ(got.size(), 2u) << daemon->log();
  EXPECT_EQ(got[0], "context seen");
  EXPECT_EQ(got[1], "triggered");
  post("http:alice", "@Andyextra reply not for me");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(replies("http:alice", 3, 1s).size(), 2u);
}

TEST_F(Orchestrator, AScheduledTaskRunsInTheSandboxAndItsOutputReachesTheChat) {
  add_group("family", "http:alice", false, false);
  json::object task{{"group", "family"},
                    {"prompt", "reply scheduled hello"},
                    {"schedule_type", "once"},
                    {"schedule_value", "2020-01-01T00:00:00Z"}};
  auto created = daemon->json("POST", "/tasks", 201, json::serialize(task)).as_object();
  auto got = replies("http:alice", 1);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "scheduled hello");
  const std::string id(created.at("id").as_string());
  json::value runs;
  for (int i = 0; i < 100; ++i) {
    runs = daemon->json("GET", "/tasks/" + id + "/runs", 200);
    if (!runs.at("runs").as_array().empty()) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(runs.at("runs").as_array().size(), 1u);
  EXPECT_EQ(runs.at("runs").at(0).at("status"), "success");
  EXPECT_EQ(daemon->json("GET", "/tasks/" + id, 200).at("status"), "completed");
}

TEST_F(Orchestrator, AMessageWithTheAgentWhenTheDaemonDiesIsDeliveredAfterTheRestart) {
  add_group("family", "http:alice", false, false);
  post("http:alice", "sleep 1500\nreply survived");
  // Wait until the agent has it (the message is "processing"), then kill the daemon.
  for (int i = 0; i < 100; ++i) {
    auto m = daemon->json("GET", "/messages?chat=http:alice", 200).as_array();
    if (!m.empty() && m.at(0).at("status") == "processing") break;
    std::this_thread::sleep_for(20ms);
  }
  daemon->kill9();
  ASSERT_TRUE(daemon->start({"SB_E2E_MODEL_KEY=" + kModelKey})) << daemon->log();
  auto got = replies("http:alice", 1, 30s);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "survived");
}

TEST_F(Orchestrator, ARunThatFailsBeforeAnyOutputIsRolledBackAndRetried) {
  add_group("family", "http:alice", false, false);
  post("http:alice", "once /workspace/group/failed-once exit 1\nreply second attempt");
  // The first run exits 1 without output; the queue retries after 5 s with the same
  // messages (the cursor was rolled back).
  auto got = replies("http:alice", 1, 20s);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "second attempt");
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "data/groups/family/failed-once"));
  EXPECT_NE(daemon->log().find("failed without answering"), std::string::npos);
}

TEST_F(Orchestrator, ShutdownStopsAnAgentAfterTheGraceAndLosesNothing) {
  add_group("family", "http:alice", false, false);
  post("http:alice", "once /workspace/group/slow sleep 60000\nreply after the restart");
  json::value health;
  for (int i = 0; i < 200; ++i) {
    health = daemon->json("GET", "/health", 200);
    if (!health.at("agents").at("runs").as_array().empty()) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(health.at("agents").at("active").as_int64(), 1) << json::serialize(health);
  EXPECT_EQ(health.at("agents").at("runs").at(0).at("group"), "family");
  EXPECT_EQ(health.at("agents").at("runs").at(0).at("kind"), "messages");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(daemon->terminate(), 0) << daemon->log();
  // shutdown_grace 2 s for the agent to finish, then it is stopped.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_NE(daemon->log().find("still running after the grace period"), std::string::npos);
  ASSERT_TRUE(daemon->start({"SB_E2E_MODEL_KEY=" + kModelKey})) << daemon->log();
  auto got = replies("http:alice", 1);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "after the restart");
}

TEST_F(Orchestrator, TheCliManagesGroupsAndTasks) {
  const std::string config = daemon->config_file().string();
  auto added = run_cli({"groups", "add", "family", "--config", config, "--chat", "http:alice",
                        "--requires-trigger", "false"});
  EXPECT_EQ(added.exit_code, 0) << added.err;
  EXPECT_NE(added.out.find("family"), std::string::npos);
  auto listed = run_cli({"groups", "list", "--config", config});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("http:alice"), std::string::npos) << listed.out;
  auto taken = run_cli({"groups", "add", "other", "--config", config, "--chat", "http:alice"});
  EXPECT_EQ(taken.exit_code, 2);
  EXPECT_NE(taken.err.find("already belongs"), std::string::npos) << taken.err;

  auto bad_cron = run_cli({"tasks", "add", "--config", config, "--group", "family", "--prompt",
                           "reply x", "--cron", "0 25 * * *"});
  EXPECT_EQ(bad_cron.exit_code, 2);
  EXPECT_NE(bad_cron.err.find("hour"), std::string::npos) << bad_cron.err;
  auto task = run_cli({"tasks", "add", "--config", config, "--group", "family", "--prompt",
                       "reply x", "--interval", "3600000", "--json"});
  ASSERT_EQ(task.exit_code, 0) << task.err;
  const std::string id(json::parse(task.out).at("id").as_string());
  auto paused = run_cli({"tasks", "pause", id, "--config", config});
  EXPECT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_NE(paused.out.find("paused"), std::string::npos) << paused.out;
  auto tasks = run_cli({"tasks", "list", "--config", config, "--group", "family"});
  EXPECT_NE(tasks.out.find(id), std::string::npos) << tasks.out;
  auto runs = run_cli({"tasks", "runs", id, "--config", config});
  EXPECT_EQ(runs.exit_code, 0) << runs.err;
  EXPECT_NE(runs.out.find("has not run yet"), std::string::npos) << runs.out;
  auto status = run_cli({"status", "--config", config});
  EXPECT_NE(status.out.find("group(s) registered"), std::string::npos) << status.out;
  auto removed = run_cli({"groups", "remove", "family", "--config", config});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
}

TEST_F(Orchestrator, GroupsAreManagedThroughTheApiWithClearErrors) {
  add_group("family", "http:alice");
  auto conflict =
      daemon->call("POST", "/groups", R"({"folder":"other","chat":"http:alice","name":"x"})");
  ASSERT_TRUE(conflict.ok());
  EXPECT_EQ(conflict->status, 409);
  auto bad = daemon->call("POST", "/groups", R"({"folder":"../etc","chat":"http:z"})");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->status, 400);
  auto listed = daemon->json("GET", "/groups", 200);
  EXPECT_EQ(listed.at("groups").as_array().size(), 1u);
  daemon->json("PATCH", "/groups/family", 200, R"({"trigger":"@Bot"})");
  EXPECT_EQ(daemon->json("GET", "/groups/family", 200).at("trigger"), "@Bot");
  daemon->json("DELETE", "/groups/family", 200);
  EXPECT_EQ(daemon->call("GET", "/groups/family")->status, 404);
}

}  // namespace
}  // namespace sb::test

// The orchestrator under faults, with the real daemon in real bwrap sandboxes: a model
// provider outage (the built-in agent and the scripted mock model server), an agent that
// crashes on a message every time, a task run beside a waiting chat, idle agents beside
// waiting groups, and a follow-up handed to an agent that then leaves without reading it.
// Nothing is lost, nothing waits for an idle timeout, and every failure is told once.

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "chat_helpers.h"
#include "daemon_fixture.h"
#include "support/mock_model_server.h"

namespace sb::test {
namespace {
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kModelKey = "sk-faults-test-key-51c2";

// The status of message `id` in `chat`.
std::string status_of(const Daemon& daemon, const std::string& chat, std::int64_t id) {
  const json::value page = daemon.json("GET", "/messages?chat=" + chat, 200);
  for (const json::value& m : page.as_array()) {
    if (m.at("id").as_int64() == id) return std::string(m.at("status").as_string());
  }
  return "(missing)";
}

std::string health_status(const Daemon& daemon) {
  auto reply = daemon.call("GET", "/health");
  if (!reply) return "(no answer)";
  return std::string(json::parse(reply->body).at("status").as_string());
}

// The built-in agent against the mock model server, which fails with 503 until a file
// exists: a provider outage of the length the test chooses.
class ModelOutage : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox"); }

  void start(const std::string& agent_toml) {
    json::array script{
        json::object{{"error", json::object{{"status", 503}, {"message", "overloaded, try later"}}},
                     {"repeat_until_file", outage_over().string()}},
        json::object{{"text", "the answer after the outage"}}};
    mock = std::make_unique<MockServer>(dir.path(), json::serialize(script),
                                        std::vector<std::string>{"--require-key", kModelKey});
    ASSERT_NE(mock->port(), 0) << "mock model server did not start";
    const std::string toml = "assistant_name = \"Andy\"\n[agent]\nruntime = \"bwrap\"\n" +
                             agent_toml +
                             "timeout = \"60s\"\nidle_timeout = \"2s\"\nkill_grace = \"1s\"\n"
                             "shutdown_grace = \"2s\"\nmodel_timeout = \"20s\"\n"
                             // The built-in agent is this sanitizer build.
                             "max_memory = \"unlimited\"\n"
                             "mount_allowlist = \"" +
                             (dir.path() / "no-allowlist.json").string() +
                             "\"\n[model]\nprovider = \"anthropic\"\nmodel = \"test-model\"\n"
                             "base_url = \"" +
                             mock->url() + "\"\napi_key_env = \"SB_FAULTS_MODEL_KEY\"\n";
    daemon = std::make_unique<Daemon>(dir.path(), "", toml);
    ASSERT_TRUE(daemon->start({"SB_FAULTS_MODEL_KEY=" + kModelKey})) << daemon->log();
    add_group(*daemon, "family", "http:alice");
  }

  fs::path outage_over() const { return dir.path() / "outage-over"; }
  void end_outage() const { std::ofstream(outage_over()) << "over\n"; }

  TempDir dir;
  std::unique_ptr<MockServer> mock;
  std::unique_ptr<Daemon> daemon;
};

TEST_F(ModelOutage, AThirtySecondOutageWithinTheRetriesLosesNothingAndTellsNobody) {
  start("");  // the default retries: 5, 10, 20, 40, 80 s
  const std::int64_t id = post_message(*daemon, "http:alice", "what time is it?");
  std::this_thread::sleep_for(30s);
  EXPECT_EQ(status_of(*daemon, "http:alice", id), "unread") << "rolled back, waiting for a retry";
  EXPECT_EQ(health_status(*daemon), "degraded") << daemon->log();
  end_outage();
  auto got = assistant_replies(*daemon, "http:alice", 1, 60s);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "the answer after the outage");
  EXPECT_EQ(assistant_replies(*daemon, "http:alice", 2, 2s).size(), 1u) << "no notice";
  EXPECT_EQ(status_of(*daemon, "http:alice", id), "replied");
  EXPECT_EQ(health_status(*daemon), "ok");
  EXPECT_NE(daemon->log().find("overloaded, try later"), std::string::npos) << daemon->log();
}

TEST_F(ModelOutage, AnOutageLongerThanTheRetriesIsToldOnceAndAnsweredAfterIt) {
  start("retry_base = \"100ms\"\nmax_retries = 2\n");
  const std::int64_t id = post_message(*daemon, "http:alice", "are you there?");
  // Each run takes ~7 s (the agent's own retries after 1, 2 and 4 s); the third failed run
  // uses up the two retries and the chat is told.
  auto notice = assistant_replies(*daemon, "http:alice", 1, 40s);
  ASSERT_EQ(notice.size(), 1u) << daemon->log();
  EXPECT_NE(notice[0].find("could not answer"), std::string::npos) << notice[0];
  EXPECT_NE(notice[0].find("503"), std::string::npos) << notice[0];
  EXPECT_EQ(status_of(*daemon, "http:alice", id) == "failed" ||
                status_of(*daemon, "http:alice", id) == "processing",
            true);
  EXPECT_EQ(health_status(*daemon), "degraded");
  auto health = daemon->json("GET", "/health", 200);
  ASSERT_FALSE(health.at("agents").at("failing").as_array().empty());
  EXPECT_EQ(health.at("agents").at("failing").at(0).at("group"), "family");

  std::this_thread::sleep_for(8s);  // more failed retries: no second notice
  end_outage();
  auto got = assistant_replies(*daemon, "http:alice", 2, 40s);
  ASSERT_EQ(got.size(), 2u) << daemon->log();
  EXPECT_EQ(assistant_replies(*daemon, "http:alice", 3, 2s).size(), 2u) << "one notice only";
  EXPECT_EQ(got[0], notice[0]);
  EXPECT_EQ(got[1], "the answer after the outage");
  EXPECT_EQ(status_of(*daemon, "http:alice", id), "replied");
  EXPECT_EQ(health_status(*daemon), "ok");
  const auto metrics = daemon->call("GET", "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->body.find("switchboard_agent_runs_failed_total 0"), std::string::npos);
}

// The test agent (tests/support/test_agent.cpp) in bwrap sandboxes.
class Faults : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox"); }

  void start(const std::string& agent_toml) {
    const std::string toml =
        "assistant_name = \"Andy\"\n[agent]\nruntime = \"bwrap\"\n"
        "command = [\"" SWITCHBOARD_TEST_AGENT "\"]\n" +
        agent_toml +
        "kill_grace = \"1s\"\nshutdown_grace = \"2s\"\n"
        "mount_allowlist = \"" +
        (dir.path() / "no-allowlist.json").string() + "\"\n";
    daemon = std::make_unique<Daemon>(dir.path(), "", toml);
    ASSERT_TRUE(daemon->start()) << daemon->log();
  }

  TempDir dir;
  std::unique_ptr<Daemon> daemon;
};

TEST_F(Faults, AMessageThatCrashesTheAgentEveryTimeIsSetAsideWithOneNotice) {
  start("idle_timeout = \"10m\"\nretry_base = \"100ms\"\nmax_retries = 2\n");
  add_group(*daemon, "family", "http:alice");
  const std::int64_t id = post_message(*daemon, "http:alice", "exit 3");
  auto notice = assistant_replies(*daemon, "http:alice", 1, 30s);
  ASSERT_EQ(notice.size(), 1u) << daemon->log();
  EXPECT_NE(notice[0].find("set it aside"), std::string::npos) << notice[0];
  EXPECT_NE(notice[0].find("exit code 3"), std::string::npos) << notice[0];
  EXPECT_EQ(status_of(*daemon, "http:alice", id), "failed");
  // Set aside: not retried (the agent would crash again), and the group answers new ones.
  const std::int64_t next = post_message(*daemon, "http:alice", "reply still here");
  auto got = assistant_replies(*daemon, "http:alice", 1, 20s, notice.empty() ? 0 : next);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "still here");
  EXPECT_EQ(status_of(*daemon, "http:alice", id), "failed");
  EXPECT_EQ(health_status(*daemon), "ok");
}

TEST_F(Faults, ATaskRunEndsAfterItsResultAndTheGroupsChatIsAnsweredAtOnce) {
  start("idle_timeout = \"10m\"\n");
  add_group(*daemon, "family", "http:alice");
  json::object task{{"group", "family"},
                    {"prompt", "reply the task is done"},
                    {"schedule_type", "once"},
                    {"schedule_value", "2020-01-01T00:00:00Z"}};
  daemon->json("POST", "/tasks", 201, json::serialize(task));
  auto got = assistant_replies(*daemon, "http:alice", 1, 20s);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "the task is done");
  const auto asked = std::chrono::steady_clock::now();
  const std::int64_t id = post_message(*daemon, "http:alice", "reply and the chat too");
  auto answer = assistant_replies(*daemon, "http:alice", 1, 20s, id);
  ASSERT_EQ(answer.size(), 1u) << daemon->log();
  EXPECT_EQ(answer[0], "and the chat too");
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 10s) << "the task run held the group";
}

TEST_F(Faults, ThreeGroupsWithTwoSlotsAreAllAnsweredPromptly) {
  start("idle_timeout = \"10m\"\nmax_concurrent = 2\n");
  const std::vector<std::string> chats{"http:a", "http:b", "http:c"};
  for (std::size_t i = 0; i < chats.size(); ++i) {
    add_group(*daemon, "group" + std::to_string(i), chats[i]);
  }
  const auto asked = std::chrono::steady_clock::now();
  for (const auto& chat : chats) post_message(*daemon, chat, "reply hello " + chat);
  for (const auto& chat : chats) {
    auto got = assistant_replies(*daemon, chat, 1, 30s);
    ASSERT_EQ(got.size(), 1u) << chat << "\n" << daemon->log();
    EXPECT_EQ(got[0], "hello " + chat);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 15s) << "a group waited for an idle agent";
  // The two idle agents of the first groups: one gave its slot to the third.
  EXPECT_NE(daemon->log().find("another group waits for a slot"), std::string::npos)
      << daemon->log();
}

TEST_F(Faults, AFollowUpTheAgentLeftWithoutReadingIsAnsweredByTheNextRun) {
  start("idle_timeout = \"10m\"\n");
  add_group(*daemon, "family", "http:alice");
  // The agent answers, then lingers 2 s and leaves without looking at input/: the
  // follow-up posted meanwhile is handed to it (the agent is idle) and never read.
  post_message(*daemon, "http:alice", "reply first\nsleep 2000\nfinish");
  auto first = assistant_replies(*daemon, "http:alice", 1, 20s);
  ASSERT_EQ(first.size(), 1u) << daemon->log();
  const std::int64_t id = post_message(*daemon, "http:alice", "reply second\nfinish");
  std::string handed;
  for (int i = 0; i < 50 && handed != "processing"; ++i) {
    handed = status_of(*daemon, "http:alice", id);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(handed, "processing") << "handed to the running agent";
  auto second = assistant_replies(*daemon, "http:alice", 1, 20s, id);
  ASSERT_EQ(second.size(), 1u) << daemon->log();
  EXPECT_EQ(second[0], "second");
  EXPECT_EQ(status_of(*daemon, "http:alice", id), "replied");
  EXPECT_NE(daemon->log().find("without reading 1 follow-up"), std::string::npos) << daemon->log();
}

}  // namespace
}  // namespace sb::test

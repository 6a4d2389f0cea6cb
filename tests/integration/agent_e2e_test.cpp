// End to end with the built-in agent: the real daemon starts `switchboard agent` in a real
// bwrap sandbox; the agent reaches the scripted mock model server only through the daemon's
// model proxy, for both wire formats (Anthropic Messages and OpenAI chat completions).

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

const std::string kModelKey = "sk-agent-e2e-key-7d3f9a";

json::object text_entry(const std::string& text) { return {{"text", text}}; }

json::object tool_entry(const std::string& name, json::object input, const std::string& id) {
  return {{"tool_use", json::object{{"name", name}, {"input", std::move(input)}, {"id", id}}}};
}

class BuiltInAgent : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox"); }

  // Starts the mock model server with `script` and the daemon; `agent_toml` adds lines to
  // the [agent] table.
  void start(const json::array& script, const std::string& agent_toml = "") {
    mock = std::make_unique<MockServer>(dir.path(), json::serialize(script),
                                        std::vector<std::string>{"--require-key", kModelKey});
    ASSERT_NE(mock->port(), 0) << "mock model server did not start";
    // The defaults of the [agent] table, unless `agent_toml` sets the key itself.
    std::string agent = agent_toml;
    for (const std::string line :
         {"runtime = \"bwrap\"", "timeout = \"60s\"", "idle_timeout = \"2s\"",
          "kill_grace = \"1s\"", "shutdown_grace = \"2s\"", "model_timeout = \"20s\"",
          // The built-in agent is this sanitizer build, whose shadow memory exceeds any
          // RLIMIT_DATA.
          "max_memory = \"unlimited\""}) {
      const std::string key = line.substr(0, line.find(' '));
      if (("\n" + agent_toml).find("\n" + key + " =") == std::string::npos) agent += line + "\n";
    }
    const std::string toml =
        "assistant_name = \"Andy\"\n"
        "timezone = \"UTC\"\n"
        "[agent]\n" +
        agent + "mount_allowlist = \"" + (dir.path() / "no-allowlist.json").string() +
        "\"\n"
        "[model]\n"
        "provider = \"" +
        GetParam() +
        "\"\n"
        "model = \"test-model\"\n"
        "base_url = \"" +
        mock->url() +
        "\"\n"
        "api_key_env = \"SB_E2E_MODEL_KEY\"\n";
    daemon = std::make_unique<Daemon>(dir.path(), "", toml);
    ASSERT_TRUE(daemon->start({"SB_E2E_MODEL_KEY=" + kModelKey})) << daemon->log();
  }

  std::string model_path() const {
    return GetParam() == "anthropic" ? "/v1/messages" : "/v1/chat/completions";
  }

  // The model requests the mock server got, waiting until there are at least `count`.
  std::vector<json::object> requests(std::size_t count, std::chrono::seconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    auto got = mock->log();
    while (got.size() < count && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
      got = mock->log();
    }
    return got;
  }

  bool log_contains(const std::string& text, std::chrono::seconds limit = 20s) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (daemon->log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  fs::path group_dir(const std::string& folder) const {
    return dir.path() / "data/groups" / folder;
  }

  TempDir dir;
  std::unique_ptr<MockServer> mock;
  std::unique_ptr<Daemon> daemon;
};

std::string body_text(const json::object& request) { return json::serialize(request.at("body")); }

TEST_P(BuiltInAgent, AMessageProducesAReplyThroughTheProxy) {
  start(json::array{text_entry("Hello Alice, how can I help?")});
  add_group(*daemon, "family", "http:alice");
  post_message(*daemon, "http:alice", "hi there");
  auto got = assistant_replies(*daemon, "http:alice", 1);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "Hello Alice, how can I help?");

  auto sent = requests(1);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].at("path").as_string(), model_path());
  const std::string body = body_text(sent[0]);
  EXPECT_NE(body.find("test-model"), std::string::npos) << body;
  EXPECT_NE(body.find("You are Andy"), std::string::npos)
      << "the system prompt names the assistant";
  EXPECT_NE(body.find("hi there"), std::string::npos);
  EXPECT_NE(body.find("write_file"), std::string::npos) << "the tools are offered";
  EXPECT_EQ(body.find("web_fetch"), std::string::npos) << "no network, no web_fetch";
}

TEST_P(BuiltInAgent, AToolCallWritesAFileInTheGroupFolder) {
  start(json::array{
      tool_entry("write_file", {{"path", "notes/shopping.md"}, {"content", "- milk\n- bread\n"}},
                 "call_write_1"),
      text_entry("Saved your list.")});
  add_group(*daemon, "family", "http:alice");
  post_message(*daemon, "http:alice", "save my shopping list");
  auto got = assistant_replies(*daemon, "http:alice", 1);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  EXPECT_EQ(got[0], "Saved your list.");
  std::ifstream file(group_dir("family") / "notes/shopping.md");
  std::stringstream content;
  content << file.rdbuf();
  EXPECT_EQ(content.str(), "- milk\n- bread\n");
  // The second request carried the tool's result back to the model.
  auto sent = requests(2);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_NE(body_text(sent[1]).find("call_write_1"), std::string::npos) << body_text(sent[1]);
}

TEST_P(BuiltInAgent, ScheduleTaskCreatesATaskThatTheHostRuns) {
  start(json::array{tool_entry("schedule_task",
                               {{"prompt", "Say tick"},
                                {"schedule_type", "once"},
                                {"schedule_value", "2020-01-01T00:00:00Z"}},
                               "call_schedule_1"),
                    text_entry("Scheduled it."), text_entry("tick!")});
  add_group(*daemon, "family", "http:alice");
  post_message(*daemon, "http:alice", "remind me");
  auto got = assistant_replies(*daemon, "http:alice", 2, 40s);
  ASSERT_EQ(got.size(), 2u) << daemon->log();
  EXPECT_EQ(got[0], "Scheduled it.");
  EXPECT_EQ(got[1], "tick!");
  auto tasks = daemon->json("GET", "/tasks", 200);
  const std::string listed = json::serialize(tasks);
  EXPECT_NE(listed.find("Say tick"), std::string::npos) << listed;
  auto sent = requests(3);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_NE(body_text(sent[2]).find("SCHEDULED TASK"), std::string::npos)
      << "the task run is marked as one: " << body_text(sent[2]);
}

TEST_P(BuiltInAgent, ANonMainGroupCannotRegisterAGroup) {
  const std::string request =
      R"({"type":"register_group","jid":"http:eve","name":"Eve","folder":"eve","trigger":"@Andy"})";
  start(json::array{
      tool_entry("register_group",
                 {{"jid", "http:eve"}, {"name", "Eve"}, {"folder", "eve"}, {"trigger", "@Andy"}},
                 "call_register_1"),
      tool_entry("bash",
                 {{"command", "cd /workspace/ipc/tasks && printf '%s' '" + request +
                                  "' > .req && mv .req 0000000000001-000001-deadbeef.json"}},
                 "call_bash_1"),
      text_entry("I tried.")});
  add_group(*daemon, "family", "http:alice");
  post_message(*daemon, "http:alice", "register eve");
  auto got = assistant_replies(*daemon, "http:alice", 1);
  ASSERT_EQ(got.size(), 1u) << daemon->log();
  auto sent = requests(3);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_NE(body_text(sent[1]).find("offered to the main group only"), std::string::npos)
      << "the agent does not offer it outside the main group: " << body_text(sent[1]);
  // Written by hand, the request reaches the host, which refuses it.
  EXPECT_TRUE(log_contains("may not register_group")) << daemon->log();
  const std::string groups = json::serialize(daemon->json("GET", "/groups", 200));
  EXPECT_EQ(groups.find("\"eve\""), std::string::npos) << groups;
}

TEST_P(BuiltInAgent, TheSessionIsResumedOnTheNextRun) {
  start(json::array{text_entry("Nice to meet you, Bob."), text_entry("Your name is Bob.")});
  add_group(*daemon, "family", "http:alice");
  post_message(*daemon, "http:alice", "my name is Bob");
  ASSERT_EQ(assistant_replies(*daemon, "http:alice", 1).size(), 1u) << daemon->log();
  // The agent closes after idle_timeout; the next message starts a new run.
  ASSERT_TRUE(wait_until_idle(*daemon)) << daemon->log();
  post_message(*daemon, "http:alice", "what is my name?");
  auto got = assistant_replies(*daemon, "http:alice", 2);
  ASSERT_EQ(got.size(), 2u) << daemon->log();
  EXPECT_EQ(got[1], "Your name is Bob.");
  auto sent = requests(2);
  ASSERT_EQ(sent.size(), 2u);
  const std::string second = body_text(sent[1]);
  EXPECT_NE(second.find("my name is Bob"), std::string::npos) << second;
  EXPECT_NE(second.find("Nice to meet you, Bob."), std::string::npos) << second;
  EXPECT_TRUE(fs::exists(dir.path() / "data/sessions/family/sessions"));
}

TEST_P(BuiltInAgent, CompactionArchivesTheConversationAndContinuesFromASummary) {
  json::object first = text_entry("Noted, Bob.");
  first["usage"] = json::object{{"input_tokens", 900}, {"output_tokens", 10}};
  start(json::array{first, text_entry("SUMMARY: Bob likes green tea."),
                    text_entry("You like green tea.")},
        "context_window = 1000\nidle_timeout = \"20s\"\n");
  add_group(*daemon, "family", "http:alice");
  post_message(*daemon, "http:alice", "I am Bob and I like green tea");
  ASSERT_EQ(assistant_replies(*daemon, "http:alice", 1).size(), 1u) << daemon->log();
  post_message(*daemon, "http:alice", "what do I like?");
  auto got = assistant_replies(*daemon, "http:alice", 2);
  ASSERT_EQ(got.size(), 2u) << daemon->log();
  EXPECT_EQ(got[1], "You like green tea.");

  auto sent = requests(3);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_NE(body_text(sent[1]).find("Summarise the conversation"), std::string::npos);
  const std::string third = body_text(sent[2]);
  EXPECT_NE(third.find("SUMMARY: Bob likes green tea."), std::string::npos) << third;
  EXPECT_EQ(third.find("Noted, Bob."), std::string::npos) << "continues from the summary only";
  EXPECT_NE(third.find("what do I like?"), std::string::npos);

  std::vector<fs::path> archives;
  for (const auto& e : fs::directory_iterator(group_dir("family") / "conversations")) {
    archives.push_back(e.path());
  }
  ASSERT_EQ(archives.size(), 1u);
  EXPECT_TRUE(archives[0].filename().string().ends_with("-i-am-bob-and-i-like-green-tea.md"))
      << archives[0];
  EXPECT_NE(slurp(archives[0]).find("Noted, Bob."), std::string::npos);
}

TEST_P(BuiltInAgent, AProviderErrorEndsInAClearErrorResult) {
  start(json::array{json::object{
      {"error", json::object{{"status", 400}, {"message", "max_tokens is too large"}}}}});
  add_group(*daemon, "family", "http:alice");
  post_message(*daemon, "http:alice", "hello?");
  EXPECT_TRUE(log_contains("max_tokens is too large")) << daemon->log();
  EXPECT_TRUE(log_contains("HTTP 400")) << daemon->log();
  EXPECT_TRUE(assistant_replies(*daemon, "http:alice", 1, 1s).empty());
}

TEST_P(BuiltInAgent, AHungProviderEndsInATimeoutError) {
  start(json::array{json::object{{"delay", 30}, {"text", "too late"}}}, "model_timeout = \"2s\"\n");
  add_group(*daemon, "family", "http:alice");
  post_message(*daemon, "http:alice", "hello?");
  EXPECT_TRUE(log_contains("no answer from the model provider within 2 s", 40s)) << daemon->log();
  EXPECT_TRUE(assistant_replies(*daemon, "http:alice", 1, 1s).empty());
}

TEST_P(BuiltInAgent, TheKeyNeverReachesTheSandbox) {
  const std::string look =
      "env; for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < $f; "
      "echo; done; grep -rIl -- 'sk-agent' /workspace /tmp /run 2>/dev/null; echo END-OF-LOOK";
  start(json::array{tool_entry("bash", {{"command", look}}, "call_look_1"),
                    text_entry("Looked around.")});
  add_group(*daemon, "family", "http:alice");
  post_message(*daemon, "http:alice", "look around");
  ASSERT_EQ(assistant_replies(*daemon, "http:alice", 1).size(), 1u) << daemon->log();
  auto sent = requests(2);
  ASSERT_EQ(sent.size(), 2u);
  const std::string looked = body_text(sent[1]);
  ASSERT_NE(looked.find("END-OF-LOOK"), std::string::npos) << looked;
  EXPECT_NE(looked.find("SWITCHBOARD_MODEL_SOCKET"), std::string::npos) << "the env was listed";
  for (const auto& request : sent) {
    EXPECT_EQ(body_text(request).find(kModelKey), std::string::npos)
        << "nothing the agent sent contains the key";
    const auto& headers = request.at("headers").as_object();
    const std::string auth = GetParam() == "anthropic"
                                 ? std::string(headers.at("x-api-key").as_string())
                                 : std::string(headers.at("authorization").as_string());
    EXPECT_NE(auth.find(kModelKey), std::string::npos) << "the proxy added it on the way out";
  }
}

INSTANTIATE_TEST_SUITE_P(Providers, BuiltInAgent, ::testing::Values("anthropic", "openai"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace sb::test

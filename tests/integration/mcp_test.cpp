// End to end: a scripted MCP client drives the real `switchboard mcp` over pipes, and the
// real daemon carries out the IPC requests it writes (docs/agent-protocol.md).

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "daemon_fixture.h"

extern char** environ;

namespace sb::test {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

// `switchboard mcp` on two pipes: one request line in, one answer line out.
class McpClient {
 public:
  explicit McpClient(const std::vector<std::string>& env, const fs::path& stderr_file) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, stderr_file.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<std::string> args{SWITCHBOARD_BINARY, "mcp"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
    env_store.insert(env_store.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, SWITCHBOARD_BINARY, &actions, nullptr, argv.data(), envp.data()) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    ::close(to_child[0]);
    ::close(from_child[1]);
    in_ = to_child[1];
    out_ = from_child[0];
  }

  ~McpClient() {
    close_input();
    if (out_ >= 0) ::close(out_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return pid_ > 0; }

  void send(const json::object& message) {
    const std::string line = json::serialize(message) + "\n";
    std::string_view rest = line;
    while (!rest.empty()) {
      ssize_t n = ::write(in_, rest.data(), rest.size());
      if (n <= 0) return;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // The next line the server writes, parsed; null on timeout or end of output.
  json::value read_answer(std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        boost::system::error_code ec;
        json::value parsed = json::parse(line, ec);
        EXPECT_FALSE(ec) << "not JSON on stdout: " << line;
        return parsed;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return nullptr;
      pollfd fd{out_, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(left.count())) <= 0) return nullptr;
      char chunk[4096];
      ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return nullptr;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  json::value request(std::string_view method, json::object params) {
    send({{"jsonrpc", "2.0"}, {"id", ++next_id_}, {"method", method}, {"params", params}});
    json::value answer = read_answer();
    EXPECT_TRUE(answer.is_object()) << "no answer to " << method;
    if (answer.is_object()) {
      EXPECT_EQ(answer.at("id"), next_id_);
    }
    return answer;
  }

  // Calls a tool and returns its text; fails the test on an error answer or isError.
  std::string call_tool(std::string_view name, json::object arguments) {
    json::value answer = request("tools/call", {{"name", name}, {"arguments", arguments}});
    if (!answer.is_object() || !answer.as_object().contains("result")) {
      ADD_FAILURE() << name << ": " << json::serialize(answer);
      return {};
    }
    const json::value& result = answer.at("result");
    EXPECT_EQ(result.at("isError"), false) << json::serialize(result);
    return std::string(result.at("content").at(0).at("text").as_string());
  }

  void close_input() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }

  // Waits for the server to exit; its exit code, or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::string buffer_;
  std::int64_t next_id_ = 0;
};

class McpEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon = std::make_unique<Daemon>(dir.path());
    ASSERT_TRUE(daemon->start()) << daemon->log();
    json::object group{{"folder", "family"},
                       {"name", "Family"},
                       {"chat", "http:alice"},
                       {"requires_trigger", false}};
    daemon->json("POST", "/groups", 201, json::serialize(group));
    ipc_dir = dir.path() / "data" / "ipc" / "family";
    ASSERT_TRUE(fs::is_directory(ipc_dir / "messages")) << daemon->log();
  }

  std::vector<std::string> mcp_env() const {
    return {"SWITCHBOARD_IPC_DIR=" + ipc_dir.string(),
            "SWITCHBOARD_SNAPSHOT_DIR=" + (dir.path() / "data" / "snapshots" / "family").string(),
            "SWITCHBOARD_WORKSPACE=" + (dir.path() / "data" / "groups" / "family").string(),
            "SWITCHBOARD_GROUP_FOLDER=family",
            "SWITCHBOARD_CHAT_JID=http:alice",
            "SWITCHBOARD_IS_MAIN=0"};
  }

  // The assistant's messages in `chat`, waiting (long-poll) until there is one.
  std::vector<std::string> assistant_messages(const std::string& chat) {
    std::vector<std::string> out;
    std::int64_t since = 0;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (out.empty() && std::chrono::steady_clock::now() < deadline) {
      auto reply = daemon->call(
          "GET", "/messages/wait?chat=" + chat + "&since=" + std::to_string(since) + "&timeout=2s");
      if (!reply || reply->status != 200) break;
      const json::value page = json::parse(reply->body);
      for (const json::value& m : page.as_array()) {
        since = std::max(since, m.at("id").as_int64());
        if (m.at("from_assistant").as_bool()) out.emplace_back(m.at("content").as_string());
      }
    }
    return out;
  }

  // The group's tasks, waiting until there is at least one.
  json::array tasks_of(const std::string& group) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      json::array tasks = daemon->json("GET", "/tasks?group=" + group, 200).at("tasks").as_array();
      if (!tasks.empty() || std::chrono::steady_clock::now() > deadline) return tasks;
      std::this_thread::sleep_for(50ms);
    }
  }

  TempDir dir;
  std::unique_ptr<Daemon> daemon;
  fs::path ipc_dir;
};

TEST_F(McpEndToEnd, AnMcpClientSendsAMessageAndSchedulesATaskThroughTheHost) {
  McpClient client(mcp_env(), dir.path() / "mcp.log");
  ASSERT_TRUE(client.started());

  json::value init = client.request(
      "initialize", {{"protocolVersion", "2025-06-18"},
                     {"capabilities", json::object{}},
                     {"clientInfo", {{"name", "scripted-client"}, {"version", "1.0"}}}});
  ASSERT_TRUE(init.is_object());
  EXPECT_EQ(init.at("result").at("protocolVersion"), "2025-06-18");
  EXPECT_EQ(init.at("result").at("serverInfo").at("name"), "switchboard");
  client.send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});

  json::value listed = client.request("tools/list", json::object{});
  std::vector<std::string> names;
  for (const json::value& tool : listed.at("result").at("tools").as_array()) {
    names.emplace_back(tool.at("name").as_string());
  }
  EXPECT_THAT(names, ::testing::Contains("send_message"));
  EXPECT_THAT(names, ::testing::Contains("schedule_task"));
  EXPECT_THAT(names, ::testing::Not(::testing::Contains("register_group")));

  EXPECT_THAT(client.call_tool("send_message", {{"text", "Hello from an MCP agent"}}),
              HasSubstr("Message queued for http:alice"));
  EXPECT_EQ(assistant_messages("http:alice"), std::vector<std::string>{"Hello from an MCP agent"})
      << daemon->log();

  EXPECT_THAT(client.call_tool("schedule_task", {{"prompt", "Water the plants"},
                                                 {"schedule_type", "interval"},
                                                 {"schedule_value", "86400000"}}),
              HasSubstr("Task request written"));
  json::array tasks = tasks_of("family");
  ASSERT_EQ(tasks.size(), 1u) << daemon->log();
  EXPECT_EQ(tasks[0].at("prompt"), "Water the plants");
  EXPECT_EQ(tasks[0].at("schedule_type"), "interval");
  EXPECT_EQ(tasks[0].at("schedule_value"), "86400000");
  EXPECT_EQ(tasks[0].at("chat"), "http:alice");
  EXPECT_EQ(tasks[0].at("status"), "active");

  // The host refreshes the snapshot after a task request; list_tasks reads it.
  const std::string id(tasks[0].at("id").as_string());
  std::string listing;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (listing.find(id) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    listing = client.call_tool("list_tasks", json::object{});
    if (listing.find(id) == std::string::npos) std::this_thread::sleep_for(50ms);
  }
  EXPECT_THAT(listing, HasSubstr(id));
  EXPECT_THAT(listing, HasSubstr("Water the plants"));

  client.close_input();
  EXPECT_EQ(client.wait_exit(), 0);
  EXPECT_TRUE(fs::is_empty(ipc_dir / "messages"));
  EXPECT_TRUE(fs::is_empty(ipc_dir / "tasks"));
}

TEST_F(McpEndToEnd, StdoutCarriesOnlyProtocolMessages) {
  McpClient client(mcp_env(), dir.path() / "mcp.log");
  ASSERT_TRUE(client.started());
  client.send({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "bogus"}});
  json::value answer = client.read_answer();
  ASSERT_TRUE(answer.is_object());
  EXPECT_EQ(answer.at("error").at("code"), -32601);
  client.close_input();
  EXPECT_EQ(client.wait_exit(), 0);
  EXPECT_TRUE(client.read_answer(2s).is_null());  // nothing else was written
}

TEST(McpCommand, WithoutAnIpcDirectoryExitsWithAUsageError) {
  if (std::getenv("SWITCHBOARD_IPC_DIR") != nullptr) {
    GTEST_SKIP() << "SWITCHBOARD_IPC_DIR is set in the test's own environment";
  }
  Completed done = run_cli({"mcp"});
  EXPECT_EQ(done.exit_code, 2);
  EXPECT_THAT(done.err, HasSubstr("SWITCHBOARD_IPC_DIR is not set"));
  EXPECT_TRUE(done.out.empty());
}

TEST(McpCommand, RefusesAnIpcDirectoryThatDoesNotExistAndABadIsMain) {
  TempDir dir;
  Completed missing = run_cli({"mcp"}, "", {"SWITCHBOARD_IPC_DIR=" + (dir.path() / "x").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("is not a directory"));
  Completed bad = run_cli(
      {"mcp"}, "", {"SWITCHBOARD_IPC_DIR=" + dir.path().string(), "SWITCHBOARD_IS_MAIN=yes"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("SWITCHBOARD_IS_MAIN"));
}

}  // namespace
}  // namespace sb::test

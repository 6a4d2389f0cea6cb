// The escape suite: a hostile agent (tests/support/hostile_agent.py) run by the real daemon
// under bwrap tries every way out it knows — host sysctls, files outside its folders, other
// groups, the database and the model key, loopback, the model proxy, symlinks where the host
// writes, and exhausting processes, memory, files, /tmp, output and disk — while the test
// checks the host afterwards. Each case runs twice: with the daemon as root (the README's
// set-up) and as an unprivileged user the test creates. docs/security.md maps each defence
// to the case that shows it.
//
// It needs root (to create the user and to start the daemon as root) and bwrap; where either
// is missing it fails rather than skipping: a machine that cannot run it cannot vouch for the
// sandbox.

#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "chat_helpers.h"
#include "daemon_fixture.h"
#include "support/temp_dir.h"

namespace sb::test {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

const std::string kToken = "escape-suite-api-token-7731";
const std::string kModelKey = "sk-escape-suite-model-key-0042";
constexpr const char* kTestUser = "sb-escape-test";

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// The unprivileged user the daemon runs as in the second mode, created once.
std::optional<std::pair<uid_t, gid_t>> test_user() {
  // Tests run in parallel (ctest -j): another one may be adding the user right now, and
  // useradd fails while /etc/passwd is locked. Try again a few times.
  const std::string add = std::string("useradd --system --no-create-home --shell ") +
                          "/usr/sbin/nologin --user-group " + kTestUser + " >/dev/null 2>&1";
  for (int attempt = 0; attempt < 20 && ::getpwnam(kTestUser) == nullptr; ++attempt) {
    if (std::system(add.c_str()) != 0) std::this_thread::sleep_for(250ms);
  }
  const passwd* entry = ::getpwnam(kTestUser);
  if (entry == nullptr) return std::nullopt;
  return std::pair{entry->pw_uid, entry->pw_gid};
}

void chown_tree(const fs::path& root, uid_t uid, gid_t gid) {
  ::lchown(root.c_str(), uid, gid);
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    ::lchown(entry.path().c_str(), uid, gid);
  }
}

enum class Mode { root, user };

class Escape : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the escape suite needs root: it creates a test user and "
                                  "starts the daemon as root and as that user";
    ASSERT_TRUE(bwrap_works()) << "bwrap cannot create a sandbox here: the escape suite "
                                  "cannot vouch for the sandbox on this machine";
    // The agent and a copy of the binary where any user can reach them.
    fs::create_directories(bin);
    fs::copy_file(SWITCHBOARD_HOSTILE_AGENT, bin / "hostile_agent.py");
    fs::permissions(bin / "hostile_agent.py", fs::perms(0755));
    fs::create_directories(outside);
    std::ofstream(outside / "canary") << "canary";
    std::ofstream(victim) << "{\"type\":\"message\",\"chatJid\":\"http:victim\",\"text\":\"v\"}";
    if (GetParam() == Mode::user) {
      const auto user = test_user();
      ASSERT_TRUE(user) << "cannot create the test user " << kTestUser;
      fs::copy_file(SWITCHBOARD_BINARY, bin / "switchboard");
      chown_tree(dir.path(), user->first, user->second);
      ::chmod(dir.path().c_str(), 0755);
      uid = user->first;
    }
    start();
  }

  void TearDown() override {
    if (daemon) daemon->terminate();
  }

  std::string toml() const {
    return "assistant_name = \"Andy\"\n"
           "[agent]\n"
           "runtime = \"bwrap\"\n"
           "command = [\"" +
           (bin / "hostile_agent.py").string() +
           "\"]\n"
           "timeout = \"60s\"\n"
           "idle_timeout = \"1s\"\n"
           "kill_grace = \"1s\"\n"
           "shutdown_grace = \"2s\"\n"
           "max_output_bytes = \"1MiB\"\n"
           "max_processes = 64\n"
           "max_memory = \"256MiB\"\n"
           "max_file_size = \"16MiB\"\n"
           "max_disk = \"96MiB\"\n"
           "max_cpu_time = \"60s\"\n"
           "mount_allowlist = \"" +
           (dir.path() / "no-allowlist.json").string() +
           "\"\n"
           "[model]\n"
           "base_url = \"http://127.0.0.1:9\"\n"
           "api_key_env = \"SB_ESCAPE_MODEL_KEY\"\n";
  }

  void start() {
    daemon = std::make_unique<Daemon>(dir.path(), "token_env = \"SB_ESCAPE_TOKEN\"\n", toml());
    if (GetParam() == Mode::user) {
      daemon->launch_with({"setpriv", "--reuid=" + std::string(kTestUser),
                           "--regid=" + std::string(kTestUser), "--clear-groups", "--"},
                          bin / "switchboard");
      ::lchown(daemon->config_file().c_str(), uid, uid);
    }
    ASSERT_TRUE(daemon->start(
        {"SB_ESCAPE_TOKEN=" + kToken, "SB_ESCAPE_MODEL_KEY=" + kModelKey, "HOSTILE_LINGER=8"}))
        << daemon->log();
  }

  void add(const std::string& folder, const std::string& chat, const std::string& config = "{}") {
    json::object body{{"folder", folder},
                      {"name", folder},
                      {"chat", chat},
                      {"requires_trigger", false},
                      {"agent_config", json::parse(config)}};
    daemon->json("POST", "/groups", 201, json::serialize(body), kToken);
  }

  std::int64_t post(const std::string& chat, const std::string& text) {
    json::object body{{"source", "http"}, {"chat", chat}, {"sender", "eve"}, {"content", text}};
    return daemon->json("POST", "/messages", 201, json::serialize(body), kToken)
        .at("id")
        .as_int64();
  }

  // The assistant's replies in `chat` after message `since`, waiting for `count`.
  std::vector<std::string> replies(const std::string& chat, std::size_t count,
                                   std::chrono::seconds limit = 60s, std::int64_t since = 0) {
    return assistant_replies(*daemon, chat, count, limit, since, kToken);
  }

  // Runs `command` in the agent of `chat`'s group and returns its reply as JSON (other
  // replies arriving meanwhile, such as a follow-up's, are skipped).
  json::object attack(const std::string& command, const json::object& args,
                      const std::string& chat = "http:eve") {
    const auto id = post(chat, command + " " + json::serialize(args));
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    std::int64_t since = id;
    while (std::chrono::steady_clock::now() < deadline) {
      auto reply = daemon->call(
          "GET", "/messages/wait?chat=" + chat + "&since=" + std::to_string(since) + "&timeout=2s",
          "", kToken);
      if (!reply || reply->status != 200) continue;
      const json::value page = json::parse(reply->body);
      for (const json::value& m : page.as_array()) {
        since = std::max(since, m.at("id").as_int64());
        if (!m.at("from_assistant").as_bool()) continue;
        boost::system::error_code ec;
        const json::value parsed = json::parse(m.at("content").as_string(), ec);
        if (!ec && parsed.is_object()) return parsed.as_object();
      }
    }
    ADD_FAILURE() << "no reply to " << command << "\n" << daemon->log();
    return {};
  }

  // The bystander group still answers, and the daemon is healthy.
  void others_keep_working() {
    const auto id = post("http:bob", "reply {\"text\":\"still here\"}");
    const auto got = replies("http:bob", 1, 60s, id);
    ASSERT_EQ(got.size(), 1u) << daemon->log();
    EXPECT_EQ(got[0], "still here");
    auto health = daemon->call("GET", "/health", "", kToken);
    ASSERT_TRUE(health.ok());
    EXPECT_EQ(health->status, 200);
  }

  // Waits until no agent runs, none waits and no retry is due: what the last step started
  // has ended.
  void wait_idle(std::chrono::seconds limit = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto health = daemon->call("GET", "/health", "", kToken);
      if (health.ok() && health->status == 200) {
        const auto agents = json::parse(health->body).at("agents");
        bool busy = agents.at("active").as_int64() != 0 || !agents.at("waiting").as_array().empty();
        for (const auto& group : agents.at("queue").as_array()) {
          busy = busy || group.at("retry_scheduled").as_bool();
        }
        if (!busy) return;
      }
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << "agents still busy after " << limit.count() << " s";
  }

  std::string data_dir() const { return (dir.path() / "data").string(); }

  TempDir dir;
  fs::path bin = dir.path() / "bin";
  fs::path outside = dir.path() / "outside";
  fs::path victim = dir.path() / "victim.json";
  uid_t uid = 0;
  std::unique_ptr<Daemon> daemon;
};

TEST_P(Escape, EveryClassicAttackFailsAndTheHostStaysIntact) {
  add("attacker", "http:eve");
  add("bystander", "http:bob");
  std::ofstream(dir.path() / "data/groups/bystander/secret.txt") << "bystander's secret";
  const std::string core_pattern = slurp("/proc/sys/kernel/core_pattern");

  const json::object r =
      attack("battery", {{"outside", outside.string()},
                         {"api_port", daemon->port()},
                         {"other_secret", data_dir() + "/groups/bystander/secret.txt"},
                         {"database", data_dir() + "/switchboard.db"},
                         {"data_dir", data_dir()},
                         {"key", kModelKey},
                         {"forks", 2000},
                         {"memory", 1 << 30},
                         {"file", 64 << 20},
                         {"tmp", 512 << 20}});
  ASSERT_FALSE(r.empty());
  auto outcome = [&r](const char* name) {
    return r.contains(name) ? std::string(r.at(name).as_string()) : std::string("(missing)");
  };
  auto blocked = [&](const char* name) {
    EXPECT_TRUE(outcome(name).starts_with("blocked")) << name << ": " << outcome(name);
  };
  // Root on the host: sysctls are read-only, and the agent is never the host's root.
  blocked("core_pattern");
  blocked("sysrq");
  EXPECT_EQ(slurp("/proc/sys/kernel/core_pattern"), core_pattern);
  EXPECT_EQ(outcome("uid").find("uid 0 "), std::string::npos) << outcome("uid");
  // Files outside its folders: host secrets, other groups, the database, any host path.
  blocked("shadow");
  blocked("other_group");
  blocked("database");
  blocked("outside_dir");
  for (const char* target :
       {"write /usr/evil", "write /etc/evil", "write /evil", "write /workspace/evil",
        "write /workspace/snapshots/evil", "write /run/switchboard/evil"}) {
    blocked(target);
  }
  // The model key is nowhere in the sandbox; the data directory's path not in /proc/1/cmdline.
  EXPECT_EQ(outcome("key"), "absent");
  EXPECT_EQ(outcome("cmdline_paths"), "absent");
  // No network: not even the host's loopback, where the API listens.
  blocked("loopback");
  // Bounded: processes, memory, file size, /tmp and /dev/shm.
  EXPECT_NE(outcome("processes").find("Resource temporarily unavailable"), std::string::npos)
      << outcome("processes");
  blocked("memory");
  EXPECT_NE(outcome("file_size").find("File too large"), std::string::npos) << outcome("file_size");
  EXPECT_NE(outcome("tmp").find("No space left on device"), std::string::npos) << outcome("tmp");
  EXPECT_NE(outcome("shm").find("No space left on device"), std::string::npos) << outcome("shm");
  // The seccomp filter: no namespaces, keyring, bpf or raw sockets.
  blocked("unshare user");
  blocked("unshare mount");
  blocked("keyctl");
  blocked("bpf");
  blocked("af_packet");
  // The model proxy forwards only the providers' methods and paths.
  for (const char* name : {"proxy CONNECT", "proxy BREW", "proxy dotdot", "proxy absolute"}) {
    const std::string status = outcome(name);
    EXPECT_TRUE(status.starts_with("HTTP/1.1 4")) << name << ": " << status;
  }
  EXPECT_EQ(slurp(outside / "canary"), "canary");
  EXPECT_EQ(std::distance(fs::directory_iterator(outside), fs::directory_iterator()), 1);
  others_keep_working();
}

TEST_P(Escape, SymlinksPlantedWhereTheHostWritesAreNeverFollowed) {
  add("attacker", "http:eve");
  add("bystander", "http:bob");
  const std::string victim_content = slurp(victim);
  // input/ swapped for a link to a host directory: the close request and follow-ups must
  // not land there.
  attack("plant", {{"kind", "input_dir"}, {"outside", outside.string()}});
  post("http:eve", "reply {\"text\":\"follow-up\"}");
  std::this_thread::sleep_for(1s);
  wait_idle();
  // _close a link to a host file: replaced, never written through.
  attack("plant", {{"kind", "close_link"}, {"victim", victim.string()}, {"outside", ""}});
  wait_idle();
  // logs/ and CLAUDE.md links in the group folder; request files linking to host files.
  attack("plant", {{"kind", "logs_link"}, {"outside", outside.string()}});
  wait_idle();
  attack("plant", {{"kind", "claude_link"}, {"outside", outside.string()}});
  wait_idle();
  attack("plant", {{"kind", "request_link"}, {"victim", victim.string()}, {"outside", ""}});
  wait_idle();
  // The daemon restarts: it creates missing CLAUDE.md files and reads leftovers.
  daemon->terminate();
  start();
  const auto id = post("http:eve", "reply {\"text\":\"after restart\"}");
  EXPECT_EQ(replies("http:eve", 1, 60s, id), std::vector<std::string>{"after restart"});
  wait_idle();

  EXPECT_EQ(slurp(victim), victim_content) << "a host file was written through a symlink";
  std::vector<std::string> landed;
  for (const auto& entry : fs::directory_iterator(outside)) {
    landed.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(landed, std::vector<std::string>{"canary"}) << "the host wrote into a planted link";
  EXPECT_EQ(slurp(outside / "canary"), "canary");
  // What the host could not process went to errors/, but never the victim's content.
  const fs::path errors = dir.path() / "data/ipc/errors";
  if (fs::exists(errors)) {
    for (const auto& entry : fs::directory_iterator(errors)) {
      EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(entry.path()))) << entry.path();
      EXPECT_EQ(slurp(entry.path()).find("http:victim"), std::string::npos) << entry.path();
    }
  }
  // Run logs live where agents cannot write.
  EXPECT_TRUE(fs::exists(dir.path() / "data/logs/attacker"));
  others_keep_working();
}

TEST_P(Escape, FloodingOutputOrDiskEndsOnlyTheFloodingRun) {
  add("flooder", "http:flood");
  add("hoarder", "http:hoard");
  add("bystander", "http:bob");
  // 2 GB on stdout: killed at max_output_bytes (the message is retried, and killed again).
  post("http:flood", "flood {\"bytes\":2147483648}");
  // The group folder beyond max_disk, each file under max_file_size: killed within
  // kDiskCheckInterval; the group's next runs are refused until its folder is cleaned up.
  post("http:hoard", "disk {\"chunk\":8388608,\"total\":268435456,\"stay\":40}");
  others_keep_working();
  auto logged = [&](const std::string& text) {
    const auto deadline = std::chrono::steady_clock::now() + 40s;
    while (daemon->log().find(text) == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(500ms);
    }
    return daemon->log().find(text) != std::string::npos;
  };
  EXPECT_TRUE(logged("agent output exceeded")) << daemon->log();
  EXPECT_TRUE(logged("the agent's folders exceeded max_disk")) << daemon->log();
  // The next message of the hoarding group does not start an agent while its folder is full.
  post("http:hoard", "reply {\"text\":\"too much\"}");
  EXPECT_TRUE(logged("the group's folders use more than max_disk")) << daemon->log();
  others_keep_working();
}

TEST_P(Escape, ErrorsDirectoryStaysBounded) {
  add("attacker", "http:eve");
  add("bystander", "http:bob");
  attack("plant", {{"kind", "bad_requests"}, {"count", 1500}, {"outside", ""}});
  const fs::path errors = dir.path() / "data/ipc/errors";
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline &&
         fs::exists(dir.path() / "data/ipc/attacker/messages/bad-001499.json")) {
    std::this_thread::sleep_for(200ms);
  }
  std::size_t files = 0;
  std::uintmax_t bytes = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(errors, ec)) {
    ++files;
    bytes += fs::file_size(entry.path(), ec);
  }
  // 1,000 entries (a file and its .reason each) plus what arrived since the last pruning.
  EXPECT_GT(files, 0u);
  EXPECT_LE(files, 2u * 1050u);
  EXPECT_LE(bytes, 11u << 20);
  others_keep_working();
}

INSTANTIATE_TEST_SUITE_P(Escape, Escape, ::testing::Values(Mode::root, Mode::user),
                         [](const auto& info) {
                           return info.param == Mode::root ? std::string("AsRoot")
                                                           : std::string("AsUnprivilegedUser");
                         });

// A group with network access shares the host's network under bwrap: without an API token
// the daemon refuses to run it, so its agent cannot use the API on loopback.
TEST(EscapeNetwork, NetworkGroupsNeedAnApiToken) {
  ASSERT_TRUE(bwrap_works());
  TempDir dir;
  Daemon daemon(dir.path(), "", bwrap_test_agent_toml(dir.path()));
  ASSERT_TRUE(daemon.start()) << daemon.log();
  add_group(daemon, "net", "http:net", false, false, R"({"network": true})");
  post_message(daemon, "http:net", "reply should not run");
  std::this_thread::sleep_for(2s);
  EXPECT_NE(daemon.log().find("network access needs an API token"), std::string::npos)
      << daemon.log();
  auto messages = daemon.json("GET", "/messages?chat=http:net", 200).as_array();
  for (const auto& m : messages) EXPECT_FALSE(m.at("from_assistant").as_bool());
  daemon.terminate();
  fs::create_directories(dir.path() / "second");
  Daemon second(dir.path() / "second", "", bwrap_test_agent_toml(dir.path()) + "network = true\n");
  ASSERT_FALSE(second.start());
  EXPECT_NE(second.log().find("needs an API token"), std::string::npos) << second.log();
}

}  // namespace
}  // namespace sb::test

#pragma once
// Shared steps of the end-to-end tests that talk to a running daemon as a chat would:
// register a group, post a message, wait for the assistant's replies.

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "daemon_fixture.h"
#include "support/require_peer.h"

namespace sb::test {

// Whether bubblewrap can create a sandbox here (user namespaces allowed).
// The config lines for a daemon whose agent is the test agent in a bwrap sandbox, quick to
// close when idle; no extra mounts (the allowlist file under `dir` does not exist).
inline std::string bwrap_test_agent_toml(const std::filesystem::path& dir) {
  return "assistant_name = \"Andy\"\n"
         "[agent]\n"
         "runtime = \"bwrap\"\n"
         "command = [\"" SWITCHBOARD_TEST_AGENT
         "\"]\n"
         "idle_timeout = \"1s\"\n"
         "kill_grace = \"1s\"\n"
         "shutdown_grace = \"2s\"\n"
         "mount_allowlist = \"" +
         (dir / "no-allowlist.json").string() + "\"\n";
}

inline bool bwrap_works() {
  return std::system(
             "bwrap --unshare-all --ro-bind /usr /usr --symlink usr/lib /lib "
             "--symlink usr/lib64 /lib64 --symlink usr/bin /bin -- /bin/true "
             ">/dev/null 2>&1") == 0;
}

inline void add_group(const Daemon& daemon, const std::string& folder, const std::string& chat,
                      bool main = false, bool requires_trigger = false,
                      const std::string& agent_config_json = "") {
  boost::json::object body{{"folder", folder},
                           {"name", folder},
                           {"chat", chat},
                           {"main", main},
                           {"requires_trigger", requires_trigger}};
  if (!agent_config_json.empty()) body["agent_config"] = boost::json::parse(agent_config_json);
  daemon.json("POST", "/groups", 201, boost::json::serialize(body));
}

// Stores a message from "alice" in `chat`; its id (0 when the API refused it).
inline std::int64_t post_message(const Daemon& daemon, const std::string& chat,
                                 const std::string& text) {
  boost::json::object body{
      {"source", "http"}, {"chat", chat}, {"sender", "alice"}, {"content", text}};
  auto stored = daemon.json("POST", "/messages", 201, boost::json::serialize(body));
  return stored.is_object() ? stored.at("id").as_int64() : 0;
}

// The assistant's messages in `chat`, waiting (long-poll) until there are at least `count`
// or `limit` passes.
// Only messages after id `since` count; `token` is the API token, if the daemon has one.
inline std::vector<std::string> assistant_replies(
    const Daemon& daemon, const std::string& chat, std::size_t count,
    std::chrono::seconds limit = std::chrono::seconds(20), std::int64_t since = 0,
    const std::string& token = "") {
  std::vector<std::string> out;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    auto reply = daemon.call(
        "GET", "/messages/wait?chat=" + chat + "&since=" + std::to_string(since) + "&timeout=2s",
        "", token);
    if (!reply || reply->status != 200) break;
    const boost::json::value page = boost::json::parse(reply->body);
    for (const boost::json::value& m : page.as_array()) {
      since = std::max(since, m.at("id").as_int64());
      if (m.at("from_assistant").as_bool()) out.emplace_back(m.at("content").as_string());
    }
  }
  return out;
}

// Waits until no agent runs (or `limit` passes); true when none does.
inline bool wait_until_idle(const Daemon& daemon,
                            std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto health = daemon.json("GET", "/health", 200);
    if (health.at("agents").at("runs").as_array().empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace sb::test

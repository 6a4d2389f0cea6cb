// Load: the real daemon, real bwrap sandboxes and the test agent (tests/support/
// test_agent.cpp), many groups at once and few slots. Every group gets several messages,
// posted at the same time from several clients; each message is a script that makes the
// agent answer it with its own tag. When the chats have drained, every message has exactly
// one answer, none is left `processing`, and the time to drain is printed.
//
// Two kinds of agent: one-shot agents that answer their batch and exit (follow-ups written
// to their input/ as they leave must not be lost), and agents that stay, waiting for
// follow-ups until the idle timeout (an idle agent must not keep its slot from a group that
// waits for one: the idle timeout is set far beyond the time the whole load needs).
//
// The scale can be raised for a benchmark (bench/load_bench.sh): SWITCHBOARD_LOAD_GROUPS
// (default 50), SWITCHBOARD_LOAD_MESSAGES (per group, default 4), SWITCHBOARD_LOAD_SLOTS
// ([agent] max_concurrent, default 5), SWITCHBOARD_LOAD_DEADLINE_S (default 75, from the
// first post); SWITCHBOARD_LOAD_BINARY runs another switchboard binary (a release build);
// SWITCHBOARD_LOAD_KEEP=<dir> keeps the daemon's log and the run logs there.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "chat_helpers.h"
#include "daemon_fixture.h"
#include "support/raw_db.h"

namespace sb::test {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::atoi(value) : fallback;
}

enum class AgentKind { one_shot, waits_for_follow_ups };

struct Shape {
  int groups = env_int("SWITCHBOARD_LOAD_GROUPS", 50);
  int messages = env_int("SWITCHBOARD_LOAD_MESSAGES", 4);
  int slots = env_int("SWITCHBOARD_LOAD_SLOTS", 5);
  std::chrono::seconds deadline{env_int("SWITCHBOARD_LOAD_DEADLINE_S", 75)};
};

std::string chat_of(int group) { return "http:load-" + std::to_string(group); }
std::string tag_of(int group, int message) {
  return "ack-" + std::to_string(group) + "-" + std::to_string(message);
}

// What the store holds, as seen through the API or read from the database.
struct Seen {
  std::map<std::string, int> user_status;  // status → count, the users' messages
  std::map<std::string, int> answers;      // assistant message content → count
  std::vector<std::string> processing;     // "<chat> #<id>" of messages left `processing`
};

// Every message of the daemon, oldest first, page by page.
Seen seen_through_api(const Daemon& daemon) {
  Seen seen;
  std::int64_t since = 0;
  for (;;) {
    auto reply =
        daemon.call("GET", "/messages?order=asc&limit=1000&since=" + std::to_string(since));
    if (!reply || reply->status != 200) break;
    const auto page = json::parse(reply->body).as_array();
    for (const auto& value : page) {
      const auto& m = value.as_object();
      since = m.at("id").as_int64();
      if (m.at("from_assistant").as_bool()) {
        ++seen.answers[std::string(m.at("content").as_string())];
        continue;
      }
      const std::string status(m.at("status").as_string());
      ++seen.user_status[status];
      if (status == "processing") {
        seen.processing.push_back(std::string(m.at("chat").as_string()) + " #" +
                                  std::to_string(since));
      }
    }
    if (page.size() < 1000) break;
  }
  return seen;
}

Seen seen_in_store(const std::filesystem::path& database) {
  RawDb db(database);
  Seen seen;
  for (const auto& row : db.rows("SELECT status || ' ' || count(*) FROM messages "
                                 "WHERE from_assistant = 0 GROUP BY status")) {
    const auto space = row.find(' ');
    seen.user_status[row.substr(0, space)] = std::stoi(row.substr(space + 1));
  }
  for (const auto& row : db.rows("SELECT count(*) || ' ' || content FROM messages "
                                 "WHERE from_assistant = 1 GROUP BY content")) {
    const auto space = row.find(' ');
    seen.answers[row.substr(space + 1)] = std::stoi(row.substr(0, space));
  }
  seen.processing = db.rows("SELECT id FROM messages WHERE status = 'processing'");
  return seen;
}

int expected_total(const Shape& shape) { return shape.groups * shape.messages; }

// Whether every message has been handled: each tag answered, no message waiting or
// with an agent.
bool drained(const Seen& seen, const Shape& shape) {
  int answered = 0;
  for (int g = 0; g < shape.groups; ++g) {
    for (int i = 0; i < shape.messages; ++i) answered += seen.answers.contains(tag_of(g, i));
  }
  const auto count = [&](const char* status) {
    auto it = seen.user_status.find(status);
    return it == seen.user_status.end() ? 0 : it->second;
  };
  return answered == expected_total(shape) && count("unread") == 0 && count("processing") == 0;
}

// A summary for failure messages: the statuses, the answers missing and doubled.
std::string describe(const Seen& seen, const Shape& shape) {
  std::ostringstream out;
  out << "users' messages by status:";
  for (const auto& [status, count] : seen.user_status) out << " " << status << "=" << count;
  std::vector<std::string> missing, doubled;
  std::set<std::string> expected;
  for (int g = 0; g < shape.groups; ++g) {
    for (int i = 0; i < shape.messages; ++i) expected.insert(tag_of(g, i));
  }
  int answered = 0;
  for (const auto& tag : expected) {
    const auto it = seen.answers.find(tag);
    if (it == seen.answers.end()) {
      missing.push_back(tag);
    } else {
      ++answered;
      if (it->second > 1) doubled.push_back(tag + " x" + std::to_string(it->second));
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& [content, count] : seen.answers) {
    if (!expected.contains(content)) unexpected.push_back(content.substr(0, 200));
  }
  const auto list = [&out](const char* what, const std::vector<std::string>& items) {
    out << "\n" << what << ": " << items.size();
    for (std::size_t i = 0; i < items.size() && i < 12; ++i) out << (i ? ", " : " (") << items[i];
    if (!items.empty()) out << (items.size() > 12 ? ", …)" : ")");
  };
  out << "\nanswered " << answered << " of " << expected_total(shape);
  list("missing answers", missing);
  list("answered more than once", doubled);
  list("other assistant messages", unexpected);
  list("left processing", seen.processing);
  return out.str();
}

// One line on what the queue does: runs, idle agents, waiting groups.
std::string queue_state(const Daemon& daemon) {
  auto reply = daemon.call("GET", "/health");
  if (!reply || reply->status != 200) return "(no /health)";
  const auto health = json::parse(reply->body);
  const auto* agents = health.as_object().if_contains("agents");
  if (!agents) return "(no agents in /health)";
  std::ostringstream out;
  out << "active runs " << json::serialize(agents->at("active")) << ", waiting groups "
      << agents->at("waiting").as_array().size();
  if (const auto* queue = agents->as_object().if_contains("queue")) {
    int idle = 0;
    for (const auto& group : queue->as_array()) {
      const auto* is_idle = group.as_object().if_contains("idle");
      idle += is_idle && is_idle->is_bool() && is_idle->as_bool();
    }
    out << ", idle agents " << idle;
  }
  out << "; runs:";
  for (const auto& run : agents->at("runs").as_array()) {
    out << " " << json::value_to<std::string>(run.at("group")) << "("
        << json::serialize(run.at("seconds")) << "s, " << json::serialize(run.at("results"))
        << " results)";
  }
  return out.str();
}

// Whether the orchestrator has nothing left to do: no reply in the outbox waiting to be
// delivered, no run, no group waiting, none with messages pending or a retry scheduled. Once
// the messages are settled too, answers still missing will not come.
bool queue_quiet(const Daemon& daemon) {
  for (const char* state : {"pending", "sending"}) {
    auto rows = daemon.call("GET", std::string("/outbox?limit=1&state=") + state);
    if (!rows || rows->status != 200 || !json::parse(rows->body).at("outbox").as_array().empty()) {
      return false;
    }
  }
  auto reply = daemon.call("GET", "/health");
  if (!reply || reply->status != 200) return false;
  const auto health = json::parse(reply->body);
  const auto* agents = health.as_object().if_contains("agents");
  if (!agents || !agents->at("runs").as_array().empty() ||
      !agents->at("waiting").as_array().empty()) {
    return false;
  }
  const auto busy = [](const json::object& group, const char* key) {
    const auto* value = group.if_contains(key);
    return value && ((value->is_bool() && value->as_bool()) ||
                     (value->is_int64() && value->as_int64() != 0));
  };
  if (const auto* queue = agents->as_object().if_contains("queue")) {
    for (const auto& group : queue->as_array()) {
      if (busy(group.as_object(), "pending_messages") ||
          busy(group.as_object(), "retry_scheduled")) {
        return false;
      }
    }
  }
  return true;
}

// A counter from /metrics; -1 if absent.
double metric(const Daemon& daemon, const std::string& name) {
  auto reply = daemon.call("GET", "/metrics");
  if (!reply) return -1;
  std::istringstream lines(reply->body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.starts_with(name + " ")) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

class Load : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox"); }

  std::string toml() const {
    // Debug: the log says when messages are handed to a running agent.
    return "assistant_name = \"Andy\"\n"
           "[log]\n"
           "level = \"debug\"\n"
           "[agent]\n"
           "runtime = \"bwrap\"\n"
           "command = [\"" SWITCHBOARD_TEST_AGENT "\"]\n" +
           ("max_concurrent = " + std::to_string(shape.slots) + "\n") +
           // Far beyond the deadline: a slot that only frees at the idle timeout is a failure.
           "idle_timeout = \"10m\"\n"
           "timeout = \"10m\"\n"
           "kill_grace = \"1s\"\n"
           "shutdown_grace = \"3s\"\n"
           "mount_allowlist = \"" +
           (dir.path() / "no-allowlist.json").string() + "\"\n";
  }

  void run(AgentKind kind, const char* name) {
    Daemon daemon(dir.path(), "", toml());
    if (const char* binary = std::getenv("SWITCHBOARD_LOAD_BINARY")) daemon.launch_with({}, binary);
    ASSERT_TRUE(daemon.start()) << daemon.log();
    for (int g = 0; g < shape.groups; ++g) {
      add_group(daemon, "load-" + std::to_string(g), chat_of(g));
    }
    ASSERT_FALSE(HasFailure()) << daemon.log();

    // All messages at once, from several clients: each client takes every tenth group and
    // posts its groups' first messages, then their second ones, and so on.
    const int clients = std::min(shape.groups, 10);
    std::atomic<int> refused{0};
    std::mutex errors_mutex;
    std::string errors;
    const auto started = Clock::now();
    {
      std::vector<std::jthread> posting;
      for (int c = 0; c < clients; ++c) {
        posting.emplace_back([&, c] {
          for (int i = 0; i < shape.messages; ++i) {
            for (int g = c; g < shape.groups; g += clients) {
              std::string script = "reply " + tag_of(g, i);
              if (kind == AgentKind::one_shot) script += "\nfinish";
              const json::object body{{"source", "http"},
                                      {"chat", chat_of(g)},
                                      {"sender", "alice"},
                                      {"content", script}};
              auto reply = daemon.call("POST", "/messages", json::serialize(body));
              if (!reply || reply->status != 201) {
                ++refused;
                std::lock_guard lock(errors_mutex);
                errors += (reply ? reply->body : reply.error().message) + "\n";
              }
            }
          }
        });
      }
    }
    const auto posted = Clock::now();
    ASSERT_EQ(refused.load(), 0) << errors;

    // Until drained, or until the deadline, or until everything has been quiet for 5 s with
    // answers missing (nothing would bring them).
    Seen seen;
    bool done = false;
    auto quiet_since = Clock::time_point::max();
    std::size_t answers_before = 0;
    while (!done && Clock::now() - started < shape.deadline) {
      std::this_thread::sleep_for(100ms);
      seen = seen_through_api(daemon);
      done = drained(seen, shape);
      const bool settled =
          !seen.user_status.contains("unread") && !seen.user_status.contains("processing") &&
          seen.answers.size() == std::exchange(answers_before, seen.answers.size());
      if (done || !settled || !queue_quiet(daemon)) {
        quiet_since = Clock::time_point::max();
      } else if (quiet_since == Clock::time_point::max()) {
        quiet_since = Clock::now();
      } else if (Clock::now() - quiet_since > 5s) {
        break;
      }
    }
    const auto drain = Clock::now() - started;
    const double seconds = std::chrono::duration<double>(drain).count();
    const double post_seconds = std::chrono::duration<double>(posted - started).count();
    const double runs = metric(daemon, "switchboard_agent_runs_total");
    const double failed = metric(daemon, "switchboard_agent_runs_failed_total");
    const double piped = metric(daemon, "switchboard_agent_piped_total");
    std::cout << std::fixed << std::setprecision(2) << "[ load     ] " << name << ": "
              << shape.groups << " groups x " << shape.messages << " messages, " << shape.slots
              << " slots: " << (done ? "drained in " : "NOT drained, gave up after ") << seconds
              << " s from the first post, " << seconds - post_seconds
              << " s from the last (posting took " << post_seconds << " s); "
              << expected_total(shape) / seconds << " messages/s; agent runs " << runs
              << " (failed " << failed << "), follow-ups piped " << piped << std::endl;
    EXPECT_TRUE(done) << "not drained after " << seconds << " s\n"
                      << describe(seen, shape) << "\nqueue: " << queue_state(daemon);

    // The verdict from the store itself, after an orderly stop: whatever the shutdown still
    // committed counts too.
    EXPECT_EQ(daemon.terminate(), 0);
    const Seen final_state = seen_in_store(dir.path() / "data" / "switchboard.db");
    const auto replied = final_state.user_status.find("replied");
    EXPECT_EQ(final_state.user_status.size(), 1u) << describe(final_state, shape);
    EXPECT_EQ(replied == final_state.user_status.end() ? 0 : replied->second, expected_total(shape))
        << describe(final_state, shape);
    EXPECT_TRUE(final_state.processing.empty()) << describe(final_state, shape);
    bool exactly_once =
        final_state.answers.size() == static_cast<std::size_t>(expected_total(shape));
    for (int g = 0; g < shape.groups; ++g) {
      for (int i = 0; i < shape.messages; ++i) {
        const auto it = final_state.answers.find(tag_of(g, i));
        exactly_once &= it != final_state.answers.end() && it->second == 1;
      }
    }
    EXPECT_TRUE(exactly_once) << describe(final_state, shape);
    if (const char* keep = std::getenv("SWITCHBOARD_LOAD_KEEP")) {
      // The daemon's log and the agents' run logs, for a look afterwards.
      const std::filesystem::path to = std::filesystem::path(keep) / name;
      std::filesystem::create_directories(to);
      const auto options = std::filesystem::copy_options::overwrite_existing |
                           std::filesystem::copy_options::recursive;
      std::filesystem::copy(dir.path() / "daemon.log", to / "daemon.log", options);
      std::filesystem::copy(dir.path() / "data" / "logs", to / "logs", options);
    }
    if (HasFailure()) {
      // For the cause: the daemon's warnings and errors, and what it logged about the first
      // groups with a missing or doubled answer.
      std::set<std::string> groups;
      for (int g = 0; g < shape.groups && groups.size() < 3; ++g) {
        for (int i = 0; i < shape.messages; ++i) {
          const auto it = final_state.answers.find(tag_of(g, i));
          if (it == final_state.answers.end() || it->second != 1) {
            groups.insert("'load-" + std::to_string(g) + "'");
          }
        }
      }
      std::istringstream lines(daemon.log());
      std::string line, notable, about_groups;
      int shown = 0;
      while (std::getline(lines, line)) {
        if ((line.find(" warning ") != std::string::npos ||
             line.find(" error ") != std::string::npos ||
             line.find(" critical ") != std::string::npos) &&
            shown++ < 40) {
          notable += line + "\n";
        }
        for (const auto& group : groups) {
          if (line.find(group + ":") != std::string::npos) about_groups += line + "\n";
        }
      }
      ADD_FAILURE() << "the daemon's warnings and errors (" << shown << "):\n"
                    << notable << "\nabout the first groups with a missing or doubled answer:\n"
                    << about_groups;
    }
  }

  Shape shape;
  TempDir dir;
};

TEST_F(Load, OneShotAgentsAnswerEveryMessageExactlyOnce) { run(AgentKind::one_shot, "one-shot"); }

TEST_F(Load, AgentsWaitingForFollowUpsAnswerEveryMessageExactlyOnceWithoutHoldingSlots) {
  run(AgentKind::waits_for_follow_ups, "waiting-for-follow-ups");
}

}  // namespace
}  // namespace sb::test

// Durability: every message the API acknowledged is there after kill -9.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "daemon_fixture.h"

namespace sb::test {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

TEST(Crash, EveryAcknowledgedMessageSurvivesKill9) {
  TempDir dir;
  Daemon daemon(dir.path());
  ASSERT_TRUE(daemon.start()) << daemon.log();

  std::mutex mutex;
  std::vector<std::pair<std::int64_t, std::string>> acknowledged;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        auto content = "client " + std::to_string(t) + " message " + std::to_string(i);
        auto reply = daemon.call(
            "POST", "/messages",
            json::serialize(json::object{{"source", "crash-test"}, {"content", content}}));
        if (!reply) continue;  // the daemon died mid-request: not acknowledged
        if (reply->status != 201) continue;
        auto id = json::parse(reply->body).at("id").as_int64();
        std::lock_guard lock(mutex);
        acknowledged.emplace_back(id, content);
      }
    });
  }
  // Let the clients get going, then kill the daemon while they post.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mutex);
      if (acknowledged.size() >= 300) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  daemon.kill9();
  stop = true;
  for (auto& c : clients) c.join();
  ASSERT_GE(acknowledged.size(), 50u) << "the clients got too few answers to test anything";

  ASSERT_TRUE(daemon.start()) << daemon.log();
  std::size_t checked = 0;
  for (const auto& [id, content] : acknowledged) {
    auto reply = daemon.call("GET", "/messages/" + std::to_string(id));
    ASSERT_TRUE(reply);
    ASSERT_EQ(reply->status, 200) << "message " << id << " was acknowledged but is lost";
    EXPECT_EQ(json::value_to<std::string>(json::parse(reply->body).at("content")), content);
    ++checked;
  }
  EXPECT_EQ(checked, acknowledged.size());
  auto total = daemon.json("GET", "/health", 200).at("messages").at("total").as_int64();
  EXPECT_GE(total, static_cast<std::int64_t>(acknowledged.size()));
}

}  // namespace
}  // namespace sb::test

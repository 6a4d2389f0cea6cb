#include "store/write_queue.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>

#include "support/temp_dir.h"

namespace sb {
namespace {
namespace asio = boost::asio;

class WriteQueueTest : public ::testing::Test {
 protected:
  std::filesystem::path db() const { return dir_.path() / "test.db"; }
  test::TempDir dir_;
};

NewMessage text(std::string content) {
  NewMessage m;
  m.source = "test";
  m.content = std::move(content);
  return m;
}

TEST_F(WriteQueueTest, ConcurrentWritesShareCommitsAndAllResultsComeBack) {
  std::size_t commits_seen = 0;
  WriteQueue queue(open_sqlite_store(db()), 512,
                   [&](std::size_t, std::chrono::nanoseconds) { ++commits_seen; });
  asio::io_context io;
  std::vector<Seq> ids;
  constexpr int kWrites = 200;
  for (int i = 0; i < kWrites; ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> asio::awaitable<void> {
          auto add = [m = text("m" + std::to_string(i))](Store& s) { return s.add_message(m); };
          auto r = co_await queue.run(std::move(add));
          ids.push_back(r.message.id);
        },
        asio::detached);
  }
  io.run();
  queue.stop();
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kWrites));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end()) << "an id was handed out twice";
  auto stats = queue.stats();
  EXPECT_EQ(stats.writes, static_cast<std::uint64_t>(kWrites));
  // All 200 were queued before the writer could commit them one by one.
  EXPECT_LT(stats.commits, static_cast<std::uint64_t>(kWrites));
  EXPECT_EQ(commits_seen, stats.commits);
  EXPECT_EQ(open_sqlite_store(db())->counts().total, kWrites);
}

TEST_F(WriteQueueTest, AFailingWriteRethrowsInItsCallerAndOthersStillCommit) {
  WriteQueue queue(open_sqlite_store(db()));
  asio::io_context io;
  bool failed = false, stored = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await queue.run([](Store& s) -> int {
            s.add_message(text("rolled back"));
            throw std::runtime_error("boom");
          });
        } catch (const std::runtime_error& e) {
          failed = std::string(e.what()) == "boom";
        }
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await queue.run([](Store& s) { s.add_message(text("kept")); });
        stored = true;
      },
      asio::detached);
  io.run();
  queue.stop();
  EXPECT_TRUE(failed);
  EXPECT_TRUE(stored);
  auto store = open_sqlite_store(db());
  auto all = store->messages(MessageQuery{});
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].content, "kept");
  EXPECT_EQ(queue.stats().failed_writes, 1u);
}

TEST_F(WriteQueueTest, WritesAfterStopFailWithAStoreError) {
  WriteQueue queue(open_sqlite_store(db()));
  queue.stop();
  asio::io_context io;
  bool refused = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await queue.run([](Store& s) { s.add_message(text("late")); });
        } catch (const StoreError&) {
          refused = true;
        }
      },
      asio::detached);
  io.run();
  EXPECT_TRUE(refused);
}

}  // namespace
}  // namespace sb

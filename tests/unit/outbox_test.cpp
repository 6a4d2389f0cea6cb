#include "core/outbox.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "channels/http/http_channel.h"
#include "core/message_events.h"
#include "support/orchestrator_fixture.h"

namespace sb::core {
namespace {

using channels::SendOutcome;

// A channel that answers from a script and records what it was given.
class ScriptedChannel final : public channels::Channel {
 public:
  std::string_view name() const override { return "test"; }
  boost::asio::awaitable<SendOutcome> send(const OutboxItem& item) override {
    sent.push_back(item);
    if (answers.empty()) co_return SendOutcome{};
    SendOutcome next = answers.front();
    answers.erase(answers.begin());
    co_return next;
  }
  std::vector<SendOutcome> answers;
  std::vector<OutboxItem> sent;
};

class OutboxTest : public ::testing::Test, protected test::OrchestratorFixture {
 protected:
  OutboxTest()
      : outbox(io.get_executor(), reader, writer, metrics,
               OutboxOptions{.retry_base = std::chrono::milliseconds(50),
                             .retry_cap = std::chrono::milliseconds(200),
                             .max_attempts = 3}) {
    outbox.add_channel(channel);
  }
  ~OutboxTest() override {
    outbox.stop();
    settle(std::chrono::milliseconds(20));
  }

  void wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      settle(std::chrono::milliseconds(10));
    }
  }

  MetricsRegistry metrics;
  ScriptedChannel channel;
  Outbox outbox;
};

TEST_F(OutboxTest, AMessageIsDeliveredOnceAndMarkedSent) {
  run(outbox.start());
  auto item = run(outbox.enqueue_text("test:alice", "hello", "run-1:1"));
  wait_until([&] { return !channel.sent.empty(); }, std::chrono::seconds(2));
  ASSERT_EQ(channel.sent.size(), 1u);
  EXPECT_NE(channel.sent[0].payload_json.find("hello"), std::string::npos);
  wait_until([&] { return reader.outbox_item(item.id)->state == OutboxState::sent; },
             std::chrono::seconds(2));
  EXPECT_EQ(reader.outbox_item(item.id)->state, OutboxState::sent);
  // The same key again: nothing new is sent.
  run(outbox.enqueue_text("test:alice", "hello", "run-1:1"));
  settle(std::chrono::milliseconds(100));
  EXPECT_EQ(channel.sent.size(), 1u);
}

TEST_F(OutboxTest, TemporaryFailuresAreRetriedWithBackoffThenGiveUp) {
  channel.answers = {{SendOutcome::Kind::retry, "451 try later"},
                     {SendOutcome::Kind::retry, "451 try later"},
                     {SendOutcome::Kind::retry, "451 still"}};
  run(outbox.start());
  auto item = run(outbox.enqueue_text("test:alice", "hi", "k1"));
  wait_until([&] { return reader.outbox_item(item.id)->state == OutboxState::failed; },
             std::chrono::seconds(3));
  auto stored = reader.outbox_item(item.id);
  EXPECT_EQ(stored->state, OutboxState::failed);
  EXPECT_EQ(channel.sent.size(), 3u);
  EXPECT_EQ(stored->attempts, 3);
  ASSERT_TRUE(stored->last_error.has_value());
  EXPECT_NE(stored->last_error->find("451 still"), std::string::npos);
}

TEST_F(OutboxTest, APermanentFailureIsMarkedFailedWithTheRemotesAnswer) {
  channel.answers = {{SendOutcome::Kind::failed, "550 no such user"}};
  run(outbox.start());
  auto item = run(outbox.enqueue_text("test:nobody", "hi", "k2"));
  wait_until([&] { return reader.outbox_item(item.id)->state == OutboxState::failed; },
             std::chrono::seconds(2));
  EXPECT_EQ(reader.outbox_item(item.id)->last_error, "550 no such user");
  EXPECT_EQ(channel.sent.size(), 1u);
}

TEST_F(OutboxTest, AChatOfAnUnknownChannelFailsNamingIt) {
  run(outbox.start());
  auto item = run(outbox.enqueue_text("fax:123", "hi", "k3"));
  wait_until([&] { return reader.outbox_item(item.id)->state == OutboxState::failed; },
             std::chrono::seconds(2));
  auto stored = reader.outbox_item(item.id);
  ASSERT_TRUE(stored->last_error.has_value());
  EXPECT_NE(stored->last_error->find("fax"), std::string::npos);
}

TEST_F(OutboxTest, ARowLeftSendingByACrashIsSentAgainAtStart) {
  auto item = run(outbox.enqueue_text("test:alice", "again", "k4"));
  run([&]() -> boost::asio::awaitable<void> {
    auto crash = [id = item.id](Store& store) { store.mark_outbox_sending(id); };
    co_await writer.run(std::move(crash));
  }());
  run(outbox.start());
  wait_until([&] { return reader.outbox_item(item.id)->state == OutboxState::sent; },
             std::chrono::seconds(2));
  EXPECT_EQ(reader.outbox_item(item.id)->state, OutboxState::sent);
  EXPECT_EQ(channel.sent.size(), 1u);
}

TEST_F(OutboxTest, TheHttpChannelStoresTheReplyOnceAndWakesWaiters) {
  MessageEvents events(io.get_executor());
  channels::HttpChannel http(writer, events, "Andy");
  outbox.add_channel(http);
  bool woken = false;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        woken = co_await events.wait("http:alice", std::chrono::seconds(5));
      },
      boost::asio::detached);
  settle(std::chrono::milliseconds(10));
  EXPECT_EQ(events.waiters(), 1u);
  run(outbox.start());
  run(outbox.enqueue_text("http:alice", "the answer", "run-9:1"));
  wait_until([&] { return woken; }, std::chrono::seconds(2));
  EXPECT_TRUE(woken);
  MessageQuery query;
  query.chat = "http:alice";
  auto messages = reader.messages(query);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].content, "the answer");
  EXPECT_TRUE(messages[0].from_assistant);
  EXPECT_EQ(messages[0].sender, "Andy");
  // Delivering the same item again (a crash before it was marked sent) stores nothing twice.
  auto item = reader.outbox(std::nullopt, std::string_view("http:alice"), 1).at(0);
  auto again = run(http.send(item));
  EXPECT_EQ(again.kind, SendOutcome::Kind::sent);
  EXPECT_EQ(reader.messages(query).size(), 1u);
}

TEST(MessageEventsTest, AWaiterTimesOutWhenNothingArrivesForItsChat) {
  boost::asio::io_context io;
  MessageEvents events(io.get_executor());
  std::optional<bool> result;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        result = co_await events.wait("http:alice", std::chrono::milliseconds(50));
      },
      boost::asio::detached);
  io.run_for(std::chrono::milliseconds(5));
  Message other;
  other.chat = "http:bob";
  events.publish(other);
  io.run_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
  EXPECT_EQ(events.waiters(), 0u);
}

}  // namespace
}  // namespace sb::core

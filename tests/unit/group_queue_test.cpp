#include "core/group_queue.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/timer.h"

namespace sb::core {
namespace {

using namespace std::chrono_literals;
using Events = std::vector<std::string>;

// Records what the queue asks for ("messages:a", "task:a:t1", "close:a") and lets a test
// react from inside a call, as a real dispatcher may.
class RecordingDriver : public QueueDriver {
 public:
  void start_messages(const std::string& group) override {
    check_not_running(group);
    running.insert(group);
    events.push_back("messages:" + group);
    if (on_start_messages) on_start_messages(group);
  }
  void start_task(const std::string& group, const std::string& task_id) override {
    check_not_running(group);
    running.insert(group);
    events.push_back("task:" + group + ":" + task_id);
    if (on_start_task) on_start_task(group, task_id);
  }
  void request_close(const std::string& group) override {
    events.push_back("close:" + group);
    if (on_request_close) on_request_close(group);
  }

  // The events since the last call.
  Events take() { return std::exchange(events, {}); }

  Events events;
  std::set<std::string> running;  // the tests erase a group when they report finished()
  std::function<void(const std::string&)> on_start_messages;
  std::function<void(const std::string&, const std::string&)> on_start_task;
  std::function<void(const std::string&)> on_request_close;

 private:
  void check_not_running(const std::string& group) {
    if (running.contains(group)) ADD_FAILURE() << "second run started for " << group;
  }
};

// Reports the end of a group's run, as the dispatcher does.
void finish(GroupQueue& queue, RecordingDriver& driver, const std::string& group,
            bool success = true) {
  driver.running.erase(group);
  queue.finished(group, success);
}

class GroupQueueTest : public ::testing::Test {
 protected:
  void finish(const std::string& group, bool success = true) {
    core::finish(queue, driver, group, success);
  }

  RecordingDriver driver;
  ManualTimer timer;
  GroupQueue queue{driver, timer};
};

TEST_F(GroupQueueTest, StartsMessagesRunAtOnceForAnIdleGroupWithAFreeSlot) {
  queue.enqueue_messages("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});
  EXPECT_TRUE(queue.is_active("a"));
  EXPECT_EQ(queue.active_kind("a"), RunKind::messages);
  EXPECT_TRUE(queue.accepts_input("a"));
  EXPECT_EQ(queue.active_count(), 1);
}

TEST_F(GroupQueueTest, MessagesForAnActiveGroupRunAfterItInsteadOfBeside) {
  queue.enqueue_messages("a");
  queue.enqueue_messages("a");
  queue.enqueue_messages("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});
  EXPECT_EQ(queue.active_count(), 1);

  finish("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});  // one run for everything that waited
  finish("a");
  EXPECT_EQ(driver.take(), Events{});
  EXPECT_FALSE(queue.is_active("a"));
  EXPECT_EQ(queue.active_count(), 0);
}

TEST_F(GroupQueueTest, RunsAtMostMaxConcurrentAndStartsWaitingGroupsInArrivalOrder) {
  for (const char* group : {"g1", "g2", "g3", "g4", "g5", "g6", "g7"}) {
    queue.enqueue_messages(group);
  }
  EXPECT_EQ(driver.take(),
            (Events{"messages:g1", "messages:g2", "messages:g3", "messages:g4", "messages:g5"}));
  EXPECT_EQ(queue.active_count(), 5);
  EXPECT_EQ(queue.waiting_groups(), (std::vector<std::string>{"g6", "g7"}));
  EXPECT_FALSE(queue.is_active("g6"));

  queue.enqueue_messages("g6");  // already waiting: keeps its place, listed once
  queue.enqueue_task("g6", "t");
  EXPECT_EQ(queue.waiting_groups(), (std::vector<std::string>{"g6", "g7"}));

  finish("g3");
  EXPECT_EQ(driver.take(), Events{"task:g6:t"});  // a waiting group starts with its tasks
  EXPECT_EQ(queue.waiting_groups(), std::vector<std::string>{"g7"});
  EXPECT_EQ(queue.active_count(), 5);

  finish("g1");
  EXPECT_EQ(driver.take(), Events{"messages:g7"});
  EXPECT_TRUE(queue.waiting_groups().empty());

  finish("g6");  // its messages still wait, and a slot is free: they run now
  EXPECT_EQ(driver.take(), Events{"messages:g6"});
  finish("g2");
  EXPECT_EQ(driver.take(), Events{});
  EXPECT_EQ(queue.active_count(), 4);
}

TEST_F(GroupQueueTest, OneRunPerGroupEvenWithFreeSlots) {
  queue.enqueue_task("a", "t1");
  queue.enqueue_messages("a");
  queue.enqueue_task("a", "t2");
  EXPECT_EQ(driver.take(), Events{"task:a:t1"});
  EXPECT_EQ(queue.active_count(), 1);
  EXPECT_TRUE(queue.waiting_groups().empty());
}

TEST_F(GroupQueueTest, AfterARunTheGroupsTasksInOrderGoBeforeItsMessages) {
  queue.enqueue_messages("a");
  queue.enqueue_messages("a");
  queue.enqueue_task("a", "t1");
  queue.enqueue_task("a", "t2");
  EXPECT_EQ(driver.take(), Events{"messages:a"});

  finish("a");
  EXPECT_EQ(driver.take(), Events{"task:a:t1"});
  EXPECT_EQ(queue.active_kind("a"), RunKind::task);
  EXPECT_FALSE(queue.accepts_input("a"));  // messages are not piped to a task run
  finish("a");
  EXPECT_EQ(driver.take(), Events{"task:a:t2"});
  finish("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});
  finish("a");
  EXPECT_EQ(driver.take(), Events{});
}

TEST_F(GroupQueueTest, TheGroupsOwnPendingWorkTakesItsSlotBeforeWaitingGroups) {
  RecordingDriver small_driver;
  GroupQueue small{small_driver, timer, QueueOptions{.max_concurrent = 1}};
  small.enqueue_messages("a");
  small.enqueue_messages("b");
  small.enqueue_task("a", "t");
  EXPECT_EQ(small_driver.take(), Events{"messages:a"});

  core::finish(small, small_driver, "a", true);
  EXPECT_EQ(small_driver.take(), Events{"task:a:t"});
  EXPECT_EQ(small.waiting_groups(), std::vector<std::string>{"b"});
  core::finish(small, small_driver, "a", true);
  EXPECT_EQ(small_driver.take(), Events{"messages:b"});
}

TEST_F(GroupQueueTest, IgnoresATaskAlreadyPendingOrRunning) {
  queue.enqueue_task("a", "t1");  // runs
  queue.enqueue_task("a", "t1");  // running: ignored
  queue.enqueue_task("a", "t2");  // pending
  queue.enqueue_task("a", "t2");  // pending: ignored
  queue.enqueue_task("b", "t1");  // another group's task of the same id is its own
  EXPECT_EQ(driver.take(), (Events{"task:a:t1", "task:b:t1"}));
  EXPECT_EQ(queue.snapshot()[0].pending_tasks, 1u);

  finish("a");
  EXPECT_EQ(driver.take(), Events{"task:a:t2"});
  finish("a");
  EXPECT_EQ(driver.take(), Events{});

  queue.enqueue_task("a", "t1");  // no longer running: runs again
  EXPECT_EQ(driver.take(), Events{"task:a:t1"});
}

TEST_F(GroupQueueTest, AsksAnIdleAgentToCloseWhenATaskArrives) {
  queue.enqueue_messages("a");
  queue.agent_idle("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});  // idle alone closes nothing

  queue.enqueue_task("a", "t");
  EXPECT_EQ(driver.take(), Events{"close:a"});
  EXPECT_TRUE(queue.is_active("a"));
  EXPECT_FALSE(queue.accepts_input("a"));  // new messages now wait for a new run

  queue.enqueue_task("a", "u");
  queue.agent_idle("a");
  EXPECT_EQ(driver.take(), Events{});  // asked once per run

  finish("a");
  EXPECT_EQ(driver.take(), Events{"task:a:t"});
}

TEST_F(GroupQueueTest, AsksTheAgentToCloseWhenItGoesIdleWithATaskWaiting) {
  queue.enqueue_messages("a");
  queue.enqueue_task("a", "t");
  EXPECT_EQ(driver.take(), Events{"messages:a"});  // busy agent: not interrupted

  queue.agent_idle("a");
  EXPECT_EQ(driver.take(), Events{"close:a"});
}

TEST_F(GroupQueueTest, DoesNotCloseAnAgentThatGotInputAgain) {
  queue.enqueue_messages("a");
  queue.agent_idle("a");
  queue.agent_busy("a");  // a message was piped to it
  queue.enqueue_task("a", "t");
  EXPECT_EQ(driver.take(), Events{"messages:a"});
  EXPECT_TRUE(queue.accepts_input("a"));

  queue.agent_idle("a");
  EXPECT_EQ(driver.take(), Events{"close:a"});
}

TEST_F(GroupQueueTest, IdlenessOfOneRunDoesNotCarryIntoTheNext) {
  queue.enqueue_messages("a");
  queue.agent_idle("a");
  queue.enqueue_messages("a");
  finish("a");
  EXPECT_EQ(driver.take(), (Events{"messages:a", "messages:a"}));

  queue.enqueue_task("a", "t");  // the new run has not gone idle
  EXPECT_EQ(driver.take(), Events{});
}

TEST_F(GroupQueueTest, RetriesAFailedMessageRunAfter5_10_20_40_80SecondsThenEvery80) {
  queue.enqueue_messages("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});

  for (const auto delay : {5s, 10s, 20s, 40s, 80s, 80s, 80s}) {
    finish("a", false);
    EXPECT_FALSE(queue.is_active("a"));
    EXPECT_EQ(timer.next_due_in(), delay);
    timer.advance(delay - 1ms);
    EXPECT_EQ(driver.take(), Events{}) << "retry before " << delay.count() << " s";
    timer.advance(1ms);
    EXPECT_EQ(driver.take(), Events{"messages:a"}) << "retry at " << delay.count() << " s";
  }
  EXPECT_EQ(timer.now(), 315s);
  EXPECT_EQ(queue.failures("a"), 7);

  finish("a", true);  // the provider is back: answered, and the count starts afresh
  EXPECT_EQ(queue.failures("a"), 0);
  EXPECT_EQ(timer.pending(), 0u);
  queue.enqueue_messages("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});
  finish("a", false);
  EXPECT_EQ(timer.next_due_in(), 5s);
}

TEST_F(GroupQueueTest, SuccessResetsTheRetryCount) {
  queue.enqueue_messages("a");
  finish("a", false);
  timer.advance(5s);
  finish("a", false);
  EXPECT_EQ(timer.next_due_in(), 10s);
  EXPECT_EQ(queue.snapshot()[0].failures, 2);
  timer.advance(10s);
  finish("a", true);
  EXPECT_EQ(queue.snapshot()[0].failures, 0);
  EXPECT_EQ(timer.pending(), 0u);

  queue.enqueue_messages("a");
  finish("a", false);
  EXPECT_EQ(timer.next_due_in(), 5s);
}

TEST_F(GroupQueueTest, NewMessagesDuringAScheduledRetryStartNowAndTheRetryDoesNotStartTwice) {
  queue.enqueue_messages("a");
  finish("a", false);
  driver.take();
  ASSERT_EQ(timer.pending(), 1u);

  timer.advance(2s);
  queue.enqueue_messages("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});
  EXPECT_EQ(timer.pending(), 0u);  // the run replaced the retry
  timer.advance(1h);
  EXPECT_EQ(driver.take(), Events{});

  finish("a", false);  // the failures still count
  EXPECT_EQ(timer.next_due_in(), 10s);
}

TEST_F(GroupQueueTest, MessagesArrivingDuringAFailingRunStartAgainAtOnce) {
  queue.enqueue_messages("a");
  queue.enqueue_messages("a");
  finish("a", false);
  EXPECT_EQ(driver.take(), (Events{"messages:a", "messages:a"}));
  EXPECT_EQ(timer.pending(), 0u);
  timer.advance(1h);
  EXPECT_EQ(driver.take(), Events{});
}

TEST_F(GroupQueueTest, ARetryDueDuringATaskRunRunsAfterTheTask) {
  queue.enqueue_messages("a");
  queue.enqueue_task("a", "t");
  finish("a", false);
  EXPECT_EQ(driver.take(), (Events{"messages:a", "task:a:t"}));

  timer.advance(5s);
  EXPECT_EQ(driver.take(), Events{});
  finish("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});
}

TEST_F(GroupQueueTest, ARetryDueWhileAllSlotsAreTakenWaitsForASlot) {
  RecordingDriver small_driver;
  GroupQueue small{small_driver, timer, QueueOptions{.max_concurrent = 1}};
  small.enqueue_messages("a");
  core::finish(small, small_driver, "a", false);
  small.enqueue_messages("b");
  small_driver.take();

  timer.advance(5s);
  EXPECT_EQ(small.waiting_groups(), std::vector<std::string>{"a"});
  small.enqueue_messages("a");
  EXPECT_EQ(small.waiting_groups(), std::vector<std::string>{"a"});
  core::finish(small, small_driver, "b", true);
  EXPECT_EQ(small_driver.take(), Events{"messages:a"});
}

TEST_F(GroupQueueTest, AFailedTaskRunIsNotRetried) {
  queue.enqueue_task("a", "t");
  finish("a", false);
  EXPECT_EQ(timer.pending(), 0u);
  timer.advance(1h);
  EXPECT_EQ(driver.take(), Events{"task:a:t"});
}

TEST_F(GroupQueueTest, ShutdownStartsNothingAndCancelsRetries) {
  for (const char* group : {"g1", "g2", "g3", "g4", "g5", "g6"}) queue.enqueue_messages(group);
  queue.enqueue_task("g1", "t");
  finish("g2", false);  // its retry is scheduled; g6 takes the slot
  driver.take();
  ASSERT_EQ(timer.pending(), 1u);

  queue.shutdown();
  EXPECT_TRUE(queue.is_shut_down());
  EXPECT_EQ(timer.pending(), 0u);

  queue.enqueue_messages("new");
  queue.enqueue_task("new", "t");
  finish("g1");  // its pending task does not start
  finish("g3", false);
  timer.advance(1h);
  EXPECT_EQ(driver.take(), Events{});
  EXPECT_EQ(queue.active_count(), 3);
  EXPECT_EQ(timer.pending(), 0u);
}

TEST_F(GroupQueueTest, FinishedForAGroupWithoutARunIsIgnored) {
  queue.finished("unknown", true);
  queue.enqueue_messages("a");
  finish("a");
  queue.finished("a", false);  // a second report of the same run
  EXPECT_EQ(queue.active_count(), 0);
  EXPECT_EQ(timer.pending(), 0u);
  EXPECT_EQ(driver.take(), Events{"messages:a"});
}

TEST_F(GroupQueueTest, SnapshotShowsEachGroupsState) {
  RecordingDriver small_driver;
  GroupQueue small{small_driver, timer, QueueOptions{.max_concurrent = 1}};
  small.enqueue_task("b", "t1");
  small.enqueue_task("b", "t2");
  small.agent_idle("b");
  small.enqueue_messages("a");
  small.enqueue_messages("b");

  const auto groups = small.snapshot();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].group, "a");
  EXPECT_FALSE(groups[0].active_kind);
  EXPECT_TRUE(groups[0].pending_messages);
  EXPECT_TRUE(groups[0].waiting);
  EXPECT_EQ(groups[1].group, "b");
  EXPECT_EQ(groups[1].active_kind, RunKind::task);
  EXPECT_EQ(groups[1].running_task, "t1");
  EXPECT_TRUE(groups[1].idle);
  EXPECT_TRUE(groups[1].close_requested);
  EXPECT_EQ(groups[1].pending_tasks, 1u);
  EXPECT_TRUE(groups[1].pending_messages);
  EXPECT_FALSE(groups[1].waiting);
  EXPECT_EQ(groups[1].failures, 0);
  EXPECT_FALSE(groups[1].retry_scheduled);
  EXPECT_EQ(to_string(RunKind::task), "task");
}

TEST_F(GroupQueueTest, RejectsOptionsOutOfRange) {
  EXPECT_THROW(GroupQueue(driver, timer, {.max_concurrent = 0}), std::invalid_argument);
  EXPECT_THROW(GroupQueue(driver, timer, {.retry_base = 0ms}), std::invalid_argument);
  EXPECT_THROW(GroupQueue(driver, timer, {.max_retries = -1}), std::invalid_argument);
  EXPECT_THROW(GroupQueue(driver, timer, {.max_retries = 31}), std::invalid_argument);
}

TEST_F(GroupQueueTest, ZeroRetriesRetriesEveryRetryBase) {
  RecordingDriver other_driver;
  GroupQueue no_retries{other_driver, timer, QueueOptions{.max_retries = 0}};
  no_retries.enqueue_messages("a");
  for (int i = 0; i < 3; ++i) {
    other_driver.running.erase("a");
    no_retries.finished("a", false);
    EXPECT_EQ(timer.next_due_in(), 5s);
    timer.advance(5s);
  }
  EXPECT_EQ(no_retries.failures("a"), 3);
}

TEST_F(GroupQueueTest, AWaitingGroupGetsTheSlotOfTheLongestIdleAgent) {
  RecordingDriver two_driver;
  GroupQueue two{two_driver, timer, QueueOptions{.max_concurrent = 2}};
  two.enqueue_messages("a");
  two.enqueue_messages("b");
  two.agent_idle("b");  // b went idle first
  std::this_thread::sleep_for(2ms);
  two.agent_idle("a");
  EXPECT_EQ(two_driver.take(), (Events{"messages:a", "messages:b"}));  // nobody waits yet

  two.enqueue_messages("c");  // no free slot: the longest idle agent is asked to close
  EXPECT_EQ(two_driver.take(), Events{"close:b"});
  two.enqueue_messages("d");  // a second waiting group: the next idle one
  EXPECT_EQ(two_driver.take(), Events{"close:a"});
  two.enqueue_messages("e");  // nobody else is idle: e waits for a run to end
  EXPECT_EQ(two_driver.take(), Events{});

  two_driver.running.erase("b");
  two.finished("b", true);
  EXPECT_EQ(two_driver.take(), Events{"messages:c"});
  two.agent_idle("c");  // e still waits: c gives its slot up as soon as it answered
  EXPECT_EQ(two_driver.take(), Events{"close:c"});
}

TEST_F(GroupQueueTest, AnAgentThatGoesIdleWhileAGroupWaitsIsAskedToClose) {
  RecordingDriver one_driver;
  GroupQueue one{one_driver, timer, QueueOptions{.max_concurrent = 1}};
  one.enqueue_messages("a");
  one.enqueue_messages("b");  // a is busy: b waits, nothing to close
  EXPECT_EQ(one_driver.take(), Events{"messages:a"});
  one.agent_busy("a");
  one.agent_idle("a");
  EXPECT_EQ(one_driver.take(), Events{"close:a"});
  one.agent_idle("a");  // asked once per run
  EXPECT_EQ(one_driver.take(), Events{});
  EXPECT_FALSE(one.accepts_input("a"));  // new messages for a wait for its next run
}

// A driver that calls back into the queue from inside its calls, as a dispatcher that
// fails a start synchronously or enqueues what it finds would.
TEST_F(GroupQueueTest, ADriverEnqueuingFromInsideAStartGetsNoSecondRun) {
  driver.on_start_messages = [&](const std::string& group) {
    if (group == "a") {
      queue.enqueue_messages("a");
      queue.enqueue_messages("b");
    }
  };
  queue.enqueue_messages("a");
  EXPECT_EQ(driver.take(), (Events{"messages:a", "messages:b"}));
  EXPECT_EQ(queue.active_count(), 2);

  driver.on_start_messages = nullptr;
  finish("a");
  EXPECT_EQ(driver.take(), Events{"messages:a"});
}

TEST_F(GroupQueueTest, AStartThatFailsSynchronouslyFreesItsSlot) {
  RecordingDriver small_driver;
  GroupQueue small{small_driver, timer, QueueOptions{.max_concurrent = 1}};
  small_driver.on_start_messages = [&](const std::string& group) {
    if (group == "a") {
      core::finish(small, small_driver, group, false);
    }
  };
  small.enqueue_messages("x");  // takes the only slot
  small.enqueue_messages("a");
  small.enqueue_messages("b");
  EXPECT_EQ(small.waiting_groups(), (std::vector<std::string>{"a", "b"}));

  core::finish(small, small_driver, "x", true);
  EXPECT_EQ(small_driver.take(), (Events{"messages:x", "messages:a", "messages:b"}));
  EXPECT_EQ(small.active_count(), 1);
  EXPECT_TRUE(small.is_active("b"));
  EXPECT_FALSE(small.is_active("a"));
  EXPECT_EQ(timer.next_due_in(), 5s);  // a's failure is retried

  small_driver.on_start_messages = nullptr;
  core::finish(small, small_driver, "b", true);
  timer.advance(5s);
  EXPECT_EQ(small_driver.take(), (Events{"messages:a"}));
}

TEST_F(GroupQueueTest, TasksFinishingSynchronouslyRunInOrderWithoutRecursionTrouble) {
  driver.on_start_task = [&](const std::string& group, const std::string&) { finish(group); };
  queue.enqueue_messages("a");
  queue.enqueue_task("a", "t1");
  queue.enqueue_task("a", "t2");
  queue.enqueue_task("a", "t3");
  finish("a");
  EXPECT_EQ(driver.take(), (Events{"messages:a", "task:a:t1", "task:a:t2", "task:a:t3"}));
  EXPECT_EQ(queue.active_count(), 0);
}

TEST_F(GroupQueueTest, ACloseRequestAnsweredSynchronouslyStartsTheTask) {
  driver.on_request_close = [&](const std::string& group) { finish(group); };
  queue.enqueue_messages("a");
  queue.agent_idle("a");
  queue.enqueue_task("a", "t");
  EXPECT_EQ(driver.take(), (Events{"messages:a", "close:a", "task:a:t"}));
  EXPECT_EQ(queue.active_kind("a"), RunKind::task);
}

TEST_F(GroupQueueTest, ShutdownFromInsideAStartStopsTheRestFromStarting) {
  RecordingDriver small_driver;
  GroupQueue small{small_driver, timer, QueueOptions{.max_concurrent = 1}};
  small.enqueue_messages("x");
  small.enqueue_messages("a");
  small.enqueue_messages("b");
  small_driver.on_start_messages = [&](const std::string& group) {
    core::finish(small, small_driver, group, true);
    small.shutdown();
  };
  core::finish(small, small_driver, "x", true);
  EXPECT_EQ(small_driver.take(), (Events{"messages:x", "messages:a"}));
  EXPECT_EQ(small.active_count(), 0);
}

// Random operations against a driver that checks exclusivity; after every step the queue's
// bookkeeping must agree with what the driver was told.
TEST_F(GroupQueueTest, KeepsItsGuaranteesUnderRandomOperations) {
  // Thousands of retry notices would drown the output.
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::warn);
  struct RestoreLevel {
    spdlog::level::level_enum level;
    ~RestoreLevel() { spdlog::set_level(level); }
  } restore{level};
  std::mt19937 random(20240611);
  const std::vector<std::string> groups{"a", "b", "c", "d", "e", "f", "g", "h"};
  RecordingDriver fuzz_driver;
  GroupQueue fuzz{fuzz_driver, timer, QueueOptions{.max_concurrent = 3}};
  std::size_t starts = 0;
  for (int step = 0; step < 20000; ++step) {
    const auto& group = groups[random() % groups.size()];
    switch (random() % 6) {
      case 0:
        fuzz.enqueue_messages(group);
        break;
      case 1:
        fuzz.enqueue_task(group, "t" + std::to_string(random() % 3));
        break;
      case 2:
        if (fuzz_driver.running.contains(group)) {
          core::finish(fuzz, fuzz_driver, group, random() % 3 != 0);
        }
        break;
      case 3:
        fuzz.agent_idle(group);
        break;
      case 4:
        fuzz.agent_busy(group);
        break;
      case 5:
        timer.advance(std::chrono::milliseconds(random() % 20000));
        break;
    }
    ASSERT_EQ(fuzz.active_count(), static_cast<int>(fuzz_driver.running.size()));
    ASSERT_LE(fuzz.active_count(), 3);
    const auto waiting = fuzz.waiting_groups();
    ASSERT_EQ(std::set<std::string>(waiting.begin(), waiting.end()).size(), waiting.size());
    for (const auto& name : waiting) ASSERT_FALSE(fuzz.is_active(name));
    // Free slots and waiting groups never coexist.
    if (!waiting.empty()) {
      ASSERT_EQ(fuzz.active_count(), 3);
    }
    for (const auto& status : fuzz.snapshot()) {
      ASSERT_EQ(status.active_kind.has_value(), fuzz_driver.running.contains(status.group));
      ASSERT_LE(status.pending_tasks, 3u);
    }
    starts += fuzz_driver.take().size();
  }
  EXPECT_GT(starts, 1000u);

  // Nothing is lost: once every run succeeds, all pending work drains.
  for (int round = 0; round < 1000 && (!fuzz_driver.running.empty() || timer.pending() > 0);
       ++round) {
    while (!fuzz_driver.running.empty()) {
      const std::string group = *fuzz_driver.running.begin();  // a copy: finish() erases it
      core::finish(fuzz, fuzz_driver, group, true);
    }
    timer.advance(1h);
  }
  EXPECT_EQ(fuzz.active_count(), 0);
  EXPECT_TRUE(fuzz.waiting_groups().empty());
  for (const auto& status : fuzz.snapshot()) {
    EXPECT_EQ(status.pending_tasks, 0u) << status.group;
    EXPECT_FALSE(status.pending_messages) << status.group;
    EXPECT_FALSE(status.retry_scheduled) << status.group;
  }
}

TEST(ManualTimerTest, RunsCallbacksInDueOrderAtTheirDueTime) {
  ManualTimer timer;
  std::vector<std::string> fired;
  timer.after(30ms, [&] { fired.push_back("30@" + std::to_string(timer.now().count())); });
  timer.after(10ms, [&] { fired.push_back("10a@" + std::to_string(timer.now().count())); });
  timer.after(10ms, [&] { fired.push_back("10b@" + std::to_string(timer.now().count())); });
  EXPECT_EQ(timer.pending(), 3u);
  EXPECT_EQ(timer.next_due_in(), 10ms);

  timer.advance(9ms);
  EXPECT_TRUE(fired.empty());
  timer.advance(25ms);
  EXPECT_EQ(fired, (std::vector<std::string>{"10a@10", "10b@10", "30@30"}));
  EXPECT_EQ(timer.now(), 34ms);
  EXPECT_EQ(timer.pending(), 0u);
  EXPECT_EQ(timer.next_due_in(), -1ms);
}

TEST(ManualTimerTest, RunsCallbacksScheduledWhileAdvancingWhenTheyFallDue) {
  ManualTimer timer;
  std::vector<std::int64_t> fired;
  timer.after(10ms, [&] {
    fired.push_back(timer.now().count());
    timer.after(5ms, [&] { fired.push_back(timer.now().count()); });   // due at 15: runs
    timer.after(50ms, [&] { fired.push_back(timer.now().count()); });  // due at 60: later
  });
  timer.advance(20ms);
  EXPECT_EQ(fired, (std::vector<std::int64_t>{10, 15}));
  EXPECT_EQ(timer.pending(), 1u);
  timer.advance(40ms);
  EXPECT_EQ(fired, (std::vector<std::int64_t>{10, 15, 60}));
}

TEST(ManualTimerTest, CancelledCallbacksDoNotRun) {
  ManualTimer timer;
  int fired = 0;
  const auto first = timer.after(10ms, [&] { ++fired; });
  Timer::Handle second = 0;
  timer.after(5ms, [&] { timer.cancel(second); });
  second = timer.after(10ms, [&] { ++fired; });
  timer.cancel(first);
  timer.cancel(first);  // twice: ignored
  timer.cancel(999);    // unknown: ignored
  timer.advance(1s);
  EXPECT_EQ(fired, 0);
  EXPECT_NE(first, second);
  EXPECT_NE(first, 0u);
}

TEST(AsioTimerTest, RunsTheCallbackOnTheIoContextAfterTheDelay) {
  boost::asio::io_context io;
  AsioTimer timer(io.get_executor());
  int fired = 0;
  const auto start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration took{};
  timer.after(20ms, [&] {
    ++fired;
    took = std::chrono::steady_clock::now() - start;
  });
  EXPECT_EQ(fired, 0);  // never synchronously
  EXPECT_EQ(timer.pending(), 1u);
  io.run_for(2s);
  EXPECT_EQ(fired, 1);
  EXPECT_GE(took, 20ms);
  EXPECT_EQ(timer.pending(), 0u);
}

TEST(AsioTimerTest, CancelledCallbacksDoNotRun) {
  boost::asio::io_context io;
  AsioTimer timer(io.get_executor());
  std::vector<std::string> fired;
  const auto cancelled = timer.after(10ms, [&] { fired.push_back("cancelled"); });
  Timer::Handle cancelled_by_earlier = 0;
  timer.after(5ms, [&] {
    fired.push_back("first");
    timer.cancel(cancelled_by_earlier);
  });
  cancelled_by_earlier = timer.after(30ms, [&] { fired.push_back("cancelled too"); });
  timer.after(40ms, [&] { fired.push_back("last"); });
  timer.cancel(cancelled);
  timer.cancel(12345);
  io.run_for(2s);
  EXPECT_EQ(fired, (std::vector<std::string>{"first", "last"}));
  EXPECT_EQ(timer.pending(), 0u);
}

TEST(AsioTimerTest, NothingRunsAfterTheTimerIsDestroyed) {
  boost::asio::io_context io;
  int fired = 0;
  {
    AsioTimer timer(io.get_executor());
    timer.after(0ms, [&] { ++fired; });
    io.run_for(50ms);  // the callback is due and runs
    timer.after(0ms, [&] { ++fired; });
  }
  io.run_for(50ms);
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace sb::core

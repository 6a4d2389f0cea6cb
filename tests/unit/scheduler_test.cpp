#include "core/scheduler.h"

#include <gtest/gtest.h>

#include "common/time.h"
#include "support/orchestrator_fixture.h"

namespace sb::core {
namespace {

class SchedulerTest : public ::testing::Test, protected test::OrchestratorFixture {
 protected:
  SchedulerTest()
      : scheduler(io.get_executor(), reader, writer, load_time_zone("UTC").value(),
                  [this](const std::string& folder, const std::string& id) {
                    enqueued.emplace_back(folder, id);
                  }) {}
  ~SchedulerTest() override { scheduler.stop(); }

  NewTask task(std::string type, std::string value) {
    return NewTask{.group_folder = "family",
                   .chat_jid = "http:alice",
                   .prompt = "water the plants",
                   .schedule_type = std::move(type),
                   .schedule_value = std::move(value)};
  }

  // Waits (running the io_context) until `n` tasks were enqueued or `limit` passes.
  bool wait_for_enqueued(std::size_t n, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (enqueued.size() < n && std::chrono::steady_clock::now() < deadline)
      settle(std::chrono::milliseconds(10));
    return enqueued.size() >= n;
  }

  std::vector<std::pair<std::string, std::string>> enqueued;
  Scheduler scheduler;
};

TEST_F(SchedulerTest, InvalidSchedulesAreRefusedSayingWhatIsValid) {
  auto bad_cron = run(scheduler.add(task("cron", "61 * * * *")));
  ASSERT_FALSE(bad_cron.ok());
  EXPECT_NE(bad_cron.error().message.find("minute"), std::string::npos) << bad_cron.error().message;
  auto bad_type = run(scheduler.add(task("weekly", "x")));
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.error().message.find("cron"), std::string::npos);
  auto short_interval = run(scheduler.add(task("interval", "10")));
  EXPECT_FALSE(short_interval.ok());
  auto bad_mode = task("interval", "60000");
  bad_mode.context_mode = "shared";
  EXPECT_FALSE(run(scheduler.add(bad_mode)).ok());
  EXPECT_TRUE(reader.tasks(std::nullopt).empty());
}

TEST_F(SchedulerTest, ANewTaskGetsItsFirstRunInUtcAndIsStored) {
  auto added = run(scheduler.add(task("cron", "0 9 * * *")));
  ASSERT_TRUE(added.ok()) << added.error().message;
  ASSERT_TRUE(added->next_run.has_value());
  EXPECT_NE(added->next_run->find("T09:00:00"), std::string::npos) << *added->next_run;
  auto stored = reader.task(added->id);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->status, TaskStatus::active);
  EXPECT_EQ(stored->schedule_value, "0 9 * * *");
}

TEST_F(SchedulerTest, ADueTaskIsHandedOutOnceWithoutPolling) {
  auto added =
      run(scheduler.add(task("once", format_iso8601(now_utc() + std::chrono::milliseconds(150)))));
  ASSERT_TRUE(added.ok());
  run(scheduler.start());
  EXPECT_TRUE(enqueued.empty()) << "not due yet";
  ASSERT_TRUE(wait_for_enqueued(1, std::chrono::seconds(3)));
  EXPECT_EQ(enqueued[0], (std::pair<std::string, std::string>{"family", added->id}));
  // Claimed: no next run until the run is recorded, so it is not handed out again.
  EXPECT_FALSE(reader.task(added->id)->next_run.has_value());
  settle(std::chrono::milliseconds(200));
  EXPECT_EQ(enqueued.size(), 1u);
}

TEST_F(SchedulerTest, AFinishedOnceTaskIsCompletedAndLogged) {
  auto added = run(scheduler.add(task("once", "2020-01-01T00:00:00Z")));
  ASSERT_TRUE(added.ok());
  run(scheduler.finish_run(*added, now_utc(), true, std::string("done"), std::nullopt));
  auto stored = reader.task(added->id);
  EXPECT_EQ(stored->status, TaskStatus::completed);
  EXPECT_FALSE(stored->next_run.has_value());
  auto runs = reader.task_runs(added->id, 10);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, "success");
  EXPECT_EQ(runs[0].result, "done");
}

TEST_F(SchedulerTest, AnOverdueIntervalTaskRunsOnceThenContinuesFromNow) {
  auto added = run(scheduler.add(task("interval", "3600000")));
  ASSERT_TRUE(added.ok());
  // As if the daemon had been down for a day: the task is long overdue.
  run([&]() -> boost::asio::awaitable<void> {
    auto overdue = [id = added->id](Store& store) {
      store.set_task_next_run(id, std::string("2020-01-01T00:00:00.000Z"));
    };
    co_await writer.run(std::move(overdue));
  }());
  run(scheduler.start());
  ASSERT_TRUE(wait_for_enqueued(1, std::chrono::seconds(2)));
  settle(std::chrono::milliseconds(100));
  EXPECT_EQ(enqueued.size(), 1u) << "one run, not one per missed hour";
  run(scheduler.finish_run(*reader.task(added->id), now_utc(), false, std::nullopt,
                           std::string("boom")));
  auto stored = reader.task(added->id);
  EXPECT_EQ(stored->status, TaskStatus::active);
  ASSERT_TRUE(stored->next_run.has_value());
  const auto next = parse_iso8601(*stored->next_run);
  ASSERT_TRUE(next.has_value());
  EXPECT_GT(*next, now_utc() + std::chrono::minutes(59));
  EXPECT_EQ(reader.task_runs(added->id, 10).at(0).error, "boom");
}

TEST_F(SchedulerTest, ATaskClaimedBeforeACrashRunsOnceAtTheNextStart) {
  auto added = run(scheduler.add(task("interval", "3600000")));
  ASSERT_TRUE(added.ok());
  run([&]() -> boost::asio::awaitable<void> {
    auto claim = [id = added->id](Store& store) { store.set_task_next_run(id, std::nullopt); };
    co_await writer.run(std::move(claim));
  }());
  run(scheduler.start());
  ASSERT_TRUE(wait_for_enqueued(1, std::chrono::seconds(2)));
  EXPECT_EQ(enqueued[0].second, added->id);
}

TEST_F(SchedulerTest, PausedTasksDoNotRunAndResumeContinuesFromNow) {
  auto added = run(scheduler.add(task("once", "2020-01-01T00:00:00Z")));
  ASSERT_TRUE(added.ok());
  EXPECT_FALSE(run(scheduler.pause(added->id)).has_value());
  EXPECT_EQ(reader.task(added->id)->status, TaskStatus::paused);
  run(scheduler.start());
  settle(std::chrono::milliseconds(100));
  EXPECT_TRUE(enqueued.empty());
  EXPECT_FALSE(run(scheduler.resume(added->id)).has_value());
  ASSERT_TRUE(wait_for_enqueued(1, std::chrono::seconds(2)));
  EXPECT_FALSE(run(scheduler.cancel(added->id)).has_value());
  EXPECT_EQ(reader.task(added->id)->status, TaskStatus::cancelled);
  auto again = run(scheduler.resume(added->id));
  ASSERT_TRUE(again.has_value());
  EXPECT_NE(again->find("cancelled"), std::string::npos);
  EXPECT_TRUE(run(scheduler.pause("task-nope")).has_value());
}

}  // namespace
}  // namespace sb::core

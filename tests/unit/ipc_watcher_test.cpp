#include "host/ipc_watcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "host/ipc_files.h"
#include "support/temp_dir.h"

namespace sb::host {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_plain(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string message_json(std::string_view chat, std::string_view text) {
  return std::string(R"({"type":"message","chatJid":")") + std::string(chat) + R"(","text":")" +
         std::string(text) + "\"}";
}

// What the handler saw: the source folder and a short description of the request.
struct Handled {
  std::string folder;
  bool is_main;
  std::string what;
  bool operator==(const Handled&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Handled& h) {
  return out << h.folder << (h.is_main ? "(main)" : "") << ":" << h.what;
}

class IpcWatcherTest : public ::testing::Test {
 protected:
  IpcWatcherTest() {
    for (const char* folder : {"main", "alice", "bob"}) {
      auto made = ensure_group_ipc_dirs(root_, folder);
      EXPECT_TRUE(made.ok());
    }
    IpcView view;
    view.group_of_chat = [this](std::string_view chat) -> std::optional<std::string> {
      auto it = chats_.find(std::string(chat));
      if (it == chats_.end()) return std::nullopt;
      return it->second;
    };
    view.group_of_task = [](std::string_view) -> std::optional<std::string> {
      return std::nullopt;
    };
    auto lookup = [this](std::string_view folder) -> std::optional<IpcSource> {
      if (folder == "main") return IpcSource{"main", true};
      if (folder == "alice" || folder == "bob") return IpcSource{std::string(folder), false};
      return std::nullopt;
    };
    auto handler = [this](const IpcSource& source, const IpcRequest& request) {
      return handle(source, request);
    };
    watcher_ = std::make_unique<IpcWatcher>(io_.get_executor(), root_, lookup, view, handler);
    auto started = watcher_->start();
    EXPECT_TRUE(started.ok());
  }

  // Suspends once before answering, like a real handler that talks to the store.
  asio::awaitable<Result<void>> handle(const IpcSource& source, const IpcRequest& request) {
    auto executor = co_await asio::this_coro::executor;
    ++entered_;
    if (gate_) {
      boost::system::error_code ignored;
      auto wait = gate_->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      co_await std::move(wait);
    } else {
      co_await asio::post(executor, asio::use_awaitable);
    }
    std::string what(request_type(request));
    if (const auto* message = std::get_if<SendMessageRequest>(&request)) what = message->text;
    handled_.push_back(Handled{source.folder, source.is_main, what});
    if (fail_with_) co_return make_error(*fail_with_);
    if (throw_) throw std::runtime_error("the store is gone");
    co_return Result<void>{};
  }

  // Runs the event loop until `done` holds; false if it does not within `limit`.
  template <class Predicate>
  bool run_until(Predicate done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.run_one_for(std::chrono::milliseconds(20));
      if (io_.stopped()) io_.restart();
    }
    return true;
  }

  // Lets everything that is ready run, so that a wrong extra delivery would show.
  void settle() {
    io_.poll();
    if (io_.stopped()) io_.restart();
  }

  fs::path messages(std::string_view folder) const { return root_ / folder / "messages"; }
  fs::path tasks(std::string_view folder) const { return root_ / folder / "tasks"; }
  fs::path errors() const { return root_ / "errors"; }

  fs::path send(std::string_view folder, std::string_view chat, std::string_view text) {
    auto written = write_ipc_file(messages(folder), message_json(chat, text));
    EXPECT_TRUE(written.ok());
    return written.ok() ? written.value() : fs::path();
  }

  void watch(std::string_view folder) {
    auto watched = watcher_->watch_group(folder);
    ASSERT_TRUE(watched.ok()) << watched.error().message;
  }

  IpcWatcher::Counters counters() const { return watcher_->counters(); }

  test::TempDir temp_;
  fs::path root_ = temp_.path() / "ipc";
  asio::io_context io_;
  std::map<std::string, std::string> chats_ = {
      {"http:main", "main"}, {"http:alice", "alice"}, {"http:bob", "bob"}};
  std::vector<Handled> handled_;
  std::optional<std::string> fail_with_;
  bool throw_ = false;
  int entered_ = 0;
  std::optional<asio::steady_timer> gate_;  // when set, the handler waits for it
  std::unique_ptr<IpcWatcher> watcher_;
};

TEST_F(IpcWatcherTest, HandlesAnAtomicallyWrittenFileOnceAndDeletesIt) {
  watch("alice");
  const fs::path file = send("alice", "http:alice", "hello");
  ASSERT_TRUE(run_until([&] { return counters().processed == 1; }));
  settle();
  EXPECT_THAT(handled_, ElementsAre(Handled{"alice", false, "hello"}));
  EXPECT_FALSE(fs::exists(file));
  EXPECT_TRUE(entries(messages("alice")).empty());
  EXPECT_EQ(counters().refused, 0u);
  EXPECT_EQ(counters().errors, 0u);
}

TEST_F(IpcWatcherTest, IdentifiesTheWriterByDirectoryNotByFields) {
  watch("main");
  watch("alice");
  auto main_file =
      write_ipc_file(tasks("main"), R"({"type":"refresh_groups","groupFolder":"alice"})");
  ASSERT_TRUE(main_file.ok());
  auto alice_file = write_ipc_file(tasks("alice"), R"({"type":"refresh_groups","groupFolder":"main",
                                         "isMain":true})");
  ASSERT_TRUE(alice_file.ok());
  ASSERT_TRUE(run_until([&] { return counters().processed + counters().refused == 2; }));
  EXPECT_THAT(handled_, ElementsAre(Handled{"main", true, "refresh_groups"}));
  EXPECT_EQ(counters().refused, 1u);
}

TEST_F(IpcWatcherTest, HandlesFilesPresentBeforeWatchingInNameOrderAcrossBothDirectories) {
  write_plain(messages("alice") / "0003.json", message_json("http:alice", "third"));
  write_plain(messages("alice") / "0001.json", message_json("http:alice", "first"));
  write_plain(tasks("alice") / "0002.json",
              R"({"type":"schedule_task","prompt":"p","schedule_type":"once",
                  "schedule_value":"2030-01-01T00:00:00Z"})");
  watch("alice");
  ASSERT_TRUE(run_until([&] { return counters().processed == 3; }));
  EXPECT_THAT(handled_, ElementsAre(Handled{"alice", false, "first"},
                                    Handled{"alice", false, "schedule_task"},
                                    Handled{"alice", false, "third"}));
  EXPECT_TRUE(entries(messages("alice")).empty());
  EXPECT_TRUE(entries(tasks("alice")).empty());
}

TEST_F(IpcWatcherTest, HandlesFilesWrittenWhileWatchingInTheOrderTheyWereWritten) {
  watch("alice");
  std::vector<Handled> expected;
  for (int i = 0; i < 20; ++i) {
    send("alice", "http:alice", "m" + std::to_string(i));
    expected.push_back(Handled{"alice", false, "m" + std::to_string(i)});
  }
  ASSERT_TRUE(run_until([&] { return counters().processed == 20; }));
  EXPECT_EQ(handled_, expected);
}

TEST_F(IpcWatcherTest, IgnoresADotTemporaryUntilItIsRenamed) {
  watch("alice");
  const fs::path temp = messages("alice") / ".late.json.tmp-1";
  write_plain(temp, message_json("http:alice", "late"));
  send("alice", "http:alice", "marker");
  ASSERT_TRUE(run_until([&] { return counters().processed == 1; }));
  settle();
  EXPECT_THAT(handled_, ElementsAre(Handled{"alice", false, "marker"}));
  EXPECT_TRUE(fs::exists(temp));

  fs::rename(temp, messages("alice") / "late.json");
  ASSERT_TRUE(run_until([&] { return counters().processed == 2; }));
  EXPECT_EQ(handled_.back(), (Handled{"alice", false, "late"}));
  EXPECT_TRUE(entries(messages("alice")).empty());
}

TEST_F(IpcWatcherTest, MovesAnUnparseableFileToErrorsWithItsReason) {
  watch("alice");
  auto file = write_ipc_file(messages("alice"), "{not json");
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(run_until([&] { return counters().errors == 1; }));
  const std::string name = file.value().filename().string();
  EXPECT_FALSE(fs::exists(file.value()));
  EXPECT_EQ(read_file(errors() / ("alice-" + name)), "{not json");
  EXPECT_THAT(read_file(errors() / ("alice-" + name + ".reason")), HasSubstr("not valid JSON"));
  EXPECT_TRUE(handled_.empty());
  EXPECT_EQ(counters().processed, 0u);
}

TEST_F(IpcWatcherTest, MovesARequestInTheWrongDirectoryToErrors) {
  watch("main");
  auto file = write_ipc_file(messages("main"), R"({"type":"refresh_groups"})");
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(run_until([&] { return counters().errors == 1; }));
  const std::string name = file.value().filename().string();
  EXPECT_THAT(read_file(errors() / ("main-" + name + ".reason")), HasSubstr("belongs in tasks/"));
  EXPECT_TRUE(handled_.empty());
}

TEST_F(IpcWatcherTest, DeletesAndCountsARefusedRequestWithoutCallingTheHandler) {
  watch("alice");
  const fs::path file = send("alice", "http:bob", "let me in");
  ASSERT_TRUE(run_until([&] { return counters().refused == 1; }));
  settle();
  EXPECT_TRUE(handled_.empty());
  EXPECT_FALSE(fs::exists(file));
  EXPECT_TRUE(entries(errors()).empty());
  EXPECT_EQ(counters().processed, 0u);
  EXPECT_EQ(counters().errors, 0u);
}

TEST_F(IpcWatcherTest, MovesAFileToErrorsWhenTheHandlerFails) {
  fail_with_ = "chat http:alice has no channel connected";
  watch("alice");
  const fs::path file = send("alice", "http:alice", "hello");
  ASSERT_TRUE(run_until([&] { return counters().errors == 1; }));
  const std::string name = file.filename().string();
  EXPECT_EQ(handled_.size(), 1u);
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(read_file(errors() / ("alice-" + name)), message_json("http:alice", "hello"));
  EXPECT_THAT(read_file(errors() / ("alice-" + name + ".reason")),
              HasSubstr("has no channel connected"));
  EXPECT_EQ(counters().processed, 0u);
}

TEST_F(IpcWatcherTest, ContainsAHandlerExceptionAndKeepsGoing) {
  throw_ = true;
  watch("alice");
  const fs::path file = send("alice", "http:alice", "boom");
  ASSERT_TRUE(run_until([&] { return counters().errors == 1; }));
  EXPECT_THAT(read_file(errors() / ("alice-" + file.filename().string() + ".reason")),
              HasSubstr("the store is gone"));

  throw_ = false;
  send("alice", "http:alice", "after");
  ASSERT_TRUE(run_until([&] { return counters().processed == 1; }));
  EXPECT_EQ(handled_.back(), (Handled{"alice", false, "after"}));
}

TEST_F(IpcWatcherTest, MovesFilesOfAnUnregisteredFolderToErrors) {
  ASSERT_TRUE(ensure_group_ipc_dirs(root_, "ghost").ok());
  watch("ghost");
  const fs::path file = send("ghost", "http:alice", "boo");
  ASSERT_TRUE(run_until([&] { return counters().errors == 1; }));
  EXPECT_THAT(read_file(errors() / ("ghost-" + file.filename().string() + ".reason")),
              HasSubstr("no registered group"));
  EXPECT_TRUE(handled_.empty());
}

TEST_F(IpcWatcherTest, DoesNotFollowASymlinkPlantedInTheDirectory) {
  const fs::path outside = temp_.path() / "secret.json";
  write_plain(outside, message_json("http:alice", "from outside"));
  fs::create_symlink(outside, messages("alice") / "0001.json");
  watch("alice");
  ASSERT_TRUE(run_until([&] { return counters().errors == 1; }));
  EXPECT_TRUE(handled_.empty());
  EXPECT_EQ(read_file(outside), message_json("http:alice", "from outside"));
  EXPECT_THAT(read_file(errors() / "alice-0001.json.reason"), HasSubstr("symlink"));
  // The link itself is deleted, not kept in errors/ (where it would point into the host).
  EXPECT_FALSE(fs::exists(fs::symlink_status(errors() / "alice-0001.json")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(messages("alice") / "0001.json")));
}

TEST_F(IpcWatcherTest, MovesAnOversizedFileToErrors) {
  watch("alice");
  std::string big = message_json("http:alice", std::string(kMaxIpcFileBytes, 'x'));
  auto file = write_ipc_file(messages("alice"), big);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(run_until([&] { return counters().errors == 1; }));
  EXPECT_THAT(read_file(errors() / ("alice-" + file.value().filename().string() + ".reason")),
              HasSubstr("limit of 1048576"));
  EXPECT_TRUE(handled_.empty());
}

TEST_F(IpcWatcherTest, DeletesADirectoryPlantedAsARequestAndKeepsItsReason) {
  fs::create_directories(messages("alice") / "0001.json" / "inside");
  write_plain(messages("alice") / "0001.json" / "inside" / "data", "x");
  watch("alice");
  ASSERT_TRUE(run_until([&] { return counters().errors == 1; }));
  EXPECT_FALSE(fs::exists(messages("alice") / "0001.json"));
  EXPECT_EQ(entries(errors()), std::vector<std::string>{"alice-0001.json.reason"});
  EXPECT_THAT(read_file(errors() / "alice-0001.json.reason"), HasSubstr("not a regular file"));
}

// `count` rejected entries (a file and its .reason) whose names sort in the order planted.
void plant_errors(const fs::path& errors, std::size_t count) {
  fs::create_directories(errors);
  for (std::size_t i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "old-%05zu.json", i);
    write_plain(errors / name, "{}");
    write_plain(errors / (std::string(name) + ".reason"), "bad\n");
  }
}

std::optional<IpcSource> no_group(std::string_view) { return std::nullopt; }

asio::awaitable<Result<void>> handle_nothing(const IpcSource&, const IpcRequest&) {
  co_return Result<void>{};
}

TEST_F(IpcWatcherTest, BoundsTheErrorsDirectoryAtStartUp) {
  watcher_.reset();
  plant_errors(errors(), kMaxErrorEntries + 5);
  IpcWatcher restarted(io_.get_executor(), root_, no_group, IpcView{}, handle_nothing);
  ASSERT_TRUE(restarted.start().ok());
  EXPECT_EQ(entries(errors()).size(), 2 * kMaxErrorEntries);
  EXPECT_FALSE(fs::exists(errors() / "old-00004.json"));
  EXPECT_FALSE(fs::exists(errors() / "old-00004.json.reason"));
  EXPECT_TRUE(fs::exists(errors() / "old-00005.json"));
}

TEST_F(IpcWatcherTest, BoundsTheErrorsDirectoryAfterEveryFiftyMovesThere) {
  plant_errors(errors(), kMaxErrorEntries);
  // The planted entries are older than the files moved next, whatever the clock's resolution.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  watch("alice");
  std::vector<fs::path> files;
  for (int i = 0; i < 49; ++i) files.push_back(write_ipc_file(messages("alice"), "{x").value());
  ASSERT_TRUE(run_until([&] { return counters().errors == 49; }));
  EXPECT_EQ(entries(errors()).size(), 2 * (kMaxErrorEntries + 49)) << "not pruned on each move";
  files.push_back(write_ipc_file(messages("alice"), "{x").value());
  ASSERT_TRUE(run_until([&] { return counters().errors == 50; }));
  EXPECT_EQ(entries(errors()).size(), 2 * kMaxErrorEntries);
  EXPECT_FALSE(fs::exists(errors() / "old-00049.json"));
  EXPECT_TRUE(fs::exists(errors() / "old-00050.json"));
  for (const auto& file : files) {
    EXPECT_TRUE(fs::exists(errors() / ("alice-" + file.filename().string())));
    EXPECT_TRUE(fs::exists(errors() / ("alice-" + file.filename().string() + ".reason")));
  }
}

TEST_F(IpcWatcherTest, UnwatchStopsDeliveryUntilWatchedAgain) {
  watch("alice");
  watch("bob");
  watcher_->unwatch_group("alice");
  const fs::path alice_file = send("alice", "http:alice", "unheard");
  send("bob", "http:bob", "heard");
  // bob's file was written after alice's; once it is handled, alice's would have been too.
  ASSERT_TRUE(run_until([&] { return counters().processed == 1; }));
  settle();
  EXPECT_THAT(handled_, ElementsAre(Handled{"bob", false, "heard"}));
  EXPECT_TRUE(fs::exists(alice_file));

  watch("alice");
  ASSERT_TRUE(run_until([&] { return counters().processed == 2; }));
  EXPECT_EQ(handled_.back(), (Handled{"alice", false, "unheard"}));
}

TEST_F(IpcWatcherTest, WatchingAgainAfterTheDirectoryWasRecreatedSeesNewFiles) {
  watch("alice");
  watch("bob");
  fs::remove_all(root_ / "alice");
  // Events arrive in order on one inotify queue: once bob's file is handled, the removal of
  // alice's directories has been seen.
  send("bob", "http:bob", "marker");
  ASSERT_TRUE(run_until([&] { return counters().processed == 1; }));
  ASSERT_TRUE(ensure_group_ipc_dirs(root_, "alice").ok());
  watch("alice");
  send("alice", "http:alice", "back");
  ASSERT_TRUE(run_until([&] { return counters().processed == 2; }));
  EXPECT_EQ(handled_.back(), (Handled{"alice", false, "back"}));
}

TEST_F(IpcWatcherTest, StopLeavesLaterFilesInPlace) {
  watch("alice");
  send("alice", "http:alice", "one");
  ASSERT_TRUE(run_until([&] { return counters().processed == 1; }));
  watcher_->stop();
  const fs::path file = send("alice", "http:alice", "two");
  settle();
  EXPECT_EQ(handled_.size(), 1u);
  EXPECT_TRUE(fs::exists(file));
}

TEST_F(IpcWatcherTest, RefusesToWatchAnInvalidFolder) {
  EXPECT_FALSE(watcher_->watch_group("../main").ok());
  EXPECT_FALSE(watcher_->watch_group("errors").ok());
  EXPECT_FALSE(watcher_->watch_group("").ok());
}

TEST_F(IpcWatcherTest, HandlesABurstOf500FilesExactlyOnceEach) {
  watch("main");
  watch("alice");
  std::map<std::string, int> expected;
  std::vector<std::string> alice_order, main_order;
  for (int i = 0; i < 500; ++i) {
    std::string text = "burst-" + std::to_string(i);
    (i % 2 == 0 ? alice_order : main_order).push_back(text);
    expected[text] = 1;
  }
  // Written from another thread while the loop runs, so scans and writes interleave; each
  // write is a temporary plus a rename (no fsync, to keep the test fast), as agents do.
  std::thread writer([&] {
    for (int i = 0; i < 500; ++i) {
      const bool to_alice = i % 2 == 0;
      const fs::path dir = messages(to_alice ? "alice" : "main");
      const std::string name = ipc_file_name();
      write_plain(dir / ("." + name),
                  message_json(to_alice ? "http:alice" : "http:bob", "burst-" + std::to_string(i)));
      fs::rename(dir / ("." + name), dir / name);
    }
  });
  const bool all = run_until([&] { return counters().processed >= 500; });
  writer.join();
  ASSERT_TRUE(all) << "processed " << counters().processed;
  settle();
  EXPECT_EQ(counters().processed, 500u);
  std::map<std::string, int> seen;
  std::vector<std::string> alice_seen, main_seen;
  for (const auto& h : handled_) {
    seen[h.what]++;
    (h.folder == "alice" ? alice_seen : main_seen).push_back(h.what);
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(alice_seen, alice_order);
  EXPECT_EQ(main_seen, main_order);
  EXPECT_TRUE(entries(messages("alice")).empty());
  EXPECT_TRUE(entries(messages("main")).empty());
}

TEST_F(IpcWatcherTest, FinishesTheRunningHandlerWhenDestroyedMeanwhile) {
  gate_.emplace(io_, asio::steady_timer::time_point::max());
  watch("alice");
  const fs::path file = send("alice", "http:alice", "in flight");
  ASSERT_TRUE(run_until([&] { return entered_ == 1; }));
  watcher_.reset();
  gate_->cancel();
  ASSERT_TRUE(run_until([&] { return handled_.size() == 1; }));
  settle();
  EXPECT_FALSE(fs::exists(file));  // handled, so deleted, even though the watcher is gone
}

}  // namespace
}  // namespace sb::host

#include "common/safe_files.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "support/temp_dir.h"

namespace sb {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_plain(const fs::path& path, std::string_view content) {
  std::ofstream(path, std::ios::binary) << content;
}

bool exists_at_all(const fs::path& path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec));
}

// A trusted base (`host`, the host's own) and an `outside` directory with a file in it that
// nothing may touch.
class SafeFiles : public ::testing::Test {
 protected:
  SafeFiles() {
    fs::create_directories(host());
    fs::create_directories(outside());
    write_plain(outside() / "precious", "keep me");
  }
  fs::path host() const { return temp.path() / "host"; }
  fs::path outside() const { return temp.path() / "outside"; }
  void expect_outside_untouched() {
    EXPECT_EQ(read_file(outside() / "precious"), "keep me");
    std::set<std::string> names;
    for (const auto& entry : fs::directory_iterator(outside())) {
      names.insert(entry.path().filename().string());
    }
    EXPECT_EQ(names, std::set<std::string>{"precious"});
  }
  SafeDir open(const fs::path& below = {}) {
    auto dir = SafeDir::open(host(), below, MissingDirs::create);
    EXPECT_TRUE(dir.ok()) << dir.error().message;
    return std::move(dir).value();
  }

  test::TempDir temp;
};

TEST_F(SafeFiles, CreatesMissingDirectoriesBelowTheBase) {
  auto dir = SafeDir::open(host(), "a/b/c", MissingDirs::create);
  ASSERT_TRUE(dir.ok()) << dir.error().message;
  EXPECT_TRUE(fs::is_directory(host() / "a/b/c"));
  EXPECT_EQ(dir->path(), host() / "a/b/c");
  EXPECT_FALSE(SafeDir::open(host(), "x/y").ok()) << "missing without create";
}

TEST_F(SafeFiles, RefusesASymlinkAsTheLastComponent) {
  fs::create_directory_symlink(outside(), host() / "input");
  auto dir = SafeDir::open(host(), "input", MissingDirs::create);
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(dir.error().message, HasSubstr((host() / "input").string()));
  EXPECT_THAT(dir.error().message, HasSubstr("symlink"));
  expect_outside_untouched();
}

TEST_F(SafeFiles, RefusesASymlinkAsAnIntermediateDirectoryAndCreatesNothingBehindIt) {
  fs::create_directories(host() / "alice");
  fs::create_directory_symlink(outside(), host() / "alice" / "ipc");
  auto dir = SafeDir::open(host(), "alice/ipc/input", MissingDirs::create);
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(dir.error().message, HasSubstr((host() / "alice" / "ipc").string()));
  expect_outside_untouched();
}

TEST_F(SafeFiles, DoesNotCreateTheTargetOfADanglingSymlink) {
  fs::create_directory_symlink(outside() / "made-by-host", host() / "logs");
  EXPECT_FALSE(SafeDir::open(host(), "logs", MissingDirs::create).ok());
  fs::create_symlink(outside() / "memory.md", host() / "CLAUDE.md");
  auto created = open().create_file("CLAUDE.md", "# memory\n");
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_FALSE(created.value()) << "a dangling symlink counts as taken";
  expect_outside_untouched();
  EXPECT_TRUE(fs::is_symlink(host() / "CLAUDE.md"));
}

TEST_F(SafeFiles, RefusesDotDotAndAbsolutePaths) {
  EXPECT_FALSE(SafeDir::open(host(), "../outside", MissingDirs::create).ok());
  EXPECT_FALSE(open().open_dir(outside()).ok());
  EXPECT_FALSE(open().write_file("../outside/precious", "x").ok());
  EXPECT_FALSE(open().write_file("a/b", "x").ok());
  expect_outside_untouched();
}

TEST_F(SafeFiles, CreateFileWritesOnceAndNeverReplaces) {
  SafeDir dir = open();
  auto first = dir.create_file("CLAUDE.md", "first");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_TRUE(first.value());
  auto second = dir.create_file("CLAUDE.md", "second");
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second.value());
  EXPECT_EQ(read_file(host() / "CLAUDE.md"), "first");
  EXPECT_EQ(dir.list().value().size(), 1u) << "no temporary left behind";
}

TEST_F(SafeFiles, WriteFileReplacesASymlinkInsteadOfWritingThroughIt) {
  fs::create_symlink(outside() / "precious", host() / "_close");
  ASSERT_TRUE(open().write_file("_close", "").ok());
  EXPECT_FALSE(fs::is_symlink(host() / "_close"));
  EXPECT_EQ(fs::file_size(host() / "_close"), 0u);
  expect_outside_untouched();
}

TEST_F(SafeFiles, TemporaryNamesAreUnpredictable) {
  // An agent watching the directory with inotify sees the temporary's name only once the
  // host has created it with O_EXCL; it must not be able to guess the next one.
  SafeDir dir = open();
  const int watch = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(watch, 0);
  ASSERT_GE(::inotify_add_watch(watch, host().c_str(), IN_CREATE), 0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(dir.write_file("_close", "").ok());
  char buffer[4096];
  const ssize_t n = ::read(watch, buffer, sizeof buffer);
  ::close(watch);
  ASSERT_GT(n, 0);
  std::set<std::string> temporaries;
  const std::regex shape(R"(\._close\.tmp-[0-9a-f]{16})");
  for (ssize_t offset = 0; offset < n;) {
    const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
    const std::string name = event->len ? event->name : "";
    EXPECT_TRUE(std::regex_match(name, shape)) << name;
    temporaries.insert(name);
    offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
  }
  EXPECT_EQ(temporaries.size(), 3u);
  EXPECT_NE(random_hex(8), random_hex(8));
}

TEST_F(SafeFiles, OpenAppendRefusesASymlinkAndAFifo) {
  SafeDir dir = open();
  fs::create_symlink(outside() / "precious", host() / "run.log");
  auto linked = dir.open_append("run.log");
  ASSERT_FALSE(linked.ok());
  EXPECT_THAT(linked.error().message, HasSubstr("symlink"));
  ASSERT_EQ(::mkfifo((host() / "fifo.log").c_str(), 0600), 0);
  EXPECT_FALSE(dir.open_append("fifo.log").ok());
  expect_outside_untouched();

  auto log = dir.open_append("new.log", 0600);
  ASSERT_TRUE(log.ok()) << log.error().message;
  ASSERT_EQ(::write(log->get(), "one\n", 4), 4);
  auto again = dir.open_append("new.log", 0600);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(::write(again->get(), "two\n", 4), 4);
  EXPECT_EQ(read_file(host() / "new.log"), "one\ntwo\n");
  EXPECT_EQ(fs::status(host() / "new.log").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(SafeFiles, ReadFileRefusesSymlinksFifosAndOversizedFiles) {
  SafeDir dir = open();
  fs::create_symlink(outside() / "precious", host() / "link.json");
  ASSERT_EQ(::mkfifo((host() / "fifo.json").c_str(), 0600), 0);
  write_plain(host() / "big.json", std::string(101, 'x'));
  write_plain(host() / "ok.json", "{}");
  EXPECT_THAT(dir.read_file("link.json", 100).error().message, HasSubstr("symlink"));
  EXPECT_THAT(dir.read_file("fifo.json", 100).error().message, HasSubstr("not a regular file"));
  EXPECT_THAT(dir.read_file("big.json", 100).error().message, HasSubstr("limit of 100"));
  EXPECT_EQ(dir.read_file("ok.json", 100).value(), std::optional<std::string>("{}"));
  EXPECT_EQ(dir.read_file("missing.json", 100).value(), std::nullopt);
}

TEST_F(SafeFiles, RemovesATreeWithoutFollowingTheSymlinksInIt) {
  fs::create_directories(host() / "input/deep/deeper");
  write_plain(host() / "input/deep/deeper/file", "x");
  fs::create_directory_symlink(outside(), host() / "input/deep/to-outside");
  fs::create_symlink(outside() / "precious", host() / "input/deep/deeper/to-precious");
  ASSERT_TRUE(open().remove("input").ok());
  EXPECT_FALSE(exists_at_all(host() / "input"));
  expect_outside_untouched();
  EXPECT_TRUE(open().remove("never-existed").ok());
}

TEST_F(SafeFiles, ClearingSurvivesADirectorySwappedForASymlinkMeanwhile) {
  // The attacker keeps replacing input/sub, a directory, with a symlink to `outside` (and
  // back) while the host empties input/: whatever the interleaving, nothing outside goes.
  SafeDir input = open("input");
  std::atomic<bool> stop{false};
  std::thread attacker([&] {
    std::error_code ec;
    for (int i = 0; !stop; ++i) {
      const fs::path sub = host() / "input" / "sub";
      const fs::path aside = host() / "input" / ("aside-" + std::to_string(i));
      fs::create_directories(sub / "nested", ec);
      write_plain(sub / "nested" / "file", "x");
      fs::rename(sub, aside, ec);
      fs::create_directory_symlink(outside(), sub, ec);
      fs::remove(sub, ec);
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  int rounds = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    (void)input.clear();  // may fail on a name that changes too often; must never escape
    ++rounds;
  }
  stop = true;
  attacker.join();
  EXPECT_GT(rounds, 10);
  expect_outside_untouched();
  ASSERT_TRUE(input.clear().ok());
  EXPECT_TRUE(fs::is_empty(host() / "input"));
}

TEST_F(SafeFiles, RenamesBetweenHandles) {
  SafeDir from = open("alice/messages");
  SafeDir to = open("errors");
  write_plain(host() / "alice/messages/1.json", "{}");
  ASSERT_TRUE(from.rename("1.json", to, "alice-1.json").ok());
  EXPECT_EQ(read_file(host() / "errors/alice-1.json"), "{}");
  auto missing = from.rename("1.json", to, "again.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message, HasSubstr((host() / "alice/messages/1.json").string()));
}

TEST_F(SafeFiles, AHandleStaysOnItsDirectoryWhenThePathIsSwappedForASymlink) {
  SafeDir input = open("input");
  fs::rename(host() / "input", host() / "moved");
  fs::create_directory_symlink(outside(), host() / "input");
  ASSERT_TRUE(input.write_file("_close", "").ok());
  EXPECT_TRUE(fs::exists(host() / "moved" / "_close"));
  expect_outside_untouched();
}

}  // namespace
}  // namespace sb

#include "daemon/data_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "support/temp_dir.h"

extern char** environ;

namespace sb {
namespace {
namespace fs = std::filesystem;

std::string content_of(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DataDirLock, CreatesTheDirectoryAndWritesThePid) {
  test::TempDir dir;
  const auto data = dir.path() / "data" / "nested";
  auto lock = DataDirLock::acquire(data);
  ASSERT_TRUE(lock) << lock.error().message;
  EXPECT_EQ(lock->file(), data / "switchboard.lock");
  EXPECT_EQ(content_of(data / "switchboard.lock"), std::to_string(::getpid()) + "\n");
}

TEST(DataDirLock, ASecondHolderIsRefusedWithAMessageNamingTheFirst) {
  test::TempDir dir;
  auto first = DataDirLock::acquire(dir.path());
  ASSERT_TRUE(first) << first.error().message;
  // flock locks belong to the open file, so a second open in the same process conflicts too.
  auto second = DataDirLock::acquire(dir.path());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message,
            "data directory " + dir.path().string() + " is in use by switchboard pid " +
                std::to_string(::getpid()) + " (lock " +
                (dir.path() / "switchboard.lock").string() +
                "); stop that daemon first, or give this one another data_dir");
}

TEST(DataDirLock, IsFreeAgainOnceTheHolderReleasesIt) {
  test::TempDir dir;
  {
    auto first = DataDirLock::acquire(dir.path());
    ASSERT_TRUE(first) << first.error().message;
  }
  auto again = DataDirLock::acquire(dir.path());
  EXPECT_TRUE(again) << again.error().message;
}

TEST(DataDirLock, ALeftoverPidWithoutALockDecidesNothing) {
  test::TempDir dir;
  std::ofstream(dir.path() / "switchboard.lock") << "1\n";  // a stale file: pid 1 holds nothing
  auto lock = DataDirLock::acquire(dir.path());
  ASSERT_TRUE(lock) << lock.error().message;
  EXPECT_EQ(content_of(dir.path() / "switchboard.lock"), std::to_string(::getpid()) + "\n");
}

TEST(DataDirLock, AnotherProcessHoldsItUntilItDiesEvenByKill9) {
  test::TempDir dir;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    auto lock = DataDirLock::acquire(dir.path());
    const char ok = lock ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    while (true) ::pause();
  }
  ::close(ready[1]);
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(ok, 'y');

  auto refused = DataDirLock::acquire(dir.path());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("is in use by switchboard pid " + std::to_string(child) +
                                         " (lock "),
            std::string::npos)
      << refused.error().message;

  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  auto taken = DataDirLock::acquire(dir.path());
  EXPECT_TRUE(taken) << taken.error().message;
}

TEST(DataDirLock, ChildProcessesDoNotInheritIt) {
  test::TempDir dir;
  std::optional<Result<DataDirLock>> lock(DataDirLock::acquire(dir.path()));
  ASSERT_TRUE(*lock) << (*lock).error().message;
  // A child started while the lock is held (as an agent is), still running when the holder
  // lets go: had it inherited the descriptor, it would keep the lock.
  char sleep_path[] = "/bin/sleep";
  char seconds[] = "30";
  char* argv[] = {sleep_path, seconds, nullptr};
  pid_t child = -1;
  ASSERT_EQ(::posix_spawn(&child, sleep_path, nullptr, nullptr, argv, environ), 0);
  lock.reset();
  auto again = DataDirLock::acquire(dir.path());
  EXPECT_TRUE(again) << again.error().message;
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
}

TEST(DataDirLock, ASymlinkInPlaceOfTheLockFileIsRefused) {
  test::TempDir dir;
  const auto data = dir.path() / "data";
  fs::create_directories(data);
  fs::create_symlink(dir.path() / "elsewhere", data / "switchboard.lock");
  auto lock = DataDirLock::acquire(data);
  ASSERT_FALSE(lock);
  EXPECT_EQ(lock.error().message, "cannot open the lock file " +
                                      (data / "switchboard.lock").string() +
                                      ": it is a symlink; remove it");
  EXPECT_FALSE(fs::exists(dir.path() / "elsewhere"));
}

TEST(DataDirLock, ADataDirectoryThatCannotBeCreatedIsNamed) {
  test::TempDir dir;
  std::ofstream(dir.path() / "file") << "x";
  auto lock = DataDirLock::acquire(dir.path() / "file" / "data");
  ASSERT_FALSE(lock);
  EXPECT_NE(lock.error().message.find("cannot create the data directory " +
                                      (dir.path() / "file" / "data").string()),
            std::string::npos)
      << lock.error().message;
}

}  // namespace
}  // namespace sb

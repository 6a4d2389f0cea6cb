#include "sandbox/agent_folders.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace sb::sandbox {
namespace {

namespace fs = std::filesystem;

uid_t owner_of(const fs::path& path) {
  struct stat info {};
  ::lstat(path.c_str(), &info);
  return info.st_uid;
}

class HandOver : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "handing folders to another user needs root";
  }
  sb::test::TempDir dir;
  const Identity agent{65534, 65534};
};

TEST_F(HandOver, GivesAFolderMadeBeforeWithEverythingInItToTheAgent) {
  const fs::path group = dir.path() / "group";
  fs::create_directories(group / "notes" / "deep");
  std::ofstream(group / "CLAUDE.md") << "memory";
  std::ofstream(group / "notes" / "deep" / "a.txt") << "a";
  ASSERT_TRUE(hand_over(dir.path(), "group", agent).ok());
  EXPECT_EQ(owner_of(group), 65534u);
  EXPECT_EQ(owner_of(group / "CLAUDE.md"), 65534u);
  EXPECT_EQ(owner_of(group / "notes" / "deep" / "a.txt"), 65534u);
}

TEST_F(HandOver, LaterHandsOverOnlyWhatLiesDirectlyInTheFolder) {
  const fs::path group = dir.path() / "group";
  ASSERT_TRUE(hand_over(dir.path(), "group", agent).ok());
  fs::create_directories(group / "sub");
  std::ofstream(group / "CLAUDE.md") << "written by the host";
  std::ofstream(group / "sub" / "host-file") << "x";
  ::lchown((group / "sub").c_str(), 65534, 65534);
  ASSERT_TRUE(hand_over(dir.path(), "group", agent).ok());
  EXPECT_EQ(owner_of(group / "CLAUDE.md"), 65534u);
  EXPECT_EQ(owner_of(group / "sub" / "host-file"), 0u) << "no full walk on every run";
}

TEST_F(HandOver, NeverFollowsASymlinkOutOfTheFolder) {
  const fs::path group = dir.path() / "group";
  const fs::path outside = dir.path() / "outside";
  fs::create_directories(group);
  fs::create_directories(outside);
  std::ofstream(outside / "host-secret") << "x";
  fs::create_symlink(outside, group / "link-to-dir");
  fs::create_symlink(outside / "host-secret", group / "link-to-file");
  ASSERT_TRUE(hand_over(dir.path(), "group", agent).ok());
  EXPECT_EQ(owner_of(outside), 0u);
  EXPECT_EQ(owner_of(outside / "host-secret"), 0u);
  EXPECT_EQ(owner_of(group / "link-to-file"), 65534u) << "the link itself changes hands";
  // A symlink in place of the folder, or of a directory above it, is refused.
  fs::create_symlink(outside, dir.path() / "swapped");
  EXPECT_FALSE(hand_over(dir.path(), "swapped", agent).ok());
  EXPECT_FALSE(hand_over(dir.path(), "swapped/inner", agent).ok());
  EXPECT_FALSE(fs::exists(outside / "inner"));
  EXPECT_EQ(owner_of(outside), 0u);
}

TEST_F(HandOver, MakesAPrivateFolderOwnerOnly) {
  const fs::path sessions = dir.path() / "session";
  ASSERT_TRUE(hand_over(dir.path(), "session", agent, true).ok());
  struct stat info {};
  ::stat(sessions.c_str(), &info);
  EXPECT_EQ(info.st_mode & 07777, 0700u);
}

TEST(DiskUsage, CountsEveryFileWithoutFollowingLinksAndStopsAboveTheLimit) {
  sb::test::TempDir dir;
  const fs::path group = dir.path() / "group";
  fs::create_directories(group / "sub");
  std::ofstream(group / "sub" / "one") << std::string(100'000, 'x');
  std::ofstream(group / "two") << std::string(100'000, 'y');
  fs::create_symlink("/usr", group / "usr-link");
  auto usage = disk_usage(group);
  ASSERT_TRUE(usage.ok());
  EXPECT_GE(usage->bytes, 200'000u);
  EXPECT_LT(usage->bytes, 1'000'000u) << "/usr behind the link is not counted";
  EXPECT_EQ(usage->entries, 4u);
  EXPECT_FALSE(usage->stopped);
  auto capped = disk_usage(group, 50'000);
  ASSERT_TRUE(capped.ok());
  EXPECT_TRUE(capped->stopped);
  auto missing = disk_usage(dir.path() / "none");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->bytes, 0u);
}

}  // namespace
}  // namespace sb::sandbox

#include "host/ipc_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "support/temp_dir.h"

namespace sb::host {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(IpcFiles, WritesAtomicallyCreatingParentsAndLeavingNoTemporary) {
  test::TempDir temp;
  const fs::path file = temp.path() / "a" / "b" / "x.json";
  ASSERT_TRUE(write_file_atomically(file, "{\"k\":1}").ok());
  EXPECT_EQ(read_file(file), "{\"k\":1}");
  EXPECT_EQ(entries(file.parent_path()), std::vector<std::string>{"x.json"});
}

TEST(IpcFiles, ReplacesAnExistingFile) {
  test::TempDir temp;
  const fs::path file = temp.path() / "snapshot.json";
  ASSERT_TRUE(write_file_atomically(file, "old, and longer than the new content").ok());
  ASSERT_TRUE(write_file_atomically(file, "new").ok());
  EXPECT_EQ(read_file(file), "new");
  EXPECT_EQ(entries(temp.path()).size(), 1u);
}

TEST(IpcFiles, RefusesToWriteThroughASymlinkedDirectory) {
  test::TempDir temp;
  fs::create_directory(temp.path() / "elsewhere");
  fs::create_directory_symlink(temp.path() / "elsewhere", temp.path() / "input");
  auto written = write_file_atomically(temp.path() / "input" / "x.json", "{}");
  ASSERT_FALSE(written.ok());
  EXPECT_THAT(written.error().message, HasSubstr("input"));
  EXPECT_TRUE(entries(temp.path() / "elsewhere").empty());
}

TEST(IpcFiles, ReportsAnUnwritableDirectoryNamingIt) {
  test::TempDir temp;
  const fs::path blocker = temp.path() / "file";
  std::ofstream(blocker) << "x";
  auto written = write_file_atomically(blocker / "x.json", "{}");
  ASSERT_FALSE(written.ok());
  EXPECT_THAT(written.error().message, HasSubstr(blocker.string()));
}

TEST(IpcFiles, FileNamesHaveTheDocumentedShapeAndSortInCreationOrder) {
  const std::regex shape(R"(\d{13}-\d{6}-[0-9a-f]{8}\.json)");
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i) names.push_back(ipc_file_name());
  for (const auto& name : names) EXPECT_TRUE(std::regex_match(name, shape)) << name;
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
}

TEST(IpcFiles, WritesAFollowUpMessageAsJson) {
  test::TempDir temp;
  ASSERT_TRUE(write_input_message(temp.path(), "line one\n\"quoted\" \xc3\xa9").ok());
  auto names = entries(temp.path());
  ASSERT_EQ(names.size(), 1u);
  EXPECT_THAT(names[0], testing::EndsWith(".json"));
  auto value = boost::json::parse(read_file(temp.path() / names[0]));
  EXPECT_EQ(value.at("type").as_string(), "message");
  EXPECT_EQ(value.at("text").as_string(), "line one\n\"quoted\" \xc3\xa9");
}

TEST(IpcFiles, WritesAnEmptyCloseRequest) {
  test::TempDir temp;
  ASSERT_TRUE(write_close_request(temp.path()).ok());
  EXPECT_EQ(entries(temp.path()), std::vector<std::string>{"_close"});
  EXPECT_EQ(fs::file_size(temp.path() / "_close"), 0u);
}

TEST(IpcFiles, CreatesTheGroupLayoutAndClearsStaleInput) {
  test::TempDir temp;
  const fs::path input = temp.path() / "alice" / "input";
  ASSERT_TRUE(write_input_message(input, "stale").ok());
  ASSERT_TRUE(write_close_request(input).ok());
  ASSERT_TRUE(write_ipc_file(temp.path() / "alice" / "messages", "{}").ok());

  ASSERT_TRUE(ensure_group_ipc_dirs(temp.path(), "alice").ok());
  EXPECT_TRUE(fs::is_directory(temp.path() / "alice" / "messages"));
  EXPECT_TRUE(fs::is_directory(temp.path() / "alice" / "tasks"));
  EXPECT_TRUE(entries(input).empty());
  // Requests an agent left before a crash are the host's to handle, not to drop.
  EXPECT_EQ(entries(temp.path() / "alice" / "messages").size(), 1u);
}

TEST(IpcFiles, RefusesAGroupLayoutWithASymlinkedDirectory) {
  test::TempDir temp;
  fs::create_directories(temp.path() / "alice");
  fs::create_directory(temp.path() / "elsewhere");
  fs::create_directory_symlink(temp.path() / "elsewhere", temp.path() / "alice" / "tasks");
  auto made = ensure_group_ipc_dirs(temp.path(), "alice");
  ASSERT_FALSE(made.ok());
  EXPECT_THAT(made.error().message, HasSubstr("not a directory"));
}

TEST(IpcFiles, RefusesInvalidGroupFolders) {
  test::TempDir temp;
  for (const char* folder : {"", "..", "a/b", "errors", "_x", "a b"}) {
    EXPECT_FALSE(ensure_group_ipc_dirs(temp.path(), folder).ok()) << folder;
    EXPECT_FALSE(is_valid_group_folder(folder)) << folder;
  }
  for (const char* folder : {"main", "alice", "team-2", "A_b"}) {
    EXPECT_TRUE(is_valid_group_folder(folder)) << folder;
  }
}

TEST(IpcFiles, ClearingAMissingInputDirectoryIsFine) {
  test::TempDir temp;
  EXPECT_TRUE(clear_input_dir(temp.path() / "nothing-here").ok());
}

TEST(IpcFiles, WritesSnapshotsBesideTheGroupDirectories) {
  test::TempDir temp;
  ASSERT_TRUE(write_snapshot(temp.path(), "alice", kCurrentTasksSnapshot, "[]").ok());
  EXPECT_EQ(read_file(temp.path() / "alice" / "current_tasks.json"), "[]");
  EXPECT_FALSE(write_snapshot(temp.path(), "alice", "../escape.json", "[]").ok());
  EXPECT_FALSE(write_snapshot(temp.path(), "alice", ".hidden", "[]").ok());
  EXPECT_FALSE(write_snapshot(temp.path(), "..", "x.json", "[]").ok());
  EXPECT_FALSE(fs::exists(temp.path() / "escape.json"));
}

}  // namespace
}  // namespace sb::host

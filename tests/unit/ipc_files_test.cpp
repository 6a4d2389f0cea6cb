#include "host/ipc_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/json/parse.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

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
  ASSERT_TRUE(write_input_message(temp.path(), "alice", "line one\n\"quoted\" \xc3\xa9").ok());
  const fs::path input = temp.path() / "alice" / "input";
  auto names = entries(input);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_THAT(names[0], testing::EndsWith(".json"));
  auto value = boost::json::parse(read_file(input / names[0]));
  EXPECT_EQ(value.at("type").as_string(), "message");
  EXPECT_EQ(value.at("text").as_string(), "line one\n\"quoted\" \xc3\xa9");
}

TEST(IpcFiles, WritesAnEmptyCloseRequest) {
  test::TempDir temp;
  ASSERT_TRUE(write_close_request(temp.path(), "alice").ok());
  const fs::path input = temp.path() / "alice" / "input";
  EXPECT_EQ(entries(input), std::vector<std::string>{"_close"});
  EXPECT_EQ(fs::file_size(input / "_close"), 0u);
}

// The attacks of issue 12 on input/: the agent replaces input/ with a symlink to a directory
// of the host's, or plants `_close` (or the follow-up's name) as a symlink to a host file.
TEST(IpcFiles, NeverWritesThroughASymlinkedInputDirectory) {
  test::TempDir temp;
  const fs::path outside = temp.path() / "outside";
  fs::create_directories(outside);
  fs::create_directories(temp.path() / "ipc" / "alice");
  fs::create_directory_symlink(outside, temp.path() / "ipc" / "alice" / "input");
  EXPECT_FALSE(write_close_request(temp.path() / "ipc", "alice").ok());
  EXPECT_FALSE(write_input_message(temp.path() / "ipc", "alice", "hi").ok());
  EXPECT_TRUE(entries(outside).empty());
}

TEST(IpcFiles, ReplacesAPlantedCloseSymlinkWithoutTouchingItsTarget) {
  test::TempDir temp;
  const fs::path host_file = temp.path() / "host-file";
  std::ofstream(host_file) << "the host's data";
  const fs::path input = temp.path() / "ipc" / "alice" / "input";
  fs::create_directories(input);
  fs::create_symlink(host_file, input / "_close");
  ASSERT_TRUE(write_close_request(temp.path() / "ipc", "alice").ok());
  EXPECT_EQ(read_file(host_file), "the host's data");
  EXPECT_FALSE(fs::is_symlink(input / "_close"));
}

TEST(IpcFiles, CreatesTheGroupLayoutAndClearsStaleInput) {
  test::TempDir temp;
  const fs::path input = temp.path() / "alice" / "input";
  ASSERT_TRUE(write_input_message(temp.path(), "alice", "stale").ok());
  ASSERT_TRUE(write_close_request(temp.path(), "alice").ok());
  ASSERT_TRUE(write_ipc_file(temp.path() / "alice" / "messages", "{}").ok());

  ASSERT_TRUE(ensure_group_ipc_dirs(temp.path(), "alice").ok());
  EXPECT_TRUE(fs::is_directory(temp.path() / "alice" / "messages"));
  EXPECT_TRUE(fs::is_directory(temp.path() / "alice" / "tasks"));
  EXPECT_TRUE(entries(input).empty());
  // Requests an agent left before a crash are the host's to handle, not to drop.
  EXPECT_EQ(entries(temp.path() / "alice" / "messages").size(), 1u);
}

TEST(IpcFiles, ClearingInputRemovesPlantedLinksAndTreesButNothingTheyPointTo) {
  test::TempDir temp;
  const fs::path outside = temp.path() / "outside";
  fs::create_directories(outside / "dir");
  std::ofstream(outside / "file") << "keep";
  std::ofstream(outside / "dir" / "inner") << "keep";
  const fs::path input = temp.path() / "ipc" / "alice" / "input";
  fs::create_directories(input / "sub" / "subsub");
  fs::create_directory_symlink(outside / "dir", input / "linked-dir");
  fs::create_directory_symlink(outside / "dir", input / "sub" / "subsub" / "linked-dir");
  fs::create_symlink(outside / "file", input / "linked-file");
  ASSERT_TRUE(clear_input_dir(temp.path() / "ipc", "alice").ok());
  EXPECT_TRUE(entries(input).empty());
  EXPECT_EQ(read_file(outside / "file"), "keep");
  EXPECT_EQ(read_file(outside / "dir" / "inner"), "keep");
}

TEST(IpcFiles, ReplacesASymlinkOrFilePlantedInPlaceOfARequestDirectoryWithoutFollowingIt) {
  test::TempDir temp;
  fs::create_directories(temp.path() / "alice");
  fs::create_directory(temp.path() / "elsewhere");
  std::ofstream(temp.path() / "elsewhere" / "keep") << "keep";
  fs::create_directory_symlink(temp.path() / "elsewhere", temp.path() / "alice" / "tasks");
  std::ofstream(temp.path() / "alice" / "input") << "a file";
  ASSERT_TRUE(ensure_group_ipc_dirs(temp.path(), "alice").ok());
  for (const char* sub : {"tasks", "input"}) {
    EXPECT_EQ(fs::symlink_status(temp.path() / "alice" / sub).type(), fs::file_type::directory);
  }
  EXPECT_EQ(read_file(temp.path() / "elsewhere" / "keep"), "keep");
}

TEST(IpcFiles, RefusesAGroupIpcDirectoryThatIsASymlink) {
  test::TempDir temp;
  fs::create_directory(temp.path() / "elsewhere");
  fs::create_directory_symlink(temp.path() / "elsewhere", temp.path() / "alice");
  auto made = ensure_group_ipc_dirs(temp.path(), "alice");
  ASSERT_FALSE(made.ok());
  EXPECT_TRUE(fs::is_empty(temp.path() / "elsewhere"));
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
  EXPECT_TRUE(clear_input_dir(temp.path(), "nothing-here").ok());
  fs::create_directories(temp.path() / "alice");
  EXPECT_TRUE(clear_input_dir(temp.path(), "alice").ok());
}

TEST(IpcFiles, WritesSnapshotsIntoTheGroupsSnapshotDirectory) {
  test::TempDir temp;
  const fs::path snapshots = temp.path() / "snapshots";
  ASSERT_TRUE(write_snapshot(snapshots, "alice", kCurrentTasksSnapshot, "[]").ok());
  EXPECT_EQ(read_file(snapshots / "alice" / "current_tasks.json"), "[]");
  // Readable by the agent whatever uid its sandbox runs as and whatever the daemon's umask.
  const mode_t old_umask = ::umask(077);
  ASSERT_TRUE(write_snapshot(snapshots, "bob", kCurrentTasksSnapshot, "[]").ok());
  ::umask(old_umask);
  const auto readable = fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read;
  EXPECT_EQ(fs::status(snapshots / "bob").permissions() & fs::perms::all,
            fs::perms::owner_all | readable | fs::perms::group_exec | fs::perms::others_exec);
  EXPECT_EQ(fs::status(snapshots / "bob" / "current_tasks.json").permissions() & fs::perms::all,
            fs::perms::owner_write | readable);
  EXPECT_FALSE(write_snapshot(snapshots, "alice", "../escape.json", "[]").ok());
  EXPECT_FALSE(write_snapshot(snapshots, "alice", ".hidden", "[]").ok());
  EXPECT_FALSE(write_snapshot(snapshots, "..", "x.json", "[]").ok());
  EXPECT_FALSE(fs::exists(snapshots / "escape.json"));
  EXPECT_FALSE(fs::exists(temp.path() / "x.json"));
}

// Errors directory fixtures: `count` entries (a file and its .reason), oldest first, each
// `bytes` long. The sleeps give each entry its own change time.
void plant_errors(const fs::path& errors, int count, std::size_t bytes) {
  fs::create_directories(errors);
  for (int i = 0; i < count; ++i) {
    const std::string name = "alice-" + std::to_string(1000 + i) + ".json";
    std::ofstream(errors / name) << std::string(bytes, 'x');
    std::ofstream(errors / (name + ".reason")) << "bad\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
  }
}

SafeDir open_errors(const fs::path& errors) {
  auto dir = SafeDir::open(errors);
  EXPECT_TRUE(dir.ok());
  return std::move(dir).value();
}

TEST(IpcFiles, PrunesTheOldestErrorsBeyondTheCountWithTheirReasons) {
  test::TempDir temp;
  const fs::path errors = temp.path() / "errors";
  plant_errors(errors, 5, 10);
  ErrorBounds bounds;
  bounds.max_entries = 3;
  auto pruned = prune_errors_dir(open_errors(errors), bounds);
  ASSERT_TRUE(pruned.ok()) << pruned.error().message;
  EXPECT_EQ(pruned.value(), 2u);
  EXPECT_EQ(entries(errors),
            (std::vector<std::string>{"alice-1002.json", "alice-1002.json.reason",
                                      "alice-1003.json", "alice-1003.json.reason",
                                      "alice-1004.json", "alice-1004.json.reason"}));
}

TEST(IpcFiles, PrunesTheOldestErrorsBeyondTheBytes) {
  test::TempDir temp;
  const fs::path errors = temp.path() / "errors";
  plant_errors(errors, 4, 4000);
  ErrorBounds bounds;
  bounds.max_bytes = 9000;  // two entries of 4004 bytes fit, three do not
  ASSERT_EQ(prune_errors_dir(open_errors(errors), bounds).value(), 2u);
  EXPECT_EQ(entries(errors).size(), 4u);
  EXPECT_TRUE(fs::exists(errors / "alice-1003.json"));
}

TEST(IpcFiles, PrunesErrorsOlderThanTheAgeLimit) {
  test::TempDir temp;
  const fs::path errors = temp.path() / "errors";
  plant_errors(errors, 3, 10);
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(prune_errors_dir(open_errors(errors), {}, now).value(), 0u);
  EXPECT_EQ(
      prune_errors_dir(open_errors(errors), {}, now + kMaxErrorAge + std::chrono::hours(1)).value(),
      3u);
  EXPECT_TRUE(entries(errors).empty());
}

}  // namespace
}  // namespace sb::host

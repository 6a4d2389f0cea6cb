#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "agent/bash_tool.h"
#include "agent/file_tools.h"
#include "agent/workspace_paths.h"
#include "agent/workspace_tools.h"
#include "support/proc_scan.h"
#include "support/temp_dir.h"

namespace sb::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

class AgentTools : public ::testing::Test {
 protected:
  AgentTools() {
    group_ = dir_.path() / "group";
    global_ = dir_.path() / "global";
    outside_ = dir_.path() / "outside";
    fs::create_directories(group_);
    fs::create_directories(global_);
    fs::create_directories(outside_);
    context_.workspace = group_;
    context_.roots = {{group_, true}, {global_, false}};
    context_.timeout = 20s;
  }

  ToolOutput run(Tool& tool, std::string_view input) {
    return tool.run(json::parse(input).as_object(), context_);
  }
  ToolOutput run(Tool& tool, const json::object& input) { return tool.run(input, context_); }

  static void write(const fs::path& path, std::string_view content) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << content;
  }

  static std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  test::TempDir dir_;
  fs::path group_, global_, outside_;
  ToolContext context_;
};

// Paths ------------------------------------------------------------------------------------

TEST_F(AgentTools, RelativePathsResolveAgainstTheWorkspace) {
  const WorkspacePaths paths(context_);
  auto resolved = paths.resolve("notes/a.md", Access::write);
  ASSERT_TRUE(resolved) << resolved.error().message;
  EXPECT_EQ(*resolved, group_ / "notes" / "a.md");
  EXPECT_EQ(paths.display(*resolved), "notes/a.md");
  EXPECT_EQ(*paths.resolve("notes/../b.md", Access::read), group_ / "b.md");
  EXPECT_EQ(paths.display(*paths.resolve(".", Access::read)), ".");
}

TEST_F(AgentTools, AbsolutePathOutsideTheRootsIsRefusedNamingTheRoots) {
  const WorkspacePaths paths(context_);
  auto resolved = paths.resolve("/etc/passwd", Access::read);
  ASSERT_FALSE(resolved);
  EXPECT_EQ(resolved.error().message, "path '/etc/passwd' is outside the workspace (" +
                                          group_.string() + ", " + global_.string() + ")");
  EXPECT_TRUE(paths.resolve((global_ / "memory.md").string(), Access::read));
}

TEST_F(AgentTools, DotDotCannotClimbOutOfTheWorkspace) {
  const WorkspacePaths paths(context_);
  auto resolved = paths.resolve("../outside/secret", Access::read);
  ASSERT_FALSE(resolved);
  EXPECT_TRUE(contains(resolved.error().message, "is outside the workspace"));
  EXPECT_FALSE(paths.resolve("a/../../../outside", Access::read));
  // A root is not a prefix of a sibling whose name starts the same.
  fs::create_directories(dir_.path() / "group2");
  EXPECT_FALSE(paths.resolve((dir_.path() / "group2").string(), Access::read));
}

TEST_F(AgentTools, SymlinkPointingOutsideIsRefused) {
  write(outside_ / "secret.txt", "secret\n");
  fs::create_directory_symlink(outside_, group_ / "link");
  ReadFileTool read;
  auto out = run(read, R"({"path":"link/secret.txt"})");
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "resolves to '" + (outside_ / "secret.txt").string() + "'"))
      << out.text;
  EXPECT_FALSE(contains(out.text, "secret\n"));
}

TEST_F(AgentTools, DanglingSymlinkCannotCarryAWriteOutside) {
  fs::create_symlink(outside_ / "planted.txt", group_ / "dangling");
  WriteFileTool write_tool;
  auto out = run(write_tool, R"({"path":"dangling","content":"x"})");
  EXPECT_TRUE(out.is_error);
  EXPECT_FALSE(fs::exists(outside_ / "planted.txt"));
}

TEST_F(AgentTools, SymlinkInsideTheWorkspaceIsFollowed) {
  write(group_ / "real" / "a.txt", "inside\n");
  fs::create_directory_symlink(group_ / "real", group_ / "alias");
  ReadFileTool read;
  auto out = run(read, R"({"path":"alias/a.txt"})");
  EXPECT_FALSE(out.is_error) << out.text;
  EXPECT_TRUE(contains(out.text, "inside"));
}

TEST_F(AgentTools, ReadOnlyRootCanBeReadButNotWritten) {
  write(global_ / "memory.md", "shared\n");
  const std::string memory = (global_ / "memory.md").string();
  ReadFileTool read;
  EXPECT_FALSE(run(read, json::object{{"path", memory}}).is_error);
  WriteFileTool write_tool;
  auto out = run(write_tool, json::object{{"path", memory}, {"content", "x"}});
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, global_.string() + " is read-only")) << out.text;
  EXPECT_EQ(slurp(global_ / "memory.md"), "shared\n");
  EditFileTool edit;
  EXPECT_TRUE(
      run(edit, json::object{{"path", memory}, {"old_string", "shared"}, {"new_string", "mine"}})
          .is_error);
  EXPECT_EQ(slurp(global_ / "memory.md"), "shared\n");
}

// read_file --------------------------------------------------------------------------------

TEST_F(AgentTools, ReadFileNumbersLinesLikeCatN) {
  write(group_ / "notes.md", "first\nsecond\n");
  ReadFileTool read;
  auto out = run(read, R"({"path":"notes.md"})");
  EXPECT_FALSE(out.is_error);
  EXPECT_EQ(out.text, "     1\tfirst\n     2\tsecond\n");
}

TEST_F(AgentTools, ReadFileHonoursOffsetAndLimitAndSaysHowToContinue) {
  std::string content;
  for (int i = 1; i <= 10; ++i) content += "line " + std::to_string(i) + "\n";
  write(group_ / "ten.txt", content);
  ReadFileTool read;
  auto out = run(read, R"({"path":"ten.txt","offset":4,"limit":2})");
  EXPECT_EQ(out.text,
            "     4\tline 4\n     5\tline 5\n[lines 4-5 of 10 shown; continue with offset=6]\n");
  auto past = run(read, R"({"path":"ten.txt","offset":11})");
  EXPECT_TRUE(past.is_error);
  EXPECT_TRUE(contains(past.text, "past the end of ten.txt (10 lines)"));
  EXPECT_TRUE(run(read, R"({"path":"ten.txt","limit":0})").is_error);
}

TEST_F(AgentTools, ReadFileStopsAtTheOutputCapOnAWholeLine) {
  context_.max_output_bytes = 1000;
  std::string content;
  for (int i = 1; i <= 500; ++i) content += "some text on line " + std::to_string(i) + "\n";
  write(group_ / "long.txt", content);
  ReadFileTool read;
  auto out = run(read, R"({"path":"long.txt"})");
  EXPECT_FALSE(out.is_error);
  EXPECT_LE(out.text.size(), 1000u);
  EXPECT_TRUE(contains(out.text, "[output limit reached: lines 1-")) << out.text;
  const auto at = out.text.find("continue with offset=");
  ASSERT_NE(at, std::string::npos);
  const int next = std::stoi(out.text.substr(at + 21));
  EXPECT_TRUE(contains(out.text, "line " + std::to_string(next - 1) + "\n"));
  EXPECT_FALSE(contains(out.text, "line " + std::to_string(next) + "\n"));
}

TEST_F(AgentTools, ReadFileRefusesBinaryAndOversizedFiles) {
  write(group_ / "image.png", std::string("\x89PNG\r\n\x1a\n\0\0\0", 11));
  ReadFileTool read;
  auto binary = run(read, R"({"path":"image.png"})");
  EXPECT_TRUE(binary.is_error);
  EXPECT_TRUE(contains(binary.text, "binary")) << binary.text;

  write(group_ / "huge.log", "");
  fs::resize_file(group_ / "huge.log", kMaxTextFileBytes + 1);
  auto huge = run(read, R"({"path":"huge.log"})");
  EXPECT_TRUE(huge.is_error);
  EXPECT_TRUE(contains(huge.text, "over the limit")) << huge.text;

  auto missing = run(read, R"({"path":"nope.txt"})");
  EXPECT_TRUE(missing.is_error);
  EXPECT_TRUE(contains(missing.text, "does not exist"));
  EXPECT_TRUE(run(read, R"({"path":"."})").is_error);
  EXPECT_TRUE(run(read, R"({})").is_error);
  EXPECT_TRUE(run(read, R"({"path":42})").is_error);
}

// write_file -------------------------------------------------------------------------------

TEST_F(AgentTools, WriteFileCreatesParentDirectoriesAndReportsBytes) {
  WriteFileTool write_tool;
  auto out = run(write_tool, R"({"path":"a/b/c.txt","content":"hello"})");
  EXPECT_FALSE(out.is_error) << out.text;
  EXPECT_EQ(out.text, "wrote 5 bytes to a/b/c.txt (new file)");
  EXPECT_EQ(slurp(group_ / "a" / "b" / "c.txt"), "hello");
  auto again = run(write_tool, R"({"path":"a/b/c.txt","content":"bye"})");
  EXPECT_EQ(again.text, "wrote 3 bytes to a/b/c.txt");
  EXPECT_EQ(slurp(group_ / "a" / "b" / "c.txt"), "bye");
  // The temp file was renamed into place, not left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(group_ / "a" / "b"), fs::directory_iterator()), 1);
}

TEST_F(AgentTools, WriteFileKeepsTheModeOfAnExistingFile) {
  write(group_ / "run.sh", "#!/bin/sh\n");
  fs::permissions(group_ / "run.sh", fs::perms(0750));
  WriteFileTool write_tool;
  EXPECT_FALSE(run(write_tool, R"({"path":"run.sh","content":"#!/bin/sh\necho hi\n"})").is_error);
  EXPECT_EQ(fs::status(group_ / "run.sh").permissions() & fs::perms::all, fs::perms(0750));
}

TEST_F(AgentTools, WriteFileRefusesADirectory) {
  fs::create_directories(group_ / "dir");
  WriteFileTool write_tool;
  auto out = run(write_tool, R"({"path":"dir","content":"x"})");
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "is a directory"));
}

// edit_file --------------------------------------------------------------------------------

TEST_F(AgentTools, EditReplacesAUniqueString) {
  write(group_ / "notes.md", "alpha\nbeta\ngamma\n");
  EditFileTool edit;
  auto out = run(edit, R"({"path":"notes.md","old_string":"beta","new_string":"BETA"})");
  EXPECT_FALSE(out.is_error) << out.text;
  EXPECT_EQ(out.text, "replaced 1 occurrence in notes.md (line 2)");
  EXPECT_EQ(slurp(group_ / "notes.md"), "alpha\nBETA\ngamma\n");
}

TEST_F(AgentTools, EditRefusesAStringThatIsNotUnique) {
  write(group_ / "notes.md", "todo\ntodo\ntodo\n");
  EditFileTool edit;
  auto out = run(edit, R"({"path":"notes.md","old_string":"todo","new_string":"done"})");
  EXPECT_TRUE(out.is_error);
  EXPECT_EQ(out.text,
            "old_string occurs 3 times in notes.md; include more context to make it unique, or "
            "set replace_all");
  EXPECT_EQ(slurp(group_ / "notes.md"), "todo\ntodo\ntodo\n");

  auto all = run(edit, R"({"path":"notes.md","old_string":"todo","new_string":"done",
                          "replace_all":true})");
  EXPECT_FALSE(all.is_error);
  EXPECT_EQ(all.text, "replaced 3 occurrences in notes.md (first at line 1)");
  EXPECT_EQ(slurp(group_ / "notes.md"), "done\ndone\ndone\n");
}

TEST_F(AgentTools, EditRefusesMissingAndEmptyStrings) {
  write(group_ / "notes.md", "alpha\n");
  EditFileTool edit;
  auto missing = run(edit, R"({"path":"notes.md","old_string":"omega","new_string":"x"})");
  EXPECT_TRUE(missing.is_error);
  EXPECT_TRUE(contains(missing.text, "old_string not found in notes.md"));
  auto empty = run(edit, R"({"path":"notes.md","old_string":"","new_string":"x"})");
  EXPECT_TRUE(empty.is_error);
  EXPECT_TRUE(contains(empty.text, "old_string is empty"));
  auto same = run(edit, R"({"path":"notes.md","old_string":"alpha","new_string":"alpha"})");
  EXPECT_TRUE(same.is_error);
  EXPECT_TRUE(run(edit, R"({"path":"notes.md","old_string":"alpha"})").is_error);
  EXPECT_EQ(slurp(group_ / "notes.md"), "alpha\n");
}

// list_files -------------------------------------------------------------------------------

TEST_F(AgentTools, ListShowsDirectoriesWithSlashAndFileSizesSorted) {
  write(group_ / "b.txt", "12345");
  write(group_ / "a" / "inner.txt", "1");
  write(group_ / ".hidden" / "x", "");
  fs::create_symlink("b.txt", group_ / "c");
  ListFilesTool list;
  auto flat = run(list, "{}");
  EXPECT_EQ(flat.text, ".hidden/\na/\nb.txt (5 bytes)\nc -> b.txt\n");
  auto deep = run(list, R"({"recursive":true})");
  EXPECT_EQ(deep.text, ".hidden/\na/\na/inner.txt (1 byte)\nb.txt (5 bytes)\nc -> b.txt\n");
  auto sub = run(list, R"({"path":"a"})");
  EXPECT_EQ(sub.text, "a/inner.txt (1 byte)\n");
  EXPECT_TRUE(run(list, R"({"path":"b.txt"})").is_error);
  EXPECT_TRUE(run(list, R"({"path":"/"})").is_error);
}

TEST_F(AgentTools, ListCapsTheNumberOfEntriesAndCountsTheRest) {
  for (int i = 0; i < 1100; ++i) write(group_ / "many" / ("f" + std::to_string(i)), "");
  ListFilesTool list;
  context_.max_output_bytes = 1 << 20;
  auto out = run(list, R"({"path":"many"})");
  EXPECT_FALSE(out.is_error);
  EXPECT_EQ(std::count(out.text.begin(), out.text.end(), '\n'), 1001);
  EXPECT_TRUE(contains(out.text, "100 more entries not shown")) << out.text.substr(0, 200);
}

// glob -------------------------------------------------------------------------------------

TEST_F(AgentTools, GlobDoubleStarCrossesDirectories) {
  write(group_ / "a.md", "");
  write(group_ / "x" / "b.md", "");
  write(group_ / "x" / "y" / "c.md", "");
  write(group_ / "x" / "y" / "c.txt", "");
  write(group_ / ".hidden" / "d.md", "");
  GlobTool glob;
  EXPECT_EQ(run(glob, R"({"pattern":"**/*.md"})").text, "a.md\nx/b.md\nx/y/c.md\n");
  EXPECT_EQ(run(glob, R"({"pattern":"x/**/c.*"})").text, "x/y/c.md\nx/y/c.txt\n");
  EXPECT_EQ(run(glob, R"({"pattern":"*"})").text, "a.md\nx/\n");
  EXPECT_EQ(run(glob, R"({"pattern":".*/*.md"})").text, ".hidden/d.md\n");
  EXPECT_EQ(run(glob, R"({"pattern":"*.md","path":"x"})").text, "x/b.md\n");
  EXPECT_EQ(run(glob, R"({"pattern":"x/**"})").text, "x/b.md\nx/y/\nx/y/c.md\nx/y/c.txt\n");
}

TEST_F(AgentTools, GlobSupportsQuestionMarkAndCharacterClasses) {
  for (const char* name : {"log1.txt", "log2.txt", "log3.txt", "logA.txt", "log10.txt"}) {
    write(group_ / name, "");
  }
  GlobTool glob;
  EXPECT_EQ(run(glob, R"({"pattern":"log?.txt"})").text,
            "log1.txt\nlog2.txt\nlog3.txt\nlogA.txt\n");
  EXPECT_EQ(run(glob, R"({"pattern":"log[12].txt"})").text, "log1.txt\nlog2.txt\n");
  EXPECT_EQ(run(glob, R"({"pattern":"log[!0-9].txt"})").text, "logA.txt\n");
  auto none = run(glob, R"({"pattern":"*.pdf"})");
  EXPECT_FALSE(none.is_error);
  EXPECT_TRUE(contains(none.text, "no paths match"));
}

TEST_F(AgentTools, GlobPatternsCannotLeaveTheSearchPath) {
  GlobTool glob;
  EXPECT_TRUE(run(glob, R"({"pattern":"../outside/*"})").is_error);
  EXPECT_TRUE(run(glob, R"({"pattern":"/etc/*"})").is_error);
  EXPECT_TRUE(run(glob, R"({"pattern":"*","path":"/etc"})").is_error);
}

TEST(GlobMatches, DoubleStarMatchesAnyNumberOfDirectories) {
  EXPECT_TRUE(glob_matches("docs/**/*.md", "docs/a.md"));
  EXPECT_TRUE(glob_matches("docs/**/*.md", "docs/a/b/c.md"));
  EXPECT_FALSE(glob_matches("docs/**/*.md", "src/a.md"));
  EXPECT_FALSE(glob_matches("docs/*.md", "docs/a/b.md"));
  EXPECT_TRUE(glob_matches("**/test_*.py", "pkg/tests/test_x.py"));
  EXPECT_FALSE(glob_matches("**/*.md", ".git/x.md"));
  EXPECT_TRUE(glob_matches("a/**/b/**/c", "a/x/b/y/z/c"));
}

// grep -------------------------------------------------------------------------------------

TEST_F(AgentTools, GrepPrintsFileLineAndText) {
  write(group_ / "a.txt", "fine\nan error here\nall good\n");
  write(group_ / "sub" / "b.log", "ERROR upper\nerrors: 2\n");
  write(group_ / ".git" / "c.txt", "error in hidden\n");
  GrepTool grep;
  EXPECT_EQ(run(grep, R"j({"pattern":"errors?( |:)"})j").text,
            "a.txt:2: an error here\nsub/b.log:2: errors: 2\n");
  EXPECT_EQ(run(grep, R"({"pattern":"^error","ignore_case":true,"glob":"*.log"})").text,
            "sub/b.log:1: ERROR upper\nsub/b.log:2: errors: 2\n");
  EXPECT_EQ(run(grep, R"({"pattern":"good$","path":"a.txt"})").text, "a.txt:3: all good\n");
  auto none = run(grep, R"({"pattern":"absent"})");
  EXPECT_FALSE(none.is_error);
  EXPECT_TRUE(contains(none.text, "no matches for 'absent'"));
}

TEST_F(AgentTools, GrepSkipsBinaryFilesAndSaysSo) {
  write(group_ / "blob.bin", std::string("needle\0\0", 8));
  write(group_ / "text.txt", "needle\n");
  GrepTool grep;
  auto out = run(grep, R"({"pattern":"needle"})");
  EXPECT_EQ(out.text, "text.txt:1: needle\n[skipped: 1 binary file]\n");
}

TEST_F(AgentTools, GrepReportsABadRegularExpression) {
  GrepTool grep;
  auto out = run(grep, R"({"pattern":"a(b"})");
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "invalid regular expression 'a(b'")) << out.text;
}

TEST_F(AgentTools, GrepStopsAtTheMatchCap) {
  std::string content;
  for (int i = 0; i < 800; ++i) content += "match " + std::to_string(i) + "\n";
  write(group_ / "many.txt", content);
  context_.max_output_bytes = 1 << 20;
  GrepTool grep;
  auto out = run(grep, R"({"pattern":"match"})");
  EXPECT_EQ(std::count(out.text.begin(), out.text.end(), '\n'), 501);
  EXPECT_TRUE(contains(out.text, "more matches not shown"));
  EXPECT_TRUE(contains(out.text, "many.txt:500: match 499\n"));
  EXPECT_FALSE(contains(out.text, "many.txt:501:"));
}

// bash -------------------------------------------------------------------------------------

TEST_F(AgentTools, BashRunsInTheWorkspaceWithStderrMerged) {
  BashTool bash(context_);
  auto out = run(bash, R"({"command":"pwd; echo oops >&2; echo done"})");
  EXPECT_FALSE(out.is_error) << out.text;
  EXPECT_EQ(out.text, fs::canonical(group_).string() + "\noops\ndone\n");
}

TEST_F(AgentTools, BashReportsANonZeroExitAsAnError) {
  BashTool bash(context_);
  auto out = run(bash, R"({"command":"echo partial; exit 3"})");
  EXPECT_TRUE(out.is_error);
  EXPECT_EQ(out.text, "partial\n[exit status 3]");
  auto silent = run(bash, R"({"command":"true"})");
  EXPECT_FALSE(silent.is_error);
  EXPECT_EQ(silent.text, "(no output)");
}

TEST_F(AgentTools, BashStdinIsEmpty) {
  BashTool bash(context_);
  auto out = run(bash, R"({"command":"cat; echo after-cat"})");
  EXPECT_EQ(out.text, "after-cat\n");
}

TEST_F(AgentTools, BashTimeoutKillsTheCommandAndItsChildren) {
  context_.timeout = 2s;
  BashTool bash(context_);
  auto out = run(bash, R"({"command":"sleep 7654321 & sleep 7654322; echo never"})");
  EXPECT_TRUE(out.is_error);
  EXPECT_EQ(out.text, "[timed out after 2 s; the command was killed]");
  EXPECT_TRUE(test::processes_with_marker_gone("sleep 7654321", 10s));
  EXPECT_TRUE(test::processes_with_marker_gone("sleep 7654322", 10s));
}

TEST_F(AgentTools, BashTimeoutSecondsShortensTheDeadline) {
  BashTool bash(context_);
  auto out = run(bash, R"({"command":"trap '' TERM; sleep 7654323","timeout_seconds":1})");
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "[timed out after 1 s; the command was killed]")) << out.text;
  EXPECT_TRUE(test::processes_with_marker_gone("sleep 7654323", 10s));
}

TEST_F(AgentTools, BashKillsWhatTheCommandLeftInTheBackground) {
  BashTool bash(context_);
  auto out = run(bash, R"({"command":"sleep 7654324 & echo launched"})");
  EXPECT_FALSE(out.is_error);
  EXPECT_EQ(out.text, "launched\n");
  EXPECT_TRUE(test::processes_with_marker_gone("sleep 7654324", 10s));
}

TEST_F(AgentTools, BashCapsOutputKeepingHeadAndTail) {
  context_.max_output_bytes = 2000;
  BashTool bash(context_);
  // 1 MB is far more than a pipe buffer: the command finishes only if the tool keeps reading.
  auto out = run(
      bash, R"({"command":"echo START; head -c 1000000 /dev/zero | tr '\\0' x; echo; echo END"})");
  EXPECT_FALSE(out.is_error) << out.text.substr(0, 200);
  EXPECT_LE(out.text.size(), 2000u);
  EXPECT_EQ(out.text.rfind("START\n", 0), 0u);
  EXPECT_TRUE(out.text.ends_with("xxx\nEND\n"));
  const auto note = out.text.find("[\xE2\x80\xA6 ");
  ASSERT_NE(note, std::string::npos);
  const std::size_t omitted = std::stoul(out.text.substr(note + 5));
  // What is shown plus what is omitted is the whole output (give or take the line break
  // put before the note).
  const std::size_t total = 6 + 1000000 + 1 + 4;
  const std::size_t shown = out.text.size() - (out.text.find('\n', note) + 1 - note);
  EXPECT_GE(omitted + shown, total);
  EXPECT_LE(omitted + shown, total + 1);
}

TEST_F(AgentTools, BashOutputIsValidUtf8) {
  BashTool bash(context_);
  auto out = run(bash, R"({"command":"printf 'caf\\303\\251 \\377\\n'"})");
  EXPECT_EQ(out.text, "caf\xC3\xA9 \xEF\xBF\xBD\n");
}

TEST_F(AgentTools, BashRefusesBadInput) {
  BashTool bash(context_);
  EXPECT_TRUE(run(bash, R"({})").is_error);
  EXPECT_TRUE(run(bash, R"({"command":"  "})").is_error);
  EXPECT_TRUE(run(bash, R"({"command":"true","timeout_seconds":0})").is_error);
  EXPECT_TRUE(run(bash, R"({"command":"true","timeout_seconds":"soon"})").is_error);
}

// Shared pieces ----------------------------------------------------------------------------

TEST(OutputCap, KeepsEverythingThatFits) {
  OutputCap cap(1000);
  cap.append("hello ");
  cap.append("world");
  EXPECT_FALSE(cap.truncated());
  EXPECT_EQ(cap.finish(), "hello world");
}

TEST(OutputCap, CutsTheMiddleWithoutSplittingCharacters) {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "\xC3\xA9";  // é, two bytes each
  const std::string out = cap_output(text, 1000);
  EXPECT_LE(out.size(), 1000u);
  EXPECT_TRUE(contains(out, " bytes of output omitted "));
  EXPECT_EQ(to_valid_utf8(out), out);
  EXPECT_FALSE(contains(out, "\xEF\xBF\xBD"));
}

TEST(ToValidUtf8, ReplacesInvalidBytesOnly) {
  EXPECT_EQ(to_valid_utf8("plain"), "plain");
  EXPECT_EQ(to_valid_utf8("\xE2\x82\xAC"), "\xE2\x82\xAC");
  EXPECT_EQ(to_valid_utf8("a\xFF"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong '/'
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

TEST(WorkspaceTools, WebFetchIsOfferedOnlyWithNetwork) {
  auto names = [](const ToolList& tools) {
    std::string all;
    for (const auto& tool : tools) all += tool->spec().name + " ";
    return all;
  };
  ToolContext context;
  EXPECT_EQ(names(make_workspace_tools(context)),
            "bash read_file write_file edit_file list_files glob grep ");
  context.network = true;
  EXPECT_EQ(names(make_workspace_tools(context)),
            "bash read_file write_file edit_file list_files glob grep web_fetch ");
  for (const auto& tool : make_workspace_tools(context)) {
    const auto& spec = tool->spec();
    EXPECT_FALSE(spec.description.empty()) << spec.name;
    EXPECT_EQ(spec.input_schema.at("type"), "object") << spec.name;
    EXPECT_TRUE(spec.input_schema.at("properties").is_object()) << spec.name;
  }
}

}  // namespace
}  // namespace sb::agent

#pragma once
// The file tools of the built-in agent: read_file, write_file, edit_file, list_files, glob,
// grep. Every path goes through WorkspacePaths (workspace_paths.h) first; writes need a
// writable root. Each tool's limits are in its description, which is what the model reads.
//
// All of them follow Tool's contract (tool.h): run() never throws for bad input or a failed
// action and returns an error output saying what went wrong and what to do instead. Output
// is valid UTF-8 and at most about ToolContext::max_output_bytes.
//
// Threading: one call at a time per tool object.

#include <cstddef>

#include "agent/tool.h"

namespace sb::agent {

// Files larger than this are not read, edited or searched.
inline constexpr std::size_t kMaxTextFileBytes = 8 * 1024 * 1024;

// {path, offset?, limit?}: the file's lines numbered like `cat -n` (from line `offset`,
// 1-based, at most `limit` lines, default 2000; lines cut at 2000 characters). Refuses
// directories, binary files (a NUL byte in the first 8 KiB) and files over kMaxTextFileBytes.
// When the output cap is reached it stops at a whole line and says which offset continues.
class ReadFileTool final : public Tool {
 public:
  ReadFileTool();
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const boost::json::object& input, const ToolContext& context) override;

 private:
  ToolSpec spec_;
};

// {path, content}: creates or replaces the file (parent directories created), atomically:
// a temp file in the same directory renamed over the target, keeping an existing file's
// permissions. Reports the bytes written. Content over kMaxTextFileBytes is refused.
class WriteFileTool final : public Tool {
 public:
  WriteFileTool();
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const boost::json::object& input, const ToolContext& context) override;

 private:
  ToolSpec spec_;
};

// {path, old_string, new_string, replace_all?}: exact-string replacement, written
// atomically. Fails when old_string is empty, equal to new_string, not found, or found more
// than once without replace_all ("old_string occurs 3 times in notes.md; include more
// context to make it unique, or set replace_all").
class EditFileTool final : public Tool {
 public:
  EditFileTool();
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const boost::json::object& input, const ToolContext& context) override;

 private:
  ToolSpec spec_;
};

// {path?, recursive?}: a directory's entries sorted by name, directories with a trailing '/',
// files with their size, symlinks with their target; recursive lists the whole tree (hidden
// directories are listed but not entered). At most 1000 entries, then a count of the rest.
class ListFilesTool final : public Tool {
 public:
  ListFilesTool();
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const boost::json::object& input, const ToolContext& context) override;

 private:
  ToolSpec spec_;
};

// {pattern, path?}: paths under `path` (default: the workspace) matching a glob: `*` and `?`
// within a name, `[abc]`/`[a-z]`/`[!a]`, `**` for any number of directories. Names starting
// with '.' match only a pattern segment starting with '.'. Sorted, at most 1000.
class GlobTool final : public Tool {
 public:
  GlobTool();
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const boost::json::object& input, const ToolContext& context) override;

 private:
  ToolSpec spec_;
};

// {pattern, path?, glob?, ignore_case?}: lines matching a POSIX extended regular expression
// (regcomp), as `file:line: text`, files in name order. Skips binary and oversized files
// and hidden entries (unless named by `path`); `glob` filters file names (or paths, when it
// holds a '/'). At most 500 matching lines, lines cut at 500 characters.
class GrepTool final : public Tool {
 public:
  GrepTool();
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const boost::json::object& input, const ToolContext& context) override;

 private:
  ToolSpec spec_;
};

// Whether `path` ('/'-separated, relative) matches `pattern` with the glob syntax above.
bool glob_matches(std::string_view pattern, std::string_view path);

}  // namespace sb::agent

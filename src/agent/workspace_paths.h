#pragma once
// Path confinement for the workspace tools: every path the model names is resolved here
// before a tool touches it.
//
// A relative path resolves against ToolContext::workspace; an absolute path must lie inside
// one of ToolContext::roots. Resolution is what the kernel would do: `.` and `..` are applied
// and every symlink in the existing part of the path is followed (dangling ones too, so a
// link to a file that does not exist yet cannot smuggle a write outside), then the result
// must lie inside a root. Writes also need the innermost root holding the path to be
// writable. Within a sandbox this is a second fence, not the first: it keeps the model's
// mistakes inside the workspace and explains them in words it can act on.
//
// Threading: plain functions of their arguments and the file system; any thread.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/tool.h"
#include "common/result.h"

namespace sb::agent {

enum class Access { read, write };

class WorkspacePaths {
 public:
  // Resolves the context's workspace and roots once (their own symlinks followed).
  explicit WorkspacePaths(const ToolContext& context);

  // The absolute, normalised path `requested` names, with symlinks followed. Errors (as the
  // model sees them): empty path or NUL byte; "path '/etc/passwd' is outside the workspace
  // (/workspace/group, /workspace/global)"; a symlink leading outside ("path 'x' resolves to
  // '/etc', outside the workspace (…)"); a symlink loop; for Access::write a path in a
  // read-only root ("cannot write '/workspace/global/a': /workspace/global is read-only").
  Result<std::filesystem::path> resolve(std::string_view requested, Access access) const;

  // True if `resolved` (an absolute path from resolve()) names something whose own target,
  // after following symlinks, still lies inside a root. Used by the tree walks to skip
  // symlinks that point outside.
  bool inside(const std::filesystem::path& resolved) const;

  // How a resolved path is shown to the model: relative to the workspace when inside it
  // ("notes/a.md", "." for the workspace itself), else absolute.
  std::string display(const std::filesystem::path& resolved) const;

  const std::filesystem::path& workspace() const { return workspace_; }

 private:
  struct Root {
    std::filesystem::path resolved;
    std::string shown;  // as configured, for messages
    bool writable = false;
  };
  const Root* innermost_root(const std::filesystem::path& resolved) const;
  std::string roots_list() const;

  std::filesystem::path workspace_;
  std::vector<Root> roots_;
};

// True if `path` is `base` or lies below it, comparing whole components (so "/a/bc" is not
// inside "/a/b"). Both must be absolute and normalised.
bool path_within(const std::filesystem::path& path, const std::filesystem::path& base);

}  // namespace sb::agent

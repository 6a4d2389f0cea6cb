#pragma once
// The host's side of the folders an agent writes (its group folder, IPC and session
// directories): handing them to the agent's host user when the daemon runs as root, and
// measuring their disk use against the group's limit.
//
// Both walk trees an agent controls, so neither follows a symlink: every directory is opened
// relative to its parent's handle with O_NOFOLLOW, every change is made with
// AT_SYMLINK_NOFOLLOW. They are meant for folders whose agent is not running (before a run)
// or for a bounded look while it runs (disk use); they never write file contents.
//
// Threading: plain blocking system calls; safe from any thread.

#include <cstdint>
#include <filesystem>

#include "common/result.h"
#include "sandbox/process.h"

namespace sb::sandbox {

// Makes the directory `base`/`below` (opened and, where missing, created component by
// component without following symlinks: common/safe_files.h; new ones 0700 for
// `private_dir`, else 0755) and the entries directly in it (CLAUDE.md the host wrote, say)
// owned by `owner`. When the directory itself belonged to another user (a folder made before
// agents ran as `owner`), the whole tree is handed over. Error: names the path and the
// system's reason.
Result<void> hand_over(const std::filesystem::path& base, const std::filesystem::path& below,
                       const Identity& owner, bool private_dir = false);

struct DiskUsage {
  std::uint64_t bytes = 0;    // allocated blocks of every file and directory
  std::uint64_t entries = 0;  // files, directories, links
  bool stopped = false;       // the walk stopped early: `stop_above` or kMaxEntries reached
};

// The most entries disk_usage() looks at; a tree with more counts as over any limit.
inline constexpr std::uint64_t kMaxWalkEntries = 200'000;

// The disk use of the tree at `dir` (symlinks counted, never followed). Stops as soon as
// `bytes` exceeds `stop_above` (0: never) or kMaxWalkEntries entries were seen. A missing
// `dir` is 0 bytes; an entry that vanishes during the walk is skipped.
Result<DiskUsage> disk_usage(const std::filesystem::path& dir, std::uint64_t stop_above = 0);

}  // namespace sb::sandbox

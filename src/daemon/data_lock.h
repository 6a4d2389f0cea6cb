#pragma once
// One daemon per data directory. A second daemon on the same data_dir would hold a stale view
// of the groups and runs, and the messages posted through it would never be answered, so
// the daemon holds `<data_dir>/switchboard.lock` locked (flock, exclusive) for its whole
// life, taken before it opens the store or writes anything there.
//
// The lock, not the pid written into the file, decides: the kernel drops it when the holder
// exits, however it exits (SIGKILL included), so a restart never finds a stale lock and the
// file itself is never removed. The descriptor is close-on-exec, so agents and sandboxes
// started by the daemon never inherit it (a child outliving the daemon cannot keep it).

#include <sys/types.h>

#include <filesystem>
#include <string_view>

#include "common/result.h"
#include "common/safe_files.h"

namespace sb {

inline constexpr std::string_view kDataLockFile = "switchboard.lock";

class DataDirLock {
 public:
  // Creates `data_dir` if it is missing, opens its lock file (O_NOFOLLOW|O_CLOEXEC, created
  // 0644: a symlink in its place is refused) and takes the lock without waiting; then writes
  // this process's pid into the file, for the message another daemon shows. Errors: another
  // process holds the lock ("data directory /x is in use by switchboard pid 1234 (lock
  // /x/switchboard.lock); …"), or the directory or file cannot be created, opened or locked
  // (the path and the system's reason). Blocking; call once at start-up.
  static Result<DataDirLock> acquire(const std::filesystem::path& data_dir);

  // The lock file's path.
  const std::filesystem::path& file() const { return file_; }

  // Releases the lock (closing the descriptor) when destroyed. Move-only.
  DataDirLock(DataDirLock&&) = default;
  DataDirLock& operator=(DataDirLock&&) = default;

 private:
  DataDirLock(std::filesystem::path file, UniqueFd fd)
      : file_(std::move(file)), fd_(std::move(fd)) {}

  std::filesystem::path file_;
  UniqueFd fd_;
};

}  // namespace sb

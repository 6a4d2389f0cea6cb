#pragma once
// File operations in directories that someone hostile can write (an agent's group folder, its
// IPC and session directories), done so that a symlink planted there, at any moment, never
// makes the host create, write, read, move or remove anything elsewhere.
//
// Everything goes through a SafeDir: a directory handle opened from a trusted base (a
// directory only the host can write, such as data_dir; the base itself is resolved as the
// system does) one path component at a time with O_DIRECTORY|O_NOFOLLOW. Every later
// operation is relative to that handle (openat, mkdirat, renameat, unlinkat), and files are
// opened with O_NOFOLLOW; new files are created with O_CREAT|O_EXCL under an unpredictable
// temporary name and renamed into place. If an agent swaps a directory for a symlink, the
// operation fails (ELOOP/ENOTDIR) instead of following it.
//
// Errors name the full path and the system's reason ("cannot open directory
// /data/ipc/alice/input: it is a symlink or not a directory (Too many levels of symbolic
// links)"). Threading: plain blocking calls; a SafeDir may be used from any thread, one at a
// time per object.

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace sb {

// Writes all of `content` to `fd`, retrying short writes and EINTR. Returns 0, or the errno
// of the failing write.
int write_all(int fd, std::string_view content);

// An owned file descriptor, closed when destroyed. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset();
  // Closes now and returns close()'s result (0, or -1 with errno set): a deferred write error
  // can surface here.
  int close();

 private:
  int fd_ = -1;
};

// What to do about a missing directory component.
enum class MissingDirs { fail, create };
// Whether a write is fsynced before the rename: `no` for files rewritten before every use,
// where the rename's atomicity is all that matters.
enum class Durable { no, yes };

// True for one plain path component: not empty, at most 255 bytes, not "." or "..", without
// '/' or NUL.
bool is_single_component(std::string_view name);

// A directory opened without following symlinks below a trusted base. Move-only.
class SafeDir {
 public:
  // Opens `base` (trusted, followed as the system resolves it) and then each component of
  // `below` (relative; no ".." component) with O_DIRECTORY|O_NOFOLLOW. With
  // MissingDirs::create, missing components are created with `mode` (less the umask). Fails,
  // naming the path, when a component is a symlink or not a directory, is missing (and not
  // created), or cannot be opened.
  static Result<SafeDir> open(const std::filesystem::path& base,
                              const std::filesystem::path& below = {},
                              MissingDirs missing = MissingDirs::fail, mode_t mode = 0777);

  // The same below this directory.
  Result<SafeDir> open_dir(const std::filesystem::path& below,
                           MissingDirs missing = MissingDirs::fail, mode_t mode = 0777) const;

  int fd() const { return fd_.get(); }
  // The path this handle was opened as; for messages only, never for access.
  const std::filesystem::path& path() const { return path_; }

  // Writes `content` to `name` atomically: a temporary `.<name>.tmp-<16 random hex digits>`
  // created O_CREAT|O_EXCL|O_NOFOLLOW, written, fsynced (Durable::yes), renamed over `name`
  // (a symlink named `name` is replaced, never followed). The file gets exactly `mode`,
  // whatever the umask. On failure the temporary is removed and `name` keeps what it had.
  // Fails if `name` is not a single component or is a directory.
  Result<void> write_file(std::string_view name, std::string_view content,
                          Durable durable = Durable::yes, mode_t mode = 0644) const;

  // Like write_file, but never replaces anything: returns false, writing nothing, when
  // `name` exists in any form (a file, a directory, a symlink even if dangling).
  Result<bool> create_file(std::string_view name, std::string_view content,
                           mode_t mode = 0644) const;

  // Opens `name` for appending, creating it if missing (O_APPEND|O_CREAT|O_NOFOLLOW). Fails
  // if it is a symlink or anything but a regular file.
  Result<UniqueFd> open_append(std::string_view name, mode_t mode = 0644) const;

  // Reads `name`, a regular file of at most `max_bytes` (O_NOFOLLOW|O_NONBLOCK: neither a
  // symlink nor a FIFO is followed or waited on). nullopt if it does not exist; an error
  // saying why for a symlink, anything but a regular file, or a file over the limit.
  Result<std::optional<std::string>> read_file(std::string_view name, std::size_t max_bytes) const;

  // The names in this directory (not "." and ".."), unsorted.
  Result<std::vector<std::string>> list() const;

  // lstat of `name` (a symlink is described, not followed); nullopt if it does not exist.
  Result<std::optional<struct stat>> stat(std::string_view name) const;

  // Removes `name`. A directory is removed with everything in it, each level opened with
  // O_NOFOLLOW and emptied through its handle (symlinks inside are unlinked, never
  // followed), at most 64 levels deep. A missing `name` is fine.
  Result<void> remove(std::string_view name) const;

  // Removes every entry of this directory, as remove() does.
  Result<void> clear() const;

  // Moves `name` to `to`/`new_name` (renameat between the two handles; `new_name` is
  // replaced if it exists). Both must be on one file system.
  Result<void> rename(std::string_view name, const SafeDir& to, std::string_view new_name) const;

  // fsync of the directory itself: makes renames and new names in it durable.
  Result<void> sync() const;

 private:
  SafeDir(UniqueFd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  Result<void> remove_at(std::string_view name, int depth) const;
  Result<void> clear_at(int depth) const;
  // Writes `content` to a fresh temporary; returns its name.
  Result<std::string> write_temporary(std::string_view name, std::string_view content,
                                      Durable durable, mode_t mode) const;

  UniqueFd fd_;
  std::filesystem::path path_;
};

// `bytes` random bytes from the system's generator (getrandom), as lower-case hex.
std::string random_hex(std::size_t bytes);

}  // namespace sb

#include "sandbox/agent_folders.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "common/safe_files.h"

namespace sb::sandbox {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxDepth = 64;

Error failure(std::string_view what, const fs::path& path, int error) {
  return make_error(std::string(what) + " " + path.string() + ": " +
                    std::error_code(error, std::generic_category()).message());
}

// Calls `visit(dir_fd, name, stat)` for every entry below the directory `dir_fd` (which it
// closes), depth first; `visit` returns false to stop. Directories are opened with
// O_NOFOLLOW relative to their parent, so a symlink is visited as a link, never entered.
template <class Visit>
bool walk(int dir_fd, int depth, Visit& visit, int max_depth = kMaxDepth) {
  DIR* dir = ::fdopendir(dir_fd);
  if (dir == nullptr) {
    ::close(dir_fd);
    return true;
  }
  bool go_on = true;
  while (go_on) {
    errno = 0;
    const dirent* entry = ::readdir(dir);
    if (entry == nullptr) break;
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat info {};
    if (::fstatat(::dirfd(dir), entry->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
    go_on = visit(::dirfd(dir), entry->d_name, info);
    if (go_on && S_ISDIR(info.st_mode) && depth < max_depth) {
      const int child =
          ::openat(::dirfd(dir), entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0) go_on = walk(child, depth + 1, visit, max_depth);
    }
  }
  ::closedir(dir);
  return go_on;
}

}  // namespace

Result<void> hand_over(const fs::path& base, const fs::path& below, const Identity& owner,
                       bool private_dir) {
  auto opened = SafeDir::open(base, below, MissingDirs::create, private_dir ? 0700 : 0755);
  if (!opened) return opened.error();
  const fs::path dir = base / below;
  // walk() takes a descriptor of its own and closes it.
  const int fd = ::fcntl(opened->fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return failure("cannot open", dir, errno);
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return failure("cannot inspect", dir, error);
  }
  const bool foreign = info.st_uid != owner.uid || info.st_gid != owner.gid;
  if (foreign && ::fchown(fd, owner.uid, owner.gid) != 0) {
    const int error = errno;
    ::close(fd);
    return failure("cannot hand over", dir, error);
  }
  if (private_dir && (info.st_mode & 07777) != 0700) ::fchmod(fd, 0700);
  // A folder made before agents ran as `owner`: everything in it is handed over. Otherwise
  // only what lies directly in it (the host creates files there, such as CLAUDE.md).
  int error = 0;
  auto chown_entry = [&](int parent, const char* name, const struct stat& entry) {
    if ((entry.st_uid != owner.uid || entry.st_gid != owner.gid) &&
        ::fchownat(parent, name, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) != 0 && error == 0) {
      error = errno;
    }
    return true;
  };
  walk(fd, 0, chown_entry, foreign ? kMaxDepth : 0);
  if (error != 0) return failure("cannot hand over everything in", dir, error);
  return {};
}

Result<DiskUsage> disk_usage(const fs::path& dir, std::uint64_t stop_above) {
  DiskUsage usage;
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return usage;
    return failure("cannot open", dir, errno);
  }
  auto count = [&](int, const char*, const struct stat& entry) {
    usage.bytes += static_cast<std::uint64_t>(entry.st_blocks) * 512;
    ++usage.entries;
    if ((stop_above > 0 && usage.bytes > stop_above) || usage.entries >= kMaxWalkEntries) {
      usage.stopped = true;
      return false;
    }
    return true;
  };
  walk(fd, 0, count);
  return usage;
}

}  // namespace sb::sandbox

#include "common/safe_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace sb {
namespace fs = std::filesystem;

namespace {

constexpr int kMaxRemoveDepth = 64;
constexpr int kTemporaryAttempts = 8;

Error failure(std::string_view what, const fs::path& path, int error) {
  return make_error(std::string(what) + " " + path.string() + ": " + std::strerror(error));
}

Error not_a_directory(const fs::path& path, int error) {
  return make_error("cannot open directory " + path.string() +
                    ": it is a symlink or not a directory, and is not followed (" +
                    std::strerror(error) + ")");
}

}  // namespace

int write_all(int fd, std::string_view content) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

namespace {

Result<void> check_name(std::string_view name, const fs::path& dir) {
  if (is_single_component(name)) return {};
  return make_error("'" + std::string(name) + "' is not a plain file name in " + dir.string());
}

// Opens one component below `parent` as a directory, without following it.
Result<UniqueFd> open_component(int parent, const std::string& name, const fs::path& path,
                                MissingDirs missing, mode_t mode) {
  constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int fd = ::openat(parent, name.c_str(), kFlags);
  if (fd < 0 && errno == ENOENT && missing == MissingDirs::create) {
    if (::mkdirat(parent, name.c_str(), mode) != 0 && errno != EEXIST) {
      return failure("cannot create directory", path, errno);
    }
    fd = ::openat(parent, name.c_str(), kFlags);
  }
  if (fd < 0) {
    const int error = errno;
    if (error == ELOOP || error == ENOTDIR) return not_a_directory(path, error);
    return failure("cannot open directory", path, error);
  }
  return UniqueFd(fd);
}

}  // namespace

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int UniqueFd::close() {
  const int result = ::close(fd_);
  fd_ = -1;
  return result;
}

bool is_single_component(std::string_view name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  std::size_t filled = 0;
  while (filled < bytes) {
    const ssize_t n = ::getrandom(raw.data() + filled, bytes - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // getrandom exists since Linux 3.17 and blocks rather than fail once seeded; this is
      // unreachable in practice, and a predictable name must never be used silently.
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    filled += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

Result<SafeDir> SafeDir::open(const fs::path& base, const fs::path& below, MissingDirs missing,
                              mode_t mode) {
  if (base.empty()) return make_error("cannot open a directory below an empty base path");
  if (missing == MissingDirs::create) {
    // The base is trusted: it is the host's own (data_dir and the like).
    std::error_code ec;
    fs::create_directories(base, ec);
    if (ec) return make_error("cannot create directory " + base.string() + ": " + ec.message());
  }
  const int fd = ::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failure("cannot open directory", base, errno);
  SafeDir dir(UniqueFd(fd), base);
  if (below.empty()) return dir;
  return dir.open_dir(below, missing, mode);
}

Result<SafeDir> SafeDir::open_dir(const fs::path& below, MissingDirs missing, mode_t mode) const {
  if (below.is_absolute()) {
    return make_error("cannot open " + below.string() + " below " + path_.string() +
                      ": the path must be relative");
  }
  UniqueFd current;
  fs::path path = path_;
  for (const fs::path& part : below) {
    const std::string name = part.string();
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      return make_error("cannot open " + (path_ / below).string() + ": '..' is not allowed");
    }
    path /= part;
    auto next =
        open_component(current.valid() ? current.get() : fd_.get(), name, path, missing, mode);
    if (!next) return next.error();
    current = std::move(next).value();
  }
  if (!current.valid()) {
    const int fd = ::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return failure("cannot duplicate the handle of", path_, errno);
    current = UniqueFd(fd);
  }
  return SafeDir(std::move(current), std::move(path));
}

Result<std::string> SafeDir::write_temporary(std::string_view name, std::string_view content,
                                             Durable durable, mode_t mode) const {
  std::string temp;
  UniqueFd file;
  for (int attempt = 0; attempt < kTemporaryAttempts && !file.valid(); ++attempt) {
    temp = "." + std::string(name.substr(0, 200)) + ".tmp-" + random_hex(8);
    const int fd = ::openat(fd_.get(), temp.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd >= 0) {
      file = UniqueFd(fd);
    } else if (errno != EEXIST) {
      return failure("cannot create", path_ / temp, errno);
    }
  }
  if (!file.valid()) return failure("cannot create a temporary file in", path_, EEXIST);
  // Exactly `mode`, whatever the umask: an agent running as another user must be able to read
  // what the host leaves for it.
  int error = ::fchmod(file.get(), mode) == 0 ? 0 : errno;
  std::string_view step = "cannot set the mode of";
  if (error == 0) {
    error = write_all(file.get(), content);
    step = "cannot write";
  }
  if (error == 0 && durable == Durable::yes && ::fsync(file.get()) != 0) {
    error = errno;
    step = "cannot fsync";
  }
  if (file.close() != 0 && error == 0) {
    error = errno;
    step = "cannot close";
  }
  if (error != 0) {
    ::unlinkat(fd_.get(), temp.c_str(), 0);
    return failure(step, path_ / temp, error);
  }
  return temp;
}

Result<void> SafeDir::write_file(std::string_view name, std::string_view content, Durable durable,
                                 mode_t mode) const {
  if (auto valid = check_name(name, path_); !valid) return valid;
  auto temp = write_temporary(name, content, durable, mode);
  if (!temp) return temp.error();
  const std::string target(name);
  if (::renameat(fd_.get(), temp->c_str(), fd_.get(), target.c_str()) != 0) {
    const int error = errno;
    ::unlinkat(fd_.get(), temp->c_str(), 0);
    return failure("cannot rename a temporary file onto", path_ / target, error);
  }
  return {};
}

Result<bool> SafeDir::create_file(std::string_view name, std::string_view content,
                                  mode_t mode) const {
  if (auto valid = check_name(name, path_); !valid) return valid.error();
  const std::string target(name);
  struct stat info {};
  if (::fstatat(fd_.get(), target.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0) return false;
  auto temp = write_temporary(name, content, Durable::yes, mode);
  if (!temp) return temp.error();
  // RENAME_NOREPLACE: the name is claimed atomically, a name planted meanwhile is kept.
  int result = ::renameat2(fd_.get(), temp->c_str(), fd_.get(), target.c_str(), RENAME_NOREPLACE);
  if (result != 0 && errno == EINVAL) {
    // A file system without RENAME_NOREPLACE: linkat never replaces either.
    result = ::linkat(fd_.get(), temp->c_str(), fd_.get(), target.c_str(), 0);
  }
  const int error = result == 0 ? 0 : errno;
  ::unlinkat(fd_.get(), temp->c_str(), 0);
  if (error == EEXIST) return false;
  if (error != 0) return failure("cannot create", path_ / target, error);
  return true;
}

Result<UniqueFd> SafeDir::open_append(std::string_view name, mode_t mode) const {
  if (auto valid = check_name(name, path_); !valid) return valid.error();
  const std::string target(name);
  const int fd =
      ::openat(fd_.get(), target.c_str(),
               O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
  if (fd < 0) {
    const int error = errno;
    if (error == ELOOP) {
      return make_error("cannot open " + (path_ / target).string() +
                        ": it is a symlink, which is not followed");
    }
    return failure("cannot open", path_ / target, error);
  }
  UniqueFd file(fd);
  struct stat info {};
  if (::fstat(file.get(), &info) != 0) return failure("cannot stat", path_ / target, errno);
  if (!S_ISREG(info.st_mode)) {
    return make_error("cannot open " + (path_ / target).string() + ": it is not a regular file");
  }
  return file;
}

Result<std::optional<std::string>> SafeDir::read_file(std::string_view name,
                                                      std::size_t max_bytes) const {
  if (auto valid = check_name(name, path_); !valid) return valid.error();
  const std::string target(name);
  const fs::path shown = path_ / target;
  const int fd =
      ::openat(fd_.get(), target.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) return std::optional<std::string>{};
    if (error == ELOOP) {
      return make_error("cannot read " + shown.string() +
                        ": it is a symlink, which is not followed");
    }
    return failure("cannot open", shown, error);
  }
  UniqueFd file(fd);
  struct stat info {};
  if (::fstat(file.get(), &info) != 0) return failure("cannot stat", shown, errno);
  if (!S_ISREG(info.st_mode)) {
    return make_error("cannot read " + shown.string() + ": it is not a regular file");
  }
  const auto too_big = [&] {
    return make_error("cannot read " + shown.string() + ": it is larger than the limit of " +
                      std::to_string(max_bytes) + " bytes");
  };
  if (static_cast<std::uint64_t>(info.st_size) > max_bytes) return too_big();
  // Read to the end, but never more than one byte past the limit: a file still growing is
  // caught too.
  std::string content;
  content.reserve(static_cast<std::size_t>(info.st_size));
  char buffer[65536];
  std::size_t filled = 0;
  while (filled <= max_bytes) {
    const std::size_t want = std::min(sizeof buffer, max_bytes + 1 - filled);
    const ssize_t n = ::read(file.get(), buffer, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failure("cannot read", shown, errno);
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
    filled += static_cast<std::size_t>(n);
  }
  if (filled > max_bytes) return too_big();
  return std::optional<std::string>(std::move(content));
}

Result<std::vector<std::string>> SafeDir::list() const {
  // fdopendir takes the descriptor it is given: hand it a duplicate, opened afresh so that
  // its position starts at the beginning whatever listed this handle before.
  const int fd = ::openat(fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failure("cannot list", path_, errno);
  DIR* stream = ::fdopendir(fd);
  if (stream == nullptr) {
    const int error = errno;
    ::close(fd);
    return failure("cannot list", path_, error);
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(stream);
    if (entry == nullptr) break;
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  const int error = errno;
  ::closedir(stream);
  if (error != 0) return failure("cannot list", path_, error);
  return names;
}

Result<std::optional<struct stat>> SafeDir::stat(std::string_view name) const {
  if (auto valid = check_name(name, path_); !valid) return valid.error();
  const std::string target(name);
  struct stat info {};
  if (::fstatat(fd_.get(), target.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return std::optional<struct stat>{};
    return failure("cannot stat", path_ / target, errno);
  }
  return std::optional<struct stat>(info);
}

Result<void> SafeDir::remove(std::string_view name) const {
  if (auto valid = check_name(name, path_); !valid) return valid;
  return remove_at(name, 0);
}

Result<void> SafeDir::remove_at(std::string_view name, int depth) const {
  const std::string target(name);
  // An agent can swap a directory and a symlink under this name at any moment: each round
  // deals with what the name is now, and nothing is ever followed.
  for (int round = 0; round < 4; ++round) {
    if (::unlinkat(fd_.get(), target.c_str(), 0) == 0 || errno == ENOENT) return {};
    if (errno != EISDIR && errno != EPERM) return failure("cannot remove", path_ / target, errno);
    if (depth >= kMaxRemoveDepth) {
      return make_error("cannot remove " + (path_ / target).string() + ": nested more than " +
                        std::to_string(kMaxRemoveDepth) + " directories deep");
    }
    auto sub = open_dir(target);
    if (!sub) {
      struct stat info {};
      const bool still_a_directory =
          ::fstatat(fd_.get(), target.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISDIR(info.st_mode);
      if (still_a_directory) return sub.error();
      continue;  // gone, or swapped for something else: unlink that instead
    }
    if (auto cleared = sub->clear_at(depth + 1); !cleared) return cleared;
    if (::unlinkat(fd_.get(), target.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return {};
    if (errno != ENOTDIR && errno != ENOTEMPTY) {
      return failure("cannot remove directory", path_ / target, errno);
    }
  }
  return make_error("cannot remove " + (path_ / target).string() +
                    ": it keeps changing while being removed");
}

Result<void> SafeDir::clear() const { return clear_at(0); }

Result<void> SafeDir::clear_at(int depth) const {
  auto names = list();
  if (!names) return names.error();
  for (const std::string& name : *names) {
    if (auto removed = remove_at(name, depth); !removed) return removed;
  }
  return {};
}

Result<void> SafeDir::rename(std::string_view name, const SafeDir& to,
                             std::string_view new_name) const {
  if (auto valid = check_name(name, path_); !valid) return valid;
  if (auto valid = check_name(new_name, to.path_); !valid) return valid;
  const std::string from_name(name);
  const std::string to_name(new_name);
  if (::renameat(fd_.get(), from_name.c_str(), to.fd_.get(), to_name.c_str()) != 0) {
    const int error = errno;
    return make_error("cannot move " + (path_ / from_name).string() + " to " +
                      (to.path_ / to_name).string() + ": " + std::strerror(error));
  }
  return {};
}

Result<void> SafeDir::sync() const {
  if (::fsync(fd_.get()) != 0) return failure("cannot fsync", path_, errno);
  return {};
}

}  // namespace sb

#include "daemon/data_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

namespace sb {
namespace {

// The pid the holder wrote, or empty. The holder writes it right after taking the lock, so
// an empty file is given a moment to fill.
std::string holder_pid(int fd) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    char buffer[32] = {};
    const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
    std::string text(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) return text;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return {};
}

}  // namespace

Result<DataDirLock> DataDirLock::acquire(const std::filesystem::path& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return make_error("cannot create the data directory " + data_dir.string() + ": " +
                      ec.message());
  }
  auto file = data_dir / kDataLockFile;
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd.valid()) {
    const int error = errno;
    return make_error(
        "cannot open the lock file " + file.string() + ": " +
        (error == ELOOP ? "it is a symlink; remove it" : std::string(std::strerror(error))));
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK) {
      return make_error("cannot lock " + file.string() + ": " + std::strerror(error));
    }
    const std::string pid = holder_pid(fd.get());
    return make_error(
        "data directory " + data_dir.string() + " is in use by " +
        (pid.empty() ? std::string("another switchboard process") : "switchboard pid " + pid) +
        " (lock " + file.string() + "); stop that daemon first, or give this one another data_dir");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return make_error("cannot write the pid into " + file.string() + ": " + std::strerror(errno));
  }
  return DataDirLock(std::move(file), std::move(fd));
}

}  // namespace sb

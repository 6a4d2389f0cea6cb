#include "host/ipc_files.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <system_error>

#include "common/json_text.h"

namespace sb::host {
namespace fs = std::filesystem;

namespace {

std::uint32_t random_u32() {
  thread_local std::mt19937 engine{std::random_device{}()};
  return static_cast<std::uint32_t>(engine());
}

std::string hex8(std::uint32_t value) {
  char buffer[9];
  std::snprintf(buffer, sizeof buffer, "%08x", value);
  return buffer;
}

Error system_error(std::string_view what, const fs::path& path, int error) {
  return make_error(std::string(what) + " " + path.string() + ": " + std::strerror(error));
}

// Writes all of `content` to `fd`, retrying short writes and EINTR. Returns errno or 0.
int write_all(int fd, std::string_view content) {
  while (!content.empty()) {
    ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

bool is_plain_file_name(std::string_view name) {
  return !name.empty() && name.size() <= 255 && name.front() != '.' &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

// Creates `dir` if missing; fails if it exists as anything but a real directory.
Result<void> ensure_real_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  auto status = fs::symlink_status(dir, ec);
  if (ec) return make_error("cannot create directory " + dir.string() + ": " + ec.message());
  if (status.type() != fs::file_type::directory) {
    return make_error(dir.string() +
                      " exists but is not a directory (a symlink is not accepted); remove it");
  }
  return {};
}

}  // namespace

Result<void> write_file_atomically(const fs::path& file, std::string_view content, bool durable) {
  const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  const std::string name = file.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return make_error("cannot write " + file.string() + ": it does not name a file");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("cannot create directory " + dir.string() + ": " + ec.message());

  // Everything happens relative to the opened directory, which must not itself be a symlink:
  // an agent that swaps its input/ for a link must not make the host write elsewhere.
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return system_error("cannot open directory", dir, errno);

  const std::string temp = "." + name + ".tmp-" + hex8(random_u32());
  int fd = ::openat(dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    int error = errno;
    ::close(dir_fd);
    return system_error("cannot create", dir / temp, error);
  }

  int error = write_all(fd, content);
  std::string_view failed_step = "cannot write";
  fs::path failed_path = dir / temp;
  if (error == 0 && durable && ::fsync(fd) != 0) {
    error = errno;
    failed_step = "cannot fsync";
  }
  if (::close(fd) != 0 && error == 0) {
    error = errno;
    failed_step = "cannot close";
  }
  if (error == 0 && ::renameat(dir_fd, temp.c_str(), dir_fd, name.c_str()) != 0) {
    error = errno;
    failed_step = "cannot rename the temporary file onto";
    failed_path = file;
  }
  if (error != 0) ::unlinkat(dir_fd, temp.c_str(), 0);
  ::close(dir_fd);
  if (error != 0) return system_error(failed_step, failed_path, error);
  return {};
}

std::string ipc_file_name() {
  static std::atomic<std::uint32_t> counter{0};
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  const std::uint32_t sequence = counter.fetch_add(1, std::memory_order_relaxed) % 1000000;
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%013lld-%06u-%s.json", static_cast<long long>(ms), sequence,
                hex8(random_u32()).c_str());
  return buffer;
}

Result<fs::path> write_ipc_file(const fs::path& dir, std::string_view content) {
  fs::path file = dir / ipc_file_name();
  auto written = write_file_atomically(file, content);
  if (!written) return written.error();
  return file;
}

Result<void> write_input_message(const fs::path& input_dir, std::string_view text) {
  std::string content = "{\"type\":\"message\",\"text\":";
  append_json_string(content, text);
  content += '}';
  auto written = write_ipc_file(input_dir, content);
  if (!written) return written.error();
  return {};
}

Result<void> write_close_request(const fs::path& input_dir) {
  return write_file_atomically(input_dir / kCloseRequestName, "");
}

bool is_valid_group_folder(std::string_view folder) {
  if (folder.empty() || folder.size() > 64 || folder == kErrorsDir) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(folder.front())) return false;
  for (char c : folder) {
    if (!alnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

Result<void> ensure_group_ipc_dirs(const fs::path& ipc_root, std::string_view folder) {
  if (!is_valid_group_folder(folder)) {
    return make_error("invalid group folder '" + std::string(folder) +
                      "': use 1-64 letters, digits, '_' or '-', starting with a letter or digit");
  }
  const fs::path group = ipc_root / folder;
  for (std::string_view sub : {kMessagesDir, kTasksDir, kInputDir}) {
    auto made = ensure_real_directory(group / sub);
    if (!made) return made;
  }
  return clear_input_dir(group / kInputDir);
}

Result<void> clear_input_dir(const fs::path& input_dir) {
  std::error_code ec;
  fs::directory_iterator it(input_dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return {};
    return make_error("cannot list " + input_dir.string() + ": " + ec.message());
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    fs::remove_all(it->path(), ec);
    if (ec) return make_error("cannot remove " + it->path().string() + ": " + ec.message());
  }
  if (ec) return make_error("cannot list " + input_dir.string() + ": " + ec.message());
  return {};
}

Result<void> write_snapshot(const fs::path& ipc_root, std::string_view folder,
                            std::string_view name, std::string_view json_text) {
  if (!is_valid_group_folder(folder)) {
    return make_error("cannot write snapshot: invalid group folder '" + std::string(folder) + "'");
  }
  if (!is_plain_file_name(name)) {
    return make_error("cannot write snapshot: '" + std::string(name) +
                      "' is not a plain file name");
  }
  // Rewritten before every run: a snapshot lost to a power cut is simply written again.
  return write_file_atomically(ipc_root / folder / name, json_text, /*durable=*/false);
}

}  // namespace sb::host

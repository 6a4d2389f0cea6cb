#include "host/ipc_files.h"

#include <errno.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <system_error>
#include <vector>

#include "common/json_text.h"

namespace sb::host {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kReasonSuffix = ".reason";

std::uint32_t random_u32() {
  thread_local std::mt19937 engine{std::random_device{}()};
  return static_cast<std::uint32_t>(engine());
}

std::string hex8(std::uint32_t value) {
  char buffer[9];
  std::snprintf(buffer, sizeof buffer, "%08x", value);
  return buffer;
}

bool is_plain_file_name(std::string_view name) {
  return is_single_component(name) && name.front() != '.';
}

Result<void> check_folder(std::string_view folder) {
  if (is_valid_group_folder(folder)) return {};
  return make_error("invalid group folder '" + std::string(folder) +
                    "': use 1-64 letters, digits, '_' or '-', starting with a letter or digit");
}

}  // namespace

Result<void> write_file_atomically(const fs::path& file, std::string_view content, bool durable) {
  const std::string name = file.filename().string();
  if (!is_single_component(name)) {
    return make_error("cannot write " + file.string() + ": it does not name a file");
  }
  const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("cannot create directory " + dir.string() + ": " + ec.message());
  // The directory itself must not be a symlink: an agent that swaps its input/ for a link
  // must not make a writer write elsewhere.
  const fs::path above = dir.has_parent_path() && dir.has_filename() ? dir.parent_path() : dir;
  const fs::path last = dir.has_parent_path() && dir.has_filename() ? dir.filename() : fs::path();
  auto opened = SafeDir::open(above, last);
  if (!opened) return opened.error();
  return opened->write_file(name, content, durable ? Durable::yes : Durable::no);
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

Result<SafeDir> open_group_ipc_dir(const fs::path& ipc_root, std::string_view folder,
                                   std::string_view sub, MissingDirs missing) {
  if (auto valid = check_folder(folder); !valid) return valid.error();
  fs::path below(folder);
  if (!sub.empty()) below /= sub;
  return SafeDir::open(ipc_root, below, missing);
}

Result<std::string> write_input_message(const fs::path& ipc_root, std::string_view folder,
                                        std::string_view text) {
  std::string content = "{\"type\":\"message\",\"text\":";
  append_json_string(content, text);
  content += '}';
  auto input = open_group_ipc_dir(ipc_root, folder, kInputDir, MissingDirs::create);
  if (!input) return input.error();
  std::string name = ipc_file_name();
  if (auto written = input->write_file(name, content); !written) return written.error();
  return name;
}

Result<bool> input_message_waiting(const fs::path& ipc_root, std::string_view folder,
                                   std::string_view name) {
  auto input = open_group_ipc_dir(ipc_root, folder, kInputDir, MissingDirs::create);
  if (!input) return input.error();
  auto there = input->stat(name);
  if (!there) return there.error();
  return there.value().has_value();
}

Result<bool> withdraw_input_message(const fs::path& ipc_root, std::string_view folder,
                                    std::string_view name) {
  auto input = open_group_ipc_dir(ipc_root, folder, kInputDir, MissingDirs::create);
  if (!input) return input.error();
  auto there = input->stat(name);
  if (!there) return there.error();
  if (!there.value()) return false;
  if (auto removed = input->remove(name); !removed) return removed.error();
  return true;
}

Result<void> write_close_request(const fs::path& ipc_root, std::string_view folder) {
  auto input = open_group_ipc_dir(ipc_root, folder, kInputDir, MissingDirs::create);
  if (!input) return input.error();
  return input->write_file(kCloseRequestName, "");
}

Result<void> ensure_group_ipc_dirs(const fs::path& ipc_root, std::string_view folder) {
  auto group = open_group_ipc_dir(ipc_root, folder, {}, MissingDirs::create);
  if (!group) return group.error();
  for (std::string_view sub : {kMessagesDir, kTasksDir, kInputDir}) {
    // No agent of the group runs now: whatever a previous one put in the place of a request
    // directory (a symlink, a file) is removed, never followed, and the directory made anew.
    if (auto there = group->stat(sub); there && there.value() && !S_ISDIR(there.value()->st_mode)) {
      if (auto removed = group->remove(sub); !removed) return removed;
    }
    auto made = group->open_dir(sub, MissingDirs::create);
    if (!made) return made.error();
    if (sub == kInputDir) {
      if (auto cleared = made->clear(); !cleared) return cleared;
    }
  }
  return {};
}

Result<void> clear_input_dir(const fs::path& ipc_root, std::string_view folder) {
  if (auto valid = check_folder(folder); !valid) return valid;
  auto group = SafeDir::open(ipc_root, fs::path(folder));
  if (!group) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(ipc_root / folder, ec))) return {};
    return group.error();
  }
  auto input = group->open_dir(kInputDir);
  if (!input) {
    auto there = group->stat(kInputDir);
    if (there && !there.value()) return {};
    return input.error();
  }
  return input->clear();
}

Result<void> write_snapshot(const fs::path& snapshot_root, std::string_view folder,
                            std::string_view name, std::string_view json_text) {
  if (!is_valid_group_folder(folder)) {
    return make_error("cannot write snapshot: invalid group folder '" + std::string(folder) + "'");
  }
  if (!is_plain_file_name(name)) {
    return make_error("cannot write snapshot: '" + std::string(name) +
                      "' is not a plain file name");
  }
  // Readable by the agent, whatever uid its sandbox runs as; writable by the host only.
  auto dir = SafeDir::open(snapshot_root, fs::path(folder), MissingDirs::create, 0755);
  if (!dir) return dir.error();
  if (::fchmod(dir->fd(), 0755) != 0) {
    return make_error("cannot set the mode of " + dir->path().string() + ": " +
                      std::strerror(errno));
  }
  // Rewritten before every run: a snapshot lost to a power cut is simply written again.
  return dir->write_file(name, json_text, Durable::no, 0644);
}

Result<std::size_t> prune_errors_dir(const SafeDir& errors, const ErrorBounds& bounds,
                                     std::chrono::system_clock::time_point now) {
  struct Entry {
    std::vector<std::string> names;
    std::int64_t changed = 0;  // nanoseconds since the epoch
    std::uint64_t bytes = 0;
  };
  auto names = errors.list();
  if (!names) return names.error();
  std::map<std::string, Entry> entries;
  for (const std::string& name : *names) {
    auto info = errors.stat(name);
    if (!info) return info.error();
    if (!info.value()) continue;  // removed meanwhile
    std::string key = name;
    if (key.size() > kReasonSuffix.size() && key.ends_with(kReasonSuffix)) {
      key.resize(key.size() - kReasonSuffix.size());
    }
    Entry& entry = entries[key];
    entry.names.push_back(name);
    const timespec& ctime = info.value()->st_ctim;
    entry.changed = std::max<std::int64_t>(
        entry.changed, static_cast<std::int64_t>(ctime.tv_sec) * 1'000'000'000 + ctime.tv_nsec);
    entry.bytes += static_cast<std::uint64_t>(std::max<off_t>(info.value()->st_size, 0));
  }
  std::vector<Entry*> oldest_first;
  std::uint64_t total_bytes = 0;
  for (auto& [key, entry] : entries) {
    oldest_first.push_back(&entry);
    total_bytes += entry.bytes;
  }
  std::stable_sort(oldest_first.begin(), oldest_first.end(),
                   [](const Entry* a, const Entry* b) { return a->changed < b->changed; });
  const std::int64_t cutoff =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch() - bounds.max_age)
          .count();
  std::size_t remaining = oldest_first.size();
  std::size_t removed = 0;
  for (Entry* entry : oldest_first) {
    const bool within = entry->changed >= cutoff && remaining <= bounds.max_entries &&
                        total_bytes <= bounds.max_bytes;
    if (within) break;
    for (const std::string& name : entry->names) {
      if (auto gone = errors.remove(name); !gone) return gone.error();
    }
    --remaining;
    total_bytes -= entry->bytes;
    ++removed;
  }
  return removed;
}

}  // namespace sb::host

#include "host/ipc_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "host/ipc_files.h"

namespace sb::host {
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t kWatchMask =
    IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK;

struct PendingFile {
  std::string name;
  IpcDir dir;
  bool operator<(const PendingFile& other) const {
    if (name != other.name) return name < other.name;
    return dir < other.dir;
  }
};

}  // namespace

namespace detail {

struct IpcWatcherState {
  struct Group {
    int wd_messages = -1;
    int wd_tasks = -1;
    bool watched = false;
    bool draining = false;  // a drain coroutine runs for this group
    bool dirty = false;     // something may have arrived since the drain last listed files
    // Files that could be neither deleted nor moved: skipped so they are not handled twice.
    std::set<std::string> stuck;
  };
  struct WatchTarget {
    std::string folder;
    IpcDir dir;
  };

  asio::any_io_executor executor;
  fs::path root;
  IpcWatcher::SourceLookup lookup;
  IpcView view;
  IpcWatcher::Handler handler;

  std::optional<asio::posix::stream_descriptor> inotify;
  bool stopped = false;
  std::map<std::string, Group, std::less<>> groups;
  std::unordered_map<int, WatchTarget> targets;  // by inotify watch descriptor

  std::atomic<std::uint64_t> processed{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> errors{0};
  // What went to errors/ since it was last pruned: pruning lists and stats the whole
  // directory, so it runs every kPruneEvery files or kPruneEveryBytes, not on every move.
  std::size_t moved_since_prune = 0;
  std::uint64_t bytes_since_prune = 0;

  Group* find_watched(std::string_view folder) {
    auto it = groups.find(folder);
    if (it == groups.end() || !it->second.watched || stopped) return nullptr;
    return &it->second;
  }
};

}  // namespace detail

namespace {

using State = detail::IpcWatcherState;

fs::path file_path(const State& state, const std::string& folder, const PendingFile& file) {
  return state.root / folder / to_string(file.dir) / file.name;
}

// The handle of one of a group's request directories, opened without following symlinks.
Result<SafeDir> request_dir(const State& state, const std::string& folder, IpcDir dir) {
  return open_group_ipc_dir(state.root, folder, to_string(dir), MissingDirs::fail);
}

// The files waiting in a group's two directories, in the order they are to be handled.
std::vector<PendingFile> list_pending(const State& state, const std::string& folder,
                                      const std::set<std::string>& stuck) {
  std::vector<PendingFile> files;
  for (IpcDir dir : {IpcDir::messages, IpcDir::tasks}) {
    auto opened = request_dir(state, folder, dir);
    if (!opened) {
      spdlog::warn("ipc: {}; its requests are not read", opened.error().message);
      continue;
    }
    auto names = opened->list();
    if (!names) {
      spdlog::error("ipc: {}", names.error().message);
      continue;
    }
    for (std::string& name : *names) {
      if (name.empty() || name.front() == '.' || stuck.count(name)) continue;
      files.push_back(PendingFile{std::move(name), dir});
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// errors/ is pruned after this many moves into it, or this many bytes moved, whichever first:
// it holds at most kMaxErrorEntries + kPruneEvery entries and kMaxErrorBytes +
// kPruneEveryBytes + one request file.
constexpr std::size_t kPruneEvery = 50;
constexpr std::uint64_t kPruneEveryBytes = 1024 * 1024;

// Keeps <ipc_root>/errors/ within its bounds (kMaxErrorEntries, kMaxErrorBytes, kMaxErrorAge).
void prune_errors(const SafeDir& errors) {
  auto pruned = prune_errors_dir(errors);
  if (!pruned) {
    spdlog::error("ipc: cannot prune {}: {}", errors.path().string(), pruned.error().message);
  } else if (pruned.value() > 0) {
    spdlog::info("ipc: removed {} old entr{} from {} to keep it within its bounds", pruned.value(),
                 pruned.value() == 1 ? "y" : "ies", errors.path().string());
  }
}

// Deletes a file (or whatever an agent put there) from a request directory; remembers it as
// stuck when that fails, so it is not handled twice.
void remove_or_skip(State& state, const std::string& folder, const PendingFile& file,
                    std::string_view what) {
  auto dir = request_dir(state, folder, file.dir);
  Result<void> removed = dir ? dir->remove(file.name) : Result<void>(dir.error());
  if (!removed) {
    spdlog::error("ipc: cannot delete {} {}: {}; it is skipped from now on", what,
                  file_path(state, folder, file).string(), removed.error().message);
    if (auto* group = state.find_watched(folder)) group->stuck.insert(file.name);
  }
}

// Takes a file out of the queue for good: moved to errors/ with its reason (a directory, a
// symlink or another non-regular file is deleted instead: errors/ keeps regular files only),
// else deleted, else remembered as stuck. The
// move is a renameat between the two directories' handles, so a symlink swapped in for the
// request directory meanwhile makes it fail rather than move something else.
void move_to_errors(State& state, const std::string& folder, const PendingFile& file,
                    const std::string& reason) {
  state.errors.fetch_add(1, std::memory_order_relaxed);
  const fs::path source = file_path(state, folder, file);
  const std::string target = folder + "-" + file.name;
  auto errors = SafeDir::open(state.root, fs::path(kErrorsDir), MissingDirs::create, 0700);
  auto from = request_dir(state, folder, file.dir);
  Result<void> moved = !errors ? Result<void>(errors.error())
                       : !from ? Result<void>(from.error())
                               : Result<void>();
  if (moved) {
    auto info = from->stat(file.name);
    if (!info) {
      moved = info.error();
    } else if (!info.value()) {
      return;  // gone meanwhile
    } else if (!S_ISREG(info.value()->st_mode)) {
      // A symlink kept there would point into the host from a host-owned directory.
      moved =
          make_error(S_ISDIR(info.value()->st_mode)
                         ? "it is a directory, which errors/ does not keep"
                         : "it is not a regular file (a symlink?), which errors/ does not keep");
    } else {
      moved = from->rename(file.name, errors.value(), target);
    }
  }
  if (!moved) {
    spdlog::error("ipc: cannot move {} to errors/: {}; deleting it instead", source.string(),
                  moved.error().message);
    remove_or_skip(state, folder, file, "the rejected file");
  }
  if (!errors) return;
  std::string why = reason + "\n";
  if (!moved) why += "(the file was deleted, not kept: " + moved.error().message + ")\n";
  auto written = errors->write_file(target + ".reason", why);
  if (!written) spdlog::error("ipc: {}", written.error().message);
  ++state.moved_since_prune;
  if (moved) {
    if (auto info = errors->stat(target); info && info.value()) {
      state.bytes_since_prune += static_cast<std::uint64_t>(info.value()->st_size);
    }
  }
  if (state.moved_since_prune >= kPruneEvery || state.bytes_since_prune >= kPruneEveryBytes) {
    prune_errors(errors.value());
    state.moved_since_prune = 0;
    state.bytes_since_prune = 0;
  }
}

void remove_handled(State& state, const std::string& folder, const PendingFile& file) {
  remove_or_skip(state, folder, file, "the handled file");
}

asio::awaitable<void> process_file(std::shared_ptr<State> state, std::string folder,
                                   PendingFile file) {
  const fs::path path = file_path(*state, folder, file);
  auto dir = request_dir(*state, folder, file.dir);
  auto content = dir ? dir->read_file(file.name, kMaxIpcFileBytes)
                     : Result<std::optional<std::string>>(dir.error());
  if (!content) {
    spdlog::warn("ipc: cannot take {}: {}", path.string(), content.error().message);
    move_to_errors(*state, folder, file, content.error().message);
    co_return;
  }
  if (!content.value()) co_return;  // already gone

  std::optional<IpcSource> source = state->lookup(folder);
  if (!source) {
    std::string reason = "the folder '" + folder + "' belongs to no registered group";
    spdlog::warn("ipc: {}: {}", path.string(), reason);
    move_to_errors(*state, folder, file, reason);
    co_return;
  }

  auto request = parse_ipc_request(*content.value(), file.dir);
  if (!request) {
    spdlog::warn("ipc: invalid request {} from group '{}': {}", path.string(), folder,
                 request.error().message);
    move_to_errors(*state, folder, file, request.error().message);
    co_return;
  }

  auto allowed = authorize(*source, request.value(), state->view);
  if (!allowed) {
    spdlog::warn("ipc: refused {}: {}", path.string(), allowed.error().message);
    state->refused.fetch_add(1, std::memory_order_relaxed);
    remove_handled(*state, folder, file);
    co_return;
  }

  Result<void> outcome;
  try {
    auto handling = state->handler(*source, request.value());
    outcome = co_await std::move(handling);
  } catch (const std::exception& e) {
    outcome = make_error(std::string("the handler failed: ") + e.what());
  } catch (...) {
    outcome = make_error("the handler failed with an unknown exception");
  }
  if (!outcome) {
    spdlog::error("ipc: {} request {} from group '{}' failed: {}", request_type(request.value()),
                  path.string(), folder, outcome.error().message);
    move_to_errors(*state, folder, file, outcome.error().message);
    co_return;
  }
  state->processed.fetch_add(1, std::memory_order_relaxed);
  remove_handled(*state, folder, file);
}

// Handles a group's files until none is left and nothing new was announced. At most one
// runs per group (Group::draining), which is what keeps a group's files in order.
asio::awaitable<void> drain(std::shared_ptr<State> state, std::string folder) {
  for (;;) {
    State::Group* group = state->find_watched(folder);
    if (group == nullptr || !group->dirty) break;
    group->dirty = false;
    const std::vector<PendingFile> files = list_pending(*state, folder, group->stuck);
    for (const PendingFile& file : files) {
      if (state->find_watched(folder) == nullptr) break;
      try {
        auto step = process_file(state, folder, file);
        co_await std::move(step);
      } catch (const std::exception& e) {
        spdlog::error("ipc: unexpected failure on {}: {}", file_path(*state, folder, file).string(),
                      e.what());
        move_to_errors(*state, folder, file, std::string("unexpected failure: ") + e.what());
      }
    }
  }
  auto it = state->groups.find(folder);
  if (it != state->groups.end()) {
    it->second.draining = false;
    if (!it->second.watched) state->groups.erase(it);
  }
}

// Notes that a group's directories changed and makes sure a drain will look at them.
void kick(const std::shared_ptr<State>& state, const std::string& folder) {
  State::Group* group = state->find_watched(folder);
  if (group == nullptr) return;
  group->dirty = true;
  if (group->draining) return;
  group->draining = true;
  auto on_done = [state, folder](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      spdlog::error("ipc: handling the files of group '{}' stopped: {}", folder, e.what());
    } catch (...) {
      spdlog::error("ipc: handling the files of group '{}' stopped", folder);
    }
    auto it = state->groups.find(folder);
    if (it != state->groups.end()) it->second.draining = false;
  };
  asio::co_spawn(state->executor, drain(state, folder), std::move(on_done));
}

void kick_all(const std::shared_ptr<State>& state) {
  std::vector<std::string> folders;
  for (const auto& [folder, group] : state->groups) {
    if (group.watched) folders.push_back(folder);
  }
  for (const auto& folder : folders) kick(state, folder);
}

void handle_events(const std::shared_ptr<State>& state, const char* data, std::size_t size) {
  std::size_t offset = 0;
  while (offset + sizeof(inotify_event) <= size) {
    inotify_event event;
    std::memcpy(&event, data + offset, sizeof event);
    const char* name = data + offset + sizeof(inotify_event);
    offset += sizeof(inotify_event) + event.len;
    if (event.mask & IN_Q_OVERFLOW) {
      spdlog::warn("ipc: the inotify queue overflowed; rescanning every group");
      kick_all(state);
      continue;
    }
    auto target = state->targets.find(event.wd);
    if (target == state->targets.end()) continue;
    if (event.mask & IN_IGNORED) {
      // The directory went away (deleted, or its file system unmounted).
      spdlog::warn(
          "ipc: {}/{}/ is no longer watched (it was removed); watch_group the group "
          "again once it exists",
          target->second.folder, to_string(target->second.dir));
      auto group = state->groups.find(target->second.folder);
      if (group != state->groups.end()) {
        if (group->second.wd_messages == event.wd) group->second.wd_messages = -1;
        if (group->second.wd_tasks == event.wd) group->second.wd_tasks = -1;
      }
      state->targets.erase(target);
      continue;
    }
    if (event.len == 0 || name[0] == '.') continue;
    kick(state, target->second.folder);
  }
}

asio::awaitable<void> read_events(std::shared_ptr<State> state) {
  // Room for many events per read; each is a header plus a name of at most NAME_MAX + 1.
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    if (state->stopped || !state->inotify) co_return;
    auto read =
        state->inotify->async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    auto [ec, n] = co_await std::move(read);
    if (state->stopped) co_return;
    if (ec) {
      spdlog::error("ipc: reading inotify events failed: {}; IPC requests are no longer seen",
                    ec.message());
      co_return;
    }
    handle_events(state, buffer.data(), n);
  }
}

}  // namespace

IpcWatcher::IpcWatcher(asio::any_io_executor executor, fs::path ipc_root, SourceLookup lookup,
                       IpcView view, Handler handler)
    : state_(std::make_shared<detail::IpcWatcherState>()) {
  state_->executor = std::move(executor);
  state_->root = std::move(ipc_root);
  state_->lookup = std::move(lookup);
  state_->view = std::move(view);
  state_->handler = std::move(handler);
}

IpcWatcher::~IpcWatcher() { stop(); }

Result<void> IpcWatcher::start() {
  if (state_->inotify || state_->stopped) return make_error("the IPC watcher was already started");
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    return make_error(std::string("cannot start watching IPC directories: inotify_init1: ") +
                      std::strerror(errno) +
                      (errno == EMFILE ? " (raise fs.inotify.max_user_instances)" : ""));
  }
  state_->inotify.emplace(state_->executor, fd);
  // What earlier runs left in errors/ is brought within its bounds now, not at the next error.
  if (auto errors = SafeDir::open(state_->root, fs::path(kErrorsDir)); errors) {
    prune_errors(errors.value());
  }
  auto on_done = [](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      spdlog::error("ipc: the inotify reader stopped: {}", e.what());
    } catch (...) {
      spdlog::error("ipc: the inotify reader stopped");
    }
  };
  asio::co_spawn(state_->executor, read_events(state_), std::move(on_done));
  return {};
}

Result<void> IpcWatcher::watch_group(std::string_view folder_view) {
  if (!state_->inotify || state_->stopped) {
    return make_error("the IPC watcher is not running; start() it before watching groups");
  }
  if (!is_valid_group_folder(folder_view)) {
    return make_error("cannot watch IPC of group folder '" + std::string(folder_view) +
                      "': not a valid folder name");
  }
  const std::string folder(folder_view);
  if (const auto* group = state_->find_watched(folder)) {
    if (group->wd_messages >= 0 && group->wd_tasks >= 0) {
      kick(state_, folder);
      return {};
    }
    unwatch_group(folder);  // a directory went away: watch the new one
  }
  const int inotify_fd = state_->inotify->native_handle();
  int wds[2] = {-1, -1};
  const IpcDir dirs[2] = {IpcDir::messages, IpcDir::tasks};
  for (int i = 0; i < 2; ++i) {
    const fs::path path = state_->root / folder / to_string(dirs[i]);
    auto made = open_group_ipc_dir(state_->root, folder, to_string(dirs[i]), MissingDirs::create);
    if (!made) {
      if (i == 1) ::inotify_rm_watch(inotify_fd, wds[0]);
      return make_error("cannot watch " + path.string() + ": " + made.error().message);
    }
    // IN_DONT_FOLLOW|IN_ONLYDIR: the directory just checked, not a symlink put in its place.
    wds[i] = ::inotify_add_watch(inotify_fd, path.c_str(), kWatchMask);
    if (wds[i] < 0) {
      int error = errno;
      if (i == 1) ::inotify_rm_watch(inotify_fd, wds[0]);
      return make_error("cannot watch " + path.string() + ": " + std::strerror(error) +
                        (error == ENOSPC ? " (raise fs.inotify.max_user_watches)" : ""));
    }
  }
  detail::IpcWatcherState::Group& group = state_->groups[folder];
  group.wd_messages = wds[0];
  group.wd_tasks = wds[1];
  group.watched = true;
  group.stuck.clear();
  state_->targets[wds[0]] = detail::IpcWatcherState::WatchTarget{folder, IpcDir::messages};
  state_->targets[wds[1]] = detail::IpcWatcherState::WatchTarget{folder, IpcDir::tasks};
  kick(state_, folder);
  return {};
}

void IpcWatcher::unwatch_group(std::string_view folder) {
  auto it = state_->groups.find(folder);
  if (it == state_->groups.end() || !it->second.watched) return;
  auto& group = it->second;
  for (int wd : {group.wd_messages, group.wd_tasks}) {
    if (wd < 0) continue;
    if (state_->inotify) ::inotify_rm_watch(state_->inotify->native_handle(), wd);
    state_->targets.erase(wd);
  }
  group.watched = false;
  if (!group.draining) state_->groups.erase(it);
}

void IpcWatcher::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  if (state_->inotify) {
    boost::system::error_code ignored;
    state_->inotify->close(ignored);
  }
}

IpcWatcher::Counters IpcWatcher::counters() const {
  return Counters{state_->processed.load(std::memory_order_relaxed),
                  state_->refused.load(std::memory_order_relaxed),
                  state_->errors.load(std::memory_order_relaxed)};
}

}  // namespace sb::host

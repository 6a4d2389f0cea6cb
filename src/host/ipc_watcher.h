#pragma once
// IpcWatcher: picks up the requests agents write into <ipc_root>/<folder>/{messages,tasks}/
// (docs/ipc.md), with inotify on the event loop, and hands each authorized one to a handler.
//
// Each file is handled once. A group's files are handled one at a time, in file-name order
// across its messages/ and tasks/ (the names start with a millisecond timestamp, so this is
// the order they were written); different groups proceed independently. For each file:
//  - names starting with '.' are skipped (a writer's temporary, see write_file_atomically);
//  - the group is looked up by folder (the directory is the writer's identity); an unknown
//    folder, a file that is not a regular file, larger than kMaxIpcFileBytes or that does not
//    parse (parse_ipc_request) is moved to <ipc_root>/errors/<folder>-<name>, with the reason
//    in <folder>-<name>.reason beside it, and counted in `errors` (a directory is deleted
//    instead, its reason kept); errors/ is then pruned to its bounds (prune_errors_dir), as
//    it is at start();
//  - a request the group may not make (authorize) is deleted, logged with the reason and
//    counted in `refused`; the handler is not called;
//  - otherwise the handler runs; when it returns success the file is deleted and counted in
//    `processed`; when it returns an error (or throws) the file goes to errors/ as above.
// A lost inotify queue (IN_Q_OVERFLOW) rescans every watched group, and watch_group scans at
// once, so files written while the host was down are handled too.
//
// The group directories are writable by agents: every file is read, moved and deleted
// through a handle opened without following symlinks (SafeDir), a symlink or anything but a
// regular file is never read, and reads stop at kMaxIpcFileBytes. Files are read on the event
// loop with plain blocking reads: they are at most 1 MiB and normally a few hundred bytes.
//
// Threading: construct, call every member and destroy on the event-loop thread (the
// executor's). The handler, the lookup and the view are called on that thread. counters()
// is safe from any thread. The watcher may be destroyed while coroutines are still
// suspended (e.g. in the handler): they keep its state alive and stop at the next file.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "common/result.h"
#include "host/ipc_requests.h"

namespace sb::host {

namespace detail {
struct IpcWatcherState;
}

class IpcWatcher {
 public:
  // Carries out an authorized request. Returning an error moves the file to errors/.
  using Handler =
      std::function<boost::asio::awaitable<Result<void>>(const IpcSource&, const IpcRequest&)>;
  // The registered group of a folder, or nullopt if the folder belongs to no group. Called
  // for every file, so a group's main status is always current.
  using SourceLookup = std::function<std::optional<IpcSource>(std::string_view folder)>;

  struct Counters {
    std::uint64_t processed = 0;  // handled successfully
    std::uint64_t refused = 0;    // not authorized, deleted
    std::uint64_t errors = 0;     // moved to errors/ (bad file, unknown folder, handler error)
  };

  // Does nothing until start(). `view` is consulted for authorization on every file.
  IpcWatcher(boost::asio::any_io_executor executor, std::filesystem::path ipc_root,
             SourceLookup lookup, IpcView view, Handler handler);
  ~IpcWatcher();  // stop()s
  IpcWatcher(const IpcWatcher&) = delete;
  IpcWatcher& operator=(const IpcWatcher&) = delete;

  // Prunes <ipc_root>/errors/ to its bounds, opens the inotify instance and starts reading
  // its events. Fails (e.g. the per-user limit of inotify instances is reached) with a
  // message saying what to raise. Call once.
  Result<void> start();

  // Watches <ipc_root>/<folder>/messages and /tasks (creating them if missing) and then,
  // asynchronously, handles the files already there. Watching a watched group only rescans
  // it (and re-adds a watch whose directory was removed and created again). Fails if not started,
  // if `folder` is invalid (is_valid_group_folder), if one of the directories is a symlink or
  // cannot be created, or if the inotify watch limit is reached.
  Result<void> watch_group(std::string_view folder);

  // Stops watching a group: no file of it is handled from now on, except the one whose
  // handler is running, which is finished (and deleted) first. Unknown folders are ignored.
  void unwatch_group(std::string_view folder);

  // Stops reading events and handling files; a handler that is running completes, later
  // files stay where they are. Idempotent.
  void stop();

  Counters counters() const;

 private:
  std::shared_ptr<detail::IpcWatcherState> state_;
};

}  // namespace sb::host

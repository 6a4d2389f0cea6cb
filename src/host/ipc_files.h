#pragma once
// The files of the host <-> agent IPC (docs/ipc.md): atomic writes, sortable unique names,
// the host -> agent `input/` messages, the per-group directory layout, the snapshots the
// host leaves for an agent before each run, and the bounded errors/ directory.
//
//   <ipc_root>/<folder>/messages/  agent -> host: message requests
//   <ipc_root>/<folder>/tasks/     agent -> host: task and group requests
//   <ipc_root>/<folder>/input/     host -> agent: follow-up messages and `_close`
//   <ipc_root>/errors/             files the host could not process, with a `.reason` beside
//   <snapshot_root>/<folder>/      host -> agent, read-only in the sandbox: current_tasks.json,
//                                  available_groups.json
//
// Every writer writes a temporary file whose name starts with '.' in the target directory and
// renames it into place, so a reader never sees a partly written file under its final name.
// <ipc_root>/<folder> is writable by the group's agent: the host reaches it only through
// SafeDir (common/safe_files.h), from the trusted ipc_root down, never following a symlink.
//
// Threading: plain blocking file I/O on small files; safe from any thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/safe_files.h"

namespace sb::host {

inline constexpr std::string_view kMessagesDir = "messages";
inline constexpr std::string_view kTasksDir = "tasks";
inline constexpr std::string_view kInputDir = "input";
inline constexpr std::string_view kErrorsDir = "errors";
inline constexpr std::string_view kCloseRequestName = "_close";
inline constexpr std::string_view kCurrentTasksSnapshot = "current_tasks.json";
inline constexpr std::string_view kAvailableGroupsSnapshot = "available_groups.json";

// The bounds of <ipc_root>/errors/ (docs/ipc.md): a rejected file and its `.reason` count as
// one entry; the oldest entries (by when they were moved there) go first.
inline constexpr std::size_t kMaxErrorEntries = 1000;
inline constexpr std::uint64_t kMaxErrorBytes = 10 * 1024 * 1024;
inline constexpr std::chrono::hours kMaxErrorAge{7 * 24};

// Writes `content` to `file` atomically: creates the parent directories, writes a temporary
// `.<name>.tmp-<random>` beside it (O_EXCL|O_NOFOLLOW), fsyncs it (unless `durable` is false:
// for files that are rewritten before every use, where the rename's atomicity is all that
// matters) and renames it over `file`. The parent directory is opened without following a
// symlink (an error), the path above it is trusted: this is for writers inside the sandbox
// (the agent, `switchboard mcp`) and tests; the host writes into agent-writable directories
// with the functions below. On failure the temporary is removed and the error names the path
// and the system's reason; `file` is then untouched (it keeps its old content if it had one).
Result<void> write_file_atomically(const std::filesystem::path& file, std::string_view content,
                                   bool durable = true);

// A unique file name that sorts in creation order within this process:
// `<epoch-ms, 13 digits>-<counter, 6 digits>-<8 random hex digits>.json`. Names from other
// processes sort by their millisecond; the random part keeps them unique.
std::string ipc_file_name();

// Writes `content` atomically into `dir` under a fresh ipc_file_name(); returns the path.
// What an agent (or `switchboard mcp`) does to send a request; also used by tests.
Result<std::filesystem::path> write_ipc_file(const std::filesystem::path& dir,
                                             std::string_view content);

// True when `folder` can name a group's directory: 1 to 64 characters from [A-Za-z0-9_-],
// starting with a letter or digit, and not the reserved name "errors" (the error directory
// under the IPC root). Anything else could escape or collide with the layout.
bool is_valid_group_folder(std::string_view folder);

// Opens <ipc_root>/<folder>/<sub> (`sub` empty: the group's IPC directory itself) from the
// trusted `ipc_root` without following symlinks, creating what is missing with
// MissingDirs::create. Fails, naming the path, for an invalid folder or a component that is a
// symlink or not a directory.
Result<SafeDir> open_group_ipc_dir(const std::filesystem::path& ipc_root, std::string_view folder,
                                   std::string_view sub, MissingDirs missing);

// Queues a follow-up message for a running agent: `{"type":"message","text":…}` as a new
// file in <ipc_root>/<folder>/input/. Returns the file's name.
Result<std::string> write_input_message(const std::filesystem::path& ipc_root,
                                        std::string_view folder, std::string_view text);

// Whether the follow-up file `name` is still in the group's input/ (the agent has not taken
// it yet).
Result<bool> input_message_waiting(const std::filesystem::path& ipc_root, std::string_view folder,
                                   std::string_view name);

// After the group's agent has exited: removes the follow-up file `name` from its input/ if
// the agent left it there. True when it was still there (the agent never read it).
Result<bool> withdraw_input_message(const std::filesystem::path& ipc_root, std::string_view folder,
                                    std::string_view name);

// Asks a running agent to finish: an empty <ipc_root>/<folder>/input/_close.
Result<void> write_close_request(const std::filesystem::path& ipc_root, std::string_view folder);

// Creates <ipc_root>/<folder>/{messages,tasks,input} and empties input/ (clear_input_dir):
// what a previous run left there was meant for an agent that no longer runs. Call it only
// while no agent of the group runs: one of the three that is something other than a real
// directory (a symlink or a file an agent put there) is removed, never followed, and made
// anew. Fails, naming the path, if `folder` is not valid or a directory cannot be created.
Result<void> ensure_group_ipc_dirs(const std::filesystem::path& ipc_root, std::string_view folder);

// Removes every entry of <ipc_root>/<folder>/input/ (pending follow-ups, `_close`, stray
// temporaries, whatever an agent put there) through its handle: symlinks are removed, never
// followed, and a subdirectory swapped for a symlink meanwhile is unlinked, not entered. A
// missing input/ is fine; input/ being a symlink is an error.
Result<void> clear_input_dir(const std::filesystem::path& ipc_root, std::string_view folder);

// Writes `<snapshot_root>/<folder>/<name>` atomically, creating the directories: the
// snapshots (current_tasks.json, available_groups.json) the host leaves for an agent before
// each run, in a host-only directory the sandbox mounts read-only. `folder` must be valid
// and `name` a plain file name (no '/', not "." or "..", not starting with '.').
Result<void> write_snapshot(const std::filesystem::path& snapshot_root, std::string_view folder,
                            std::string_view name, std::string_view json_text);

struct ErrorBounds {
  std::size_t max_entries = kMaxErrorEntries;
  std::uint64_t max_bytes = kMaxErrorBytes;
  std::chrono::seconds max_age = kMaxErrorAge;
};

// Brings <ipc_root>/errors/ (opened as `errors`) within `bounds`: removes the entries older
// than max_age, then the oldest until at most max_entries remain and their bytes (sizes as
// lstat reports them) add up to at most max_bytes. An entry is a name and its `<name>.reason`;
// its age is the newest change time (ctime, which a rename sets and no agent can forge) of
// the two, against `now`. Returns how many entries it removed; an error if the directory
// cannot be listed or an entry cannot be removed (what was removed before stays removed).
Result<std::size_t> prune_errors_dir(
    const SafeDir& errors, const ErrorBounds& bounds = {},
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace sb::host

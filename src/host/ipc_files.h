#pragma once
// The files of the host <-> agent IPC (docs/ipc.md): atomic writes, sortable unique names,
// the host -> agent `input/` messages, the per-group directory layout and the snapshots the
// host leaves for an agent before each run.
//
//   <ipc_root>/<folder>/messages/  agent -> host: message requests
//   <ipc_root>/<folder>/tasks/     agent -> host: task and group requests
//   <ipc_root>/<folder>/input/     host -> agent: follow-up messages and `_close`
//   <ipc_root>/<folder>/<snapshot> host -> agent: current_tasks.json, available_groups.json
//   <ipc_root>/errors/             files the host could not process, with a `.reason` beside
//
// Every writer writes a temporary file whose name starts with '.' in the target directory and
// renames it into place, so a reader never sees a partly written file under its final name.
//
// Threading: plain blocking file I/O on small files; safe from any thread.

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sb::host {

inline constexpr std::string_view kMessagesDir = "messages";
inline constexpr std::string_view kTasksDir = "tasks";
inline constexpr std::string_view kInputDir = "input";
inline constexpr std::string_view kErrorsDir = "errors";
inline constexpr std::string_view kCloseRequestName = "_close";
inline constexpr std::string_view kCurrentTasksSnapshot = "current_tasks.json";
inline constexpr std::string_view kAvailableGroupsSnapshot = "available_groups.json";

// Writes `content` to `file` atomically: creates the parent directories, writes a temporary
// `.<name>.tmp-<random>` beside it, fsyncs it (unless `durable` is false: for files that are
// rewritten before every use, where the rename's atomicity is all that matters) and renames
// it over `file`. The parent
// directory itself must not be a symlink (an agent could plant one in its IPC directory);
// that is an error. On failure the temporary is removed and the error names the path and the
// system's reason; `file` is then untouched (it keeps its old content if it had one).
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

// Queues a follow-up message for a running agent: `{"type":"message","text":…}` as a new
// file in `input_dir`.
Result<void> write_input_message(const std::filesystem::path& input_dir, std::string_view text);

// Asks a running agent to finish: an empty `input_dir/_close`.
Result<void> write_close_request(const std::filesystem::path& input_dir);

// True when `folder` can name a group's directory: 1 to 64 characters from [A-Za-z0-9_-],
// starting with a letter or digit, and not the reserved name "errors" (the error directory
// under the IPC root). Anything else could escape or collide with the layout.
bool is_valid_group_folder(std::string_view folder);

// Creates <ipc_root>/<folder>/{messages,tasks,input} and empties input/ (clear_input_dir):
// what a previous run left there was meant for an agent that no longer runs. Fails, naming
// the path, if `folder` is not valid, a directory cannot be created, or one of the three is
// something other than a real directory (a symlink an agent put there is refused, not
// followed).
Result<void> ensure_group_ipc_dirs(const std::filesystem::path& ipc_root, std::string_view folder);

// Removes every entry of `input_dir` (pending follow-ups, `_close`, stray temporaries).
// A missing directory is fine. Symlinks are removed, never followed.
Result<void> clear_input_dir(const std::filesystem::path& input_dir);

// Writes `<ipc_root>/<folder>/<name>` atomically: the snapshots (current_tasks.json,
// available_groups.json) the host leaves for an agent before each run. `folder` must be
// valid and `name` a plain file name (no '/', not "." or "..", not starting with '.').
Result<void> write_snapshot(const std::filesystem::path& ipc_root, std::string_view folder,
                            std::string_view name, std::string_view json_text);

}  // namespace sb::host

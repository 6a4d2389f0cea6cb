#pragma once
// Groups: a group is a named agent with its own folder under data_dir/groups/<folder>, bound
// to one or more chats. The registry keeps every group in memory (they are few and read on
// every message), writes changes through the store's writer and tells listeners about them.
//
// Threading: everything on the event-loop thread.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "sandbox/mount_allowlist.h"
#include "store/store.h"
#include "store/write_queue.h"

namespace sb::core {

// Folder names: 1-64 of [a-z0-9_-], starting with a letter or digit; "global" (the shared
// memory folder) and "errors" (the IPC error directory) cannot be groups. The error says what
// is valid.
Result<void> validate_folder_name(std::string_view folder);

// The per-group agent settings, kept as a JSON object in the group's agent_config:
// {"timeout": "10m", "network": true, "model": "…", "daily_token_budget": 100000,
//  "mounts": [{"hostPath": "~/projects/x", "containerPath": "x", "readonly": false}]}
struct GroupSettings {
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<bool> network;
  std::optional<std::string> model;
  std::optional<std::int64_t> daily_token_budget;
  std::vector<sandbox::MountRequest> mounts;
};
// Parses and validates an agent_config object; errors name the field.
Result<GroupSettings> parse_group_settings(std::string_view json);

// Where a group's things live on the host.
struct GroupPaths {
  std::filesystem::path data_dir;
  std::filesystem::path group_dir(std::string_view folder) const {
    return data_dir / "groups" / folder;
  }
  std::filesystem::path global_dir() const { return data_dir / "groups" / "global"; }
  std::filesystem::path ipc_root() const { return data_dir / "ipc"; }
  std::filesystem::path ipc_dir(std::string_view folder) const { return ipc_root() / folder; }
  std::filesystem::path session_dir(std::string_view folder) const {
    return data_dir / "sessions" / folder;
  }
  // Host-only: no sandbox mounts these writable (docs/security.md).
  std::filesystem::path log_dir(std::string_view folder) const {
    return data_dir / "logs" / folder;
  }
  std::filesystem::path snapshot_root() const { return data_dir / "snapshots"; }
  // Mounted read-only in the group's sandbox at /workspace/snapshots.
  std::filesystem::path snapshot_dir(std::string_view folder) const {
    return snapshot_root() / folder;
  }
  std::filesystem::path proxy_socket(std::string_view folder) const {
    return data_dir / "run" / "proxy" / folder / "model.sock";
  }
};

// What a caller (API, CLI, IPC) asks for. For an update, absent fields stay as they are.
struct GroupChange {
  std::optional<std::vector<std::string>> chats;
  std::optional<std::string> name;
  std::optional<std::string> folder;                  // create only
  std::optional<std::optional<std::string>> trigger;  // set, or reset to the default
  std::optional<bool> requires_trigger;
  std::optional<bool> is_main;
  std::optional<std::string> agent_config_json;
};

class GroupRegistry {
 public:
  GroupRegistry(Store& reader, WriteQueue& writer, GroupPaths paths, std::string assistant_name);

  // Reads every group from the store and makes sure their folders exist. Call at start-up.
  void load();

  const GroupRecord* find(std::string_view folder) const;
  const GroupRecord* for_chat(std::string_view chat) const;
  const GroupRecord* main_group() const;
  std::vector<GroupRecord> all() const;
  const GroupPaths& paths() const { return paths_; }

  // The triggers of a group: its own (or "@<assistant_name>") and the configured aliases.
  std::vector<std::string> triggers(const GroupRecord& group) const;
  void set_aliases(std::vector<std::string> aliases) { aliases_ = std::move(aliases); }

  // Registers a group: validates (folder name, unique folder, chats valid and not bound
  // elsewhere, one main group, settings), creates its folders (memory file,
  // conversations/, IPC and session dirs), stores it, and starts its delivered-to-agent
  // cursor at the newest message so that old history is not replayed. Errors are for the
  // user (400/409 in the API): `conflict` is set when the folder or a chat is taken.
  struct Failure {
    std::string message;
    bool conflict = false;
    bool not_found = false;
  };
  boost::asio::awaitable<std::variant<GroupRecord, Failure>> create(GroupChange change);
  boost::asio::awaitable<std::variant<GroupRecord, Failure>> update(std::string folder,
                                                                    GroupChange change);
  // Removes the group's record, bindings, session and tasks; its folder stays on disk (it
  // is the user's data). Failure with not_found when there is no such group.
  boost::asio::awaitable<std::optional<Failure>> remove(std::string folder);

  // Told after each change (on the event-loop thread).
  std::function<void(const GroupRecord&)> on_saved;
  std::function<void(const std::string& folder)> on_removed;

 private:
  std::optional<Failure> check(const GroupRecord& group) const;
  // Stores the group and starts the cursors of `new_chats` at the newest message.
  boost::asio::awaitable<std::variant<GroupRecord, Failure>> write(
      GroupRecord group, std::vector<std::string> new_chats);
  void ensure_folders(const GroupRecord& group) const;
  void remember(GroupRecord group);

  Store& reader_;
  WriteQueue& writer_;
  GroupPaths paths_;
  std::string assistant_name_;
  std::vector<std::string> aliases_;
  std::map<std::string, GroupRecord, std::less<>> groups_;
  std::map<std::string, std::string, std::less<>> chat_to_folder_;
};

// The key of a group's delivered-to-agent cursor for one of its chats, in the store's
// cursors: each chat of a group has its own, so that a chat waiting for a trigger never
// holds back another chat of the same group.
std::string delivered_cursor_key(std::string_view folder, std::string_view chat);

}  // namespace sb::core

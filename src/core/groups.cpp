#include "core/groups.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <system_error>

#include "common/message.h"
#include "common/safe_files.h"
#include "config/units.h"
#include "host/ipc_files.h"

namespace sb::core {
namespace json = boost::json;

namespace {

constexpr std::size_t kMaxMounts = 32;
constexpr std::size_t kMaxNameBytes = 200;
// An email group gains a chat per correspondent, so the bound is generous; it only keeps
// one request from binding an unbounded list.
constexpr std::size_t kMaxChatsPerGroup = 10'000;

Result<std::string> optional_string(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (!value || value->is_null()) return std::string();
  if (!value->is_string()) return make_error("'" + std::string(key) + "' must be a string");
  return std::string(value->as_string());
}

}  // namespace

Result<void> validate_folder_name(std::string_view folder) {
  const bool shape_ok =
      !folder.empty() && folder.size() <= 64 &&
      std::isalnum(static_cast<unsigned char>(folder.front())) &&
      std::ranges::all_of(folder, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
      });
  if (!shape_ok) {
    return make_error("folder '" + std::string(folder) +
                      "' must be 1-64 lower-case letters, digits, '_' or '-', starting with a "
                      "letter or digit (for example \"family\" or \"work-team\")");
  }
  if (folder == "global") {
    return make_error("folder 'global' is the memory shared by all groups; choose another name");
  }
  if (folder == host::kErrorsDir) {
    // data/ipc/errors keeps the IPC files the host could not handle.
    return make_error("folder 'errors' is reserved for the host's IPC errors; choose another name");
  }
  return {};
}

Result<GroupSettings> parse_group_settings(std::string_view text) {
  boost::system::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec || !root.is_object()) return make_error("agent_config must be a JSON object");
  const json::object& object = root.as_object();
  GroupSettings settings;
  for (const auto& [key, value] : object) {
    if (key == "timeout") {
      const auto parsed =
          value.is_string() ? parse_duration(std::string_view(value.as_string())) : std::nullopt;
      if (!parsed || parsed->count() <= 0) {
        return make_error("agent_config.timeout must be a duration such as \"10m\" or \"90s\"");
      }
      settings.timeout = *parsed;
    } else if (key == "network") {
      if (!value.is_bool()) return make_error("agent_config.network must be true or false");
      settings.network = value.as_bool();
    } else if (key == "model") {
      if (!value.is_string() || value.as_string().empty() || value.as_string().size() > 200) {
        return make_error("agent_config.model must be a model name (a non-empty string)");
      }
      settings.model = std::string(value.as_string());
    } else if (key == "daily_token_budget") {
      if (!value.is_int64() || value.as_int64() < 0) {
        return make_error("agent_config.daily_token_budget must be a non-negative integer");
      }
      settings.daily_token_budget = value.as_int64();
    } else if (key == "mounts") {
      if (!value.is_array() || value.as_array().size() > kMaxMounts) {
        return make_error("agent_config.mounts must be an array of at most " +
                          std::to_string(kMaxMounts) +
                          " objects {\"hostPath\", \"containerPath\"?, \"readonly\"?}");
      }
      for (const json::value& item : value.as_array()) {
        if (!item.is_object()) return make_error("agent_config.mounts entries must be objects");
        const json::object& mount = item.as_object();
        auto host = optional_string(mount, "hostPath");
        auto container = optional_string(mount, "containerPath");
        if (!host || !container) {
          return make_error("agent_config.mounts: " +
                            (host ? container.error() : host.error()).message);
        }
        if (host->empty()) return make_error("agent_config.mounts entries need a hostPath");
        bool read_only = true;
        if (const json::value* ro = mount.if_contains("readonly")) {
          if (!ro->is_bool()) return make_error("agent_config.mounts readonly must be a boolean");
          read_only = ro->as_bool();
        }
        settings.mounts.push_back(sandbox::MountRequest{
            .host_path = *host, .container_path = *container, .read_write = !read_only});
      }
    } else {
      return make_error("agent_config has an unknown key '" + std::string(key) +
                        "' (known: timeout, network, model, daily_token_budget, mounts)");
    }
  }
  return settings;
}

std::string delivered_cursor_key(std::string_view folder, std::string_view chat) {
  return "delivered:" + std::string(folder) + ":" + std::string(chat);
}

GroupRegistry::GroupRegistry(Store& reader, WriteQueue& writer, GroupPaths paths,
                             std::string assistant_name)
    : reader_(reader),
      writer_(writer),
      paths_(std::move(paths)),
      assistant_name_(std::move(assistant_name)) {}

void GroupRegistry::load() {
  groups_.clear();
  chat_to_folder_.clear();
  if (auto global = SafeDir::open(paths_.data_dir, "groups/global", MissingDirs::create); !global) {
    spdlog::error("{}", global.error().message);
  }
  for (GroupRecord& group : reader_.groups()) {
    ensure_folders(group);
    remember(std::move(group));
  }
}

const GroupRecord* GroupRegistry::find(std::string_view folder) const {
  auto it = groups_.find(folder);
  return it == groups_.end() ? nullptr : &it->second;
}

const GroupRecord* GroupRegistry::for_chat(std::string_view chat) const {
  auto it = chat_to_folder_.find(chat);
  return it == chat_to_folder_.end() ? nullptr : find(it->second);
}

const GroupRecord* GroupRegistry::main_group() const {
  for (const auto& [folder, group] : groups_) {
    if (group.is_main) return &group;
  }
  return nullptr;
}

std::vector<GroupRecord> GroupRegistry::all() const {
  std::vector<GroupRecord> out;
  out.reserve(groups_.size());
  for (const auto& [folder, group] : groups_) out.push_back(group);
  return out;
}

std::vector<std::string> GroupRegistry::triggers(const GroupRecord& group) const {
  std::vector<std::string> out;
  out.push_back(group.trigger.value_or("@" + assistant_name_));
  for (const std::string& alias : aliases_) out.push_back(alias);
  return out;
}

void GroupRegistry::remember(GroupRecord group) {
  for (const std::string& chat : group.chats) chat_to_folder_[chat] = group.folder;
  std::string folder = group.folder;
  groups_.insert_or_assign(std::move(folder), std::move(group));
}

void GroupRegistry::ensure_folders(const GroupRecord& group) const {
  // The group's own directories are writable by its agent: everything below data_dir is
  // opened without following symlinks and created relative to those handles.
  const std::filesystem::path folder(group.folder);
  for (const char* area : {"sessions", "ipc"}) {
    if (auto made = SafeDir::open(paths_.data_dir, area / folder, MissingDirs::create); !made) {
      spdlog::error("group {}: {}", group.folder, made.error().message);
    }
  }
  auto dir = SafeDir::open(paths_.data_dir, "groups" / folder, MissingDirs::create);
  if (!dir) {
    spdlog::error("group {}: {}", group.folder, dir.error().message);
    return;
  }
  if (auto made = dir->open_dir("conversations", MissingDirs::create); !made) {
    spdlog::warn("group {}: {}", group.folder, made.error().message);
  }
  // Never replaces anything, a dangling symlink included: what is there is the agent's.
  auto memory = dir->create_file("CLAUDE.md", "# " + group.name +
                                                  "\n\nMemory of this group: write down what "
                                                  "should be remembered between conversations.\n");
  if (!memory) spdlog::error("group {}: {}", group.folder, memory.error().message);
}

std::optional<GroupRegistry::Failure> GroupRegistry::check(const GroupRecord& group) const {
  if (auto valid = validate_folder_name(group.folder); !valid) {
    return Failure{valid.error().message};
  }
  if (group.name.empty() || group.name.size() > kMaxNameBytes) {
    return Failure{"name must be 1-" + std::to_string(kMaxNameBytes) + " bytes"};
  }
  // No chat is fine: an email group gets one per correspondent as mail arrives.
  if (group.chats.size() > kMaxChatsPerGroup) {
    return Failure{"a group has at most " + std::to_string(kMaxChatsPerGroup) + " chats"};
  }
  for (const std::string& chat : group.chats) {
    if (!parse_chat_id(chat)) {
      return Failure{"'" + chat +
                     "' is not a chat id: it must be <channel>:<address>, such as http:alice or "
                     "email:alice@example.org"};
    }
    const GroupRecord* owner = for_chat(chat);
    if (owner && owner->folder != group.folder) {
      return Failure{"chat " + chat + " already belongs to group '" + owner->folder + "'", true};
    }
  }
  if (group.trigger) {
    const std::string_view name =
        std::string_view(*group.trigger).substr(group.trigger->starts_with('@') ? 1 : 0);
    const bool ok = !name.empty() && name.size() <= 64 && std::ranges::none_of(name, [](char c) {
      return std::isspace(static_cast<unsigned char>(c)) ||
             std::iscntrl(static_cast<unsigned char>(c));
    });
    if (!ok) return Failure{"trigger must be '@' and a name without spaces, such as \"@Andy\""};
  }
  if (group.is_main) {
    const GroupRecord* current = main_group();
    if (current && current->folder != group.folder) {
      return Failure{"group '" + current->folder + "' is already the main group", true};
    }
  }
  if (auto settings = parse_group_settings(group.agent_config_json); !settings) {
    return Failure{settings.error().message};
  }
  return std::nullopt;
}

boost::asio::awaitable<std::variant<GroupRecord, GroupRegistry::Failure>> GroupRegistry::write(
    GroupRecord group, std::vector<std::string> new_chats) {
  auto save = [group, new_chats](Store& store) {
    store.put_group(group);
    // New chats start after the newest message: registering does not replay history.
    const std::string latest = std::to_string(store.latest_seq());
    for (const std::string& chat : new_chats) {
      store.set_cursor(delivered_cursor_key(group.folder, chat), latest);
    }
    return *store.group(group.folder);
  };
  try {
    co_return co_await writer_.run(std::move(save));
  } catch (const std::invalid_argument& e) {
    co_return Failure{e.what(), true};  // the store's own check: a chat or main taken
  }
}

boost::asio::awaitable<std::variant<GroupRecord, GroupRegistry::Failure>> GroupRegistry::create(
    GroupChange change) {
  GroupRecord group;
  group.folder = change.folder.value_or("");
  group.name = change.name.value_or(group.folder);
  group.chats = change.chats.value_or(std::vector<std::string>{});
  if (change.trigger) group.trigger = *change.trigger;
  group.requires_trigger = change.requires_trigger.value_or(true);
  group.is_main = change.is_main.value_or(false);
  group.agent_config_json = change.agent_config_json.value_or("{}");
  if (find(group.folder)) {
    co_return Failure{"group '" + group.folder + "' already exists", true};
  }
  if (auto failure = check(group)) co_return *failure;
  ensure_folders(group);
  auto stored = co_await write(group, group.chats);
  if (auto* failure = std::get_if<Failure>(&stored)) co_return *failure;
  GroupRecord saved = std::get<GroupRecord>(std::move(stored));
  remember(saved);
  spdlog::info("group '{}' registered ({} chat{}{})", saved.folder, saved.chats.size(),
               saved.chats.size() == 1 ? "" : "s", saved.is_main ? ", main" : "");
  if (on_saved) on_saved(saved);
  co_return saved;
}

boost::asio::awaitable<std::variant<GroupRecord, GroupRegistry::Failure>> GroupRegistry::update(
    std::string folder, GroupChange change) {
  const GroupRecord* current = find(folder);
  if (!current) co_return Failure{"no group '" + folder + "'", false, true};
  GroupRecord group = *current;
  if (change.folder && *change.folder != folder) {
    co_return Failure{"a group's folder cannot be renamed (it holds the group's memory)"};
  }
  if (change.chats) group.chats = *change.chats;
  if (change.name) group.name = *change.name;
  if (change.trigger) group.trigger = *change.trigger;
  if (change.requires_trigger) group.requires_trigger = *change.requires_trigger;
  if (change.is_main) group.is_main = *change.is_main;
  if (change.agent_config_json) group.agent_config_json = *change.agent_config_json;
  if (auto failure = check(group)) co_return *failure;
  std::vector<std::string> added;
  for (const std::string& chat : group.chats) {
    if (std::ranges::find(current->chats, chat) == current->chats.end()) added.push_back(chat);
  }
  const std::vector<std::string> old_chats = current->chats;  // `current` may change meanwhile
  auto stored = co_await write(group, added);
  if (auto* failure = std::get_if<Failure>(&stored)) co_return *failure;
  GroupRecord saved = std::get<GroupRecord>(std::move(stored));
  for (const std::string& chat : old_chats) chat_to_folder_.erase(chat);
  remember(saved);
  spdlog::info("group '{}' updated", saved.folder);
  if (on_saved) on_saved(saved);
  co_return saved;
}

boost::asio::awaitable<std::optional<GroupRegistry::Failure>> GroupRegistry::remove(
    std::string folder) {
  const GroupRecord* current = find(folder);
  if (!current) co_return Failure{"no group '" + folder + "'", false, true};
  auto erase = [folder](Store& store) { store.remove_group(folder); };
  co_await writer_.run(std::move(erase));
  for (const std::string& chat : current->chats) chat_to_folder_.erase(chat);
  groups_.erase(groups_.find(folder));
  spdlog::info("group '{}' removed (its folder stays on disk)", folder);
  if (on_removed) on_removed(folder);
  co_return std::nullopt;
}

}  // namespace sb::core

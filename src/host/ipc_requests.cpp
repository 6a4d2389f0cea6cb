#include "host/ipc_requests.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "host/ipc_files.h"

namespace sb::host {
namespace json = boost::json;

namespace {

std::string in_quotes(std::string_view text) { return "'" + std::string(text) + "'"; }

// Reads a string field. Absent or null: an error when required, nullopt otherwise. Present:
// must be a non-empty string of at most `max_bytes`.
Result<std::optional<std::string>> string_field(const json::object& body, std::string_view name,
                                                bool required, std::size_t max_bytes) {
  auto it = body.find(name);
  if (it == body.end() || it->value().is_null()) {
    if (required) return make_error("missing field " + in_quotes(name));
    return std::optional<std::string>{};
  }
  if (!it->value().is_string()) return make_error("field " + in_quotes(name) + " must be a string");
  const json::string& value = it->value().get_string();
  if (value.empty()) return make_error("field " + in_quotes(name) + " must not be empty");
  if (value.size() > max_bytes) {
    return make_error("field " + in_quotes(name) + " is " + std::to_string(value.size()) +
                      " bytes long; the limit is " + std::to_string(max_bytes));
  }
  return std::optional<std::string>(std::string(value));
}

Result<std::string> required_string(const json::object& body, std::string_view name,
                                    std::size_t max_bytes) {
  auto field = string_field(body, name, true, max_bytes);
  if (!field) return field.error();
  return std::move(*field.value());
}

// Chat ids are `<channel>:<address>` (ARCHITECTURE.md).
Result<void> check_chat_id(std::string_view name, std::string_view chat) {
  auto colon = chat.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == chat.size()) {
    return make_error("field " + in_quotes(name) + " (" + in_quotes(chat) +
                      ") is not a chat id of the form <channel>:<address>, e.g. http:alice");
  }
  return {};
}

Result<std::string> required_chat(const json::object& body, std::string_view name) {
  auto chat = required_string(body, name, kMaxIpcIdBytes);
  if (!chat) return chat;
  auto shaped = check_chat_id(name, chat.value());
  if (!shaped) return shaped.error();
  return chat;
}

Result<IpcRequest> parse_message(const json::object& body) {
  auto chat_jid = string_field(body, "chatJid", false, kMaxIpcIdBytes);
  if (!chat_jid) return chat_jid.error();
  auto chat = string_field(body, "chat", false, kMaxIpcIdBytes);
  if (!chat) return chat.error();
  if (!chat_jid.value() && !chat.value()) return make_error("missing field 'chatJid'");
  if (chat_jid.value() && chat.value() && *chat_jid.value() != *chat.value()) {
    return make_error("fields 'chatJid' and 'chat' name different chats; give one of them");
  }
  const bool from_alias = !chat_jid.value().has_value();
  SendMessageRequest request;
  request.chat_jid = from_alias ? std::move(*chat.value()) : std::move(*chat_jid.value());
  auto shaped = check_chat_id(from_alias ? "chat" : "chatJid", request.chat_jid);
  if (!shaped) return shaped.error();
  auto text = required_string(body, "text", kMaxIpcTextBytes);
  if (!text) return text.error();
  request.text = std::move(text.value());
  return IpcRequest(std::move(request));
}

Result<IpcRequest> parse_schedule_task(const json::object& body) {
  ScheduleTaskRequest request;
  auto prompt = required_string(body, "prompt", kMaxIpcPromptBytes);
  if (!prompt) return prompt.error();
  request.prompt = std::move(prompt.value());

  auto type_text = required_string(body, "schedule_type", kMaxIpcIdBytes);
  if (!type_text) return type_text.error();
  auto type = parse_schedule_type(type_text.value());
  if (!type) return make_error("field 'schedule_type': " + type.error().message);
  request.schedule_type = type.value();

  auto value = required_string(body, "schedule_value", kMaxIpcIdBytes);
  if (!value) return value.error();
  request.schedule_value = std::move(value.value());

  auto mode = string_field(body, "context_mode", false, kMaxIpcIdBytes);
  if (!mode) return mode.error();
  if (mode.value()) {
    if (*mode.value() == "group") {
      request.context_mode = ContextMode::group;
    } else if (*mode.value() == "isolated") {
      request.context_mode = ContextMode::isolated;
    } else {
      return make_error("field 'context_mode' is " + in_quotes(*mode.value()) +
                        "; use 'group' or 'isolated'");
    }
  }

  auto target = string_field(body, "targetJid", false, kMaxIpcIdBytes);
  if (!target) return target.error();
  if (target.value()) {
    auto shaped = check_chat_id("targetJid", *target.value());
    if (!shaped) return shaped.error();
  }
  request.target_jid = std::move(target.value());
  return IpcRequest(std::move(request));
}

Result<IpcRequest> parse_task_action(const json::object& body, TaskAction action) {
  auto id = required_string(body, "taskId", kMaxIpcIdBytes);
  if (!id) return id.error();
  return IpcRequest(TaskActionRequest{action, std::move(id.value())});
}

Result<IpcRequest> parse_register_group(const json::object& body) {
  RegisterGroupRequest request;
  auto jid = required_chat(body, "jid");
  if (!jid) return jid.error();
  request.jid = std::move(jid.value());
  auto name = required_string(body, "name", kMaxIpcIdBytes);
  if (!name) return name.error();
  request.name = std::move(name.value());
  auto folder = required_string(body, "folder", kMaxIpcIdBytes);
  if (!folder) return folder.error();
  if (!is_valid_group_folder(folder.value())) {
    return make_error("field 'folder' (" + in_quotes(folder.value()) +
                      ") is not a valid folder name: use 1-64 letters, digits, '_' or '-', "
                      "starting with a letter or digit (and not 'errors')");
  }
  request.folder = std::move(folder.value());
  auto trigger = required_string(body, "trigger", kMaxIpcIdBytes);
  if (!trigger) return trigger.error();
  request.trigger = std::move(trigger.value());
  auto it = body.find("requiresTrigger");
  if (it != body.end() && !it->value().is_null()) {
    if (!it->value().is_bool()) return make_error("field 'requiresTrigger' must be true or false");
    request.requires_trigger = it->value().get_bool();
  }
  return IpcRequest(std::move(request));
}

struct TypeInfo {
  std::string_view name;
  IpcDir dir;
};

constexpr TypeInfo kTypes[] = {
    {"message", IpcDir::messages},     {"schedule_task", IpcDir::tasks},
    {"pause_task", IpcDir::tasks},     {"resume_task", IpcDir::tasks},
    {"cancel_task", IpcDir::tasks},    {"register_group", IpcDir::tasks},
    {"refresh_groups", IpcDir::tasks},
};

std::string known_types() {
  std::string out;
  for (const auto& type : kTypes) {
    if (!out.empty()) out += ", ";
    out += type.name;
  }
  return out;
}

std::string_view action_type(TaskAction action) {
  switch (action) {
    case TaskAction::pause:
      return "pause_task";
    case TaskAction::resume:
      return "resume_task";
    case TaskAction::cancel:
      return "cancel_task";
  }
  return "task";
}

// The start of every refusal: who asked for what.
std::string refusal(const IpcSource& source, const IpcRequest& request) {
  return "group " + in_quotes(source.folder) + (source.is_main ? " (main)" : "") + " may not " +
         std::string(request_type(request)) + ": ";
}

// May `source` act on something belonging to `owner` (a chat's or task's group)?
bool owns(const IpcSource& source, const std::string& owner) {
  return source.is_main || owner == source.folder;
}

Result<void> authorize_chat(const IpcSource& source, const IpcRequest& request, const IpcView& view,
                            std::string_view chat) {
  auto owner = view.group_of_chat(chat);
  if (!owner) {
    return make_error(refusal(source, request) + "chat " + in_quotes(chat) + " is not registered");
  }
  if (!owns(source, *owner)) {
    return make_error(refusal(source, request) + "chat " + in_quotes(chat) +
                      " belongs to another group; only the main group may address it");
  }
  return {};
}

}  // namespace

std::string_view to_string(IpcDir dir) { return dir == IpcDir::messages ? "messages" : "tasks"; }

std::string_view request_type(const IpcRequest& request) {
  struct Visitor {
    std::string_view operator()(const SendMessageRequest&) const { return "message"; }
    std::string_view operator()(const ScheduleTaskRequest&) const { return "schedule_task"; }
    std::string_view operator()(const TaskActionRequest& r) const { return action_type(r.action); }
    std::string_view operator()(const RegisterGroupRequest&) const { return "register_group"; }
    std::string_view operator()(const RefreshGroupsRequest&) const { return "refresh_groups"; }
  };
  return std::visit(Visitor{}, request);
}

Result<IpcRequest> parse_ipc_request(std::string_view text, IpcDir dir) {
  if (text.size() > kMaxIpcFileBytes) {
    return make_error("the file is " + std::to_string(text.size()) + " bytes; the limit is " +
                      std::to_string(kMaxIpcFileBytes));
  }
  boost::system::error_code ec;
  json::value parsed = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return make_error("not valid JSON: " + ec.message());
  if (!parsed.is_object()) return make_error("the file must hold one JSON object");
  const json::object& body = parsed.get_object();

  auto type_it = body.find("type");
  if (type_it == body.end()) return make_error("missing field 'type'");
  if (!type_it->value().is_string()) return make_error("field 'type' must be a string");
  const std::string_view type(type_it->value().get_string());

  const TypeInfo* info = nullptr;
  for (const auto& candidate : kTypes) {
    if (candidate.name == type) info = &candidate;
  }
  if (info == nullptr) {
    std::string shown(type.substr(0, 64));
    return make_error("unknown request type " + in_quotes(shown) + "; known: " + known_types());
  }
  if (info->dir != dir) {
    return make_error("a " + in_quotes(type) + " request belongs in " +
                      std::string(to_string(info->dir)) + "/, not in " +
                      std::string(to_string(dir)) + "/");
  }

  if (type == "message") return parse_message(body);
  if (type == "schedule_task") return parse_schedule_task(body);
  if (type == "pause_task") return parse_task_action(body, TaskAction::pause);
  if (type == "resume_task") return parse_task_action(body, TaskAction::resume);
  if (type == "cancel_task") return parse_task_action(body, TaskAction::cancel);
  if (type == "register_group") return parse_register_group(body);
  return IpcRequest(RefreshGroupsRequest{});
}

Result<void> authorize(const IpcSource& source, const IpcRequest& request, const IpcView& view) {
  if (const auto* message = std::get_if<SendMessageRequest>(&request)) {
    return authorize_chat(source, request, view, message->chat_jid);
  }
  if (const auto* schedule = std::get_if<ScheduleTaskRequest>(&request)) {
    if (!schedule->target_jid) return {};
    return authorize_chat(source, request, view, *schedule->target_jid);
  }
  if (const auto* action = std::get_if<TaskActionRequest>(&request)) {
    auto owner = view.group_of_task(action->task_id);
    if (!owner) {
      return make_error(refusal(source, request) + "there is no task " +
                        in_quotes(action->task_id));
    }
    if (!owns(source, *owner)) {
      return make_error(refusal(source, request) + "task " + in_quotes(action->task_id) +
                        " belongs to another group; only the main group may manage it");
    }
    return {};
  }
  // register_group and refresh_groups change the host's set of groups.
  if (!source.is_main) {
    return make_error(refusal(source, request) + "only the main group may send this request");
  }
  return {};
}

}  // namespace sb::host

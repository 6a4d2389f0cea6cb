#pragma once
// What an agent may ask the host through its IPC directories (docs/ipc.md): parsing the JSON
// files into requests, and deciding whether the group that wrote one may make it.
//
// The writer's identity is the directory the file was found in (IpcSource), never a field of
// the file: fields such as "groupFolder" or "isMain" in a file are ignored.
//
// Everything here is a pure function of its arguments (plus the IpcView callbacks); safe
// from any thread the callbacks are safe from.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/result.h"
#include "core/schedule.h"

namespace sb::host {

// The agent -> host directory a file was found in.
enum class IpcDir { messages, tasks };

// "messages" or "tasks": the directory's name.
std::string_view to_string(IpcDir dir);

// Limits on what an agent may send. Longer input is refused, not truncated.
inline constexpr std::size_t kMaxIpcFileBytes = 1024 * 1024;
inline constexpr std::size_t kMaxIpcTextBytes = 64 * 1024;    // message text
inline constexpr std::size_t kMaxIpcPromptBytes = 64 * 1024;  // task prompt
inline constexpr std::size_t kMaxIpcIdBytes = 256;  // chat ids, task ids, names, triggers...

// {"type":"message","chatJid":"http:alice","text":"hi"} in messages/. "chat" is accepted for
// "chatJid". Sends `text` to the chat.
struct SendMessageRequest {
  std::string chat_jid;
  std::string text;
};

enum class ContextMode { group, isolated };

// {"type":"schedule_task","prompt":…,"schedule_type":"cron|interval|once","schedule_value":…,
//  "context_mode":"group|isolated","targetJid":…} in tasks/. context_mode defaults to
// isolated. Without targetJid the task is for the source group (a chat of it). The schedule
// value is only bounded here; the scheduler validates it (parse_schedule) in its time zone.
struct ScheduleTaskRequest {
  std::string prompt;
  ScheduleType schedule_type = ScheduleType::once;
  std::string schedule_value;
  ContextMode context_mode = ContextMode::isolated;
  std::optional<std::string> target_jid;
};

enum class TaskAction { pause, resume, cancel };

// {"type":"pause_task"|"resume_task"|"cancel_task","taskId":…} in tasks/.
struct TaskActionRequest {
  TaskAction action = TaskAction::pause;
  std::string task_id;
};

// {"type":"register_group","jid":…,"name":…,"folder":…,"trigger":"@x","requiresTrigger":true}
// in tasks/. requiresTrigger defaults to true. Main only.
struct RegisterGroupRequest {
  std::string jid;
  std::string name;
  std::string folder;  // is_valid_group_folder() holds
  std::string trigger;
  bool requires_trigger = true;
};

// {"type":"refresh_groups"} in tasks/: rebuild the list of available groups. Main only.
struct RefreshGroupsRequest {};

using IpcRequest = std::variant<SendMessageRequest, ScheduleTaskRequest, TaskActionRequest,
                                RegisterGroupRequest, RefreshGroupsRequest>;

// The request's "type" as written in the file ("message", "schedule_task", "pause_task"...).
std::string_view request_type(const IpcRequest& request);

// Parses one IPC file found in `dir`. Strict: the file must be at most kMaxIpcFileBytes of
// valid UTF-8 JSON whose top level is an object with a known "type" that belongs in `dir`
// ("message" in messages/, all others in tasks/); every required field present with the
// right JSON type, non-empty and within its limit; optional fields absent, null or valid;
// chat ids shaped `<channel>:<address>`. Unknown fields are ignored (agents may add
// bookkeeping such as "timestamp"). The error says what is wrong, naming the field.
Result<IpcRequest> parse_ipc_request(std::string_view json, IpcDir dir);

// The group whose directory a file came from. `is_main` is the main (admin) group's status.
struct IpcSource {
  std::string folder;
  bool is_main = false;
};

// What authorization needs to know of the host's state. Each returns the folder of the
// group a chat is registered to / a task belongs to, or nullopt if there is no such chat or
// task.
struct IpcView {
  std::function<std::optional<std::string>(std::string_view chat)> group_of_chat;
  std::function<std::optional<std::string>(std::string_view task_id)> group_of_task;
};

// May `source` make `request`? Rules (by directory, never by a field of the file):
//  - message: the chat must be registered; a non-main group only to chats of its own folder.
//  - schedule_task: a targetJid must be a registered chat, of the source's own folder unless
//    the source is main; without targetJid the task is the source's own (always allowed).
//  - pause/resume/cancel_task: the task must exist; a non-main group only its own tasks.
//  - register_group, refresh_groups: main only.
// The refusal names the group, the request type and the reason. A non-main group is not
// told which group owns another group's chat or task.
Result<void> authorize(const IpcSource& source, const IpcRequest& request, const IpcView& view);

}  // namespace sb::host

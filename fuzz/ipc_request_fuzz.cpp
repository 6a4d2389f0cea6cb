// A file an agent leaves in its IPC directories, read as the IPC watcher reads it
// (host/ipc_requests.h): parse_ipc_request for each directory, then authorize() for a main
// and a non-main group against a small fixed view of registered chats and tasks.
//
// Properties checked beyond "no crash": an accepted request honours the documented limits
// (field sizes, group folder validity, chat ids shaped "<channel>:<address>"), a request is
// only accepted in the directory it belongs to, and a non-main group is never authorized
// for another group's chat or task or for the main-only requests.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_support.h"
#include "host/ipc_files.h"
#include "host/ipc_requests.h"

namespace {

using namespace sb::host;
using sb::fuzz::require;

std::optional<std::string> group_of_chat(std::string_view chat) {
  if (chat == "http:alice") return "family";
  if (chat == "http:boss") return "main";
  return std::nullopt;
}

std::optional<std::string> group_of_task(std::string_view task) {
  if (task == "task-1") return "family";
  if (task == "task-2") return "main";
  return std::nullopt;
}

bool chat_shaped(const std::string& chat) {
  const auto colon = chat.find(':');
  return colon != std::string::npos && colon > 0 && colon + 1 < chat.size();
}

void check(const IpcRequest& request, IpcDir dir) {
  require((dir == IpcDir::messages) == std::holds_alternative<SendMessageRequest>(request),
          "messages/ holds messages only, tasks/ everything else");
  if (auto* m = std::get_if<SendMessageRequest>(&request)) {
    require(chat_shaped(m->chat_jid) && m->chat_jid.size() <= kMaxIpcIdBytes, "message chat");
    require(!m->text.empty() && m->text.size() <= kMaxIpcTextBytes, "message text");
  } else if (auto* t = std::get_if<ScheduleTaskRequest>(&request)) {
    require(!t->prompt.empty() && t->prompt.size() <= kMaxIpcPromptBytes, "task prompt");
    if (t->target_jid) require(chat_shaped(*t->target_jid), "task target chat");
  } else if (auto* a = std::get_if<TaskActionRequest>(&request)) {
    require(!a->task_id.empty() && a->task_id.size() <= kMaxIpcIdBytes, "task id");
  } else if (auto* g = std::get_if<RegisterGroupRequest>(&request)) {
    require(is_valid_group_folder(g->folder), "registered folder is valid");
    require(chat_shaped(g->jid), "registered chat");
  }
  request_type(request);

  const IpcView view{group_of_chat, group_of_task};
  (void)authorize({"main", true}, request, view);
  const bool allowed = static_cast<bool>(authorize({"family", false}, request, view));
  if (auto* m = std::get_if<SendMessageRequest>(&request)) {
    if (allowed) require(group_of_chat(m->chat_jid) == "family", "own chats only");
  } else if (auto* t = std::get_if<ScheduleTaskRequest>(&request)) {
    if (allowed && t->target_jid) require(group_of_chat(*t->target_jid) == "family", "own chat");
  } else if (auto* a = std::get_if<TaskActionRequest>(&request)) {
    if (allowed) require(group_of_task(a->task_id) == "family", "own tasks only");
  } else {
    require(!allowed, "register_group and refresh_groups are main-only");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json = sb::fuzz::as_text(data, size);
  for (IpcDir dir : {IpcDir::messages, IpcDir::tasks}) {
    if (auto request = parse_ipc_request(json, dir)) check(*request, dir);
  }
  is_valid_group_folder(json);
  return 0;
}

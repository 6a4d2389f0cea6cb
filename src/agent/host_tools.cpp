#include "agent/host_tools.h"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "core/schedule.h"
#include "host/ipc_files.h"
#include "host/ipc_requests.h"

namespace sb::agent {
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// Far more than the snapshot of a main group, which lists every task, holds in practice.
constexpr std::uintmax_t kMaxSnapshotBytes = 16 * 1024 * 1024;
// How much of a task's prompt list_tasks shows.
constexpr std::size_t kPromptPreviewBytes = 200;

constexpr std::string_view kScheduleHelp =
    "Valid schedules: cron = 5 fields 'minute hour day-of-month month day-of-week' in the "
    "host's time zone, e.g. '0 9 * * 1-5' (09:00 on weekdays) or '*/30 * * * *', or one of "
    "@hourly @daily @weekly @monthly @yearly; interval = whole milliseconds between runs, from "
    "1000 to 3155760000000, e.g. '3600000' for hourly; once = an ISO-8601 date-time, in the "
    "host's time zone such as '2026-12-24T18:00' or with Z or an offset such as "
    "'2026-12-24T17:00Z'.";

constexpr std::string_view kNoReply =
    "The host answers nothing back; a refusal shows only in its log.";

std::string in_quotes(std::string_view text) { return "'" + std::string(text) + "'"; }

ToolOutput not_written(const Error& error) {
  return ToolOutput::error("Nothing was written: " + error.message + ".");
}

using RunFunction = std::function<ToolOutput(const json::object&, const ToolContext&)>;

class HostTool final : public Tool {
 public:
  HostTool(ToolSpec spec, RunFunction run) : spec_(std::move(spec)), run_(std::move(run)) {}
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const json::object& input, const ToolContext& context) override {
    if (auto checked = check_tool_input(spec_, input); !checked) {
      return not_written(checked.error());
    }
    return run_(input, context);
  }

 private:
  ToolSpec spec_;
  RunFunction run_;
};

json::object string_property(std::string_view description) {
  return json::object{{"type", "string"}, {"description", description}};
}

json::object enum_property(std::initializer_list<std::string_view> values,
                           std::string_view description) {
  json::array allowed;
  for (std::string_view value : values) allowed.emplace_back(value);
  return json::object{{"type", "string"}, {"enum", allowed}, {"description", description}};
}

json::object object_schema(json::object properties,
                           std::initializer_list<std::string_view> required) {
  json::array names;
  for (std::string_view name : required) names.emplace_back(name);
  return json::object{{"type", "object"},
                      {"properties", std::move(properties)},
                      {"required", std::move(names)},
                      {"additionalProperties", false}};
}

// A string argument: nullopt when absent or null; an error when it is another JSON type or
// empty (the host refuses empty strings), or when it is required and missing.
Result<std::optional<std::string>> string_argument(const json::object& input, std::string_view name,
                                                   bool required) {
  const json::value* value = input.if_contains(name);
  if (value == nullptr || value->is_null()) {
    if (required) return make_error("the argument " + in_quotes(name) + " (a string) is required");
    return std::optional<std::string>{};
  }
  if (!value->is_string()) {
    return make_error("the argument " + in_quotes(name) + " must be a string");
  }
  if (value->get_string().empty()) {
    return make_error("the argument " + in_quotes(name) + " must not be empty");
  }
  return std::optional<std::string>(std::string(value->get_string()));
}

// Copies the string arguments `names` (those present) into `request`.
Result<void> copy_strings(const json::object& input, json::object& request,
                          std::initializer_list<std::pair<std::string_view, bool>> names) {
  for (const auto& [name, required] : names) {
    auto value = string_argument(input, name, required);
    if (!value) return value.error();
    if (value.value()) request[name] = *value.value();
  }
  return {};
}

// Validates `request` exactly as the host will and writes it into <ipc_dir>/<dir>/.
Result<void> write_request(const ToolContext& context, host::IpcDir dir,
                           const json::object& request) {
  if (context.ipc_dir.empty()) {
    return make_error("there is no IPC directory (SWITCHBOARD_IPC_DIR is not set)");
  }
  const std::string content = json::serialize(request);
  if (auto parsed = host::parse_ipc_request(content, dir); !parsed) return parsed.error();
  auto written = host::write_ipc_file(context.ipc_dir / host::to_string(dir), content);
  if (!written) return written.error();
  return {};
}

ToolOutput send_message(const json::object& input, const ToolContext& context) {
  auto text = string_argument(input, "text", true);
  if (!text) return not_written(text.error());
  auto chat = string_argument(input, "chatJid", false);
  if (!chat) return not_written(chat.error());
  const std::string target = chat.value() ? *chat.value() : context.chat_jid;
  if (target.empty()) {
    return not_written(make_error("this run has no current chat; give 'chatJid'"));
  }
  json::object request{{"type", "message"}, {"chatJid", target}, {"text", *text.value()}};
  if (auto written = write_request(context, host::IpcDir::messages, request); !written) {
    return not_written(written.error());
  }
  return {"Message queued for " + target +
          ". The host sends it if this group may write to that chat. " + std::string(kNoReply)};
}

ToolOutput schedule_task(const json::object& input, const ToolContext& context) {
  json::object request{{"type", "schedule_task"}};
  if (auto copied = copy_strings(input, request,
                                 {{"prompt", true},
                                  {"schedule_type", true},
                                  {"schedule_value", true},
                                  {"context_mode", false},
                                  {"targetJid", false}});
      !copied) {
    return not_written(copied.error());
  }
  // The host checks the schedule again in its own time zone; whether a schedule is valid
  // does not depend on the zone, so UTC (built into cctz) serves to check it here.
  auto type = parse_schedule_type(request.at("schedule_type").as_string());
  if (!type) {
    return ToolOutput::error("Nothing was written: " + type.error().message + ". " +
                             std::string(kScheduleHelp));
  }
  auto zone = load_time_zone("UTC");
  if (!zone) return not_written(zone.error());
  auto schedule = parse_schedule(type.value(), request.at("schedule_value").as_string(), *zone);
  if (!schedule) {
    return ToolOutput::error("Nothing was written: invalid " + std::string(to_string(*type)) +
                             " schedule: " + schedule.error().message + ". " +
                             std::string(kScheduleHelp));
  }
  if (auto written = write_request(context, host::IpcDir::tasks, request); !written) {
    return not_written(written.error());
  }
  return {"Task request written (" + std::string(to_string(*type)) + " " +
          in_quotes(schedule->text()) + "); the host creates the task if this group may, and " +
          "then it appears in list_tasks. " + std::string(kNoReply)};
}

RunFunction task_action(std::string type, std::string verb) {
  return [type = std::move(type), verb = std::move(verb)](const json::object& input,
                                                          const ToolContext& context) {
    json::object request{{"type", type}};
    if (auto copied = copy_strings(input, request, {{"taskId", true}}); !copied) {
      return not_written(copied.error());
    }
    if (auto written = write_request(context, host::IpcDir::tasks, request); !written) {
      return not_written(written.error());
    }
    return ToolOutput{"Request to " + verb + " task " +
                      std::string(request.at("taskId").as_string()) +
                      " written; the host carries it out if the task exists and this group may "
                      "manage it (check with list_tasks). " +
                      std::string(kNoReply)};
  };
}

ToolOutput register_group(const json::object& input, const ToolContext& context) {
  json::object request{{"type", "register_group"}};
  if (auto copied = copy_strings(
          input, request, {{"jid", true}, {"name", true}, {"folder", true}, {"trigger", true}});
      !copied) {
    return not_written(copied.error());
  }
  const std::string_view folder = request.at("folder").as_string();
  if (!host::is_valid_group_folder(folder)) {
    return not_written(make_error("the folder " + in_quotes(folder) +
                                  " is not valid: use 1 to 64 letters, digits, '_' or '-', "
                                  "starting with a letter or digit (and not 'errors')"));
  }
  if (const json::value* requires_trigger = input.if_contains("requiresTrigger");
      requires_trigger != nullptr && !requires_trigger->is_null()) {
    if (!requires_trigger->is_bool()) {
      return not_written(make_error("the argument 'requiresTrigger' must be true or false"));
    }
    request["requiresTrigger"] = requires_trigger->get_bool();
  }
  if (auto written = write_request(context, host::IpcDir::tasks, request); !written) {
    return not_written(written.error());
  }
  return {"Request to register " + std::string(request.at("jid").as_string()) + " as group '" +
          std::string(folder) +
          "' written; the host registers it unless the chat or folder is already taken. " +
          std::string(kNoReply)};
}

// At most `max` bytes of `text`, cut at a UTF-8 character boundary, with "…" when cut.
std::string preview(std::string_view text, std::size_t max) {
  std::string out;
  for (char c : text) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (out.size() <= max) return out;
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  return out + "…";
}

std::string field_text(const json::object& task, std::string_view name,
                       std::string_view fallback = "?") {
  const json::value* value = task.if_contains(name);
  if (value == nullptr || value->is_null()) return std::string(fallback);
  if (value->is_string()) return std::string(value->get_string());
  return json::serialize(*value);
}

std::string format_task(const json::value& entry) {
  if (!entry.is_object()) return "- (an entry that is not a task object)\n";
  const json::object& task = entry.get_object();
  std::string line = "- " + field_text(task, "id") + ": " + field_text(task, "status") + ", " +
                     field_text(task, "schedule_type") + " '" + field_text(task, "schedule_value") +
                     "', " + field_text(task, "context_mode") + " context, next run " +
                     field_text(task, "next_run", "none") + ", chat " +
                     field_text(task, "chatJid") + " (group " + field_text(task, "groupFolder") +
                     ")\n";
  line += "  prompt: " + preview(field_text(task, "prompt"), kPromptPreviewBytes) + "\n";
  return line;
}

ToolOutput list_tasks(const json::object&, const ToolContext& context) {
  if (context.snapshot_dir.empty()) {
    return ToolOutput::error(
        "There is no snapshot directory (SWITCHBOARD_SNAPSHOT_DIR is not set).");
  }
  const fs::path file = context.snapshot_dir / host::kCurrentTasksSnapshot;
  std::error_code ec;
  const auto status = fs::status(file, ec);
  if (status.type() == fs::file_type::not_found) {
    return {"No task list: " + file.string() +
            " does not exist. The host writes it before each run and after each task request it "
            "carries out; until then no tasks are known."};
  }
  const std::uintmax_t size = fs::is_regular_file(status) ? fs::file_size(file, ec) : 0;
  if (ec || !fs::is_regular_file(status)) {
    return ToolOutput::error("Cannot read " + file.string() + ": it is not a readable file.");
  }
  if (size > kMaxSnapshotBytes) {
    return ToolOutput::error("Cannot read " + file.string() + ": it is " + std::to_string(size) +
                             " bytes, more than the " + std::to_string(kMaxSnapshotBytes) +
                             " this tool reads.");
  }
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) return ToolOutput::error("Cannot read " + file.string() + ".");
  boost::system::error_code parse_error;
  const json::value snapshot = json::parse(text, parse_error);
  if (parse_error || !snapshot.is_array()) {
    return ToolOutput::error("The task snapshot " + file.string() +
                             " is not a JSON array of tasks; the host rewrites it before the next "
                             "run.");
  }
  const json::array& tasks = snapshot.get_array();
  constexpr std::string_view kSource =
      "(from the host's snapshot, written at the start of this run and rewritten after each "
      "task request the host carries out)";
  if (tasks.empty()) return {"No scheduled tasks " + std::string(kSource) + "."};
  std::string out = std::to_string(tasks.size()) +
                    (tasks.size() == 1 ? " scheduled task " : " scheduled tasks ") +
                    std::string(kSource) + ":\n";
  std::size_t shown = 0;
  for (const json::value& entry : tasks) {
    std::string line = format_task(entry);
    if (out.size() + line.size() > context.max_output_bytes) break;
    out += line;
    ++shown;
  }
  if (shown < tasks.size()) {
    out += "… and " + std::to_string(tasks.size() - shown) + " more not shown (output limit).\n";
  }
  return {std::move(out)};
}

bool has_json_type(const json::value& value, std::string_view type) {
  if (type == "string") return value.is_string();
  if (type == "boolean") return value.is_bool();
  if (type == "integer") return value.is_int64() || value.is_uint64();
  if (type == "number") return value.is_number();
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  return true;  // a type this check does not know: leave it to the tool
}

std::string declared_names(const json::object& properties) {
  std::string names;
  for (const auto& property : properties) {
    if (!names.empty()) names += ", ";
    names += std::string_view(property.key());
  }
  return names.empty() ? std::string("none") : names;
}

}  // namespace

Result<void> check_tool_input(const ToolSpec& spec, const json::object& input) {
  static const json::object kNoProperties;
  const json::value* declared = spec.input_schema.if_contains("properties");
  const json::object& properties =
      declared != nullptr && declared->is_object() ? declared->get_object() : kNoProperties;
  if (const json::value* required = spec.input_schema.if_contains("required");
      required != nullptr && required->is_array()) {
    for (const json::value& name : required->get_array()) {
      if (!name.is_string()) continue;
      const json::value* value = input.if_contains(name.get_string());
      if (value == nullptr || value->is_null()) {
        return make_error("the argument " + in_quotes(name.get_string()) + " is required");
      }
    }
  }
  for (const auto& argument : input) {
    const std::string_view name = argument.key();
    const json::value* property = properties.if_contains(name);
    if (property == nullptr || !property->is_object()) {
      return make_error("unknown argument " + in_quotes(preview(name, 64)) + "; " + spec.name +
                        " takes: " + declared_names(properties));
    }
    if (argument.value().is_null()) continue;
    const json::object& rule = property->get_object();
    if (const json::value* type = rule.if_contains("type");
        type != nullptr && type->is_string() &&
        !has_json_type(argument.value(), type->get_string())) {
      return make_error("the argument " + in_quotes(name) + " must be of type " +
                        std::string(type->get_string()));
    }
    if (const json::value* allowed = rule.if_contains("enum");
        allowed != nullptr && allowed->is_array()) {
      bool found = false;
      std::string listed;
      for (const json::value& option : allowed->get_array()) {
        found = found || option == argument.value();
        if (!listed.empty()) listed += ", ";
        listed += option.is_string() ? std::string(option.get_string()) : json::serialize(option);
      }
      if (!found) {
        return make_error("the argument " + in_quotes(name) + " must be one of: " + listed);
      }
    }
  }
  return {};
}

ToolList make_host_tools(const ToolContext& context) {
  const std::string current_chat =
      context.chat_jid.empty() ? std::string("none in this run") : context.chat_jid;
  ToolList tools;
  auto add = [&tools](std::string name, std::string description, json::object schema,
                      RunFunction run) {
    tools.push_back(std::make_unique<HostTool>(
        ToolSpec{std::move(name), std::move(description), std::move(schema)}, std::move(run)));
  };

  add("send_message",
      "Send a message to a chat right away, while you keep working: a progress update, or a "
      "message to another chat. Your final answer reaches the current chat anyway; do not repeat "
      "it here. The host delivers the message later and reports nothing back; a non-main group "
      "may only write to its own chats.",
      object_schema(
          json::object{
              {"text", string_property("The message text.")},
              {"chatJid", string_property("The chat to write to, <channel>:<address> such as "
                                          "http:alice; default: the current chat (" +
                                          current_chat + ").")}},
          {"text"}),
      send_message);

  add("schedule_task",
      "Schedule a task: at the scheduled times the host runs an agent on `prompt` for this "
      "group (or for the group of targetJid; only the main group may schedule for other "
      "groups). " +
          std::string(kScheduleHelp) +
          " The host creates the task after this call returns; see list_tasks.",
      object_schema(
          json::object{
              {"prompt", string_property("What the agent is asked when the task runs.")},
              {"schedule_type",
               enum_property({"cron", "interval", "once"}, "The kind of schedule.")},
              {"schedule_value",
               string_property("The schedule: '0 9 * * 1-5' (cron), '3600000' (interval, "
                               "milliseconds) or '2026-12-24T18:00' (once).")},
              {"context_mode",
               enum_property({"group", "isolated"},
                             "isolated (default): a fresh session each run; group: the "
                             "group's conversation session.")},
              {"targetJid", string_property("The chat whose group the task belongs to; default: "
                                            "this group.")}},
          {"prompt", "schedule_type", "schedule_value"}),
      schedule_task);

  add("list_tasks",
      "List the scheduled tasks this group can see (all tasks for the main group): id, status, "
      "schedule, next run, chat and prompt. It reads the host's snapshot, written at the start of "
      "this run and rewritten after each task request the host carries out.",
      object_schema(json::object{}, {}), list_tasks);

  const json::object task_id{
      {"taskId", string_property("The task's id, as list_tasks shows it (task-…).")}};
  add("pause_task", "Pause a scheduled task: it does not run until resumed.",
      object_schema(task_id, {"taskId"}), task_action("pause_task", "pause"));
  add("resume_task", "Resume a paused task: its next run is computed from now.",
      object_schema(task_id, {"taskId"}), task_action("resume_task", "resume"));
  add("cancel_task", "Cancel a scheduled task for good.", object_schema(task_id, {"taskId"}),
      task_action("cancel_task", "cancel"));

  if (context.is_main) {
    add("register_group",
        "Register a chat as a new group with its own folder, memory and agent (main group only). "
        "available_groups.json in the snapshot directory ($SWITCHBOARD_SNAPSHOT_DIR) lists the "
        "chats the host knows.",
        object_schema(
            json::object{
                {"jid", string_property("The chat to bind, e.g. whatsapp-group:120363@g.us.")},
                {"name", string_property("The group's display name.")},
                {"folder", string_property("The group's folder: 1 to 64 letters, digits, '_' or "
                                           "'-', starting with a letter or digit.")},
                {"trigger", string_property("The word that addresses the assistant, e.g. @Andy.")},
                {"requiresTrigger",
                 json::object{{"type", "boolean"},
                              {"description",
                               "true (default): only messages containing the trigger start the "
                               "agent; false: every message does."}}}},
            {"jid", "name", "folder", "trigger"}),
        register_group);
  }
  return tools;
}

Tool* find_tool(const ToolList& tools, std::string_view name) {
  for (const auto& tool : tools) {
    if (tool->spec().name == name) return tool.get();
  }
  return nullptr;
}

ToolOutput unknown_tool_output(const ToolList& tools, std::string_view name) {
  std::string names;
  for (const auto& tool : tools) {
    if (!names.empty()) names += ", ";
    names += tool->spec().name;
  }
  const std::string why =
      name == "register_group" ? ": it is offered to the main group only" : std::string();
  return ToolOutput::error("Unknown tool " + in_quotes(preview(name, 64)) + why +
                           ". The tools are: " + names + ".");
}

}  // namespace sb::agent

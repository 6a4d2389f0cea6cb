// `switchboard groups …` and `switchboard tasks …`: thin clients of the API's /groups and
// /tasks routes, printing a short human form (or the JSON with --json).

#include <boost/json.hpp>
#include <iomanip>
#include <iostream>

#include "cli/api_access.h"

namespace sb::cli {
namespace json = boost::json;

namespace {

std::string text_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (!value || value->is_null()) return "-";
  if (value->is_string()) return std::string(value->as_string());
  return json::serialize(*value);
}

// Sends one request; prints errors. Returns the parsed JSON on a 2xx answer.
std::optional<json::value> call(const ClientOptions& options, std::string method,
                                std::string target, std::string body, int& exit_code) {
  auto config = load_for_cli(options.common);
  if (!config) {
    exit_code = kExitUsage;
    return std::nullopt;
  }
  auto request = api_call_for_cli(options, *config);
  if (!request) {
    exit_code = kExitUsage;
    return std::nullopt;
  }
  request->method = std::move(method);
  request->target = std::move(target);
  request->body = std::move(body);
  auto reply = http_call(*request);
  if (!reply) {
    std::cerr << "switchboard: " << reply.error().message
              << " (is `switchboard run` running there?)\n";
    exit_code = kExitFailure;
    return std::nullopt;
  }
  boost::system::error_code ec;
  json::value parsed = json::parse(reply->body, ec);
  if (reply->status < 200 || reply->status >= 300) {
    std::string message = reply->body;
    if (!ec && parsed.is_object() && parsed.as_object().contains("error")) {
      message = text_of(parsed.as_object(), "error");
    }
    std::cerr << "switchboard: " << message << " (HTTP " << reply->status << ")\n";
    exit_code = reply->status == 400 || reply->status == 404 || reply->status == 409 ? kExitUsage
                                                                                     : kExitFailure;
    return std::nullopt;
  }
  if (ec) {
    std::cerr << "switchboard: the API answered without JSON\n";
    exit_code = kExitFailure;
    return std::nullopt;
  }
  if (options.json) std::cout << reply->body << '\n';
  exit_code = kExitOk;
  return parsed;
}

void print_group(const json::object& group) {
  std::string chats;
  if (const auto* list = group.if_contains("chats"); list && list->is_array()) {
    for (const json::value& chat : list->as_array()) {
      if (!chats.empty()) chats += ", ";
      chats += chat.is_string() ? std::string(chat.as_string()) : "?";
    }
  }
  const bool main =
      group.contains("main") && group.at("main").is_bool() && group.at("main").as_bool();
  const bool needs = group.contains("requires_trigger") && group.at("requires_trigger").is_bool() &&
                     group.at("requires_trigger").as_bool();
  std::cout << std::left << std::setw(16) << text_of(group, "folder") << ' ' << std::setw(20)
            << text_of(group, "name") << ' '
            << (main    ? "main"
                : needs ? "trigger " + text_of(group, "trigger")
                        : "every message")
            << "  " << chats << '\n';
}

void print_task(const json::object& task) {
  std::cout << std::left << std::setw(18) << text_of(task, "id") << ' ' << std::setw(10)
            << text_of(task, "status") << ' ' << std::setw(12) << text_of(task, "group") << ' '
            << text_of(task, "schedule_type") << ' ' << std::setw(16)
            << text_of(task, "schedule_value") << " next " << text_of(task, "next_run") << '\n';
}

}  // namespace

int groups(const GroupOptions& options) {
  int code = kExitOk;
  const auto& client = options.client;
  if (options.action == "list") {
    auto answer = call(client, "GET", "/groups", "", code);
    if (!answer || client.json) return code;
    const auto& list = answer->as_object().at("groups").as_array();
    if (list.empty()) std::cout << "no groups: add one with `switchboard groups add`\n";
    for (const json::value& group : list) print_group(group.as_object());
    return code;
  }
  if (options.action == "remove") {
    auto answer = call(client, "DELETE", "/groups/" + options.folder, "", code);
    if (answer && !client.json) {
      std::cout << "removed group " << options.folder << " (its folder stays on disk)\n";
    }
    return code;
  }
  json::object body;
  if (options.action == "add") body["folder"] = options.folder;
  if (!options.chats.empty()) {
    json::array chats;
    for (const std::string& chat : options.chats) chats.push_back(json::value(chat));
    body["chats"] = chats;
  }
  if (options.name) body["name"] = *options.name;
  if (options.trigger) body["trigger"] = *options.trigger;
  if (options.default_trigger) body["trigger"] = nullptr;
  if (options.requires_trigger) body["requires_trigger"] = *options.requires_trigger;
  if (options.main) body["main"] = *options.main;
  if (options.agent_config) {
    boost::system::error_code ec;
    json::value config = json::parse(*options.agent_config, ec);
    if (ec || !config.is_object()) {
      std::cerr << "switchboard: --agent-config must be a JSON object, such as "
                   "'{\"network\": true}'\n";
      return kExitUsage;
    }
    body["agent_config"] = config;
  }
  const bool add = options.action == "add";
  auto answer = call(client, add ? "POST" : "PATCH", add ? "/groups" : "/groups/" + options.folder,
                     json::serialize(body), code);
  if (answer && !client.json) {
    std::cout << (add ? "added " : "updated ");
    print_group(answer->as_object());
  }
  return code;
}

int tasks(const TaskOptions& options) {
  int code = kExitOk;
  const auto& client = options.client;
  if (options.action == "list") {
    auto answer =
        call(client, "GET", options.group ? "/tasks?group=" + *options.group : "/tasks", "", code);
    if (!answer || client.json) return code;
    const auto& list = answer->as_object().at("tasks").as_array();
    if (list.empty()) std::cout << "no tasks\n";
    for (const json::value& task : list) print_task(task.as_object());
    return code;
  }
  if (options.action == "runs") {
    auto answer = call(client, "GET", "/tasks/" + options.id + "/runs", "", code);
    if (!answer || client.json) return code;
    const auto& runs = answer->as_object().at("runs").as_array();
    if (runs.empty()) std::cout << "task " << options.id << " has not run yet\n";
    for (const json::value& run : runs) {
      const auto& r = run.as_object();
      std::cout << text_of(r, "run_at") << "  " << std::setw(7) << text_of(r, "status") << ' '
                << std::setw(8) << text_of(r, "duration_ms") + "ms"
                << "  "
                << (r.contains("error") && !r.at("error").is_null() ? text_of(r, "error")
                                                                    : text_of(r, "result"))
                << '\n';
    }
    return code;
  }
  if (options.action == "pause" || options.action == "resume" || options.action == "cancel") {
    auto answer = call(client, "POST", "/tasks/" + options.id + "/" + options.action, "", code);
    if (answer && !client.json) print_task(answer->as_object());
    return code;
  }
  // add
  const int kinds = (options.cron ? 1 : 0) + (options.interval ? 1 : 0) + (options.once ? 1 : 0);
  if (kinds != 1 || !options.group || !options.prompt) {
    std::cerr << "switchboard: tasks add needs --group, --prompt and exactly one of --cron "
                 "\"0 9 * * 1-5\", --interval 3600000 (milliseconds) or --once "
                 "2026-12-24T18:00:00\n";
    return kExitUsage;
  }
  json::object body{{"group", *options.group}, {"prompt", *options.prompt}};
  if (options.chat) body["chat"] = *options.chat;
  if (options.context_mode) body["context_mode"] = *options.context_mode;
  body["schedule_type"] = options.cron ? "cron" : options.interval ? "interval" : "once";
  body["schedule_value"] = options.cron       ? *options.cron
                           : options.interval ? *options.interval
                                              : *options.once;
  auto answer = call(client, "POST", "/tasks", json::serialize(body), code);
  if (answer && !client.json) {
    std::cout << "added ";
    print_task(answer->as_object());
  }
  return code;
}

}  // namespace sb::cli

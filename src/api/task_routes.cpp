#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>

#include "api/message_json.h"
#include "api/routes.h"
#include "common/time.h"
#include "core/groups.h"
#include "core/scheduler.h"

namespace sb::api {
namespace json = boost::json;
using boost::asio::awaitable;

namespace {

json::value optional_text(const std::optional<std::string>& text) {
  return text ? json::value(*text) : json::value(nullptr);
}

json::object task_json(const TaskRecord& task) {
  return json::object{{"id", task.id},
                      {"group", task.group_folder},
                      {"chat", task.chat_jid},
                      {"prompt", task.prompt},
                      {"schedule_type", task.schedule_type},
                      {"schedule_value", task.schedule_value},
                      {"context_mode", to_string(task.context_mode)},
                      {"status", to_string(task.status)},
                      {"next_run", optional_text(task.next_run)},
                      {"last_run", optional_text(task.last_run)},
                      {"last_result", optional_text(task.last_result)},
                      {"created_at", task.created_at}};
}

json::object totals_json(const UsageTotals& totals) {
  return json::object{{"input_tokens", totals.input_tokens},
                      {"output_tokens", totals.output_tokens},
                      {"requests", totals.requests}};
}

Response json_response(int status, const json::value& body) {
  return api::json_response(status, json::serialize(body));
}

int limit_from(const Request& request, int fallback) {
  auto it = request.query.find("limit");
  if (it == request.query.end()) return fallback;
  int value = 0;
  auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
  if (ec != std::errc() || end != it->second.data() + it->second.size()) return -1;
  return value >= 1 && value <= kMaxListLimit ? value : -1;
}

// POST /tasks body → NewTask; `chat` defaults to the group's first chat.
Result<core::NewTask> new_task_from(const std::string& body, const core::GroupRegistry& groups) {
  auto body_json = parse_request_json(body);
  if (!body_json) return body_json.error();
  const json::value& parsed = *body_json;
  if (!parsed.is_object()) return make_error("the body must be a JSON object");
  core::NewTask task;
  std::optional<std::string> chat;
  for (const auto& [key, value] : parsed.as_object()) {
    const std::string name(key);
    std::string* target = name == "group"            ? &task.group_folder
                          : name == "prompt"         ? &task.prompt
                          : name == "schedule_type"  ? &task.schedule_type
                          : name == "schedule_value" ? &task.schedule_value
                          : name == "context_mode"   ? &task.context_mode
                                                     : nullptr;
    if (name == "chat") {
      if (!value.is_string()) return make_error("'chat' must be a chat id string");
      chat = std::string(value.as_string());
      continue;
    }
    if (!target) {
      return make_error("unknown field '" + name +
                        "' (known: group, chat, prompt, schedule_type, schedule_value, "
                        "context_mode)");
    }
    if (!value.is_string()) return make_error("'" + name + "' must be a string");
    *target = std::string(value.as_string());
  }
  for (auto [name, value] : {std::pair{"group", &task.group_folder},
                             {"prompt", &task.prompt},
                             {"schedule_type", &task.schedule_type},
                             {"schedule_value", &task.schedule_value}}) {
    if (value->empty()) return make_error(std::string("'") + name + "' is required");
  }
  const GroupRecord* group = groups.find(task.group_folder);
  if (!group) return make_error("no group '" + task.group_folder + "'");
  if (chat && std::ranges::find(group->chats, *chat) == group->chats.end()) {
    return make_error("chat " + *chat + " does not belong to group '" + group->folder + "'");
  }
  task.chat_jid = chat.value_or(group->chats.front());
  return task;
}

}  // namespace

void add_task_routes(Router& router, ApiContext& ctx) {
  router.add("GET", "/tasks", [&ctx](Request& request) -> awaitable<Response> {
    std::optional<std::string_view> group;
    if (auto it = request.query.find("group"); it != request.query.end()) group = it->second;
    json::array tasks;
    for (const TaskRecord& task : ctx.reader.tasks(group)) tasks.push_back(task_json(task));
    co_return json_response(200, json::object{{"tasks", tasks}});
  });

  router.add("POST", "/tasks", [&ctx](Request& request) -> awaitable<Response> {
    auto task = new_task_from(request.body, *ctx.groups);
    if (!task) co_return error_response(400, task.error().message);
    auto adding = ctx.scheduler->add(std::move(task.value()));
    auto added = co_await std::move(adding);
    if (!added) co_return error_response(400, added.error().message);
    co_return json_response(201, task_json(added.value()));
  });

  router.add("GET", "/tasks/{id}", [&ctx](Request& request) -> awaitable<Response> {
    auto task = ctx.reader.task(request.params["id"]);
    if (!task) co_return error_response(404, "no task '" + request.params["id"] + "'");
    co_return json_response(200, task_json(*task));
  });

  for (const char* action : {"pause", "resume", "cancel"}) {
    const std::string verb = action;
    router.add("POST", "/tasks/{id}/" + verb,
               [&ctx, verb](Request& request) -> awaitable<Response> {
                 const std::string id = request.params["id"];
                 if (!ctx.reader.task(id)) co_return error_response(404, "no task '" + id + "'");
                 auto changing = verb == "pause"    ? ctx.scheduler->pause(id)
                                 : verb == "resume" ? ctx.scheduler->resume(id)
                                                    : ctx.scheduler->cancel(id);
                 auto problem = co_await std::move(changing);
                 if (problem) co_return error_response(409, *problem);
                 co_return json_response(200, task_json(*ctx.reader.task(id)));
               });
  }

  router.add("GET", "/tasks/{id}/runs", [&ctx](Request& request) -> awaitable<Response> {
    const int limit = limit_from(request, 50);
    if (limit < 0) co_return error_response(400, "'limit' must be an integer from 1 to 1000");
    if (!ctx.reader.task(request.params["id"])) {
      co_return error_response(404, "no task '" + request.params["id"] + "'");
    }
    json::array runs;
    for (const TaskRunLog& run : ctx.reader.task_runs(request.params["id"], limit)) {
      runs.push_back(json::object{{"run_at", run.run_at},
                                  {"duration_ms", run.duration_ms},
                                  {"status", run.status},
                                  {"result", optional_text(run.result)},
                                  {"error", optional_text(run.error)}});
    }
    co_return json_response(200, json::object{{"runs", runs}});
  });

  router.add("GET", "/usage", [&ctx](Request& request) -> awaitable<Response> {
    std::string since = format_iso8601(now_utc()).substr(0, 10) + "T00:00:00.000Z";
    if (auto it = request.query.find("since"); it != request.query.end()) {
      auto at = parse_iso8601(it->second);
      if (!at) co_return error_response(400, "'since' must be an ISO-8601 time");
      since = format_iso8601(*at);
    }
    std::optional<std::string_view> group;
    if (auto it = request.query.find("group"); it != request.query.end()) group = it->second;
    json::object groups;
    for (const auto& [folder, totals] : ctx.reader.usage_by_group(since)) {
      if (!group || *group == folder) groups[folder] = totals_json(totals);
    }
    json::array runs;
    for (const RunUsage& run : ctx.reader.usage_by_run(group, 50)) {
      runs.push_back(json::object{{"run_id", run.run_id},
                                  {"group", run.group_folder},
                                  {"first_at", run.first_at},
                                  {"usage", totals_json(run.totals)}});
    }
    co_return json_response(200,
                            json::object{{"since", since}, {"groups", groups}, {"runs", runs}});
  });

  router.add("GET", "/outbox", [&ctx](Request& request) -> awaitable<Response> {
    const int limit = limit_from(request, 50);
    if (limit < 0) co_return error_response(400, "'limit' must be an integer from 1 to 1000");
    std::optional<OutboxState> state;
    if (auto it = request.query.find("state"); it != request.query.end()) {
      state = parse_outbox_state(it->second);
      if (!state) co_return error_response(400, "'state' must be pending, sending, sent or failed");
    }
    std::optional<std::string_view> chat;
    if (auto it = request.query.find("chat"); it != request.query.end()) chat = it->second;
    json::array items;
    for (const OutboxItem& item : ctx.reader.outbox(state, chat, limit)) {
      items.push_back(outbox_item_json(item));
    }
    co_return json_response(200, json::object{{"outbox", items}});
  });
}

}  // namespace sb::api

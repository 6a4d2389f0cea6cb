#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "api/message_json.h"
#include "api/routes.h"
#include "core/groups.h"

namespace sb::api {
namespace json = boost::json;
using boost::asio::awaitable;

namespace {

json::object group_json(const GroupRecord& group, const core::GroupRegistry& registry) {
  json::array chats;
  for (const std::string& chat : group.chats) chats.push_back(json::value(chat));
  boost::system::error_code ec;
  json::value config = json::parse(group.agent_config_json, ec);
  if (ec) config = json::object();
  return json::object{{"folder", group.folder},
                      {"name", group.name},
                      {"chats", chats},
                      {"trigger", registry.triggers(group).front()},
                      {"custom_trigger", group.trigger ? json::value(*group.trigger) : nullptr},
                      {"requires_trigger", group.requires_trigger},
                      {"main", group.is_main},
                      {"agent_config", config},
                      {"path", registry.paths().group_dir(group.folder).string()},
                      {"created_at", group.created_at},
                      {"updated_at", group.updated_at}};
}

Response json_response(int status, const json::value& body) {
  return api::json_response(status, json::serialize(body));
}

// Reads the fields of a POST or PATCH body into a change; the error names the field.
Result<core::GroupChange> change_from(const std::string& body, bool create) {
  auto body_json = parse_request_json(body);
  if (!body_json) return body_json.error();
  if (!body_json->is_object()) return make_error("the body must be a JSON object");
  const json::object& object = body_json->as_object();
  core::GroupChange change;
  for (const auto& [key, value] : object) {
    const std::string name(key);
    auto want_string = [&](std::optional<std::string>& target) -> std::optional<Error> {
      if (!value.is_string()) return Error{"'" + name + "' must be a string"};
      target = std::string(value.as_string());
      return std::nullopt;
    };
    auto want_bool = [&](std::optional<bool>& target) -> std::optional<Error> {
      if (!value.is_bool()) return Error{"'" + name + "' must be true or false"};
      target = value.as_bool();
      return std::nullopt;
    };
    std::optional<Error> error;
    if (name == "chat") {
      if (!value.is_string()) return make_error("'chat' must be a chat id string");
      change.chats = std::vector<std::string>{std::string(value.as_string())};
    } else if (name == "chats") {
      if (!value.is_array()) return make_error("'chats' must be an array of chat ids");
      std::vector<std::string> chats;
      for (const json::value& item : value.as_array()) {
        if (!item.is_string()) return make_error("'chats' must be an array of chat ids");
        chats.emplace_back(item.as_string());
      }
      change.chats = std::move(chats);
    } else if (name == "name") {
      error = want_string(change.name);
    } else if (name == "folder") {
      error = want_string(change.folder);
    } else if (name == "trigger") {
      if (value.is_null()) {
        change.trigger = std::optional<std::string>();
      } else if (value.is_string()) {
        change.trigger = std::optional<std::string>(std::string(value.as_string()));
      } else {
        return make_error("'trigger' must be a string such as \"@Andy\", or null for the default");
      }
    } else if (name == "requires_trigger") {
      error = want_bool(change.requires_trigger);
    } else if (name == "main") {
      error = want_bool(change.is_main);
    } else if (name == "agent_config") {
      if (!value.is_object()) return make_error("'agent_config' must be a JSON object");
      change.agent_config_json = json::serialize(value);
    } else {
      return make_error("unknown field '" + name +
                        "' (known: chat, chats, name, folder, trigger, requires_trigger, main, "
                        "agent_config)");
    }
    if (error) return *error;
  }
  if (create && !change.folder) return make_error("'folder' is required");
  if (create && !change.chats) return make_error("'chat' (or 'chats') is required");
  return change;
}

Response failure_response(const core::GroupRegistry::Failure& failure) {
  return error_response(failure.not_found ? 404 : failure.conflict ? 409 : 400, failure.message);
}

}  // namespace

void add_group_routes(Router& router, ApiContext& ctx) {
  router.add("GET", "/groups", [&ctx](Request&) -> awaitable<Response> {
    json::array groups;
    for (const GroupRecord& group : ctx.groups->all()) {
      groups.push_back(group_json(group, *ctx.groups));
    }
    co_return json_response(200, json::object{{"groups", groups}});
  });

  router.add("POST", "/groups", [&ctx](Request& request) -> awaitable<Response> {
    auto change = change_from(request.body, true);
    if (!change) co_return error_response(400, change.error().message);
    auto creating = ctx.groups->create(std::move(change.value()));
    auto result = co_await std::move(creating);
    if (auto* failure = std::get_if<core::GroupRegistry::Failure>(&result)) {
      co_return failure_response(*failure);
    }
    co_return json_response(201, group_json(std::get<GroupRecord>(result), *ctx.groups));
  });

  router.add("GET", "/groups/{folder}", [&ctx](Request& request) -> awaitable<Response> {
    const GroupRecord* group = ctx.groups->find(request.params["folder"]);
    if (!group) co_return error_response(404, "no group '" + request.params["folder"] + "'");
    co_return json_response(200, group_json(*group, *ctx.groups));
  });

  router.add("PATCH", "/groups/{folder}", [&ctx](Request& request) -> awaitable<Response> {
    auto change = change_from(request.body, false);
    if (!change) co_return error_response(400, change.error().message);
    auto updating = ctx.groups->update(request.params["folder"], std::move(change.value()));
    auto result = co_await std::move(updating);
    if (auto* failure = std::get_if<core::GroupRegistry::Failure>(&result)) {
      co_return failure_response(*failure);
    }
    co_return json_response(200, group_json(std::get<GroupRecord>(result), *ctx.groups));
  });

  router.add("DELETE", "/groups/{folder}", [&ctx](Request& request) -> awaitable<Response> {
    auto removing = ctx.groups->remove(request.params["folder"]);
    auto failure = co_await std::move(removing);
    if (failure) co_return failure_response(*failure);
    co_return json_response(200, json::object{{"removed", request.params["folder"]}});
  });
}

}  // namespace sb::api

#include "mcp/mcp_server.h"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <exception>
#include <istream>
#include <ostream>
#include <utility>
#include <variant>

#include "agent/host_tools.h"
#include "generated/version.h"

namespace sb::mcp {
namespace json = boost::json;

namespace {

constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;

constexpr std::string_view kInstructions =
    "Tools to ask the switchboard host for things: send a message to a chat, schedule tasks and "
    "manage them. Each call writes a request that the host carries out shortly after; the host "
    "answers nothing back, so check list_tasks for the effect of task requests.";

std::string error_answer(const json::value& id, int code, std::string message) {
  return json::serialize(
      json::object{{"jsonrpc", "2.0"},
                   {"id", id},
                   {"error", json::object{{"code", code}, {"message", std::move(message)}}}});
}

std::string result_answer(const json::value& id, json::object result) {
  return json::serialize(
      json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}});
}

// What a request handler answers: a result, or a JSON-RPC error.
struct Failure {
  int code;
  std::string message;
};
using Outcome = std::variant<json::object, Failure>;

// JSON-RPC ids are strings or numbers; MCP rules out null.
bool valid_id(const json::value& id) { return id.is_string() || id.is_number(); }

Outcome initialize(const json::object& params, const std::string& version) {
  const json::value* requested = params.if_contains("protocolVersion");
  if (requested == nullptr || !requested->is_string()) {
    return Failure{kInvalidParams, "'params.protocolVersion' must be a string"};
  }
  std::string_view chosen = kProtocolVersions[0];
  for (std::string_view supported : kProtocolVersions) {
    if (requested->get_string() == supported) chosen = supported;
  }
  return json::object{{"protocolVersion", chosen},
                      {"capabilities", json::object{{"tools", json::object{}}}},
                      {"serverInfo", json::object{{"name", "switchboard"}, {"version", version}}},
                      {"instructions", kInstructions}};
}

Outcome list_tools(const agent::ToolList& tools) {
  json::array listed;
  for (const auto& tool : tools) {
    const agent::ToolSpec& spec = tool->spec();
    listed.push_back(json::object{{"name", spec.name},
                                  {"description", spec.description},
                                  {"inputSchema", spec.input_schema}});
  }
  return json::object{{"tools", std::move(listed)}};
}

Outcome call_tool(const json::object& params, const agent::ToolList& tools,
                  const agent::ToolContext& context) {
  static const json::object kNoArguments;
  const json::value* name = params.if_contains("name");
  if (name == nullptr || !name->is_string()) {
    return Failure{kInvalidParams, "'params.name' must be a string"};
  }
  agent::Tool* tool = agent::find_tool(tools, name->get_string());
  if (tool == nullptr) {
    return Failure{kInvalidParams, agent::unknown_tool_output(tools, name->get_string()).text};
  }
  const json::value* arguments = params.if_contains("arguments");
  if (arguments != nullptr && !arguments->is_null() && !arguments->is_object()) {
    return Failure{kInvalidParams, "'params.arguments' must be an object"};
  }
  const json::object& input =
      arguments != nullptr && arguments->is_object() ? arguments->get_object() : kNoArguments;
  if (auto checked = agent::check_tool_input(tool->spec(), input); !checked) {
    return Failure{kInvalidParams,
                   "invalid arguments for " + tool->spec().name + ": " + checked.error().message};
  }
  agent::ToolOutput output;
  try {
    output = tool->run(input, context);
  } catch (const std::exception& e) {
    output = agent::ToolOutput::error(std::string("The tool failed: ") + e.what());
  }
  json::array content{json::object{{"type", "text"}, {"text", output.text}}};
  return json::object{{"content", std::move(content)}, {"isError", output.is_error}};
}

}  // namespace

McpServer::McpServer(agent::ToolContext context, std::string version)
    : context_(std::move(context)),
      version_(std::move(version)),
      tools_(agent::make_host_tools(context_)) {}

std::string McpServer::oversized_answer(std::size_t bytes) {
  return error_answer(nullptr, kInvalidRequest,
                      "the message is " + std::to_string(bytes) + " bytes long; the limit is " +
                          std::to_string(kMaxMessageBytes));
}

std::optional<std::string> McpServer::handle_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.find_first_not_of(" \t") == std::string_view::npos) return std::nullopt;
  if (line.size() > kMaxMessageBytes) return oversized_answer(line.size());

  boost::system::error_code ec;
  json::value message = json::parse(json::string_view(line.data(), line.size()), ec);
  if (ec) return error_answer(nullptr, kParseError, "parse error: " + ec.message());
  if (message.is_array()) {
    return error_answer(nullptr, kInvalidRequest, "batch requests are not supported");
  }
  if (!message.is_object()) {
    return error_answer(nullptr, kInvalidRequest, "a message must be a JSON object");
  }
  const json::object& body = message.get_object();
  const json::value* method = body.if_contains("method");
  if (method == nullptr && (body.contains("result") || body.contains("error"))) {
    return std::nullopt;  // a response to a request this server never sends
  }
  const json::value* id = body.if_contains("id");
  if (id == nullptr) return std::nullopt;  // notifications are never answered, not even errors
  if (!valid_id(*id)) {
    return error_answer(nullptr, kInvalidRequest, "'id' must be a string or a number");
  }
  const json::value* version = body.if_contains("jsonrpc");
  if (version == nullptr || !version->is_string() || version->get_string() != "2.0") {
    return error_answer(*id, kInvalidRequest, "'jsonrpc' must be \"2.0\"");
  }
  if (method == nullptr || !method->is_string()) {
    return error_answer(*id, kInvalidRequest, "'method' must be a string");
  }
  static const json::object kNoParams;
  const json::value* params_value = body.if_contains("params");
  if (params_value != nullptr && !params_value->is_object()) {
    return error_answer(*id, kInvalidParams, "'params' must be an object");
  }
  const json::object& params = params_value != nullptr ? params_value->get_object() : kNoParams;

  const std::string_view name = method->get_string();
  Outcome outcome =
      Failure{kMethodNotFound, "method not found: " + std::string(name.substr(0, 100))};
  if (name == "initialize") {
    outcome = initialize(params, version_);
  } else if (name == "ping") {
    outcome = json::object{};
  } else if (name == "tools/list") {
    outcome = list_tools(tools_);
  } else if (name == "tools/call") {
    outcome = call_tool(params, tools_, context_);
  }
  if (auto* failure = std::get_if<Failure>(&outcome)) {
    return error_answer(*id, failure->code, std::move(failure->message));
  }
  return result_answer(*id, std::move(std::get<json::object>(outcome)));
}

int run_mcp_stdio(std::istream& in, std::ostream& out, agent::ToolContext context) {
  McpServer server(std::move(context), kVersion);
  std::streambuf* source = in.rdbuf();
  std::string line;
  std::size_t length = 0;  // the line's full length, counting what was discarded
  for (;;) {
    const int c = source->sbumpc();
    if (c != std::char_traits<char>::eof() && c != '\n') {
      if (++length <= kMaxMessageBytes + 1) line.push_back(static_cast<char>(c));
      continue;
    }
    if (c == std::char_traits<char>::eof() && length == 0) return 0;
    // Up to one byte over the limit is kept: handle_line decides after removing a '\r'.
    std::optional<std::string> answer = length > kMaxMessageBytes + 1
                                            ? McpServer::oversized_answer(length)
                                            : server.handle_line(line);
    line.clear();
    length = 0;
    if (answer) {
      out << *answer << '\n';
      out.flush();
      if (!out) return 1;
    }
    if (c == std::char_traits<char>::eof()) return 0;
  }
}

}  // namespace sb::mcp

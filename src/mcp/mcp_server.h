#pragma once
// A Model Context Protocol server offering the host tools (agent/host_tools.h) to agents
// built on other SDKs: JSON-RPC 2.0 over the MCP stdio transport, one JSON message per line
// in each direction. Methods: initialize, ping, tools/list, tools/call; the notifications
// (notifications/initialized, notifications/cancelled, …) are accepted and never answered.
// Errors: -32700 parse error, -32600 invalid request (also batches and over-long lines),
// -32601 unknown method, -32602 invalid params (unknown tool, arguments that do not match the
// tool's input schema). A tool that runs but fails answers a result with isError true.
//
// Threading: one McpServer per connection, used from one thread.

#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include "agent/tool.h"

namespace sb::mcp {

// The longest message accepted, in bytes, without the line end.
inline constexpr std::size_t kMaxMessageBytes = 4 * 1024 * 1024;

// MCP revisions this server speaks, newest first. initialize answers with the client's
// revision when it is one of these, else with the first.
inline constexpr std::string_view kProtocolVersions[] = {"2025-06-18", "2025-03-26", "2024-11-05"};

class McpServer {
 public:
  // Offers make_host_tools(context) and runs them with `context`. `version` is reported as
  // serverInfo.version.
  McpServer(agent::ToolContext context, std::string version);

  // Handles one message (a line without its end; a trailing '\r' is ignored). Returns the
  // answer as one line of JSON without the line end, or nullopt when there is nothing to
  // answer (a notification, a response, an empty line). Never throws for bad input.
  std::optional<std::string> handle_line(std::string_view line);

  // The answer to a message that was longer than kMaxMessageBytes and so was not read.
  static std::string oversized_answer(std::size_t bytes);

 private:
  agent::ToolContext context_;
  std::string version_;
  agent::ToolList tools_;
};

// Serves `in` and `out` with McpServer(context, <this build's version>) until `in` ends: reads
// lines (discarding any beyond kMaxMessageBytes, which get an error answer), writes each answer as
// one line and flushes. Returns 0 at the end of input, 1 when `out` fails (the client went away).
int run_mcp_stdio(std::istream& in, std::ostream& out, agent::ToolContext context);

}  // namespace sb::mcp

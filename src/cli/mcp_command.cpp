// `switchboard mcp`: the MCP server on stdin/stdout, configured from the agent's environment
// (docs/agent-protocol.md). stdout carries the protocol only; diagnostics go to stderr.

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>

#include "agent/tool.h"
#include "cli/commands.h"
#include "common/logging.h"
#include "mcp/mcp_server.h"

namespace sb::cli {
namespace fs = std::filesystem;

namespace {

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

}  // namespace

int mcp() {
  if (auto logging = setup_logging(LogConfig{}); !logging) {
    std::cerr << "switchboard mcp: " << logging.error().message << "\n";
    return kExitFailure;
  }
  auto ipc_dir = env("SWITCHBOARD_IPC_DIR");
  if (!ipc_dir) {
    std::cerr << "switchboard mcp: SWITCHBOARD_IPC_DIR is not set. It is the group's IPC "
                 "directory, which switchboard sets for the agents it runs; start this server "
                 "from such an agent (see docs/agent-protocol.md), or set it by hand.\n";
    return kExitUsage;
  }
  std::error_code ec;
  if (!fs::is_directory(*ipc_dir, ec)) {
    std::cerr << "switchboard mcp: SWITCHBOARD_IPC_DIR (" << *ipc_dir
              << ") is not a directory; it must be the group's IPC directory, which "
                 "switchboard creates before it starts an agent.\n";
    return kExitUsage;
  }
  const std::string is_main = env("SWITCHBOARD_IS_MAIN").value_or("0");
  if (is_main != "0" && is_main != "1") {
    std::cerr << "switchboard mcp: SWITCHBOARD_IS_MAIN must be \"1\" or \"0\", not \"" << is_main
              << "\".\n";
    return kExitUsage;
  }

  agent::ToolContext context;
  context.ipc_dir = *ipc_dir;
  context.snapshot_dir = env("SWITCHBOARD_SNAPSHOT_DIR").value_or("");
  context.workspace = env("SWITCHBOARD_WORKSPACE").value_or(fs::current_path(ec).string());
  context.roots.push_back(agent::WorkspaceRoot{context.workspace, true});
  context.group_folder = env("SWITCHBOARD_GROUP_FOLDER").value_or("");
  context.chat_jid = env("SWITCHBOARD_CHAT_JID").value_or("");
  context.is_main = is_main == "1";

  spdlog::info("switchboard mcp: serving group '{}' (IPC directory {}, main: {})",
               context.group_folder, context.ipc_dir.string(), context.is_main ? "yes" : "no");
  // A client that goes away must end the server through a failed write, not a signal.
  ::signal(SIGPIPE, SIG_IGN);
  return mcp::run_mcp_stdio(std::cin, std::cout, std::move(context));
}

}  // namespace sb::cli

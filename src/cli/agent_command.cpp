// `switchboard agent`: the built-in agent. Everything it needs comes from its stdin (the
// input object) and the environment the sandbox gives it (docs/agent-protocol.md).

#include <cctz/time_zone.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <iterator>

#include "agent/agent_loop.h"
#include "agent/host_tools.h"
#include "agent/provider.h"
#include "agent/system_prompt.h"
#include "agent/workspace_tools.h"
#include "cli/commands.h"

namespace sb::cli {

namespace {

namespace fs = std::filesystem;
using agent::AgentOutput;

void log_line(const std::string& line) { std::cerr << "switchboard agent: " << line << std::endl; }

// A failure before the loop starts: reported as an error result, so that the host logs why.
int fail(const std::string& why) {
  log_line(why);
  agent::write_result(std::cout, AgentOutput{false, std::nullopt, {}, why});
  return 2;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

cctz::time_zone zone_named(const std::string& name) {
  cctz::time_zone tz = cctz::utc_time_zone();
  if (!name.empty() && !cctz::load_time_zone(name, &tz)) tz = cctz::utc_time_zone();
  return tz;
}

}  // namespace

int agent() {
  std::string stdin_text;
  {
    char buffer[65536];
    while (true) {
      const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (n <= 0) break;
      stdin_text.append(buffer, static_cast<std::size_t>(n));
      if (stdin_text.size() > agent::kMaxInputBytes) break;
    }
  }
  auto input = agent::parse_agent_input(stdin_text);
  if (!input) return fail("bad input on stdin: " + input.error().message);

  const fs::path workspace = env_or("SWITCHBOARD_WORKSPACE", "/workspace/group");
  const fs::path ipc_dir = env_or("SWITCHBOARD_IPC_DIR", "/workspace/ipc");
  const fs::path snapshot_dir = env_or("SWITCHBOARD_SNAPSHOT_DIR", "/workspace/snapshots");
  const fs::path session_dir = env_or("SWITCHBOARD_SESSION_DIR", "/workspace/session");
  const fs::path global_dir = env_or("SWITCHBOARD_GLOBAL_DIR", "/workspace/global");
  const fs::path socket = env_or("SWITCHBOARD_MODEL_SOCKET", "/run/switchboard/model.sock");

  agent::ToolContext context;
  context.workspace = workspace;
  context.roots.push_back({workspace, true});
  std::error_code ec;
  if (fs::is_directory(global_dir, ec)) {
    context.roots.push_back({global_dir, ::access(global_dir.c_str(), W_OK) == 0});
  }
  if (const char* extra = std::getenv("SWITCHBOARD_EXTRA_DIR"); extra && *extra) {
    // Extra mounts are read-write only where the allowlist said so; the kernel enforces it.
    context.roots.push_back({extra, ::access(extra, W_OK) == 0});
  }
  context.roots.push_back({"/tmp", true});
  context.ipc_dir = ipc_dir;
  context.snapshot_dir = snapshot_dir;
  context.group_folder = input->group_folder;
  context.chat_jid = input->chat_jid;
  context.is_main = input->is_main;
  context.network = input->network;
  context.timeout = input->limits.tool_timeout;
  context.max_output_bytes = input->limits.max_tool_output_bytes;

  agent::ToolList tools = agent::make_workspace_tools(context);
  for (auto& tool : agent::make_host_tools(context)) tools.push_back(std::move(tool));

  agent::ProviderOptions provider;
  provider.kind = input->provider;
  provider.socket = socket;
  provider.request_timeout = input->limits.model_timeout;
  provider.notice = log_line;
  auto model = agent::make_model_client(provider);
  if (!model) return fail(model.error().message);

  const cctz::time_zone tz = zone_named(input->timezone);
  auto local_now = [tz](const char* format) {
    return cctz::format(format, std::chrono::system_clock::now(), tz);
  };
  agent::AgentEnvironment env;
  env.system_prompt = agent::build_system_prompt(
      *input, {workspace, global_dir}, local_now("%Y-%m-%d %H:%M (%A), time zone ") + tz.name());
  env.conversations_dir = workspace / "conversations";
  env.today = [local_now] { return local_now("%Y-%m-%d"); };
  env.emit = [](const AgentOutput& output) { agent::write_result(std::cout, output); };
  env.log = log_line;

  agent::SessionStore sessions(session_dir);
  agent::InputInbox inbox(ipc_dir / "input");
  agent::AgentLoop loop(std::move(*input), **model, std::move(tools), context, sessions, inbox,
                        std::move(env));
  return loop.run();
}

}  // namespace sb::cli

#pragma once
// The subcommands of the `switchboard` binary. Each returns the process exit code:
// 0 ok, 1 runtime failure, 2 usage or configuration error (kExit* below).

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sb::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct CommonOptions {
  std::optional<std::filesystem::path> config_file;  // built-in defaults when absent
};

// `switchboard run`: the daemon.
int run(const CommonOptions& common);

struct ClientOptions {
  CommonOptions common;
  std::optional<std::string> url;  // "http://host:port"; from the config when absent
  bool json = false;               // print the API's JSON instead of a human summary
};

// `switchboard status`: asks the running daemon's /health and prints it.
int status(const ClientOptions& options);

struct SendOptions {
  ClientOptions client;
  std::string source = "cli";
  std::optional<std::string> chat, sender, subject;
  std::optional<std::string> text;  // read from stdin when absent or "-"
};

// `switchboard send`: stores one message through the API.
int send(const SendOptions& options);

// `switchboard groups …` and `switchboard tasks …`: manage the orchestrator through the API.
struct GroupOptions {
  ClientOptions client;
  std::string action;  // list, add, update, remove
  std::string folder;
  std::vector<std::string> chats;
  std::optional<std::string> name, trigger, agent_config;
  std::optional<bool> requires_trigger, main;
  bool default_trigger = false;  // update: back to "@<assistant_name>"
};
int groups(const GroupOptions& options);

struct TaskOptions {
  ClientOptions client;
  std::string action;  // list, add, pause, resume, cancel, runs
  std::string id;      // pause, resume, cancel, runs
  std::optional<std::string> group, chat, prompt, cron, interval, once, context_mode;
};
int tasks(const TaskOptions& options);

struct ImportOptions {
  CommonOptions common;
  std::string format = "auto";  // auto, messages, inbox
  std::vector<std::filesystem::path> files;
};

// `switchboard import`: imports the seed email layer's messages.jsonl / inbox.jsonl.
int import(const ImportOptions& options);

// `switchboard agent`: the built-in agent, run by the daemon inside a group's sandbox. Reads
// the input object on stdin and speaks docs/agent-protocol.md (src/agent/).
int agent();

// `switchboard mcp`: a stdio MCP server offering the host tools (send_message,
// schedule_task, …) to agents built on other SDKs, by writing the same IPC files (src/mcp/).
int mcp();

}  // namespace sb::cli

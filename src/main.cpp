// switchboard: a personal-assistant gateway. This file only parses the command line; each
// subcommand lives in src/cli/.

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "generated/version.h"

int main(int argc, char** argv) {
  using namespace sb::cli;
  CLI::App app{"switchboard: reach AI agents over email, WhatsApp and HTTP"};
  app.set_version_flag("--version", std::string("switchboard ") + sb::kVersion);
  app.require_subcommand(1);

  CommonOptions common;
  auto add_config = [&common](CLI::App* cmd) {
    cmd->add_option("-c,--config", common.config_file,
                    "TOML configuration file (built-in defaults without it)")
        ->check(CLI::ExistingFile);
  };

  auto* run_cmd = app.add_subcommand("run", "Run the daemon");
  add_config(run_cmd);

  ClientOptions client;
  auto add_client = [&](CLI::App* cmd) {
    add_config(cmd);
    cmd->add_option("--url", client.url,
                    "API address, e.g. http://127.0.0.1:8114 (default: [api] listen)");
    cmd->add_flag("--json", client.json, "Print the API's JSON answer");
  };
  auto* status_cmd = app.add_subcommand("status", "Show the running daemon's health");
  add_client(status_cmd);

  SendOptions send_opts;
  auto* send_cmd = app.add_subcommand("send", "Store a message through the API");
  add_client(send_cmd);
  send_cmd->add_option("--source", send_opts.source, "Who produced it")->capture_default_str();
  send_cmd->add_option("--chat", send_opts.chat, "Chat id, <channel>:<address> (e.g. http:alice)");
  send_cmd->add_option("--sender", send_opts.sender, "Author");
  send_cmd->add_option("--subject", send_opts.subject, "Subject");
  send_cmd->add_option("text", send_opts.text, "Message text; '-' or none reads stdin");

  GroupOptions group_opts;
  auto* groups_cmd = app.add_subcommand("groups", "List, add, update or remove groups");
  groups_cmd->require_subcommand(1);
  auto* groups_list = groups_cmd->add_subcommand("list", "List the groups");
  add_client(groups_list);
  auto* groups_add = groups_cmd->add_subcommand("add", "Register a group");
  auto* groups_update = groups_cmd->add_subcommand("update", "Change a group");
  auto* groups_remove = groups_cmd->add_subcommand("remove", "Remove a group (its folder stays)");
  for (auto* cmd : {groups_add, groups_update, groups_remove}) {
    add_client(cmd);
    cmd->add_option("folder", group_opts.folder, "The group's folder name")->required();
  }
  for (auto* cmd : {groups_add, groups_update}) {
    cmd->add_option("--chat", group_opts.chats,
                    "Chat id bound to it (repeatable), e.g. http:alice");
    cmd->add_option("--name", group_opts.name, "Display name");
    cmd->add_option("--trigger", group_opts.trigger, "Trigger, e.g. @Andy");
    cmd->add_option("--requires-trigger", group_opts.requires_trigger,
                    "Only messages starting with the trigger start a run (true/false)");
    cmd->add_option("--main", group_opts.main, "The trusted main group (true/false)");
    cmd->add_option("--agent-config", group_opts.agent_config,
                    "JSON object: timeout, network, model, daily_token_budget, mounts");
  }
  groups_update->add_flag("--default-trigger", group_opts.default_trigger,
                          "Use the default trigger @<assistant_name> again");

  TaskOptions task_opts;
  auto* tasks_cmd = app.add_subcommand("tasks", "List, add, pause, resume or cancel tasks");
  tasks_cmd->require_subcommand(1);
  auto* tasks_list = tasks_cmd->add_subcommand("list", "List scheduled tasks");
  add_client(tasks_list);
  tasks_list->add_option("--group", task_opts.group, "Only this group's tasks");
  auto* tasks_add = tasks_cmd->add_subcommand("add", "Schedule a task");
  add_client(tasks_add);
  tasks_add->add_option("--group", task_opts.group, "The group that runs it")->required();
  tasks_add->add_option("--prompt", task_opts.prompt, "What the agent is asked")->required();
  tasks_add->add_option("--chat", task_opts.chat,
                        "Where the output goes (default: the group's "
                        "first chat)");
  tasks_add->add_option("--cron", task_opts.cron, "5-field cron, e.g. \"0 9 * * 1-5\"");
  tasks_add->add_option("--interval", task_opts.interval, "Milliseconds between runs");
  tasks_add->add_option("--once", task_opts.once, "ISO-8601 time, e.g. 2026-12-24T18:00:00");
  tasks_add->add_option("--context", task_opts.context_mode, "group or isolated (default)");
  std::vector<CLI::App*> task_id_cmds;
  for (const char* action : {"pause", "resume", "cancel", "runs"}) {
    auto* cmd = tasks_cmd->add_subcommand(action, std::string(action) == "runs"
                                                      ? "Show a task's run log"
                                                      : std::string(action) + " a task");
    add_client(cmd);
    cmd->add_option("id", task_opts.id, "The task's id")->required();
    task_id_cmds.push_back(cmd);
  }

  ImportOptions import_opts;
  auto* import_cmd =
      app.add_subcommand("import", "Import the seed's messages.jsonl / inbox.jsonl files");
  add_config(import_cmd);
  import_cmd->add_option("--format", import_opts.format, "auto, messages or inbox")
      ->check(CLI::IsMember({"auto", "messages", "inbox"}))
      ->capture_default_str();
  import_cmd->add_option("files", import_opts.files, "JSONL files")
      ->required()
      ->check(CLI::ExistingFile);

  auto* agent_cmd = app.add_subcommand(
      "agent", "The built-in agent (run by the daemon in a sandbox; reads its input on stdin)");
  auto* mcp_cmd = app.add_subcommand(
      "mcp", "A stdio MCP server with switchboard's tools, for agents built on other SDKs");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  client.common = common;
  if (*run_cmd) return run(common);
  if (*agent_cmd) return agent();
  if (*mcp_cmd) return mcp();
  if (*status_cmd) return status(client);
  if (*send_cmd) {
    send_opts.client = client;
    return send(send_opts);
  }
  if (*groups_cmd) {
    group_opts.client = client;
    for (auto* cmd : groups_cmd->get_subcommands()) group_opts.action = cmd->get_name();
    return groups(group_opts);
  }
  if (*tasks_cmd) {
    task_opts.client = client;
    for (auto* cmd : tasks_cmd->get_subcommands()) task_opts.action = cmd->get_name();
    return tasks(task_opts);
  }
  import_opts.common = common;
  return import(import_opts);
}

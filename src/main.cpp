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
  if (*status_cmd) return status(client);
  if (*send_cmd) {
    send_opts.client = client;
    return send(send_opts);
  }
  import_opts.common = common;
  return import(import_opts);
}

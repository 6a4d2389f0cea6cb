#pragma once
// Shared by the client subcommands: the configuration they read and where they find the API.

#include <optional>

#include "cli/commands.h"
#include "cli/http_client.h"
#include "config/config.h"

namespace sb::cli {

// The config file's settings, or the built-in defaults; prints the error and returns
// nullopt for a bad file.
std::optional<Config> load_for_cli(const CommonOptions& common);

// The API's address (--url, else the config's [api] listen) and token; prints the error
// and returns nullopt for a malformed --url.
std::optional<HttpCall> api_call_for_cli(const ClientOptions& options, const Config& config);

}  // namespace sb::cli

#include "cli/commands.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <iostream>
#include <iterator>

#include "cli/api_access.h"
#include "cli/http_client.h"
#include "common/logging.h"
#include "config/config.h"
#include "daemon/daemon.h"
#include "store/seed_import.h"
#include "store/store.h"

namespace sb::cli {
namespace json = boost::json;

namespace {

std::optional<Config> load(const CommonOptions& common,
                           ConfigPurpose purpose = ConfigPurpose::client) {
  if (!common.config_file) return Config{};
  auto config = load_config(*common.config_file, purpose);
  if (!config) {
    std::cerr << "switchboard: " << config.error().message << '\n';
    return std::nullopt;
  }
  return std::move(config.value());
}

// Where the client commands find the API: --url, else the config's [api] listen.
std::optional<HttpCall> api_call(const ClientOptions& options, const Config& config) {
  HttpCall call;
  call.host = config.api.host == "0.0.0.0" ? "127.0.0.1"
              : config.api.host == "::"    ? "::1"
                                           : config.api.host;
  call.port = config.api.port;
  call.token = config.api.token;
  if (options.url) {
    auto url = boost::urls::parse_absolute_uri(*options.url);
    if (!url || url->scheme() != "http" || !url->has_port()) {
      std::cerr << "switchboard: --url must look like http://127.0.0.1:8114\n";
      return std::nullopt;
    }
    call.host = url->host_address();
    if (!call.host.empty() && call.host.front() == '[')
      call.host = call.host.substr(1, call.host.size() - 2);
    call.port = url->port_number();
  }
  return call;
}

std::string describe(const HttpCall& call) {
  auto host = call.host.find(':') != std::string::npos ? "[" + call.host + "]" : call.host;
  return "http://" + host + ":" + std::to_string(call.port);
}

std::string api_error(const HttpReply& reply) {
  boost::system::error_code ec;
  auto v = json::parse(reply.body, ec);
  if (!ec && v.is_object() && v.as_object().contains("error") &&
      v.as_object().at("error").is_string())
    return std::string(v.as_object().at("error").get_string());
  return reply.body;
}

std::string human_duration(std::int64_t seconds) {
  std::string out;
  const std::pair<std::int64_t, const char*> units[] = {{86400, "d"}, {3600, "h"}, {60, "m"}};
  for (auto [size, name] : units) {
    if (seconds >= size) {
      out += std::to_string(seconds / size) + name + " ";
      seconds %= size;
    }
  }
  return out + std::to_string(seconds) + "s";
}

}  // namespace

std::optional<Config> load_for_cli(const CommonOptions& common) { return load(common); }
std::optional<HttpCall> api_call_for_cli(const ClientOptions& options, const Config& config) {
  return api_call(options, config);
}

int run(const CommonOptions& common) {
  auto config = load(common, ConfigPurpose::daemon);
  if (!config) return kExitUsage;
  if (auto logging = setup_logging(config->log); !logging) {
    std::cerr << "switchboard: " << logging.error().message << '\n';
    return kExitUsage;
  }
  if (!common.config_file) spdlog::info("no --config given: using the built-in defaults");
  return run_daemon(*config);
}

int status(const ClientOptions& options) {
  auto config = load(options.common);
  if (!config) return kExitUsage;
  auto call = api_call(options, *config);
  if (!call) return kExitUsage;
  call->target = "/health";
  call->timeout = std::chrono::seconds(5);
  auto reply = http_call(*call);
  if (!reply) {
    std::cerr << "switchboard: " << reply.error().message
              << " (is `switchboard run` running there?)\n";
    return kExitFailure;
  }
  if (options.json) {
    std::cout << reply->body << '\n';
    return reply->status == 200 ? kExitOk : kExitFailure;
  }
  boost::system::error_code ec;
  auto health = json::parse(reply->body, ec);
  if (ec || !health.is_object()) {
    std::cerr << "switchboard: " << describe(*call) << " answered /health with HTTP "
              << reply->status << " and no JSON\n";
    return kExitFailure;
  }
  const auto& h = health.as_object();
  auto str = [&](const char* key) {
    auto* v = h.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string("?");
  };
  std::cout << "switchboard " << str("version") << " at " << describe(*call) << ": "
            << str("status") << '\n';
  if (auto* up = h.if_contains("uptime_seconds"); up && up->is_int64())
    std::cout << "  up        " << human_duration(up->get_int64()) << '\n';
  if (auto* m = h.if_contains("messages"); m && m->is_object()) {
    std::cout << "  messages  " << json::serialize(m->as_object().at("total")) << " stored, "
              << json::serialize(m->as_object().at("unread")) << " unread\n";
  }
  if (auto* s = h.if_contains("store"); s && s->is_object()) {
    const auto& store = s->as_object();
    std::cout << "  store     " << json::value_to<std::string>(store.at("file")) << " ("
              << json::serialize(store.at("writes")) << " writes in "
              << json::serialize(store.at("commits")) << " commits since start)\n";
  }
  if (auto* a = h.if_contains("agents"); a && a->is_object()) {
    const auto& agents = a->as_object();
    std::cout << "  agents    " << json::serialize(agents.at("active")) << " running (at most "
              << json::serialize(agents.at("max_concurrent")) << "), "
              << agents.at("waiting").as_array().size() << " group(s) waiting, "
              << json::serialize(agents.at("groups_registered")) << " group(s) registered\n";
    for (const auto& run : agents.at("runs").as_array()) {
      const auto& r = run.as_object();
      std::cout << "            " << json::value_to<std::string>(r.at("group")) << ": "
                << json::value_to<std::string>(r.at("kind")) << " run for "
                << json::serialize(r.at("seconds")) << "s, " << json::serialize(r.at("results"))
                << " result(s)\n";
    }
  }
  if (h.contains("error")) std::cout << "  error     " << str("error") << '\n';
  return reply->status == 200 ? kExitOk : kExitFailure;
}

int send(const SendOptions& options) {
  auto config = load(options.client.common);
  if (!config) return kExitUsage;
  auto call = api_call(options.client, *config);
  if (!call) return kExitUsage;
  std::string text;
  if (!options.text || *options.text == "-") {
    if (isatty(STDIN_FILENO)) {
      std::cerr << "switchboard: give the message text as an argument or on stdin\n";
      return kExitUsage;
    }
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    text = *options.text;
  }
  json::object body{{"source", options.source}, {"content", text}};
  if (options.chat) body["chat"] = *options.chat;
  if (options.sender) body["sender"] = *options.sender;
  if (options.subject) body["subject"] = *options.subject;
  call->method = "POST";
  call->target = "/messages";
  call->body = json::serialize(body);
  auto reply = http_call(*call);
  if (!reply) {
    std::cerr << "switchboard: " << reply.error().message
              << " (is `switchboard run` running there?)\n";
    return kExitFailure;
  }
  if (reply->status != 201 && reply->status != 200) {
    std::cerr << "switchboard: the API refused the message (HTTP " << reply->status
              << "): " << api_error(*reply) << '\n';
    return reply->status == 400 || reply->status == 422 ? kExitUsage : kExitFailure;
  }
  if (options.client.json) {
    std::cout << reply->body << '\n';
  } else {
    boost::system::error_code ec;
    auto stored = json::parse(reply->body, ec);
    std::cout << "stored message "
              << (ec ? std::string("?") : json::serialize(stored.as_object().at("id"))) << '\n';
  }
  return kExitOk;
}

int import(const ImportOptions& options) {
  auto config = load(options.common);
  if (!config) return kExitUsage;
  const auto format = options.format == "messages" ? SeedFormat::messages
                      : options.format == "inbox"  ? SeedFormat::inbox
                                                   : SeedFormat::auto_detect;
  std::unique_ptr<Store> store;
  try {
    store = open_sqlite_store(config->database_file(),
                              {.synchronous_full = config->store.synchronous_full});
  } catch (const StoreError& e) {
    std::cerr << "switchboard: cannot open the store: " << e.what() << '\n';
    return kExitFailure;
  }
  int status = kExitOk;
  for (const auto& file : options.files) {
    auto report = import_seed_file(*store, file, format);
    if (!report) {
      std::cerr << "switchboard: " << report.error().message << '\n';
      status = kExitFailure;
      continue;
    }
    for (const auto& [line, message] : report->errors)
      std::cerr << file.string() << ":" << line << ": skipped: " << message << '\n';
    std::cout << file.string() << ": " << report->imported << " imported, " << report->duplicates
              << " already there, " << report->errors.size() << " malformed line(s) skipped\n";
  }
  return status;
}

}  // namespace sb::cli

#include "config/config.h"

// toml++ 3.3 checks its own assumptions with assert(), and one does not hold for input it
// then reports as a syntax error anyway: a table header that does not start with a key
// ("[(api]", parser::parse_key). Where NDEBUG is not set (the test build) that assert would
// abort on a bad config file; without it toml++ reports the error as release builds do.
#define TOML_ASSERT(expr) static_assert(true)
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <span>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "common/http_limits.h"
#include "config/units.h"
#include "core/schedule.h"
#include "host/ipc_files.h"

namespace sb {
namespace {

constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};
constexpr std::array<std::string_view, 2> kLogFormats = {"plain", "json"};
constexpr std::array<std::string_view, 2> kSynchronousModes = {"full", "normal"};
constexpr std::array<std::string_view, 5> kRuntimes = {"auto", "bwrap", "docker", "podman", "none"};
constexpr std::array<std::string_view, 2> kProviders = {"anthropic", "openai"};
constexpr std::array<std::string_view, 3> kReceiveModes = {"smtp", "imap", "jmap"};
constexpr std::array<std::string_view, 2> kSendModes = {"smtp", "jmap"};
constexpr std::array<std::string_view, 3> kImapSecurity = {"tls", "starttls", "plain"};
constexpr std::array<std::string_view, 3> kImapAuth = {"auto", "login", "plain"};
constexpr std::array<std::string_view, 2> kJmapAfterSend = {"sent", "destroy"};
// RFC 2177: servers may end an IDLE after 30 minutes without activity.
constexpr std::chrono::milliseconds kMaxIdleRenew{29 * 60'000};
constexpr std::array<std::string_view, 3> kSmtpSecurity = {"starttls", "tls", "plain"};
constexpr std::uint64_t kMaxAttachmentBytes = 1ull << 30;
constexpr std::uint64_t kMaxAttachments = 1000;
constexpr std::uint64_t kMaxReplyLimit = 100'000;
constexpr std::uint64_t kMaxMailBytes = 1ull << 30;
constexpr std::uint64_t kMaxRecipients = 10'000;
constexpr std::uint64_t kMaxOutputBytes = 1ull << 30;
constexpr std::uint64_t kMaxConcurrentAgents = 1000;
constexpr std::uint64_t kMaxLimitCount = 1u << 20;
constexpr std::uint64_t kMaxLimitBytes = 1ull << 50;
constexpr std::uint64_t kMaxBatchMessages = 10'000;
constexpr std::uint64_t kMaxRetries = 10;
constexpr std::uint64_t kMaxToolRounds = 10'000;
constexpr std::uint64_t kMaxOutputTokens = 1'000'000;
constexpr std::uint64_t kMaxContextWindow = 100'000'000;

// Upper bounds: beyond these a value is a typo rather than a choice.
constexpr std::uint64_t kMaxBodyBytes = 1ull << 30;
constexpr std::uint64_t kMaxHeaderBytes = kMaxHttpHeaderBytes;
constexpr std::uint64_t kMaxConnections = 100'000;
constexpr std::chrono::milliseconds kMaxDuration = std::chrono::hours(24);

std::string join(std::span<const std::string_view> words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

// Levenshtein distance, for "did you mean" on unknown keys.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// What a value is, for "(got ...)" in messages: the value itself for strings and numbers,
// its kind otherwise.
std::string describe(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "'" + node.as_string()->get() + "'";
    case toml::node_type::integer:
      return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point: {
      std::ostringstream out;
      out << *node.as_floating_point();
      return out.str();
    }
    case toml::node_type::boolean:
      return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// A token travels in an HTTP header, so it must be visible ASCII without spaces.
bool is_valid_token(std::string_view token) {
  return std::ranges::all_of(token, [](char c) { return c > ' ' && c < 0x7f; });
}

// A mail password: printable ASCII, spaces allowed (app passwords are often written in
// groups), nothing that could end a protocol line.
bool is_valid_password(std::string_view password) {
  return std::ranges::all_of(password, [](char c) { return c >= ' ' && c < 0x7f; });
}

// An assistant name or trigger alias: it follows '@' in chat messages.
bool is_valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::ranges::all_of(name, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

bool is_ip_address(const std::string& host) {
  boost::system::error_code error;
  boost::asio::ip::make_address(host, error);
  return !error;
}

// Reads a TOML document into a Config, collecting every problem with its line.
class Loader {
 public:
  Loader(std::string origin, ConfigPurpose purpose)
      : origin_(std::move(origin)), purpose_(purpose) {}

  Result<Config> load(const toml::table& root) {
    Config config;
    const std::vector<Field> fields = {
        {"data_dir",
         [&](const toml::node& node, const std::string& key) {
           if (auto text = expect_string(node, key)) {
             if (text->empty()) {
               fail(node, "'" + key + "' must not be empty");
             } else {
               config.data_dir = *text;
             }
           }
         }},
        {"api",
         [&](const toml::node& node, const std::string& key) { read_api(node, key, config.api); }},
        {"log",
         [&](const toml::node& node, const std::string& key) { read_log(node, key, config.log); }},
        {"store", [&](const toml::node& node,
                      const std::string& key) { read_store(node, key, config.store); }},
        {"assistant_name",
         [&](const toml::node& node, const std::string& key) {
           if (auto name = expect_string(node, key)) {
             if (!is_valid_name(*name)) {
               fail(node, "'" + key +
                              "' must be 1-64 letters, digits, '-' or '_' (it is the trigger "
                              "'@<name>'; got '" +
                              *name + "')");
             } else {
               config.assistant_name = *name;
             }
           }
         }},
        {"timezone",
         [&](const toml::node& node, const std::string& key) {
           if (auto name = expect_string(node, key)) {
             if (auto zone = load_time_zone(*name); !zone) {
               fail(node, "'" + key + "': " + zone.error().message);
             } else {
               config.timezone = *name;
             }
           }
         }},
        {"agent", [&](const toml::node& node,
                      const std::string& key) { read_agent(node, key, config.agent); }},
        {"model", [&](const toml::node& node,
                      const std::string& key) { read_model(node, key, config.model); }},
        {"email", [&](const toml::node& node,
                      const std::string& key) { read_email(node, key, config.email); }},
    };
    read_fields(root, "", fields);
    if (!problems_.empty()) return make_error(report());
    return config;
  }

 private:
  struct Field {
    std::string_view name;
    std::function<void(const toml::node&, const std::string& key)> read;
  };

  struct Problem {
    std::uint32_t line;
    std::string message;
  };

  void fail(const toml::node& node, std::string message) {
    problems_.push_back({node.source().begin.line, std::move(message)});
  }

  std::string report() {
    std::ranges::stable_sort(problems_, {}, &Problem::line);
    std::string out;
    for (const Problem& problem : problems_) {
      if (!out.empty()) out += '\n';
      out += origin_ + ":" + std::to_string(problem.line) + ": " + problem.message;
    }
    return out;
  }

  // Hands each key of `table` to its field's reader; reports keys no field knows.
  void read_fields(const toml::table& table, const std::string& prefix,
                   std::span<const Field> fields) {
    for (auto&& [toml_key, node] : table) {
      const std::string_view name = toml_key.str();
      const std::string key = prefix + std::string(name);
      const auto field = std::ranges::find(fields, name, &Field::name);
      if (field != fields.end()) {
        field->read(node, key);
        continue;
      }
      std::string message = "unknown key '" + key + "'";
      const auto closest = std::ranges::min_element(
          fields, {}, [name](const Field& f) { return edit_distance(name, f.name); });
      if (closest != fields.end() && edit_distance(name, closest->name) <= 2) {
        message += "; did you mean '" + prefix + std::string(closest->name) + "'?";
      }
      fail(node, std::move(message));
    }
  }

  const toml::table* expect_table(const toml::node& node, const std::string& key) {
    const toml::table* result = node.as_table();
    if (!result) fail(node, "'" + key + "' must be a table (got " + describe(node) + ")");
    return result;
  }

  std::optional<std::string> expect_string(const toml::node& node, const std::string& key) {
    if (const auto* value = node.as_string()) return value->get();
    fail(node, "'" + key + "' must be a string (got " + describe(node) + ")");
    return std::nullopt;
  }

  std::optional<std::string> choice(const toml::node& node, const std::string& key,
                                    std::span<const std::string_view> allowed) {
    const auto* value = node.as_string();
    if (value && std::ranges::find(allowed, value->get()) != allowed.end()) return value->get();
    fail(node, "'" + key + "' must be one of " + join(allowed) + " (got " + describe(node) + ")");
    return std::nullopt;
  }

  std::optional<std::size_t> count(const toml::node& node, const std::string& key,
                                   std::uint64_t max) {
    const auto* value = node.as_integer();
    if (!value || value->get() <= 0) {
      fail(node, "'" + key + "' must be a positive integer (got " + describe(node) + ")");
      return std::nullopt;
    }
    if (static_cast<std::uint64_t>(value->get()) > max) {
      fail(node, "'" + key + "' must be at most " + std::to_string(max) + " (got " +
                     describe(node) + ")");
      return std::nullopt;
    }
    return static_cast<std::size_t>(value->get());
  }

  std::optional<std::size_t> size(const toml::node& node, const std::string& key,
                                  std::uint64_t max) {
    std::optional<std::uint64_t> bytes;
    if (const auto* value = node.as_integer()) {
      bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(value->get(), 0));
    } else if (const auto* text = node.as_string()) {
      bytes = parse_size(text->get());
    }
    if (!bytes) {
      fail(node, "'" + key +
                     "' must be a number of bytes or a string with a unit (B, KB, MB, GB, KiB, "
                     "MiB, GiB) such as \"512KiB\" or \"10MB\" (got " +
                     describe(node) + ")");
      return std::nullopt;
    }
    if (*bytes == 0) {
      fail(node, "'" + key + "' must be greater than 0 (got " + describe(node) + ")");
      return std::nullopt;
    }
    if (*bytes > max) {
      fail(node,
           "'" + key + "' must be at most " + format_size(max) + " (got " + describe(node) + ")");
      return std::nullopt;
    }
    return static_cast<std::size_t>(*bytes);
  }

  // A sandbox limit written as "unlimited" (stored as 0).
  static bool is_unlimited(const toml::node& node) {
    const auto* text = node.as_string();
    return text && text->get() == "unlimited";
  }

  std::optional<std::uint64_t> limit_count(const toml::node& node, const std::string& key) {
    if (is_unlimited(node)) return 0;
    return count(node, key, kMaxLimitCount);
  }

  std::optional<std::uint64_t> limit_size(const toml::node& node, const std::string& key) {
    if (is_unlimited(node)) return 0;
    return size(node, key, kMaxLimitBytes);
  }

  std::optional<std::chrono::milliseconds> duration(const toml::node& node,
                                                    const std::string& key) {
    const auto* text = node.as_string();
    const auto parsed = text ? parse_duration(text->get()) : std::nullopt;
    if (!parsed) {
      fail(node, "'" + key +
                     "' must be a duration with a unit: ms, s, m or h, such as \"500ms\" or "
                     "\"10s\" (got " +
                     describe(node) + (node.is_number() ? ", which has no unit" : "") + ")");
      return std::nullopt;
    }
    if (parsed->count() == 0) {
      fail(node, "'" + key + "' must be greater than 0 (got " + describe(node) + ")");
      return std::nullopt;
    }
    if (*parsed > kMaxDuration) {
      fail(node, "'" + key + "' must be at most " + format_duration(kMaxDuration) + " (got " +
                     describe(node) + ")");
      return std::nullopt;
    }
    return parsed;
  }

  template <class T, class U>
  static void assign(T& target, std::optional<U> value) {
    if (value) target = static_cast<T>(*value);
  }

  void read_listen(const toml::node& node, const std::string& key, std::string& host,
                   std::uint16_t& port) {
    const auto text = expect_string(node, key);
    if (!text) return;
    const auto address = parse_host_port(*text);
    if (!address) {
      fail(node, "'" + key +
                     "' must be \"host:port\", \"[ipv6]:port\" or \":port\" with a port from 1 "
                     "to 65535 (got '" +
                     *text + "')");
      return;
    }
    if (iequals(address->host, "localhost")) {
      host = "localhost";
    } else if (is_ip_address(address->host)) {
      host = address->host;
    } else {
      fail(node, "'" + key + "' must name an IP address or localhost, not a host name (got '" +
                     *text + "')");
      return;
    }
    port = address->port;
  }

  void read_api(const toml::node& node, const std::string& key, ApiConfig& api) {
    const toml::table* api_table = expect_table(node, key);
    if (!api_table) return;
    const toml::node* token = nullptr;
    const toml::node* token_env = nullptr;
    const std::vector<Field> fields = {
        {"listen",
         [&](const toml::node& n, const std::string& k) { read_listen(n, k, api.host, api.port); }},
        {"token", [&](const toml::node& n, const std::string&) { token = &n; }},
        {"token_env", [&](const toml::node& n, const std::string&) { token_env = &n; }},
        {"max_body_bytes",
         [&](const toml::node& n, const std::string& k) {
           assign(api.max_body_bytes, size(n, k, kMaxBodyBytes));
         }},
        {"max_header_bytes",
         [&](const toml::node& n, const std::string& k) {
           assign(api.max_header_bytes, size(n, k, kMaxHeaderBytes));
         }},
        {"max_connections",
         [&](const toml::node& n, const std::string& k) {
           assign(api.max_connections, count(n, k, kMaxConnections));
         }},
        {"request_timeout",
         [&](const toml::node& n, const std::string& k) {
           assign(api.request_timeout, duration(n, k));
         }},
        {"idle_timeout", [&](const toml::node& n,
                             const std::string& k) { assign(api.idle_timeout, duration(n, k)); }},
        {"shutdown_grace",
         [&](const toml::node& n, const std::string& k) {
           assign(api.shutdown_grace, duration(n, k));
         }},
    };
    read_fields(*api_table, key + ".", fields);
    read_secret(key + ".token", token, token_env, api.token, api.token_source);
  }

  // A secret comes from the file or from the environment variable the file names, never
  // both: a secret kept out of the file should not have a stale copy in it. `secret_key` is
  // the dotted key of the value ("api.token"); its variable's key adds "_env".
  enum class SecretKind { token, password };
  void read_secret(const std::string& secret_key, const toml::node* value_node,
                   const toml::node* env_node, std::string& secret, std::string& source,
                   SecretKind kind = SecretKind::token) {
    const std::string env_key = secret_key + "_env";
    const auto valid = kind == SecretKind::token ? is_valid_token : is_valid_password;
    const char* const rule =
        kind == SecretKind::token ? "printable ASCII without spaces" : "printable ASCII";
    if (value_node && env_node) {
      const toml::node& later =
          value_node->source().begin.line > env_node->source().begin.line ? *value_node : *env_node;
      fail(later, "set either '" + secret_key + "' or '" + env_key + "', not both");
      return;
    }
    if (value_node) {
      const auto* value = value_node->as_string();
      if (!value) {
        fail(*value_node, "'" + secret_key + "' must be a string");
      } else if (value->get().empty()) {
        fail(*value_node, "'" + secret_key + "' must not be empty (leave it out instead)");
      } else if (!valid(value->get())) {
        fail(*value_node, "'" + secret_key + "' must be " + rule);
      } else {
        secret = value->get();
        source = secret_key;
      }
      return;
    }
    if (env_node) {
      const auto name = expect_string(*env_node, env_key);
      if (!name) return;
      if (name->empty()) {
        fail(*env_node, "'" + env_key + "' must name an environment variable");
        return;
      }
      const char* value = std::getenv(name->c_str());
      if (!value) {
        fail(*env_node, "'" + env_key + "' names " + *name + ", which is not set");
      } else if (*value == '\0') {
        fail(*env_node, "'" + env_key + "' names " + *name + ", which is empty");
      } else if (!valid(value)) {
        fail(*env_node, "'" + env_key + "' names " + *name + ", whose value must be " + rule);
      } else {
        secret = value;
        source = "$" + *name;
      }
    }
  }

  void read_log(const toml::node& node, const std::string& key, LogConfig& log) {
    const toml::table* log_table = expect_table(node, key);
    if (!log_table) return;
    const std::vector<Field> fields = {
        {"level", [&](const toml::node& n,
                      const std::string& k) { assign(log.level, choice(n, k, kLogLevels)); }},
        {"format",
         [&](const toml::node& n, const std::string& k) {
           if (auto format = choice(n, k, kLogFormats)) {
             log.format = *format == "json" ? LogFormat::json : LogFormat::plain;
           }
         }},
    };
    read_fields(*log_table, key + ".", fields);
  }

  std::optional<std::vector<std::string>> string_list(const toml::node& node,
                                                      const std::string& key, bool allow_empty) {
    const toml::array* array = node.as_array();
    std::vector<std::string> out;
    if (array) {
      for (const toml::node& item : *array) {
        const auto* text = item.as_string();
        if (!text || text->get().empty()) {
          array = nullptr;
          break;
        }
        out.push_back(text->get());
      }
    }
    if (!array || (!allow_empty && out.empty())) {
      fail(node, "'" + key + "' must be " + (allow_empty ? "an" : "a non-empty") +
                     " array of non-empty strings, such as [\"switchboard\", \"agent\"] (got " +
                     describe(node) + ")");
      return std::nullopt;
    }
    return out;
  }

  void read_agent(const toml::node& node, const std::string& key, AgentConfig& agent) {
    const toml::table* table = expect_table(node, key);
    if (!table) return;
    const std::vector<Field> fields = {
        {"runtime", [&](const toml::node& n,
                        const std::string& k) { assign(agent.runtime, choice(n, k, kRuntimes)); }},
        {"command", [&](const toml::node& n,
                        const std::string& k) { assign(agent.command, string_list(n, k, false)); }},
        {"image",
         [&](const toml::node& n, const std::string& k) {
           if (auto image = expect_string(n, k)) {
             if (image->empty()) {
               fail(n, "'" + k + "' must not be empty");
             } else {
               agent.image = *image;
             }
           }
         }},
        {"timeout",
         [&](const toml::node& n, const std::string& k) { assign(agent.timeout, duration(n, k)); }},
        {"idle_timeout", [&](const toml::node& n,
                             const std::string& k) { assign(agent.idle_timeout, duration(n, k)); }},
        {"kill_grace", [&](const toml::node& n,
                           const std::string& k) { assign(agent.kill_grace, duration(n, k)); }},
        {"shutdown_grace",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.shutdown_grace, duration(n, k));
         }},
        {"max_output_bytes",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.max_output_bytes, size(n, k, kMaxOutputBytes));
         }},
        {"max_concurrent",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.max_concurrent, count(n, k, kMaxConcurrentAgents));
         }},
        {"max_batch_messages",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.max_batch_messages, count(n, k, kMaxBatchMessages));
         }},
        {"retry_base",
         [&](const toml::node& n, const std::string& k) {
           auto base = duration(n, k);
           if (base && (*base < std::chrono::milliseconds(100) || *base > std::chrono::hours(1))) {
             fail(n, "'" + k + "' must be between 100ms and 1h");
             return;
           }
           assign(agent.retry_base, base);
         }},
        {"max_retries",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.max_retries, count(n, k, kMaxRetries));
         }},
        {"max_tool_rounds",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.max_tool_rounds, count(n, k, kMaxToolRounds));
         }},
        {"max_output_tokens",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.max_output_tokens, count(n, k, kMaxOutputTokens));
         }},
        {"context_window",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.context_window, count(n, k, kMaxContextWindow));
         }},
        {"tool_timeout", [&](const toml::node& n,
                             const std::string& k) { assign(agent.tool_timeout, duration(n, k)); }},
        {"model_timeout",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.model_timeout, duration(n, k));
         }},
        {"network",
         [&](const toml::node& n, const std::string& k) {
           if (const auto* value = n.as_boolean()) {
             agent.network = value->get();
           } else {
             fail(n, "'" + k + "' must be true or false (got " + describe(n) + ")");
           }
         }},
        {"mount_allowlist",
         [&](const toml::node& n, const std::string& k) {
           if (auto path = expect_string(n, k)) {
             if (path->empty()) {
               fail(n, "'" + k + "' must not be empty (leave it out for the default)");
             } else {
               agent.mount_allowlist = *path;
             }
           }
         }},
        {"user",
         [&](const toml::node& n, const std::string& k) {
           if (auto user = expect_string(n, k)) {
             if (user->empty() || *user == "root" || user->starts_with("0:")) {
               fail(n, "'" + k + "' must name a user other than root, such as \"nobody\" (got " +
                           describe(n) + ")");
             } else {
               agent.user = *user;
             }
           }
         }},
        {"max_processes",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.max_processes, limit_count(n, k));
         }},
        {"max_memory", [&](const toml::node& n,
                           const std::string& k) { assign(agent.max_memory, limit_size(n, k)); }},
        {"max_cpu_time",
         [&](const toml::node& n, const std::string& k) {
           if (is_unlimited(n)) {
             agent.max_cpu_time = std::chrono::milliseconds(0);
           } else {
             assign(agent.max_cpu_time, duration(n, k));
           }
         }},
        {"max_file_size",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.max_file_size, limit_size(n, k));
         }},
        {"max_open_files",
         [&](const toml::node& n, const std::string& k) {
           assign(agent.max_open_files, limit_count(n, k));
         }},
        {"max_disk", [&](const toml::node& n,
                         const std::string& k) { assign(agent.max_disk, limit_size(n, k)); }},
        {"trigger_aliases",
         [&](const toml::node& n, const std::string& k) {
           auto aliases = string_list(n, k, true);
           if (!aliases) return;
           for (const std::string& alias : *aliases) {
             const std::string_view name =
                 alias.starts_with('@') ? std::string_view(alias).substr(1) : alias;
             if (!is_valid_name(name)) {
               fail(n, "'" + k +
                           "' entries must be '@' and 1-64 letters, digits, '-' or '_' (got '" +
                           alias + "')");
               return;
             }
           }
           agent.trigger_aliases = std::move(*aliases);
         }},
    };
    read_fields(*table, key + ".", fields);
  }

  void read_model(const toml::node& node, const std::string& key, ModelConfig& model) {
    const toml::table* table = expect_table(node, key);
    if (!table) return;
    const toml::node* api_key = nullptr;
    const toml::node* api_key_env = nullptr;
    const std::vector<Field> fields = {
        {"provider",
         [&](const toml::node& n, const std::string& k) {
           assign(model.provider, choice(n, k, kProviders));
         }},
        {"base_url",
         [&](const toml::node& n, const std::string& k) {
           if (auto url = expect_string(n, k)) {
             if (!url->starts_with("http://") && !url->starts_with("https://")) {
               fail(n, "'" + k + "' must start with http:// or https:// (got '" + *url + "')");
             } else {
               model.base_url = *url;
             }
           }
         }},
        {"model", [&](const toml::node& n,
                      const std::string& k) { assign(model.model, expect_string(n, k)); }},
        {"api_key", [&](const toml::node& n, const std::string&) { api_key = &n; }},
        {"api_key_env", [&](const toml::node& n, const std::string&) { api_key_env = &n; }},
        {"daily_token_budget",
         [&](const toml::node& n, const std::string& k) {
           const auto* value = n.as_integer();
           if (!value || value->get() < 0) {
             fail(n, "'" + k + "' must be a non-negative integer, 0 for no limit (got " +
                         describe(n) + ")");
           } else {
             model.daily_token_budget = value->get();
           }
         }},
    };
    read_fields(*table, key + ".", fields);
    const bool client = purpose_ == ConfigPurpose::client;
    if (client && api_key_env && api_key_env->as_string() &&
        !std::getenv(api_key_env->as_string()->get().c_str())) {
      return;  // the client commands never use the model key
    }
    read_secret(key + ".api_key", api_key, api_key_env, model.api_key, model.api_key_source);
  }

  std::optional<bool> boolean(const toml::node& node, const std::string& key) {
    if (const auto* value = node.as_boolean()) return value->get();
    fail(node, "'" + key + "' must be true or false (got " + describe(node) + ")");
    return std::nullopt;
  }

  std::optional<std::filesystem::path> file_path(const toml::node& node, const std::string& key) {
    auto text = expect_string(node, key);
    if (text && text->empty()) {
      fail(node, "'" + key + "' must not be empty (leave it out instead)");
      return std::nullopt;
    }
    return text;
  }

  void read_email(const toml::node& node, const std::string& key, EmailConfig& email) {
    const toml::table* table = expect_table(node, key);
    if (!table) return;
    const std::vector<Field> fields = {
        {"receiver",
         [&](const toml::node& n, const std::string& k) { read_receiver(n, k, email.receiver); }},
        {"accounts",
         [&](const toml::node& n, const std::string& k) {
           const toml::array* list = n.as_array();
           if (!list) {
             fail(n, "'" + k + "' must be an array of tables ([[email.accounts]])");
             return;
           }
           for (std::size_t i = 0; i < list->size(); ++i) {
             EmailAccountConfig account;
             if (read_account((*list)[i], k + "[" + std::to_string(i) + "]", account)) {
               email.accounts.push_back(std::move(account));
             }
           }
         }},
        {"max_attachment_bytes",
         [&](const toml::node& n, const std::string& k) {
           assign(email.max_attachment_bytes, size(n, k, kMaxAttachmentBytes));
         }},
        {"max_attachments",
         [&](const toml::node& n, const std::string& k) {
           assign(email.max_attachments, count(n, k, kMaxAttachments));
         }},
        {"reply_limit",
         [&](const toml::node& n, const std::string& k) {
           assign(email.reply_limit, count(n, k, kMaxReplyLimit));
         }},
    };
    read_fields(*table, key + ".", fields);
    for (std::size_t i = 0; i < email.accounts.size(); ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        if (email.accounts[i].address == email.accounts[j].address) {
          fail(node, "'" + key + ".accounts' lists " + email.accounts[i].address + " twice");
        }
      }
    }
  }

  void read_receiver(const toml::node& node, const std::string& key, EmailReceiverConfig& rx) {
    const toml::table* table = expect_table(node, key);
    if (!table) return;
    const std::vector<Field> fields = {
        {"enabled",
         [&](const toml::node& n, const std::string& k) { assign(rx.enabled, boolean(n, k)); }},
        {"listen",
         [&](const toml::node& n, const std::string& k) { read_listen(n, k, rx.host, rx.port); }},
        {"hostname", [&](const toml::node& n,
                         const std::string& k) { assign(rx.hostname, expect_string(n, k)); }},
        {"tls_cert",
         [&](const toml::node& n, const std::string& k) { assign(rx.tls_cert, file_path(n, k)); }},
        {"tls_key",
         [&](const toml::node& n, const std::string& k) { assign(rx.tls_key, file_path(n, k)); }},
        {"max_message_bytes",
         [&](const toml::node& n, const std::string& k) {
           assign(rx.max_message_bytes, size(n, k, kMaxMailBytes));
         }},
        {"max_recipients",
         [&](const toml::node& n, const std::string& k) {
           assign(rx.max_recipients, count(n, k, kMaxRecipients));
         }},
        {"max_connections",
         [&](const toml::node& n, const std::string& k) {
           assign(rx.max_connections, count(n, k, kMaxConnections));
         }},
        {"max_connections_per_client",
         [&](const toml::node& n, const std::string& k) {
           assign(rx.max_connections_per_client, count(n, k, kMaxConnections));
         }},
        {"command_timeout",
         [&](const toml::node& n, const std::string& k) {
           assign(rx.command_timeout, duration(n, k));
         }},
        {"data_timeout", [&](const toml::node& n,
                             const std::string& k) { assign(rx.data_timeout, duration(n, k)); }},
        {"max_errors",
         [&](const toml::node& n, const std::string& k) {
           assign(rx.max_errors, count(n, k, kMaxRecipients));
         }},
    };
    read_fields(*table, key + ".", fields);
    if (rx.tls_cert.empty() != rx.tls_key.empty()) {
      fail(node, "'" + key + "' needs both tls_cert and tls_key, or neither");
    }
  }

  bool read_account(const toml::node& node, const std::string& key, EmailAccountConfig& account) {
    const toml::table* table = expect_table(node, key);
    if (!table) return false;
    bool has_allow_from = false;
    const std::vector<Field> fields = {
        {"address",
         [&](const toml::node& n, const std::string& k) {
           auto text = expect_string(n, k);
           if (!text) return;
           const auto at = text->find('@');
           const bool valid =
               at != std::string::npos && at > 0 && at + 1 < text->size() &&
               text->find('@', at + 1) == std::string::npos &&
               std::ranges::all_of(*text, [](char c) { return c > ' ' && c < 0x7f; });
           if (!valid) {
             fail(n, "'" + k + "' must be an email address such as andy@example.org (got '" +
                         *text + "')");
             return;
           }
           account.address = *text;
           std::ranges::transform(account.address, account.address.begin(),
                                  [](unsigned char c) { return std::tolower(c); });
         }},
        {"name", [&](const toml::node& n,
                     const std::string& k) { assign(account.display_name, expect_string(n, k)); }},
        {"group",
         [&](const toml::node& n, const std::string& k) {
           auto text = expect_string(n, k);
           if (!text) return;
           if (!host::is_valid_group_folder(*text) || *text == "global") {
             fail(n, "'" + k +
                         "' must be a group folder name: 1-64 of a-z, 0-9, '_' or '-' (got '" +
                         *text + "')");
             return;
           }
           account.group = *text;
         }},
        {"allow_from",
         [&](const toml::node& n, const std::string& k) {
           has_allow_from = true;
           assign(account.allow_from, string_list(n, k, true));
         }},
        {"receive",
         [&](const toml::node& n, const std::string& k) {
           assign(account.receive, choice(n, k, kReceiveModes));
         }},
        {"send", [&](const toml::node& n,
                     const std::string& k) { assign(account.send, choice(n, k, kSendModes)); }},
        {"smtp",
         [&](const toml::node& n, const std::string& k) { read_submission(n, k, account.smtp); }},
        {"imap", [&](const toml::node& n, const std::string& k) { read_imap(n, k, account.imap); }},
        {"jmap", [&](const toml::node& n, const std::string& k) { read_jmap(n, k, account.jmap); }},
    };
    read_fields(*table, key + ".", fields);
    if (account.address.empty()) {
      fail(node, "'" + key + "' needs an 'address'");
      return false;
    }
    if (account.imap.username.empty()) account.imap.username = account.address;
    if (account.jmap.username.empty()) account.jmap.username = account.address;
    if (account.receive == "imap" && account.imap.host.empty()) {
      fail(node, "'" + key + "' receives by imap: it needs [" + key + ".imap] with a 'host'");
    }
    if (account.receive == "imap" && account.imap.password.empty() &&
        purpose_ != ConfigPurpose::client) {
      fail(node, "'" + key + "' receives by imap: it needs '" + key + ".imap.password_env' (or '" +
                     key + ".imap.password')");
    }
    const bool uses_jmap = account.receive == "jmap" || account.send == "jmap";
    if (uses_jmap && account.jmap.session_url.empty()) {
      fail(node, "'" + key + "' uses jmap: it needs [" + key + ".jmap] with a 'session_url'");
    }
    if (uses_jmap && account.jmap.token.empty() && account.jmap.password.empty() &&
        purpose_ != ConfigPurpose::client) {
      fail(node, "'" + key + "' uses jmap: it needs '" + key +
                     ".jmap.token_env' (a bearer token) or '" + key +
                     ".jmap.password_env' (or the values themselves)");
    }
    if (!has_allow_from) {
      fail(node, "'" + key +
                     "' needs 'allow_from': the addresses or @domains that may command the "
                     "agent (\"*\" for everyone, written out on purpose)");
      return false;
    }
    return true;
  }

  // What the keys of a mail server connection (submission, IMAP) found, besides the values
  // they set directly.
  struct ServerKeys {
    bool port_given = false;
    const toml::node* password = nullptr;
    const toml::node* password_env = nullptr;
  };

  // The keys every mail server connection has: host, port, security (one of `securities`),
  // verify_certificate, ca_file, username, password / password_env.
  template <class Server, std::size_t N>
  std::vector<Field> server_fields(Server& server,
                                   const std::array<std::string_view, N>& securities,
                                   ServerKeys& found) {
    return {
        {"host", [&](const toml::node& n,
                     const std::string& k) { assign(server.host, expect_string(n, k)); }},
        {"port",
         [&](const toml::node& n, const std::string& k) {
           found.port_given = true;
           assign(server.port, count(n, k, 65535));
         }},
        {"security",
         [&](const toml::node& n, const std::string& k) {
           assign(server.security, choice(n, k, securities));
         }},
        {"verify_certificate",
         [&](const toml::node& n, const std::string& k) {
           assign(server.verify_certificate, boolean(n, k));
         }},
        {"ca_file", [&](const toml::node& n,
                        const std::string& k) { assign(server.ca_file, file_path(n, k)); }},
        {"username", [&](const toml::node& n,
                         const std::string& k) { assign(server.username, expect_string(n, k)); }},
        {"password", [&](const toml::node& n, const std::string&) { found.password = &n; }},
        {"password_env", [&](const toml::node& n, const std::string&) { found.password_env = &n; }},
    };
  }

  void read_submission(const toml::node& node, const std::string& key, SmtpSubmissionConfig& smtp) {
    const toml::table* table = expect_table(node, key);
    if (!table) return;
    ServerKeys found;
    std::vector<Field> fields = server_fields(smtp, kSmtpSecurity, found);
    fields.push_back({"helo", [&](const toml::node& n, const std::string& k) {
                        assign(smtp.helo, expect_string(n, k));
                      }});
    read_fields(*table, key + ".", fields);
    if (!found.port_given && smtp.security == "tls") smtp.port = 465;
    if (purpose_ == ConfigPurpose::client) return;  // the client commands never send mail
    read_secret(key + ".password", found.password, found.password_env, smtp.password,
                smtp.password_source, SecretKind::password);
  }

  void read_imap(const toml::node& node, const std::string& key, ImapAccountConfig& imap) {
    const toml::table* table = expect_table(node, key);
    if (!table) return;
    ServerKeys found;
    std::vector<Field> fields = server_fields(imap, kImapSecurity, found);
    const std::vector<Field> more = {
        {"auth", [&](const toml::node& n,
                     const std::string& k) { assign(imap.auth, choice(n, k, kImapAuth)); }},
        {"folder",
         [&](const toml::node& n, const std::string& k) {
           auto text = expect_string(n, k);
           if (!text) return;
           const bool printable =
               !text->empty() && text->size() <= 255 &&
               std::ranges::none_of(*text, [](unsigned char c) { return c < 0x20 || c == 0x7f; });
           if (!printable) {
             fail(n, "'" + k + "' must be a folder name without control characters");
             return;
           }
           imap.folder = *text;
         }},
        {"poll_interval",
         [&](const toml::node& n, const std::string& k) {
           assign(imap.poll_interval, duration(n, k));
         }},
        {"idle_renew",
         [&](const toml::node& n, const std::string& k) {
           auto value = duration(n, k);
           if (value && *value > kMaxIdleRenew) {
             fail(n, "'" + k + "' must be at most 29m: servers may end an IDLE after 30 minutes");
             return;
           }
           assign(imap.idle_renew, value);
         }},
    };
    fields.insert(fields.end(), more.begin(), more.end());
    read_fields(*table, key + ".", fields);
    if (!found.port_given && imap.security != "tls") imap.port = 143;
    if (purpose_ == ConfigPurpose::client) return;
    read_secret(key + ".password", found.password, found.password_env, imap.password,
                imap.password_source, SecretKind::password);
  }

  void read_jmap(const toml::node& node, const std::string& key, JmapAccountConfig& jmap) {
    const toml::table* table = expect_table(node, key);
    if (!table) return;
    const toml::node* token = nullptr;
    const toml::node* token_env = nullptr;
    const toml::node* password = nullptr;
    const toml::node* password_env = nullptr;
    const std::vector<Field> fields = {
        {"session_url",
         [&](const toml::node& n, const std::string& k) {
           auto text = expect_string(n, k);
           if (!text) return;
           if (!text->starts_with("https://") && !text->starts_with("http://")) {
             fail(n, "'" + k +
                         "' must be an http(s) URL such as "
                         "https://api.fastmail.com/jmap/session (got '" +
                         *text + "')");
             return;
           }
           jmap.session_url = *text;
         }},
        {"token", [&](const toml::node& n, const std::string&) { token = &n; }},
        {"token_env", [&](const toml::node& n, const std::string&) { token_env = &n; }},
        {"username", [&](const toml::node& n,
                         const std::string& k) { assign(jmap.username, expect_string(n, k)); }},
        {"password", [&](const toml::node& n, const std::string&) { password = &n; }},
        {"password_env", [&](const toml::node& n, const std::string&) { password_env = &n; }},
        {"verify_certificate",
         [&](const toml::node& n, const std::string& k) {
           assign(jmap.verify_certificate, boolean(n, k));
         }},
        {"ca_file",
         [&](const toml::node& n, const std::string& k) { assign(jmap.ca_file, file_path(n, k)); }},
        {"after_send",
         [&](const toml::node& n, const std::string& k) {
           assign(jmap.after_send, choice(n, k, kJmapAfterSend));
         }},
        {"push",
         [&](const toml::node& n, const std::string& k) { assign(jmap.push, boolean(n, k)); }},
        {"poll_interval",
         [&](const toml::node& n, const std::string& k) {
           assign(jmap.poll_interval, duration(n, k));
         }},
    };
    read_fields(*table, key + ".", fields);
    if (purpose_ == ConfigPurpose::client) return;
    read_secret(key + ".token", token, token_env, jmap.token, jmap.token_source);
    read_secret(key + ".password", password, password_env, jmap.password, jmap.password_source,
                SecretKind::password);
  }

  void read_store(const toml::node& node, const std::string& key, StoreConfig& store) {
    const toml::table* store_table = expect_table(node, key);
    if (!store_table) return;
    const std::vector<Field> fields = {
        {"synchronous",
         [&](const toml::node& n, const std::string& k) {
           if (auto mode = choice(n, k, kSynchronousModes))
             store.synchronous_full = *mode == "full";
         }},
    };
    read_fields(*store_table, key + ".", fields);
  }

  std::string origin_;
  ConfigPurpose purpose_;
  std::vector<Problem> problems_;
};

// The line of the first byte outside ASCII that stands outside a string or a comment, or 0.
// TOML allows none there, and toml++ 3.3 must not see one: its whitespace test reaches
// __builtin_unreachable for most non-ASCII characters (is_non_ascii_horizontal_whitespace).
std::size_t line_of_stray_non_ascii(std::string_view text) {
  std::size_t line = 1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      return line;
    } else if (c == '#') {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
    } else if (c == '"' || c == '\'') {
      const bool multi = text.substr(i, 3) == std::string_view(std::string(3, c));
      const bool escapes = c == '"';
      i += multi ? 3 : 1;
      for (; i < text.size(); ++i) {
        if (text[i] == '\n') {
          ++line;
          if (!multi) break;  // an unterminated string: toml++ reports it
        } else if (escapes && text[i] == '\\') {
          if (i + 1 < text.size() && text[i + 1] == '\n') ++line;
          ++i;
        } else if (text[i] == c && (!multi || text.substr(i, 3) == std::string(3, c))) {
          if (multi) {
            i += 2;  // the closing delimiter, and up to two quotes of content before it
            for (int extra = 0; extra < 2 && i + 1 < text.size() && text[i + 1] == c; ++extra) ++i;
          }
          break;
        }
      }
    }
  }
  return 0;
}

}  // namespace

Result<Config> parse_config(std::string_view toml_text, const std::string& origin,
                            ConfigPurpose purpose) {
  if (const std::size_t line = line_of_stray_non_ascii(toml_text)) {
    return make_error(origin + ":" + std::to_string(line) +
                      ": a character outside ASCII stands outside a string or a comment");
  }
  try {
    const toml::table root = toml::parse(toml_text, std::string_view(origin));
    return Loader(origin, purpose).load(root);
  } catch (const toml::parse_error& error) {
    return make_error(origin + ":" + std::to_string(error.source().begin.line) + ": " +
                      std::string(error.description()));
  } catch (const std::exception& error) {
    return make_error(origin + ": " + error.what());
  }
}

Result<Config> load_config(const std::filesystem::path& file, ConfigPurpose purpose) {
  const auto cannot_read = [&](int error_number) {
    return make_error("cannot read config file " + file.string() + ": " +
                      std::generic_category().message(error_number));
  };
  std::FILE* stream = std::fopen(file.c_str(), "rb");
  if (!stream) return cannot_read(errno);
  std::string text;
  std::array<char, 8192> buffer;
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), stream)) > 0)
    text.append(buffer.data(), n);
  const int read_error = std::ferror(stream) ? errno : 0;
  std::fclose(stream);
  if (read_error) return cannot_read(read_error);
  return parse_config(text, file.string(), purpose);
}

std::optional<HostPort> parse_host_port(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    boost::system::error_code error;
    boost::asio::ip::make_address_v6(std::string(host), error);
    if (error) return std::nullopt;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    const bool plain_host = std::ranges::all_of(host, [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    });
    if (!plain_host) return std::nullopt;
    if (host.empty()) host = "127.0.0.1";
  }
  if (port.empty() || port.size() > 5) return std::nullopt;
  unsigned number = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    number = number * 10 + static_cast<unsigned>(c - '0');
  }
  if (number < 1 || number > 65535) return std::nullopt;
  return HostPort{std::string(host), static_cast<std::uint16_t>(number)};
}

bool is_loopback_host(std::string_view host) {
  if (iequals(host, "localhost")) return true;
  boost::system::error_code error;
  const auto address = boost::asio::ip::make_address(std::string(host), error);
  if (error) return false;
  if (address.is_v4()) return address.to_v4().is_loopback();
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).is_loopback();
  }
  return v6.is_loopback();
}

}  // namespace sb

#pragma once
// The daemon's configuration: built-in defaults, overridden by a TOML file. Every key is
// documented in docs/configuration.md.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace sb {

struct ApiConfig {
  std::string host = "127.0.0.1";  // [api] listen = "host:port" ("[::1]:8114" for IPv6)
  std::uint16_t port = 8114;
  std::string token;         // empty: no auth. From `token` or the variable named by `token_env`.
  std::string token_source;  // where `token` came from, for logs: "api.token" or "$NAME"
  std::size_t max_body_bytes = 1024 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_connections = 256;
  std::chrono::milliseconds request_timeout{10'000};  // to read one whole request
  std::chrono::milliseconds idle_timeout{60'000};     // keep-alive wait for the next one
  std::chrono::milliseconds shutdown_grace{5'000};    // in-flight requests at SIGTERM
};

enum class LogFormat { plain, json };

struct LogConfig {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  LogFormat format = LogFormat::plain;
};

struct StoreConfig {
  bool synchronous_full = true;  // [store] synchronous = "full" | "normal"
};

// [agent]: how agents run. Per-group settings (timeout, network, mounts) override some of
// these; see docs/configuration.md.
struct AgentConfig {
  std::string runtime = "auto";  // auto | bwrap | docker | podman | none
  std::vector<std::string> command = {"switchboard", "agent"};  // argv of the agent program
  std::string image = "switchboard-agent:latest";               // docker / podman only
  std::chrono::milliseconds timeout{30 * 60'000};       // hard timeout, reset by each result
  std::chrono::milliseconds idle_timeout{10 * 60'000};  // after a result: ask the agent to close
  std::chrono::milliseconds kill_grace{5'000};          // SIGTERM → SIGKILL
  std::chrono::milliseconds shutdown_grace{30'000};     // running agents at daemon shutdown
  std::size_t max_output_bytes = 10 * 1024 * 1024;
  std::size_t max_concurrent = 5;
  // A message run that fails without answering is retried after retry_base, doubled for each
  // further failure up to retry_base * 2^(max_retries-1), then at that interval until it works.
  std::chrono::milliseconds retry_base{5'000};
  std::size_t max_retries = 5;
  bool network = false;  // default for groups that do not say
  // Outside data_dir; never mounted. Empty: the default ~/.config/switchboard/mount-allowlist.json.
  std::filesystem::path mount_allowlist;
  std::vector<std::string> trigger_aliases;  // extra triggers besides "@<assistant_name>"
  std::size_t max_batch_messages = 200;      // messages given to one run at most
  // The built-in agent (`switchboard agent`), handed over in its input's "limits".
  std::size_t max_tool_rounds = 50;                  // model calls with tools per turn
  std::size_t max_output_tokens = 8192;              // per model call
  std::chrono::milliseconds tool_timeout{120'000};   // per tool call
  std::chrono::milliseconds model_timeout{300'000};  // per model request
  std::size_t context_window = 0;  // tokens before compaction; 0: 200k anthropic, 128k openai
  // The host user agents run as when the daemon runs as root (ignored otherwise): a user
  // name, or "uid:gid". Never root.
  std::string user = "nobody";
  // Sandbox limits per agent process (docs/security.md); 0: no limit ("unlimited").
  std::uint64_t max_processes = 1024;
  std::uint64_t max_memory = 2ull << 30;
  std::chrono::milliseconds max_cpu_time{60 * 60'000};
  std::uint64_t max_file_size = 1ull << 30;
  std::uint64_t max_open_files = 1024;
  // The group folder's disk use, checked before and during each run; 0: no limit.
  std::uint64_t max_disk = 5ull << 30;
};

// [model]: the provider the model proxy forwards to. The key stays in the daemon.
struct ModelConfig {
  std::string provider = "anthropic";  // anthropic | openai (any OpenAI-compatible API)
  std::string base_url;                // empty: the provider's public API
  std::string model;                   // empty: the agent's default
  std::string api_key;                 // from `api_key` or the variable named by `api_key_env`
  std::string api_key_source;
  std::int64_t daily_token_budget = 0;  // per group and UTC day; 0: unlimited
};

// [email.receiver]: the SMTP receiver (docs/email.md). Off unless enabled.
struct EmailReceiverConfig {
  bool enabled = false;
  std::string host = "127.0.0.1";  // listen = "host:port"
  std::uint16_t port = 2525;
  std::string hostname;  // in the greeting and Received: headers; empty: the machine's name
  std::filesystem::path tls_cert, tls_key;  // both or neither; STARTTLS when set
  std::size_t max_message_bytes = 25 * 1024 * 1024;
  std::size_t max_recipients = 100;
  std::size_t max_connections = 100;
  std::size_t max_connections_per_client = 10;
  std::chrono::milliseconds command_timeout{5 * 60'000};
  std::chrono::milliseconds data_timeout{10 * 60'000};
  std::size_t max_errors = 10;
};

// [email.accounts.smtp]: the submission server that sends an account's mail.
struct SmtpSubmissionConfig {
  std::string host;  // empty: the account cannot send
  std::uint16_t port = 587;
  std::string security = "starttls";  // starttls | tls | plain
  bool verify_certificate = true;
  std::filesystem::path ca_file;  // empty: the system's trusted certificates
  std::string username;
  std::string password;  // from `password` or the variable named by `password_env`
  std::string password_source;
  std::string helo;  // empty: the receiver's hostname or the machine's name
};

// [email.accounts.imap]: the mailbox an account reads over IMAP (receive = "imap").
struct ImapAccountConfig {
  std::string host;              // required for receive = "imap"
  std::uint16_t port = 993;      // 143 when security is starttls or plain and none is given
  std::string security = "tls";  // tls | starttls | plain
  bool verify_certificate = true;
  std::filesystem::path ca_file;  // empty: the system's trusted certificates
  std::string username;           // empty: the account's address
  std::string password;           // from `password` or the variable named by `password_env`
  std::string password_source;
  std::string auth = "auto";  // auto | login | plain
  std::string folder = "INBOX";
  std::chrono::milliseconds poll_interval{60'000};    // when the server has no IDLE
  std::chrono::milliseconds idle_renew{25 * 60'000};  // at most 29 min (RFC 2177)
};

// [email.accounts.jmap]: the JMAP account (receive and/or send = "jmap").
struct JmapAccountConfig {
  std::string session_url;  // https://api.fastmail.com/jmap/session, or a host's base URL
  std::string token;        // bearer token: `token` or `token_env` …
  std::string token_source;
  std::string username;  // … or basic auth: username (empty: the address) + password
  std::string password;
  std::string password_source;
  bool verify_certificate = true;
  std::filesystem::path ca_file;
  std::string after_send = "sent";  // sent: the copy moves to Sent; destroy: no copy kept
  bool push = true;                 // use the event source when the server offers one
  std::chrono::milliseconds poll_interval{60'000};
};

// [[email.accounts]]: one address the assistant has.
struct EmailAccountConfig {
  std::string address;                  // lower case
  std::string display_name;             // From: name on its mail; empty: assistant_name
  std::string group = "email";          // the group that answers (created when missing)
  std::vector<std::string> allow_from;  // addresses, "@domain", or "*"; required
  std::string receive = "smtp";         // smtp: [email.receiver]; imap: [email.accounts.imap];
                                        // jmap: [email.accounts.jmap]
  std::string send = "smtp";            // smtp: [email.accounts.smtp]; jmap: [email.accounts.jmap]
  SmtpSubmissionConfig smtp;
  ImapAccountConfig imap;
  JmapAccountConfig jmap;
};

struct EmailConfig {
  EmailReceiverConfig receiver;
  std::vector<EmailAccountConfig> accounts;
  std::size_t max_attachment_bytes = 10 * 1024 * 1024;
  std::size_t max_attachments = 10;
  std::size_t reply_limit = 10;  // replies per correspondent per hour
};

struct Config {
  std::filesystem::path data_dir = "data";  // relative paths are relative to the cwd
  std::string assistant_name = "Andy";      // the default trigger is "@<assistant_name>"
  std::string timezone;                     // IANA name for cron and local times; empty: system
  ApiConfig api;
  LogConfig log;
  StoreConfig store;
  AgentConfig agent;
  ModelConfig model;
  EmailConfig email;

  std::filesystem::path database_file() const { return data_dir / "switchboard.db"; }
};

// Loads `file` over the built-in defaults. Errors name the file, line and key:
// "switchboard.toml:12: unknown key 'api.lissen'", "...:3: 'api.max_connections' must be
// a positive integer (got 'many')", "...:4: 'api.token_env' names SWITCHBOARD_TOKEN, which
// is not set".
// Every problem in the file is reported, one per line of the message, in file order; an
// unreadable file gives "cannot read config file <path>: <reason>". Never throws. Reads the
// environment (for `token_env`), so do not call it while another thread calls setenv.
// `purpose` client: for the commands that only talk to the API (status, send, groups, ...):
// a [model] api_key_env naming an unset variable is not an error there, since they never use
// the model key (the daemon's service environment may hold it where a shell does not).
enum class ConfigPurpose { daemon, client };
Result<Config> load_config(const std::filesystem::path& file,
                           ConfigPurpose purpose = ConfigPurpose::daemon);

// The same, from TOML text (`origin` names it in errors). Used by load_config and tests.
Result<Config> parse_config(std::string_view toml_text, const std::string& origin,
                            ConfigPurpose purpose = ConfigPurpose::daemon);

// Parses "host:port", "[v6]:port" or ":port" (host 127.0.0.1). nullopt if malformed: no
// port, a port outside 1..65535, an IPv6 address without brackets, a bracketed host that is
// not an IPv6 address, or a host with characters other than letters, digits, '.', '-', '_'.
// The host may be a name; the loader further requires an IP address or "localhost" for
// [api] listen, because the server binds without resolving names.
struct HostPort {
  std::string host;
  std::uint16_t port;
};
std::optional<HostPort> parse_host_port(std::string_view text);

// Whether `host` is a loopback address or "localhost" (listening elsewhere needs a token):
// "localhost" (any case), 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. Anything else,
// including names and unparseable text, is not.
bool is_loopback_host(std::string_view host);

}  // namespace sb

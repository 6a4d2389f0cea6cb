#pragma once
// The model proxy: each sandbox gets a unix socket on which its agent speaks plain HTTP/1.1
// to the model API (Anthropic Messages, OpenAI-compatible chat completions, model lists).
// The host forwards the requests on its list (check_request: the methods and paths of the
// provider's API that agents use) to the configured provider, adding the API key on the way
// out, so the key never enters a sandbox; anything else is refused before it goes upstream.
// Responses, streams included, are relayed as they arrive, and the token usage they report
// is handed to a sink per group. See docs/model-proxy.md for what an agent sees.

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "host/usage.h"

namespace sb::host {

struct ProxyOptions {
  using Provider = ModelProvider;
  Provider provider = Provider::anthropic;
  // scheme://host[:port][/prefix], scheme http or https. The agent's request target is
  // appended to the prefix, except that a prefix ending in "/v1" and a target starting with
  // "/v1/" share that segment: "https://api.openai.com" and "https://api.openai.com/v1" both
  // send "/v1/chat/completions" to "https://api.openai.com/v1/chat/completions".
  std::string base_url;
  // Sent as "x-api-key" (anthropic) or "Authorization: Bearer" (openai); empty sends none
  // (local models). Never logged, never in an error message.
  std::string api_key;
  std::string anthropic_version = "2023-06-01";  // sent when the agent sends none
  // Resolving, connecting and the TLS handshake together.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  // From sending the request upstream to the last byte of the response (streams included).
  std::chrono::milliseconds response_timeout{std::chrono::minutes(10)};
  // An agent connection waiting for (or sending) its next request this long is closed.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(2)};
  std::size_t max_request_bytes = 32u << 20;  // request body; over it the agent gets 413
  std::size_t max_header_bytes = 60u << 10;   // request and response headers; at most
                                              // kMaxHttpHeaderBytes (common/http_limits.h)
  unsigned socket_mode = 0600;                // 0660 when the sandbox runs as another user
};

// Called on the event-loop thread after each response that reported token usage.
using UsageSink = std::function<void(const std::string& group, const TokenUsage&)>;
// Called on the event-loop thread before each request is forwarded: a reason when the
// group may not spend more tokens (the agent then gets 429 and the provider sees nothing),
// nullopt to go ahead.
using BudgetCheck = std::function<std::optional<std::string>(const std::string& group)>;

// The upstream a base_url names. Error: "model proxy base_url 'x': ..." saying what is wrong.
struct UpstreamUrl {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string prefix;  // "" or "/path" without a trailing slash
};
Result<UpstreamUrl> parse_base_url(std::string_view base_url);

// The target sent upstream for the agent's `target` (origin-form, starting with '/'), by the
// rule stated at ProxyOptions::base_url.
std::string upstream_target(std::string_view prefix, std::string_view target);

// Whether the proxy forwards a request, decided from its method and target alone.
struct RequestCheck {
  enum class Verdict {
    forward,
    bad_target,          // 400: not a plain path (see check_request)
    not_found,           // 404: a path that is not on the provider's list
    method_not_allowed,  // 405: a method the proxy never forwards, or one the path does not take
  };
  Verdict verdict = Verdict::forward;
  std::string reason;  // a refusal's cause, naming the target (loggable()); safe to log and show
  std::string allow;   // method_not_allowed on a listed path: its methods ("POST"); else ""
};

// Forwarded: exactly the (method, path) pairs of `provider`'s list, matched by parsing the
// target into segments: anthropic POST /v1/messages, POST /v1/messages/count_tokens,
// GET /v1/models, GET /v1/models/<id>; openai POST /v1/chat/completions,
// POST /v1/completions, POST /v1/embeddings, GET /v1/models, GET /v1/models/<id>. A model
// <id> is one segment of letters, digits and "._:@-" starting with a letter or digit.
// Methods are case-sensitive. Refused in this order: bad_target for a target that is not
// origin-form (absolute-form, authority-form, "*"), has a query or fragment, a character
// outside RFC 3986's path characters (control characters, NUL, backslash, space, non-ASCII),
// malformed percent-encoding, an empty segment ("//", a trailing "/"), a "." or ".." segment
// (also percent-encoded), or an encoded slash or backslash ("%2f", "%5c"); then
// method_not_allowed for any method but GET and POST; then not_found for an unlisted path;
// then method_not_allowed when the path takes another method.
RequestCheck check_request(ModelProvider provider, std::string_view method,
                           std::string_view target);

// `text` from an agent (a method, a target) made fit for one log line or error message:
// printable ASCII kept, other bytes as \xNN, cut after `max` bytes with the rest counted.
std::string loggable(std::string_view text, std::size_t max = 120);

class ModelProxy {
 public:
  // Nothing listens until open(). The sink and the check may be empty (no accounting, no
  // budget). A bad base_url is reported by open().
  ModelProxy(boost::asio::any_io_executor executor, ProxyOptions options, UsageSink sink,
             BudgetCheck budget);
  // Stops everything (as stop()); requests still running end at their next step, and the
  // event loop may run them out after the object is gone. Destroy on the event-loop thread,
  // before the io_context.
  ~ModelProxy();
  ModelProxy(const ModelProxy&) = delete;
  ModelProxy& operator=(const ModelProxy&) = delete;

  // Listens for `group`'s agent on a unix socket at `socket_path`: creates missing parent
  // directories (0700), replaces a stale socket file there, sets the socket's mode to
  // options.socket_mode. Returns true. Error (nothing listens) when the base_url is invalid,
  // the group already has a socket, the path is too long for a unix socket, something other
  // than a socket is in the way, or bind/listen fail; the message names the path.
  // Call on the event-loop thread.
  Result<bool> open(const std::string& group, const std::filesystem::path& socket_path);

  // Stops listening for `group` and removes its socket file. Requests in flight finish;
  // their connections then close, and idle connections close now. No-op for an unknown
  // group. Call on the event-loop thread.
  void close(const std::string& group);

  // Closes every socket and cuts every connection and upstream request now. After it the
  // sink and the budget check are never called again. Call on the event-loop thread.
  void stop();

  struct Stats {
    std::uint64_t requests = 0;         // requests read from agents
    std::uint64_t upstream_errors = 0;  // answered 502/504 or cut off mid-response
    std::uint64_t refused_budget = 0;   // answered 429 by the budget check
    std::uint64_t refused_request = 0;  // answered 400/404/405 by check_request
  };
  // Safe from any thread.
  Stats stats() const;

 private:
  // Shared with the coroutines serving connections, so that they can outlive this object.
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sb::host

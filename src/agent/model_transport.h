#pragma once
// One HTTP/1.1 exchange with the host's model proxy over its unix socket: the agent's only
// way out of the sandbox (docs/model-proxy.md). Blocking, for the single-threaded agent.
// One connection per request (`Connection: close`): connecting to a local socket costs next
// to nothing beside a model call, and no stale keep-alive connection can eat a request.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sb::agent {

struct TransportRequest {
  std::filesystem::path socket;  // the proxy's unix socket
  std::string target;            // "/v1/messages"
  std::string body;              // JSON, sent with Content-Type application/json
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers
  // The whole exchange: connecting, sending, and reading the complete response.
  std::chrono::milliseconds timeout{300'000};
  std::size_t max_body_bytes = 32u << 20;    // response body
  std::size_t max_header_bytes = 64u << 10;  // response header
};

struct TransportReply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // as received
  std::string body;

  // The value of the first header named `name` (case-insensitive); "" when absent.
  std::string header(std::string_view name) const;
};

struct TransportFailure {
  enum class Kind {
    unreachable,  // could not connect (no socket, refused, path too long)
    dropped,      // the connection broke or closed before the response was complete
    timeout,      // the exchange did not finish within TransportRequest::timeout
    too_large,    // the response body or header is over its limit
    malformed,    // the response is not valid HTTP/1.1
  };
  Kind kind = Kind::dropped;
  std::string message;  // what went wrong, e.g. "cannot connect to /run/…/model.sock: …"
};

using TransportResult = std::variant<TransportReply, TransportFailure>;

// POSTs request.body to request.target over the unix socket and returns the complete
// response, whatever its status, or a failure saying what went wrong. Never waits longer than
// request.timeout (plus the time to tear the connection down) and never holds more than the
// limits. Uses its own io_context: safe from any thread, no shared state.
TransportResult post_json(const TransportRequest& request);

}  // namespace sb::agent

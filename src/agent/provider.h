#pragma once
// The built-in agent's model providers: one call of the model, through the host's model proxy
// (docs/model-proxy.md), in the Anthropic Messages or the OpenAI chat completions format, with
// the retries a flaky provider needs and errors a person can act on.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "agent/conversation.h"
#include "common/result.h"

namespace sb::agent {

struct ProviderOptions {
  std::string kind;              // "anthropic" | "openai"
  std::filesystem::path socket;  // the proxy's unix socket ($SWITCHBOARD_MODEL_SOCKET)
  std::string default_model;     // used when ModelRequest::model is empty; "" for the codec's
  std::chrono::milliseconds request_timeout{300'000};  // one HTTP exchange
  // Further attempts after the first, 0 to 100.
  int max_retries = 3;
  // How the client waits between attempts; empty: std::this_thread::sleep_for.
  std::function<void(std::chrono::milliseconds)> sleep;
  // Told about each retry before its wait ("HTTP 529 overloaded_error: …; retrying in 2 s");
  // may be empty.
  std::function<void(const std::string&)> notice;
};

class ModelClient {
 public:
  virtual ~ModelClient() = default;

  // Sends the request and returns the model's answer. Blocks; one call at a time.
  //
  // Retries, up to max_retries times: 429, 500, 502, 503, 504 and 529 after the answer's
  // retry-after (seconds, at most 60) or else the backoff, unless the answer says
  // x-should-retry: false (the proxy's budget refusal); a connection that broke or could not
  // be made after the backoff. The backoff is 1 s, 2 s, 4 s, … (at most 60 s). Never retried:
  // any other status (400, 401, 403, 404, 413, …), a timeout, an unreadable answer.
  //
  // Errors, never more than ~500 bytes of the provider's text:
  //   "the model provider refused the request: HTTP 401 authentication_error: invalid x-api-key"
  //   "the model provider failed: HTTP 529 overloaded_error: Overloaded (4 attempts)"
  //   "the model provider could not be reached: <why> (4 attempts)"
  //   "no answer from the model provider within 300 s"
  //   "the model provider's answer could not be read: <why>"
  virtual Result<ModelResponse> complete(const ModelRequest& request) = 0;
};

// A client for options.kind. Error when the kind is unknown ("unknown model provider 'x':
// expected anthropic or openai"), the socket path is empty, the timeout is not positive or
// max_retries is outside 0 to 100. Nothing is connected until complete().
Result<std::unique_ptr<ModelClient>> make_model_client(ProviderOptions options);

}  // namespace sb::agent

#include "agent/provider.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <optional>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "agent/anthropic_codec.h"
#include "agent/codec_support.h"
#include "agent/model_transport.h"
#include "agent/openai_codec.h"

namespace sb::agent {

namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kMaxRetryAfter{60'000};

struct Codec {
  std::string_view target;
  json::object (*encode)(const ModelRequest&, std::string_view default_model);
  Result<ModelResponse> (*decode)(std::string_view body);
  std::string (*describe_error)(std::string_view body);
  std::vector<std::pair<std::string, std::string>> headers;
};

// "300 s", "0.25 s".
std::string seconds(milliseconds duration) {
  if (duration.count() % 1000 == 0) return fmt::format("{} s", duration.count() / 1000);
  return fmt::format("{:g} s", static_cast<double>(duration.count()) / 1000.0);
}

std::string attempts(int count) {
  return count == 1 ? "1 attempt" : std::to_string(count) + " attempts";
}

// 1 s, 2 s, 4 s, … after the first, second, third attempt; never more than a minute.
milliseconds backoff(int attempt) {
  return std::min(milliseconds(1000LL << std::min(attempt - 1, 6)), kMaxRetryAfter);
}

// Retry-After in seconds (an integer, or a decimal some servers send), capped at a minute.
// An HTTP date or anything else unreadable yields nullopt: the caller's backoff applies.
std::optional<milliseconds> retry_after(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  double secs = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), secs);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
      !std::isfinite(secs) || secs < 0) {
    return std::nullopt;
  }
  if (secs * 1000 >= static_cast<double>(kMaxRetryAfter.count())) return kMaxRetryAfter;
  return milliseconds(static_cast<milliseconds::rep>(std::ceil(secs * 1000)));
}

bool server_trouble(int status) {
  return status == 500 || status == 502 || status == 503 || status == 504 || status == 529;
}

class HttpModelClient final : public ModelClient {
 public:
  HttpModelClient(ProviderOptions options, Codec codec)
      : options_(std::move(options)), codec_(std::move(codec)) {
    if (!options_.sleep) {
      options_.sleep = [](milliseconds duration) { std::this_thread::sleep_for(duration); };
    }
  }

  Result<ModelResponse> complete(const ModelRequest& request) override {
    TransportRequest http;
    http.socket = options_.socket;
    http.target = codec_.target;
    http.body = json::serialize(codec_.encode(request, options_.default_model));
    http.headers = codec_.headers;
    http.timeout = options_.request_timeout;
    const int allowed = options_.max_retries + 1;

    for (int attempt = 1;; ++attempt) {
      const bool last = attempt >= allowed;
      TransportResult result = post_json(http);
      std::string problem;  // why this attempt failed, when it is worth another
      std::optional<milliseconds> wait;

      if (const auto* failure = std::get_if<TransportFailure>(&result)) {
        switch (failure->kind) {
          case TransportFailure::Kind::timeout:
            return make_error("no answer from the model provider within " +
                              seconds(options_.request_timeout));
          case TransportFailure::Kind::too_large:
          case TransportFailure::Kind::malformed:
            return codec::unreadable(failure->message);
          case TransportFailure::Kind::unreachable:
          case TransportFailure::Kind::dropped:
            if (last) {
              return make_error("the model provider could not be reached: " + failure->message +
                                "; gave up after " + attempts(attempt));
            }
            problem = failure->message;
            break;
        }
      } else {
        const auto& reply = std::get<TransportReply>(result);
        if (reply.status >= 200 && reply.status < 300) return codec_.decode(reply.body);
        const std::string detail = codec_.describe_error(reply.body);
        const std::string status =
            "HTTP " + std::to_string(reply.status) + (detail.empty() ? "" : " " + detail);
        const bool retryable = reply.status == 429 || server_trouble(reply.status);
        if (!retryable || boost::beast::iequals(reply.header("x-should-retry"), "false")) {
          return make_error("the model provider refused the request: " + status);
        }
        if (last) {
          return make_error((reply.status == 429 ? "the model provider kept limiting requests: "
                                                 : "the model provider failed: ") +
                            status + "; gave up after " + attempts(attempt));
        }
        problem = status;
        wait = retry_after(reply.header("retry-after"));
      }

      const milliseconds pause = wait.value_or(backoff(attempt));
      if (options_.notice) {
        options_.notice(problem + "; retrying in " + seconds(pause) + " (attempt " +
                        std::to_string(attempt + 1) + " of " + std::to_string(allowed) + ")");
      }
      options_.sleep(pause);
    }
  }

 private:
  ProviderOptions options_;
  Codec codec_;
};

}  // namespace

Result<std::unique_ptr<ModelClient>> make_model_client(ProviderOptions options) {
  std::optional<Codec> codec;
  if (options.kind == "anthropic") {
    codec = Codec{anthropic::kTarget,
                  &anthropic::encode,
                  &anthropic::decode,
                  &anthropic::describe_error,
                  {{"anthropic-version", std::string(anthropic::kApiVersion)}}};
  } else if (options.kind == "openai") {
    codec = Codec{openai::kTarget, &openai::encode, &openai::decode, &openai::describe_error, {}};
  } else {
    return make_error("unknown model provider '" + codec::excerpt(options.kind, 100) +
                      "': expected anthropic or openai");
  }
  if (options.socket.empty()) {
    return make_error("no socket for the model provider: set SWITCHBOARD_MODEL_SOCKET");
  }
  if (options.request_timeout <= milliseconds::zero()) {
    return make_error("the model request timeout must be positive");
  }
  if (options.max_retries < 0 || options.max_retries > 100) {
    return make_error("the number of model request retries must be between 0 and 100");
  }
  return std::unique_ptr<ModelClient>(
      std::make_unique<HttpModelClient>(std::move(options), std::move(*codec)));
}

}  // namespace sb::agent

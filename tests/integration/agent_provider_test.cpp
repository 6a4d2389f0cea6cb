// The agent's model clients (src/agent/provider.h) the way the agent uses them: over the unix
// socket of the real host::ModelProxy (in-process, on its own thread) to the scripted mock
// model server (tests/support/mock_model_server.py), for both providers. The transport's own
// failures (a peer that never answers, drops, trickles, or sends too much) are shown against
// a raw unix socket server in the test. Waits between retries go through the injected sleep,
// which records them instead of waiting.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <functional>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "agent/model_transport.h"
#include "agent/provider.h"
#include "host/model_proxy.h"
#include "support/mock_model_server.h"
#include "support/run_on_loop.h"
#include "support/temp_dir.h"

namespace sb::agent {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace json = boost::json;
using host::ModelProvider;
using std::chrono::milliseconds;
using test::MockServer;
using namespace std::chrono_literals;

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// A host::ModelProxy on its own event-loop thread, as the daemon runs it.
class ProxyThread {
 public:
  ProxyThread(host::ProxyOptions options, host::BudgetCheck budget = {})
      : work_(io_.get_executor()) {
    proxy_.emplace(io_.get_executor(), std::move(options), host::UsageSink{}, std::move(budget));
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ProxyThread() {
    on_loop([this] {
      proxy_.reset();
      return true;
    });
    work_.reset();
    thread_.join();
  }
  Result<bool> open(const fs::path& socket) {
    return on_loop([&] { return proxy_->open("main", socket); });
  }

 private:
  template <class F>
  auto on_loop(F f) -> decltype(f()) {
    return test::run_on_loop(io_, std::move(f));
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::optional<host::ModelProxy> proxy_;
  std::thread thread_;
};

class AgentProviderTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string kind() const { return GetParam(); }
  bool anthropic() const { return kind() == "anthropic"; }
  fs::path socket() const { return dir_.path() / "ipc" / "main" / "model.sock"; }

  // The proxy in front of `mock`, listening on socket().
  std::unique_ptr<ProxyThread> proxy_for(const MockServer& mock, host::BudgetCheck budget = {}) {
    host::ProxyOptions options;
    options.provider = anthropic() ? ModelProvider::anthropic : ModelProvider::openai;
    options.base_url = mock.url();
    options.api_key = "sk-host-key";
    options.connect_timeout = 5s;
    options.response_timeout = 60s;
    auto proxy = std::make_unique<ProxyThread>(options, std::move(budget));
    auto opened = proxy->open(socket());
    EXPECT_TRUE(opened) << opened.error().message;
    return proxy;
  }

  ProviderOptions options() {
    ProviderOptions o;
    o.kind = kind();
    o.socket = socket();
    o.request_timeout = 20s;  // a hang guard; the timeout test sets its own
    o.sleep = [this](milliseconds d) { slept_.push_back(d); };
    o.notice = [this](const std::string& n) { notices_.push_back(n); };
    return o;
  }

  std::unique_ptr<ModelClient> client(ProviderOptions o) {
    auto made = make_model_client(std::move(o));
    EXPECT_TRUE(made) << made.error().message;
    return made ? std::move(made.value()) : nullptr;
  }
  std::unique_ptr<ModelClient> client() { return client(options()); }

  static ModelRequest question(std::string text) {
    ModelRequest request;
    request.system = "Be brief.";
    request.max_tokens = 200;
    request.messages = {{Role::user, {Block::make_text(std::move(text))}}};
    return request;
  }

  test::TempDir dir_;
  std::vector<milliseconds> slept_;
  std::vector<std::string> notices_;
};

INSTANTIATE_TEST_SUITE_P(BothProviders, AgentProviderTest, ::testing::Values("anthropic", "openai"),
                         [](const auto& info) { return info.param; });

TEST_P(AgentProviderTest, TextAnswerComesBackWithUsage) {
  MockServer mock(dir_.path(), R"([{"text": "Hello from the mock",
      "usage": {"input_tokens": 30, "cache_read_input_tokens": 5, "output_tokens": 4}}])");
  ASSERT_NE(mock.port(), 0);
  auto proxy = proxy_for(mock);
  auto response = client()->complete(question("hi"));
  ASSERT_TRUE(response) << response.error().message;

  ASSERT_EQ(response->message.blocks.size(), 1u);
  EXPECT_EQ(response->message.blocks[0].text, "Hello from the mock");
  EXPECT_EQ(response->stop, StopReason::end_turn);
  EXPECT_EQ(response->usage.input_tokens, 35);
  EXPECT_EQ(response->usage.output_tokens, 4);
  EXPECT_EQ(response->model, anthropic() ? "claude-sonnet-4-5" : "gpt-4o-mini");

  auto log = mock.log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["path"], anthropic() ? "/v1/messages" : "/v1/chat/completions");
  const json::object& body = log[0]["body"].as_object();
  EXPECT_EQ(body.at("max_tokens"), 200);
  if (anthropic()) {
    EXPECT_EQ(body.at("system"), "Be brief.");
    EXPECT_EQ(body.at("messages").at(0).at("content").at(0).at("text"), "hi");
  } else {
    EXPECT_EQ(body.at("stream"), false);
    EXPECT_EQ(body.at("messages").at(0).at("role"), "system");
    EXPECT_EQ(body.at("messages").at(1).at("content"), "hi");
  }
  EXPECT_TRUE(slept_.empty());
}

TEST_P(AgentProviderTest, ConfiguredDefaultModelIsUsedWhenTheRequestNamesNone) {
  MockServer mock(dir_.path(), "");
  auto proxy = proxy_for(mock);
  ProviderOptions o = options();
  o.default_model = "house-model";
  auto response = client(o)->complete(question("hi"));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->model, "house-model");
  EXPECT_EQ(mock.log().at(0)["body"].at("model"), "house-model");
}

TEST_P(AgentProviderTest, ToolCallsComeBackAndTheirResultsGoOut) {
  MockServer mock(dir_.path(), R"([
      {"text": "On it.", "tool_use": [
          {"name": "send_message", "input": {"text": "hi"}, "id": "call_given"},
          {"name": "get_time", "input": {}}]},
      {"text": "Sent."}])");
  auto proxy = proxy_for(mock);
  auto model = client();
  ModelRequest request = question("say hi");
  auto first = model->complete(request);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->stop, StopReason::tool_use);
  const auto& blocks = first->message.blocks;
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0].text, "On it.");
  EXPECT_EQ(blocks[1].call.id, "call_given");
  EXPECT_EQ(blocks[1].call.name, "send_message");
  EXPECT_EQ(blocks[1].call.input, (json::object{{"text", "hi"}}));
  EXPECT_EQ(blocks[2].call.name, "get_time");
  EXPECT_FALSE(blocks[2].call.id.empty());

  request.messages.push_back(first->message);
  request.messages.push_back({Role::user,
                              {Block::make_result({blocks[1].call.id, "delivered", false}),
                               Block::make_result({blocks[2].call.id, "no clock", true})}});
  auto second = model->complete(request);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->message.blocks.at(0).text, "Sent.");

  auto log = mock.log();
  ASSERT_EQ(log.size(), 2u);
  const json::array& messages = log[1]["body"].at("messages").as_array();
  if (anthropic()) {
    ASSERT_EQ(messages.size(), 3u);
    const json::value& result = messages[2].at("content").at(1);
    EXPECT_EQ(result.at("type"), "tool_result");
    EXPECT_EQ(result.at("tool_use_id").as_string(), blocks[2].call.id);
    EXPECT_EQ(result.at("is_error"), true);
  } else {
    ASSERT_EQ(messages.size(), 5u);  // system, user, assistant, two tool results
    EXPECT_EQ(messages[2].at("tool_calls").at(0).at("function").at("arguments"),
              R"({"text":"hi"})");
    EXPECT_EQ(messages[3].at("role"), "tool");
    EXPECT_EQ(messages[3].at("tool_call_id"), "call_given");
    EXPECT_EQ(messages[4].at("content"), "Error: no clock");
  }
}

TEST_P(AgentProviderTest, RejectedKeyIsNotRetriedAndSaysWhy) {
  MockServer mock(dir_.path(), R"([{"error": {"status": 401, "type": "authentication_error",
                                              "message": "invalid x-api-key"}}])");
  auto proxy = proxy_for(mock);
  auto response = client()->complete(question("hi"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            "the model provider refused the request: HTTP 401 authentication_error: invalid "
            "x-api-key");
  EXPECT_EQ(mock.log().size(), 1u);
  EXPECT_TRUE(slept_.empty());
}

TEST_P(AgentProviderTest, RateLimitWaitsForRetryAfterThenSucceeds) {
  MockServer mock(dir_.path(), R"([{"error": {"status": 429, "retry_after": 7}},
                                   {"error": {"status": 429, "retry_after": 3600}},
                                   {"text": "finally"}])");
  auto proxy = proxy_for(mock);
  auto response = client()->complete(question("hi"));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->message.blocks.at(0).text, "finally");
  EXPECT_EQ(slept_, (std::vector<milliseconds>{7s, 60s}));  // a long retry-after is capped
  EXPECT_EQ(mock.log().size(), 3u);
  ASSERT_EQ(notices_.size(), 2u);
  EXPECT_TRUE(contains(notices_[0], "HTTP 429")) << notices_[0];
  EXPECT_TRUE(contains(notices_[0], "retrying in 7 s (attempt 2 of 4)")) << notices_[0];
}

TEST_P(AgentProviderTest, OverloadedProviderIsRetriedWithBackoffThenGivenUp) {
  MockServer mock(dir_.path(), R"([{"error": {"status": 529, "type": "overloaded_error",
                                              "message": "Overloaded"}}])");
  auto proxy = proxy_for(mock);
  auto response = client()->complete(question("hi"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            "the model provider failed: HTTP 529 overloaded_error: Overloaded; gave up after 4 "
            "attempts");
  EXPECT_EQ(slept_, (std::vector<milliseconds>{1s, 2s, 4s}));
  EXPECT_EQ(mock.log().size(), 4u);
}

TEST_P(AgentProviderTest, ServerErrorsAndADroppedConnectionAreRetried) {
  MockServer mock(dir_.path(), R"([{"error": {"status": 503}}, {"drop": true},
                                   {"text": "recovered"}])");
  auto proxy = proxy_for(mock);
  auto response = client()->complete(question("hi"));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->message.blocks.at(0).text, "recovered");
  EXPECT_EQ(slept_, (std::vector<milliseconds>{1s, 2s}));
  EXPECT_EQ(mock.log().size(), 3u);
}

TEST_P(AgentProviderTest, BudgetRefusalOfTheProxyIsNotRetried) {
  MockServer mock(dir_.path(), "");
  host::BudgetCheck budget = [](const std::string&) -> std::optional<std::string> {
    return "1000 tokens a day";
  };
  auto proxy = proxy_for(mock, budget);
  auto response = client()->complete(question("hi"));
  ASSERT_FALSE(response);
  const std::string& message = response.error().message;
  EXPECT_TRUE(contains(message, "the model provider refused the request: HTTP 429")) << message;
  EXPECT_TRUE(contains(message, "the token budget of group 'main' is used up: 1000 tokens a day"))
      << message;
  EXPECT_TRUE(slept_.empty());
  EXPECT_TRUE(mock.log().empty());
}

TEST_P(AgentProviderTest, AnswerThatIsNotJsonIsReportedNotRetried) {
  MockServer mock(dir_.path(), R"([{"error": {"status": 200, "body": "<html>oops</html>"}}])");
  auto proxy = proxy_for(mock);
  auto response = client()->complete(question("hi"));
  ASSERT_FALSE(response);
  EXPECT_TRUE(contains(response.error().message,
                       "the model provider's answer could not be read: it is not JSON"))
      << response.error().message;
  EXPECT_TRUE(contains(response.error().message, "<html>oops</html>"));
  EXPECT_EQ(mock.log().size(), 1u);
  EXPECT_TRUE(slept_.empty());
}

TEST_P(AgentProviderTest, AnswerMissingItsContentIsReported) {
  MockServer mock(dir_.path(),
                  R"([{"error": {"status": 200, "body": {"id": "x", "model": "m"}}}])");
  auto proxy = proxy_for(mock);
  auto response = client()->complete(question("hi"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message,
            std::string("the model provider's answer could not be read: it has no ") +
                (anthropic() ? "'content'" : "'choices'"));
}

TEST_P(AgentProviderTest, ProviderThatNeverAnswersEndsInATimeout) {
  MockServer mock(dir_.path(), R"([{"delay": 30, "text": "too late"}])");
  auto proxy = proxy_for(mock);
  ProviderOptions o = options();
  o.request_timeout = 500ms;
  auto response = client(o)->complete(question("hi"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().message, "no answer from the model provider within 0.5 s");
  EXPECT_EQ(mock.log().size(), 1u);
  EXPECT_TRUE(slept_.empty());
}

TEST_P(AgentProviderTest, MissingProxySocketIsRetriedThenReported) {
  ProviderOptions o = options();
  o.max_retries = 1;
  auto response = client(o)->complete(question("hi"));
  ASSERT_FALSE(response);
  EXPECT_TRUE(contains(response.error().message, "the model provider could not be reached: "))
      << response.error().message;
  EXPECT_TRUE(contains(response.error().message, socket().string()));
  EXPECT_TRUE(contains(response.error().message, "gave up after 2 attempts"));
  EXPECT_EQ(slept_, (std::vector<milliseconds>{1s}));
}

// make_model_client ------------------------------------------------------------------------------

TEST(MakeModelClient, RejectsAnUnknownKind) {
  ProviderOptions o;
  o.kind = "gemini";
  o.socket = "/run/switchboard/model.sock";
  auto made = make_model_client(o);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().message, "unknown model provider 'gemini': expected anthropic or openai");
}

TEST(MakeModelClient, RejectsMissingSocketAndBadLimits) {
  ProviderOptions o;
  o.kind = "openai";
  EXPECT_FALSE(make_model_client(o));
  o.socket = "/run/switchboard/model.sock";
  EXPECT_TRUE(make_model_client(o));
  o.request_timeout = 0ms;
  EXPECT_FALSE(make_model_client(o));
  o.request_timeout = 1s;
  o.max_retries = -1;
  EXPECT_FALSE(make_model_client(o));
}

// The transport against a raw peer ---------------------------------------------------------------

// A unix socket server that hands each accepted connection to `serve` on its own thread.
class RawServer {
 public:
  RawServer(const fs::path& path, std::function<void(int)> serve) : serve_(std::move(serve)) {
    listener_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 8) != 0) {
      ADD_FAILURE() << "cannot listen on " << path;
    }
    thread_ = std::thread([this] {
      for (;;) {
        const int fd = ::accept(listener_, nullptr, nullptr);
        if (fd < 0) return;
        connections_.emplace_back([this, fd] {
          serve_(fd);
          ::close(fd);
        });
      }
    });
  }
  ~RawServer() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    for (auto& c : connections_) c.join();
    ::close(listener_);
  }
  bool stopping() const { return stopping_; }

 private:
  std::function<void(int)> serve_;
  int listener_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::vector<std::thread> connections_;
};

// Reads what the client sends until it closes the connection (or the server stops).
void read_until_closed(int fd) {
  char buffer[4096];
  while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
  }
}

void send_text(int fd, std::string_view text) {
  ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
}

// Reads the request header and whatever of the body came with it.
void read_request(int fd) {
  std::string seen;
  char buffer[4096];
  while (seen.find("\r\n\r\n") == std::string::npos) {
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return;
    seen.append(buffer, static_cast<std::size_t>(n));
  }
}

class ModelTransportTest : public ::testing::Test {
 protected:
  TransportRequest request(milliseconds timeout = 10s) {
    TransportRequest r;
    r.socket = dir_.path() / "raw.sock";
    r.target = "/v1/messages";
    r.body = R"({"model": "m"})";
    r.timeout = timeout;
    return r;
  }
  fs::path path() const { return dir_.path() / "raw.sock"; }

  test::TempDir dir_;
};

TransportFailure::Kind failure_kind(const TransportResult& result) {
  const auto* failure = std::get_if<TransportFailure>(&result);
  EXPECT_NE(failure, nullptr) << "the exchange succeeded";
  return failure ? failure->kind : TransportFailure::Kind::malformed;
}

TEST_F(ModelTransportTest, PostsTheBodyAndReturnsStatusHeadersAndBody) {
  std::promise<std::string> received;
  RawServer server(path(), [&](int fd) {
    std::string seen;
    char buffer[4096];
    while (seen.find("{\"model\": \"m\"}") == std::string::npos) {
      const auto n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      seen.append(buffer, static_cast<std::size_t>(n));
    }
    received.set_value(seen);
    send_text(fd, "HTTP/1.1 418 I'm a teapot\r\nRetry-After: 3\r\nContent-Length: 5\r\n\r\nshort");
  });
  TransportRequest r = request();
  r.headers = {{"anthropic-version", "2023-06-01"}};
  auto result = post_json(r);
  const auto* reply = std::get_if<TransportReply>(&result);
  ASSERT_NE(reply, nullptr) << std::get<TransportFailure>(result).message;
  EXPECT_EQ(reply->status, 418);
  EXPECT_EQ(reply->header("retry-after"), "3");
  EXPECT_EQ(reply->body, "short");
  const std::string sent = received.get_future().get();
  EXPECT_TRUE(contains(sent, "POST /v1/messages HTTP/1.1\r\n")) << sent;
  EXPECT_TRUE(contains(sent, "anthropic-version: 2023-06-01\r\n")) << sent;
  EXPECT_TRUE(contains(sent, "Content-Type: application/json\r\n")) << sent;
}

TEST_F(ModelTransportTest, PeerThatAcceptsAndNeverAnswersEndsInTimeout) {
  RawServer server(path(), read_until_closed);
  EXPECT_EQ(failure_kind(post_json(request(300ms))), TransportFailure::Kind::timeout);
}

TEST_F(ModelTransportTest, DeadlineCoversTheWholeExchangeNotEachRead) {
  RawServer server(path(), [&server](int fd) {
    read_request(fd);
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    // One byte at a time: each read succeeds quickly, the whole never completes.
    while (!server.stopping() && ::send(fd, "x", 1, MSG_NOSIGNAL) == 1) {
      std::this_thread::sleep_for(20ms);
    }
  });
  EXPECT_EQ(failure_kind(post_json(request(500ms))), TransportFailure::Kind::timeout);
}

TEST_F(ModelTransportTest, ConnectionClosedBeforeTheAnswerIsDropped) {
  RawServer server(path(), read_request);
  EXPECT_EQ(failure_kind(post_json(request())), TransportFailure::Kind::dropped);
}

TEST_F(ModelTransportTest, AnswerCutShortIsDropped) {
  RawServer server(path(), [](int fd) {
    read_request(fd);
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":");
  });
  EXPECT_EQ(failure_kind(post_json(request())), TransportFailure::Kind::dropped);
}

TEST_F(ModelTransportTest, BodyOverTheLimitIsRefusedWithoutReadingIt) {
  RawServer server(path(), [](int fd) {
    read_request(fd);
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n");
    read_until_closed(fd);
  });
  TransportRequest r = request();
  r.max_body_bytes = 1024;
  auto result = post_json(r);
  EXPECT_EQ(failure_kind(result), TransportFailure::Kind::too_large);
  EXPECT_EQ(std::get<TransportFailure>(result).message, "the response body is over 1024 bytes");
}

TEST_F(ModelTransportTest, AnswerSentBeforeThePeerStoppedReadingIsStillRead) {
  RawServer server(path(), [](int fd) {
    read_request(fd);
    send_text(fd, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo much");
  });
  TransportRequest r = request();
  r.body = std::string(16u << 20, ' ');  // far more than the socket buffers hold
  auto result = post_json(r);
  const auto* reply = std::get_if<TransportReply>(&result);
  ASSERT_NE(reply, nullptr) << std::get<TransportFailure>(result).message;
  EXPECT_EQ(reply->status, 413);
  EXPECT_EQ(reply->body, "too much");
}

TEST_F(ModelTransportTest, GarbageInsteadOfHttpIsMalformed) {
  RawServer server(path(), [](int fd) {
    read_request(fd);
    send_text(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  });
  EXPECT_EQ(failure_kind(post_json(request())), TransportFailure::Kind::malformed);
}

TEST_F(ModelTransportTest, MissingSocketIsUnreachable) {
  auto result = post_json(request());
  EXPECT_EQ(failure_kind(result), TransportFailure::Kind::unreachable);
}

TEST_F(ModelTransportTest, DroppedConnectionsAreRetriedByTheClient) {
  std::atomic<int> connections{0};
  RawServer server(path(), [&](int fd) {
    read_request(fd);
    if (++connections < 3) return;  // closes without answering
    const std::string body = R"({"content": [{"type": "text", "text": "third time"}]})";
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                      body);
  });
  std::vector<milliseconds> slept;
  ProviderOptions o;
  o.kind = "anthropic";
  o.socket = path();
  o.request_timeout = 10s;
  o.sleep = [&](milliseconds d) { slept.push_back(d); };
  auto model = make_model_client(o);
  ASSERT_TRUE(model) << model.error().message;
  ModelRequest question;
  question.messages = {{Role::user, {Block::make_text("hi")}}};
  auto response = model.value()->complete(question);
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->message.blocks.at(0).text, "third time");
  EXPECT_EQ(slept, (std::vector<milliseconds>{1s, 2s}));
}

}  // namespace
}  // namespace sb::agent

// The model proxy against the scripted mock model server (tests/support/mock_model_server.py):
// an "agent" in the test speaks HTTP over the proxy's unix socket; the mock's request log
// shows what reached the provider.

#include "host/model_proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "daemon_fixture.h"
#include "support/mock_model_server.h"
#include "support/run_on_loop.h"
#include "support/temp_dir.h"

extern char** environ;

namespace sb::host {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using test::MockServer;
using test::slurp;
namespace http = beast::http;
namespace fs = std::filesystem;
namespace json = boost::json;
using local = asio::local::stream_protocol;
using namespace std::chrono_literals;

constexpr auto kWait = 10s;  // a safety net against hangs, never a pass condition
const std::string kHostKey = "sk-host-secret-0123456789";

struct Reported {
  std::string group;
  TokenUsage usage;
};

// A ModelProxy on its own event-loop thread.
class ProxyHarness {
 public:
  explicit ProxyHarness(ProxyOptions options, BudgetCheck budget = {}) : work_(io_.get_executor()) {
    auto sink = [this](const std::string& group, const TokenUsage& usage) {
      std::lock_guard lock(mutex_);
      reported_.push_back({group, usage});
      changed_.notify_all();
    };
    proxy_.emplace(io_.get_executor(), std::move(options), sink, std::move(budget));
    thread_ = std::thread([this] { io_.run(); });
  }
  // Runs f on the event-loop thread and waits for it.
  template <class F>
  auto on_loop(F f) -> decltype(f()) {
    return test::run_on_loop(io_, std::move(f));
  }

  // Destroying the proxy must end all its work: the loop then runs out and the thread ends.
  ~ProxyHarness() {
    on_loop([this] { proxy_.reset(); });
    work_.reset();
    thread_.join();
  }

  Result<bool> open(const std::string& group, const fs::path& path) {
    return on_loop([&] { return proxy_->open(group, path); });
  }
  void close(const std::string& group) {
    on_loop([&] { proxy_->close(group); });
  }
  void stop() {
    on_loop([&] { proxy_->stop(); });
  }
  ModelProxy::Stats stats() {
    return on_loop([&] { return proxy_->stats(); });
  }

  // Waits until `count` usages were reported; returns them.
  std::vector<Reported> reported(std::size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, kWait, [&] { return reported_.size() >= count; });
    return reported_;
  }
  std::size_t reported_now() {
    std::lock_guard lock(mutex_);
    return reported_.size();
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::optional<ModelProxy> proxy_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Reported> reported_;
};

// The agent's side: HTTP/1.1 over the unix socket, every step bounded by kWait.
class AgentClient {
 public:
  explicit AgentClient(const fs::path& socket) : stream_(io_) {
    stream_.expires_after(kWait);
    stream_.async_connect(local::endpoint(socket.string()),
                          [this](beast::error_code ec) { ec_ = ec; });
    run();
    connected_ = !ec_;
  }
  bool connected() const { return connected_; }

  http::response<http::string_body> call(http::request<http::string_body> req) {
    send(std::move(req));
    http::response<http::string_body> res;
    stream_.expires_after(kWait);
    http::async_read(stream_, buffer_, res,
                     [this](beast::error_code ec, std::size_t) { ec_ = ec; });
    run();
    return res;
  }

  void send(http::request<http::string_body> req) {
    req.prepare_payload();
    stream_.expires_after(kWait);
    http::async_write(stream_, req, [this](beast::error_code ec, std::size_t) { ec_ = ec; });
    run();
  }

  // Streaming: the header, then the body piece by piece as the proxy relays it.
  void read_header() {
    parser_.emplace();
    parser_->body_limit(boost::none);
    stream_.expires_after(kWait);
    http::async_read_header(stream_, buffer_, *parser_,
                            [this](beast::error_code ec, std::size_t) { ec_ = ec; });
    run();
  }
  // Reads more of the body; false at its end or on an error.
  bool read_more() {
    if (parser_->is_done()) return false;
    stream_.expires_after(kWait);
    http::async_read_some(stream_, buffer_, *parser_,
                          [this](beast::error_code ec, std::size_t) { ec_ = ec; });
    run();
    return !ec_;
  }
  http::response_parser<http::string_body>& parser() { return *parser_; }
  const beast::error_code& error() const { return ec_; }

 private:
  void run() {
    io_.restart();
    io_.run();
  }

  asio::io_context io_;
  beast::basic_stream<local> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  beast::error_code ec_;
  bool connected_ = false;
};

// An upstream that records every byte sent to it and answers each connection with a fixed
// 200, so that a test can tell whether anything at all was forwarded (the mock model server
// logs only the requests it understands, never a CONNECT or a made-up method).
class RecordingUpstream {
 public:
  RecordingUpstream() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~RecordingUpstream() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_; }
  std::string received() {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd ready{fd_, POLLIN, 0};
      if (::poll(&ready, 1, 50) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections_;
      const timeval limit{2, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
      std::string request;
      char piece[4096];
      // The header, then as much body as Content-Length says (the proxy always sets it).
      std::size_t wanted = std::string::npos;
      while (request.size() < wanted) {
        const auto n = ::recv(c, piece, sizeof piece, 0);
        if (n <= 0) break;
        request.append(piece, static_cast<std::size_t>(n));
        const auto end = request.find("\r\n\r\n");
        if (end != std::string::npos && wanted == std::string::npos) {
          const auto at = request.find("Content-Length: ");
          wanted = end + 4 + (at < end ? std::stoul(request.substr(at + 16)) : 0);
        }
      }
      {
        std::lock_guard lock(mutex_);
        received_ += request;
      }
      constexpr std::string_view kAnswer =
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
          "Connection: close\r\n\r\n{}";
      [[maybe_unused]] auto sent = ::send(c, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::mutex mutex_;
  std::string received_;
};

http::request<http::string_body> post(const std::string& target, json::value body) {
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::content_type, "application/json");
  req.body() = json::serialize(body);
  return req;
}

json::value anthropic_body(bool stream = false) {
  return json::object{{"model", "claude-test"},
                      {"max_tokens", 100},
                      {"stream", stream},
                      {"messages", json::array{json::object{{"role", "user"}, {"content", "hi"}}}}};
}

json::value openai_body(bool stream = false) {
  json::object body{{"model", "gpt-test"},
                    {"stream", stream},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", "hi"}}}}};
  if (stream) body["stream_options"] = json::object{{"include_usage", true}};
  return body;
}

std::string header(const json::object& logged, std::string_view name) {
  const auto& headers = logged.at("headers").as_object();
  auto it = headers.find(name);
  return it == headers.end() ? "<absent>" : std::string(it->value().as_string());
}

class ModelProxyTest : public ::testing::Test {
 protected:
  ProxyOptions options(ModelProvider provider, const MockServer& mock) {
    ProxyOptions o;
    o.provider = provider;
    o.base_url = mock.url();
    o.api_key = kHostKey;
    o.connect_timeout = 2s;
    o.response_timeout = 10s;
    return o;
  }
  fs::path socket() const { return dir_.path() / "ipc" / "main" / "model.sock"; }

  test::TempDir dir_;
};

TEST_F(ModelProxyTest, AnthropicRequestReachesTheProviderWithOnlyTheHostKey) {
  MockServer mock(dir_.path(),
                  R"([{"text": "Hello from the mock",
                       "usage": {"input_tokens": 21, "cache_read_input_tokens": 100,
                                 "output_tokens": 7}}])");
  ASSERT_NE(mock.port(), 0);
  ProxyHarness proxy(options(ModelProvider::anthropic, mock));
  ASSERT_TRUE(proxy.open("main", socket()));

  AgentClient agent(socket());
  ASSERT_TRUE(agent.connected()) << agent.error().message();
  auto req = post("/v1/messages", anthropic_body());
  req.set("x-api-key", "sk-bogus-from-sandbox");
  req.set(http::field::authorization, "Bearer sk-bogus-from-sandbox");
  req.set("api-key", "sk-bogus");
  req.set(http::field::cookie, "session=stolen");
  req.set(http::field::proxy_authorization, "Basic Ym9ndXM=");
  req.set(http::field::connection, "keep-alive, x-hop");
  req.set("x-hop", "one connection only");
  req.set("anthropic-beta", "tools-2024-04-04");
  auto res = agent.call(req);

  ASSERT_EQ(res.result_int(), 200) << res.body();
  auto answer = json::parse(res.body()).as_object();
  EXPECT_EQ(answer["content"].as_array()[0].as_object()["text"].as_string(), "Hello from the mock");

  auto log = mock.log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["path"].as_string(), "/v1/messages");
  EXPECT_EQ(header(log[0], "x-api-key"), kHostKey);
  EXPECT_EQ(header(log[0], "anthropic-version"), "2023-06-01");
  EXPECT_EQ(header(log[0], "authorization"), "<absent>");
  EXPECT_EQ(header(log[0], "api-key"), "<absent>");
  EXPECT_EQ(header(log[0], "cookie"), "<absent>");
  EXPECT_EQ(header(log[0], "proxy-authorization"), "<absent>");
  EXPECT_EQ(header(log[0], "x-hop"), "<absent>");
  EXPECT_EQ(header(log[0], "anthropic-beta"), "tools-2024-04-04");
  EXPECT_EQ(header(log[0], "host"), "127.0.0.1:" + std::to_string(mock.port()));
  EXPECT_EQ(log[0]["body"], anthropic_body());

  auto reported = proxy.reported(1);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].group, "main");
  EXPECT_EQ(reported[0].usage.input_tokens, 121);
  EXPECT_EQ(reported[0].usage.output_tokens, 7);
  EXPECT_EQ(reported[0].usage.model, "claude-test");
  EXPECT_EQ(proxy.stats().requests, 1u);
}

TEST_F(ModelProxyTest, AgentsAnthropicVersionIsKept) {
  MockServer mock(dir_.path(), "");
  ProxyHarness proxy(options(ModelProvider::anthropic, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  auto req = post("/v1/messages", anthropic_body());
  req.set("anthropic-version", "2099-01-01");
  EXPECT_EQ(agent.call(req).result_int(), 200);
  EXPECT_EQ(header(mock.log().at(0), "anthropic-version"), "2099-01-01");
}

TEST_F(ModelProxyTest, OpenAiRequestCarriesTheHostKeyAsBearer) {
  MockServer mock(dir_.path(), R"([{"text": "ok", "usage": {"input_tokens": 33,
                                                            "output_tokens": 4}}])");
  ProxyHarness proxy(options(ModelProvider::openai, mock));
  ASSERT_TRUE(proxy.open("team", socket()));
  AgentClient agent(socket());
  auto req = post("/v1/chat/completions", openai_body());
  req.set(http::field::authorization, "Bearer sk-bogus-from-sandbox");
  req.set("x-api-key", "sk-bogus-from-sandbox");
  auto res = agent.call(req);
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(json::parse(res.body()).at("choices").at(0).at("message").at("content"), "ok");

  auto log = mock.log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(header(log[0], "authorization"), "Bearer " + kHostKey);
  EXPECT_EQ(header(log[0], "x-api-key"), "<absent>");
  EXPECT_EQ(header(log[0], "anthropic-version"), "<absent>");

  auto reported = proxy.reported(1);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].group, "team");
  EXPECT_EQ(reported[0].usage.input_tokens, 33);
  EXPECT_EQ(reported[0].usage.output_tokens, 4);
}

TEST_F(ModelProxyTest, AnthropicStreamIsRelayedBeforeTheUpstreamFinishes) {
  const fs::path release = dir_.path() / "release";
  MockServer mock(dir_.path(), R"([{"text": "streamed words arrive one by one",
      "usage": {"input_tokens": 40, "cache_creation_input_tokens": 2, "output_tokens": 9},
      "hold": {"after_events": 3, "until_file": ")" +
                                   release.string() + R"(", "timeout": 20}}])");
  ProxyHarness proxy(options(ModelProvider::anthropic, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  agent.send(post("/v1/messages", anthropic_body(true)));
  agent.read_header();
  ASSERT_EQ(agent.parser().get().result_int(), 200);
  EXPECT_EQ(agent.parser().get()[http::field::content_type], "text/event-stream; charset=utf-8");

  // The mock holds the rest of the stream until the release file exists: the first events
  // can only reach us now if the proxy relays them as they come.
  while (agent.parser().get().body().find("content_block_start") == std::string::npos) {
    ASSERT_TRUE(agent.read_more()) << agent.error().message();
  }
  EXPECT_EQ(agent.parser().get().body().find("message_stop"), std::string::npos);
  std::ofstream(release) << "go";
  while (agent.read_more()) {
  }
  ASSERT_TRUE(agent.parser().is_done()) << agent.error().message();
  EXPECT_NE(agent.parser().get().body().find("message_stop"), std::string::npos);
  auto holds = mock.log("hold");
  ASSERT_EQ(holds.size(), 1u);
  EXPECT_EQ(holds[0]["result"].as_string(), "released");

  auto reported = proxy.reported(1);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].usage.input_tokens, 42);
  EXPECT_EQ(reported[0].usage.output_tokens, 9);
}

TEST_F(ModelProxyTest, OpenAiStreamIsRelayedAndItsUsageReported) {
  MockServer mock(dir_.path(), R"([{"text": "a b c", "usage": {"input_tokens": 50,
                                                                "output_tokens": 3}}])");
  ProxyHarness proxy(options(ModelProvider::openai, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  auto res = agent.call(post("/v1/chat/completions", openai_body(true)));
  ASSERT_EQ(res.result_int(), 200);
  EXPECT_NE(res.body().find("\"content\": \"a \""), std::string::npos) << res.body();
  EXPECT_NE(res.body().find("data: [DONE]"), std::string::npos);
  auto reported = proxy.reported(1);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].usage.input_tokens, 50);
  EXPECT_EQ(reported[0].usage.output_tokens, 3);
  EXPECT_EQ(reported[0].usage.model, "gpt-test");
}

TEST_F(ModelProxyTest, StreamCutByTheUpstreamEndsTheAgentConnectionAndKeepsTheInputCount) {
  MockServer mock(dir_.path(), R"([{"text": "never finished", "drop_after_events": 4,
                                    "usage": {"input_tokens": 64, "output_tokens": 5}}])");
  ProxyHarness proxy(options(ModelProvider::anthropic, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  agent.send(post("/v1/messages", anthropic_body(true)));
  agent.read_header();
  while (agent.read_more()) {
  }
  EXPECT_FALSE(agent.parser().is_done());  // the agent sees a broken stream, not a short one
  EXPECT_NE(agent.parser().get().body().find("message_start"), std::string::npos);
  auto reported = proxy.reported(1);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].usage.input_tokens, 64);
  EXPECT_EQ(proxy.stats().upstream_errors, 1u);
}

TEST_F(ModelProxyTest, UsedUpBudgetGives429AndTheProviderSeesNothing) {
  MockServer mock(dir_.path(), "");
  std::vector<std::string> asked;
  BudgetCheck budget = [&](const std::string& group) -> std::optional<std::string> {
    asked.push_back(group);
    return "1000000 tokens used of 1000000 today";
  };
  ProxyHarness proxy(options(ModelProvider::anthropic, mock), budget);
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  auto res = agent.call(post("/v1/messages", anthropic_body()));
  ASSERT_EQ(res.result_int(), 429);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_EQ(res["x-should-retry"], "false");
  auto body = json::parse(res.body()).as_object();
  EXPECT_EQ(body["type"].as_string(), "error");
  EXPECT_EQ(body["error"].as_object()["type"].as_string(), "rate_limit_error");
  EXPECT_NE(std::string(body["error"].as_object()["message"].as_string())
                .find("1000000 tokens used of 1000000 today"),
            std::string::npos);
  // The connection stays usable.
  EXPECT_EQ(agent.call(post("/v1/messages", anthropic_body())).result_int(), 429);

  EXPECT_TRUE(mock.log().empty());
  EXPECT_EQ(proxy.stats().refused_budget, 2u);
  EXPECT_EQ(proxy.on_loop([&] { return asked; }), (std::vector<std::string>{"main", "main"}));
}

TEST_F(ModelProxyTest, BudgetRefusalHasTheOpenAiErrorShapeForOpenAi) {
  MockServer mock(dir_.path(), "");
  BudgetCheck budget = [](const std::string&) -> std::optional<std::string> { return "spent"; };
  ProxyHarness proxy(options(ModelProvider::openai, mock), budget);
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  auto res = agent.call(post("/v1/chat/completions", openai_body()));
  ASSERT_EQ(res.result_int(), 429);
  auto error = json::parse(res.body()).at("error").as_object();
  EXPECT_EQ(error["type"].as_string(), "insufficient_quota");
  EXPECT_NE(std::string(error["message"].as_string()).find("spent"), std::string::npos);
}

TEST_F(ModelProxyTest, UpstreamDownGives502WithAJsonErrorWithoutTheKey) {
  MockServer mock(dir_.path(), "");
  auto o = options(ModelProvider::anthropic, mock);
  const std::uint16_t closed_port = test::free_port();
  o.base_url = "http://127.0.0.1:" + std::to_string(closed_port);
  ProxyHarness proxy(o);
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  auto res = agent.call(post("/v1/messages", anthropic_body()));
  ASSERT_EQ(res.result_int(), 502);
  auto error = json::parse(res.body()).at("error").as_object();
  EXPECT_EQ(error["type"].as_string(), "api_error");
  const std::string message(error["message"].as_string());
  EXPECT_NE(message.find("127.0.0.1:" + std::to_string(closed_port)), std::string::npos) << message;
  EXPECT_EQ(res.body().find(kHostKey), std::string::npos);
  EXPECT_EQ(proxy.stats().upstream_errors, 1u);
}

TEST_F(ModelProxyTest, SlowUpstreamGives504) {
  MockServer mock(dir_.path(), R"([{"text": "too late", "delay": 5}])");
  auto o = options(ModelProvider::openai, mock);
  o.response_timeout = 300ms;
  ProxyHarness proxy(o);
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  auto res = agent.call(post("/v1/chat/completions", openai_body()));
  ASSERT_EQ(res.result_int(), 504);
  EXPECT_EQ(json::parse(res.body()).at("error").at("code"), "gateway_timeout");
}

TEST_F(ModelProxyTest, TlsUpstreamThatIsNotTlsGives502NamingTheHandshake) {
  MockServer mock(dir_.path(), "");
  auto o = options(ModelProvider::anthropic, mock);
  o.base_url = "https://127.0.0.1:" + std::to_string(mock.port());
  ProxyHarness proxy(o);
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  auto res = agent.call(post("/v1/messages", anthropic_body()));
  ASSERT_EQ(res.result_int(), 502);
  EXPECT_NE(res.body().find("TLS handshake"), std::string::npos) << res.body();
}

TEST_F(ModelProxyTest, UpstreamErrorStatusIsRelayedUnchanged) {
  MockServer mock(dir_.path(), R"([{"error": {"status": 529, "retry_after": 7}}])");
  ProxyHarness proxy(options(ModelProvider::anthropic, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  auto res = agent.call(post("/v1/messages", anthropic_body()));
  EXPECT_EQ(res.result_int(), 529);
  EXPECT_EQ(res[http::field::retry_after], "7");
  EXPECT_EQ(json::parse(res.body()).at("error").at("type"), "overloaded_error");
  EXPECT_EQ(proxy.stats().upstream_errors, 0u);
  EXPECT_EQ(proxy.reported_now(), 0u);
}

TEST_F(ModelProxyTest, RequestOverTheSizeLimitGives413AndIsNotForwarded) {
  MockServer mock(dir_.path(), "");
  auto o = options(ModelProvider::anthropic, mock);
  o.max_request_bytes = 1000;
  ProxyHarness proxy(o);
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  json::value body = anthropic_body();
  body.as_object()["system"] = std::string(5000, 'x');
  auto res = agent.call(post("/v1/messages", body));
  ASSERT_EQ(res.result_int(), 413);
  EXPECT_EQ(json::parse(res.body()).at("error").at("type"), "request_too_large");
  EXPECT_TRUE(mock.log().empty());
}

TEST_F(ModelProxyTest, KeepAliveConnectionCarriesSeveralRequestsIncludingModelList) {
  MockServer mock(dir_.path(), "");
  ProxyHarness proxy(options(ModelProvider::openai, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  http::request<http::string_body> models{http::verb::get, "/v1/models", 11};
  models.set(http::field::host, "localhost");
  auto listed = agent.call(models);
  ASSERT_EQ(listed.result_int(), 200);
  EXPECT_EQ(json::parse(listed.body()).at("data").at(0).at("id"), "mock-model");
  auto answered = agent.call(post("/v1/chat/completions", openai_body()));
  ASSERT_EQ(answered.result_int(), 200);
  EXPECT_EQ(json::parse(answered.body()).at("choices").at(0).at("message").at("content"),
            "echo: hi");
  EXPECT_EQ(mock.log().size(), 2u);
  EXPECT_EQ(proxy.stats().requests, 2u);
}

TEST_F(ModelProxyTest, BaseUrlEndingInV1DoesNotDoubleIt) {
  MockServer mock(dir_.path(), "");
  auto o = options(ModelProvider::anthropic, mock);
  o.base_url = mock.url() + "/v1/";
  ProxyHarness proxy(o);
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  EXPECT_EQ(agent.call(post("/v1/messages", anthropic_body())).result_int(), 200);
  EXPECT_EQ(mock.log().at(0)["path"].as_string(), "/v1/messages");
}

TEST_F(ModelProxyTest, SocketIsPrivateAndCloseRemovesIt) {
  MockServer mock(dir_.path(), "");
  ProxyHarness proxy(options(ModelProvider::anthropic, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  struct stat st {};
  ASSERT_EQ(::stat(socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(socket().parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  auto again = proxy.open("main", socket());
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("already has a model socket"), std::string::npos);

  proxy.close("main");
  EXPECT_FALSE(fs::exists(socket()));
  AgentClient agent(socket());
  EXPECT_FALSE(agent.connected());
}

TEST_F(ModelProxyTest, CloseLetsTheRequestInFlightFinish) {
  const fs::path release = dir_.path() / "release";
  MockServer mock(dir_.path(), R"([{"text": "still coming",
      "hold": {"after_events": 1, "until_file": ")" +
                                   release.string() + R"(", "timeout": 20}}])");
  ProxyHarness proxy(options(ModelProvider::anthropic, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  agent.send(post("/v1/messages", anthropic_body(true)));
  agent.read_header();
  while (agent.parser().get().body().find("message_start") == std::string::npos) {
    ASSERT_TRUE(agent.read_more()) << agent.error().message();
  }
  proxy.close("main");
  EXPECT_FALSE(fs::exists(socket()));
  std::ofstream(release) << "go";
  while (agent.read_more()) {
  }
  EXPECT_TRUE(agent.parser().is_done()) << agent.error().message();
  EXPECT_NE(agent.parser().get().body().find("message_stop"), std::string::npos);
}

TEST_F(ModelProxyTest, StopCutsTheRequestInFlightAndReportsNothingAfter) {
  const fs::path release = dir_.path() / "release";
  MockServer mock(dir_.path(), R"([{"text": "never seen",
      "hold": {"after_events": 1, "until_file": ")" +
                                   release.string() + R"(", "timeout": 20}}])");
  ProxyHarness proxy(options(ModelProvider::anthropic, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  agent.send(post("/v1/messages", anthropic_body(true)));
  agent.read_header();
  while (agent.parser().get().body().find("message_start") == std::string::npos) {
    ASSERT_TRUE(agent.read_more()) << agent.error().message();
  }
  proxy.stop();
  while (agent.read_more()) {
  }
  EXPECT_FALSE(agent.parser().is_done());
  EXPECT_FALSE(fs::exists(socket()));
  EXPECT_EQ(proxy.reported_now(), 0u);
}

TEST_F(ModelProxyTest, StaleSocketIsReplacedButOtherFilesAreNot) {
  MockServer mock(dir_.path(), "");
  // A crashed daemon leaves its socket file behind; the next open replaces it.
  ProxyHarness proxy(options(ModelProvider::anthropic, mock));
  fs::create_directories(socket().parent_path());
  {
    asio::io_context io;
    local::acceptor stale(io, local::endpoint(socket().string()));
  }
  ASSERT_TRUE(fs::exists(socket()));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  EXPECT_EQ(agent.call(post("/v1/messages", anthropic_body())).result_int(), 200);

  const fs::path file = dir_.path() / "not-a-socket";
  std::ofstream(file) << "precious";
  auto refused = proxy.open("other", file);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("something other than a socket"), std::string::npos);
  EXPECT_EQ(slurp(file), "precious");
}

TEST_F(ModelProxyTest, RefusedMethodsAndTargetsGetTheirStatusAndNothingReachesTheUpstream) {
  RecordingUpstream upstream;
  ASSERT_NE(upstream.port(), 0);
  ProxyOptions o;
  o.provider = ModelProvider::anthropic;
  o.base_url = upstream.url() + "/team-a/v1";  // a gateway path the agent must stay under
  o.api_key = kHostKey;
  o.connect_timeout = 2s;
  ProxyHarness proxy(o);
  ASSERT_TRUE(proxy.open("main", socket()));

  struct Case {
    std::string method, target;
    unsigned status;
    std::string allow;
  };
  const std::vector<Case> cases{
      {"CONNECT", "gw.example:443", 400, ""},
      {"CONNECT", "/v1/messages", 405, "POST"},
      {"BREW", "/v1/messages", 405, "POST"},
      {"FROB", "/v1/anything", 405, ""},
      {"HEAD", "/v1/models", 405, "GET"},
      {"GET", "/v1/messages", 405, "POST"},
      {"POST", "/v1/../x", 400, ""},
      {"POST", "/v1/../../team-b/v1/messages", 400, ""},
      {"POST", "/v1/%2E%2e/team-b/v1/messages", 400, ""},
      {"POST", "/v1%2f..%2fteam-b/v1/messages", 400, ""},
      {"POST", "//team-b/v1/messages", 400, ""},
      {"POST", "http://gw.example/team-b/v1/messages", 400, ""},
      {"OPTIONS", "*", 400, ""},
      {"GET", "/v1/models?after_id=x", 400, ""},
      {"POST", "/v1/files", 404, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.method + " " + c.target);
    AgentClient agent(socket());
    ASSERT_TRUE(agent.connected());
    http::request<http::string_body> req;
    req.method_string(c.method);
    req.target(c.target);
    req.version(11);
    req.set(http::field::host, "localhost");
    if (c.method == "POST") {
      req.set(http::field::content_type, "application/json");
      req.body() = json::serialize(anthropic_body());
    }
    req.prepare_payload();
    agent.send(req);
    agent.read_header();
    if (c.method == "HEAD") {
      // The answer to a HEAD is its header: nothing follows before the connection ends.
      EXPECT_FALSE(agent.read_more());
      EXPECT_EQ(agent.parser().get().body(), "");
      EXPECT_EQ(agent.parser().get().result_int(), c.status);
      EXPECT_EQ(agent.parser().get()[http::field::allow], c.allow);
      continue;
    }
    while (agent.read_more()) {
    }
    ASSERT_TRUE(agent.parser().is_done()) << agent.error().message();
    const auto& res = agent.parser().get();
    ASSERT_EQ(res.result_int(), c.status) << res.body();
    EXPECT_EQ(res[http::field::allow], c.allow);
    EXPECT_EQ(res[http::field::content_type], "application/json");
    EXPECT_FALSE(res.keep_alive());  // a refused request ends its connection
    auto error = json::parse(res.body()).at("error").as_object();
    EXPECT_EQ(error["type"].as_string(),
              c.status == 404 ? "not_found_error" : "invalid_request_error");
    const std::string message(error["message"].as_string());
    EXPECT_EQ(message.rfind("switchboard model proxy: " + c.method + " ", 0), 0u) << message;
  }
  EXPECT_EQ(upstream.connections(), 0);
  EXPECT_EQ(upstream.received(), "");
  EXPECT_EQ(proxy.stats().refused_request, cases.size());

  // The same socket and upstream do forward a listed request, key and all, under the prefix.
  AgentClient agent(socket());
  EXPECT_EQ(agent.call(post("/v1/messages", anthropic_body())).result_int(), 200);
  const std::string received = upstream.received();
  EXPECT_EQ(received.rfind("POST /team-a/v1/messages HTTP/1.1\r\n", 0), 0u) << received;
  EXPECT_NE(received.find(kHostKey), std::string::npos);
  EXPECT_EQ(upstream.connections(), 1);
}

TEST_F(ModelProxyTest, UnlistedPathGets404InTheOpenAiErrorShape) {
  MockServer mock(dir_.path(), "");
  ProxyHarness proxy(options(ModelProvider::openai, mock));
  ASSERT_TRUE(proxy.open("main", socket()));
  AgentClient agent(socket());
  auto res = agent.call(post("/v1/messages", anthropic_body()));
  ASSERT_EQ(res.result_int(), 404);
  auto error = json::parse(res.body()).at("error").as_object();
  EXPECT_EQ(error["type"].as_string(), "invalid_request_error");
  EXPECT_EQ(error["code"].as_string(), "not_found");
  EXPECT_NE(std::string(error["message"].as_string()).find("POST /v1/chat/completions"),
            std::string::npos);
  EXPECT_TRUE(mock.log().empty());
}

TEST_F(ModelProxyTest, InvalidBaseUrlIsReportedByOpen) {
  ProxyOptions o;
  o.base_url = "ftp://example.org";
  ProxyHarness proxy(o);
  auto opened = proxy.open("main", socket());
  ASSERT_FALSE(opened);
  EXPECT_NE(opened.error().message.find("http or https"), std::string::npos);
}

}  // namespace
}  // namespace sb::host

namespace sb::host {
namespace {

// Sends `bytes` on a fresh connection to the unix socket and reads until the proxy closes
// it (or 5 s pass); what came back.
std::string raw_exchange(const fs::path& socket_path, const std::string& bytes) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "(connect failed)";
  }
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string reply;
  pollfd p{fd, POLLIN, 0};
  char buffer[4096];
  while (::poll(&p, 1, 5000) > 0) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    reply.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

// Issue 16: a trailer field Beast cannot store used to throw out of the event loop.
TEST_F(ModelProxyTest, AnOversizedTrailerEndsOnlyItsConnection) {
  ProxyOptions o;
  o.provider = ModelProvider::anthropic;
  o.base_url = "http://127.0.0.1:9";
  ProxyHarness proxy(o);
  ASSERT_TRUE(proxy.open("main", socket()));
  const std::string attack =
      "POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "chunked\r\nTrailer: X-T\r\n\r\n2\r\n{}\r\n0\r\nX-T: " +
      std::string(70000, 'a') + "\r\n\r\n";
  raw_exchange(socket(), attack);
  // The proxy's loop still serves: a refused method is answered as usual.
  const std::string after = raw_exchange(socket(), "BREW /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(after.rfind("HTTP/1.1 405", 0), 0u) << after;
}

// Issue 16: an exception of any type out of one connection's work (here the budget check
// throws something that is not even a std::exception) ends that connection only; it used to
// be rethrown out of the event loop.
TEST_F(ModelProxyTest, AnExceptionInOneConnectionEndsOnlyThatConnection) {
  ProxyOptions o;
  o.provider = ModelProvider::anthropic;
  o.base_url = "http://127.0.0.1:9";
  std::atomic<int> calls{0};
  ProxyHarness proxy(o, [&calls](const std::string&) -> std::optional<std::string> {
    if (calls++ == 0) throw 42;
    return std::string("test budget");
  });
  ASSERT_TRUE(proxy.open("main", socket()));
  const std::string request =
      "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
  EXPECT_EQ(raw_exchange(socket(), request), "") << "closed without an answer";
  const std::string after = raw_exchange(socket(), request);
  EXPECT_EQ(after.rfind("HTTP/1.1 429", 0), 0u) << after;
  EXPECT_EQ(calls.load(), 2);
}

}  // namespace
}  // namespace sb::host

#include "host/model_proxy.h"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "common/url_parts.h"

namespace sb::host {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
using AgentStream = beast::basic_stream<local>;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

bool iequals(std::string_view a, std::string_view b) { return beast::iequals(a, b); }

// Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are never forwarded.
bool is_hop_by_hop(std::string_view name) {
  for (std::string_view h :
       {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade"}) {
    if (iequals(name, h)) return true;
  }
  return false;
}

// Headers named in a Connection header are hop-by-hop too.
std::vector<std::string> connection_tokens(std::string_view value) {
  std::vector<std::string> tokens;
  for (auto token : http::token_list(value)) tokens.emplace_back(token);
  return tokens;
}

bool listed(std::string_view name, const std::vector<std::string>& tokens) {
  for (const auto& t : tokens) {
    if (iequals(name, t)) return true;
  }
  return false;
}

// Credentials from the sandbox are dropped: only the host's key goes upstream. The proxy
// sets Host, framing and encoding itself.
bool dropped_from_request(std::string_view name) {
  for (std::string_view h : {"authorization", "x-api-key", "api-key", "cookie", "host",
                             "content-length", "expect", "accept-encoding"}) {
    if (iequals(name, h)) return true;
  }
  return is_hop_by_hop(name);
}

bool dropped_from_response(std::string_view name) {
  return is_hop_by_hop(name) || iequals(name, "content-length") || iequals(name, "set-cookie");
}

enum class Failure { bad_request, too_large, header_too_large, budget, upstream, timeout };

// A JSON error body in the shape the provider's own errors have, so that agents and SDKs
// show it like any other API error.
std::string error_body(ModelProvider provider, Failure failure, std::string_view message) {
  boost::json::object error;
  if (provider == ModelProvider::anthropic) {
    std::string_view type = "api_error";
    switch (failure) {
      case Failure::bad_request:
      case Failure::header_too_large:
        type = "invalid_request_error";
        break;
      case Failure::too_large:
        type = "request_too_large";
        break;
      case Failure::budget:
        type = "rate_limit_error";
        break;
      case Failure::upstream:
        type = "api_error";
        break;
      case Failure::timeout:
        type = "timeout_error";
        break;
    }
    error["type"] = type;
    error["message"] = message;
    return boost::json::serialize(boost::json::object{{"type", "error"}, {"error", error}});
  }
  std::string_view type = "invalid_request_error", code = "invalid_request";
  switch (failure) {
    case Failure::bad_request:
      break;
    case Failure::header_too_large:
      code = "headers_too_large";
      break;
    case Failure::too_large:
      code = "request_too_large";
      break;
    case Failure::budget:
      type = code = "insufficient_quota";
      break;
    case Failure::upstream:
      type = "upstream_error", code = "bad_gateway";
      break;
    case Failure::timeout:
      type = "upstream_error", code = "gateway_timeout";
      break;
  }
  error["message"] = message;
  error["type"] = type;
  error["param"] = nullptr;
  error["code"] = code;
  return boost::json::serialize(boost::json::object{{"error", error}});
}

http::status status_of(Failure failure) {
  switch (failure) {
    case Failure::bad_request:
      return http::status::bad_request;
    case Failure::too_large:
      return http::status::payload_too_large;
    case Failure::header_too_large:
      return http::status::request_header_fields_too_large;
    case Failure::budget:
      return http::status::too_many_requests;
    case Failure::upstream:
      return http::status::bad_gateway;
    case Failure::timeout:
      return http::status::gateway_timeout;
  }
  return http::status::internal_server_error;
}

bool is_event_stream(std::string_view content_type) {
  constexpr std::string_view kSse = "text/event-stream";
  return content_type.size() >= kSse.size() && iequals(content_type.substr(0, kSse.size()), kSse);
}

}  // namespace

Result<UpstreamUrl> parse_base_url(std::string_view base_url) {
  auto bad = [&](std::string_view why) {
    return make_error("model proxy base_url '" + std::string(base_url) + "': " + std::string(why));
  };
  auto url = boost::urls::parse_absolute_uri(base_url);
  if (!url) return bad("not a URL; expected scheme://host[:port][/prefix]");
  UpstreamUrl out;
  if (url->scheme_id() == boost::urls::scheme::https) {
    out.tls = true;
  } else if (url->scheme_id() != boost::urls::scheme::http) {
    return bad("the scheme must be http or https");
  }
  if (url->has_userinfo()) return bad("must not contain user info; put the key in api_key");
  if (url->has_query() || url->has_fragment()) return bad("must not have a query or fragment");
  out.host = url_host(*url);
  if (out.host.empty()) return bad("has no host");
  if (url->has_port()) {
    const auto port = url_port(*url);
    if (!port) return bad("has an invalid port");
    out.port = *port;
  } else {
    out.port = out.tls ? 443 : 80;
  }
  out.prefix = std::string(url->encoded_path());
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  return out;
}

std::string upstream_target(std::string_view prefix, std::string_view target) {
  constexpr std::string_view kV1 = "/v1";
  const bool prefix_v1 =
      prefix.size() >= kV1.size() && prefix.substr(prefix.size() - kV1.size()) == kV1;
  const bool target_v1 =
      target.substr(0, 3) == kV1 && (target.size() == 3 || target[3] == '/' || target[3] == '?');
  if (prefix_v1 && target_v1) target.remove_prefix(kV1.size());
  return std::string(prefix) + std::string(target);
}

namespace {

struct Listener {
  Listener(asio::any_io_executor ex, std::string g, std::filesystem::path p)
      : group(std::move(g)), path(std::move(p)), acceptor(std::move(ex)) {}
  std::string group;
  std::filesystem::path path;
  local::acceptor acceptor;
  bool closed = false;
};

struct Connection {
  Connection(local::socket socket, std::shared_ptr<Listener> l)
      : stream(std::move(socket)), listener(std::move(l)) {}
  AgentStream stream;
  beast::flat_buffer buffer;
  std::shared_ptr<Listener> listener;
  bool busy = false;                      // from a request's header to the end of its response
  beast::tcp_stream* upstream = nullptr;  // while a request is forwarded

  void cut() {
    stream.close();
    if (upstream != nullptr) upstream->close();
  }
};

// Points the connection at its upstream stream for as long as the stream lives, so that
// stop() can cut it.
class UpstreamGuard {
 public:
  UpstreamGuard(Connection& c, beast::tcp_stream& s) : c_(c) { c_.upstream = &s; }
  ~UpstreamGuard() { c_.upstream = nullptr; }
  UpstreamGuard(const UpstreamGuard&) = delete;
  UpstreamGuard& operator=(const UpstreamGuard&) = delete;

 private:
  Connection& c_;
};

// How one request went, for the log line and the connection's fate.
struct Outcome {
  unsigned status = 0;
  std::uint64_t bytes = 0;  // response body bytes relayed to the agent
  bool reusable = true;     // the agent connection may carry another request
};

// After a response that ends the connection while the agent may still be sending (a
// refused upload), half-close and drain for a moment so the kernel does not answer the
// unread bytes with a reset that would destroy the response before the agent reads it.
asio::awaitable<void> close_gracefully(AgentStream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(local::socket::shutdown_send, ec);
  stream.expires_after(std::chrono::seconds(1));
  std::array<char, 4096> sink;
  std::size_t drained = 0;
  while (drained < (1u << 20)) {
    auto [err, n] = co_await stream.async_read_some(asio::buffer(sink), kAsTuple);
    if (err) break;
    drained += n;
  }
  stream.close();
}

}  // namespace

struct ModelProxy::Impl {
  Impl(asio::any_io_executor ex, ProxyOptions o, UsageSink s, BudgetCheck b)
      : executor(std::move(ex)),
        options(std::move(o)),
        sink(std::move(s)),
        budget(std::move(b)),
        upstream(parse_base_url(options.base_url)) {
    if (upstream) {
      const auto& u = upstream.value();
      upstream_name = std::string(u.tls ? "https://" : "http://") +
                      (u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host) + ":" +
                      std::to_string(u.port);
      const bool default_port = u.port == (u.tls ? 443 : 80);
      host_header = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
      if (!default_port) host_header += ":" + std::to_string(u.port);
    }
  }

  asio::any_io_executor executor;
  ProxyOptions options;
  UsageSink sink;
  BudgetCheck budget;
  Result<UpstreamUrl> upstream;
  std::string upstream_name;  // scheme://host:port, for messages
  std::string host_header;
  // Made on the first https request: loading the system's trusted certificates costs tens of
  // milliseconds and megabytes, which start-up (and local http models) should not pay.
  std::optional<ssl::context> tls_context;
  ssl::context& tls() {
    if (!tls_context) {
      tls_context.emplace(ssl::context::tls_client);
      beast::error_code ec;
      tls_context->set_default_verify_paths(ec);
      if (ec) {
        // Every https upstream will then fail its certificate check, with a 502 saying so.
        spdlog::warn("model proxy: cannot load the system's trusted certificates: {}",
                     ec.message());
      }
      tls_context->set_verify_mode(ssl::verify_peer);
    }
    return *tls_context;
  }
  std::map<std::string, std::shared_ptr<Listener>> listeners;
  std::set<std::shared_ptr<Connection>> connections;
  bool stopped = false;
  std::atomic<std::uint64_t> requests{0}, upstream_errors{0}, refused_budget{0};

  static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self,
                                           std::shared_ptr<Listener> listener);
  static asio::awaitable<void> serve(std::shared_ptr<Impl> self, std::shared_ptr<Connection> c);
  static asio::awaitable<Outcome> forward(std::shared_ptr<Impl> self, Connection& c,
                                          http::request<http::string_body>& request);
  template <class Upstream>
  static asio::awaitable<Outcome> exchange(std::shared_ptr<Impl> self, Connection& c,
                                           Upstream& upstream, beast::tcp_stream& lowest,
                                           http::request<http::string_body>& up_request,
                                           bool keep_alive);
  static asio::awaitable<Outcome> send_error(const Impl& self, Connection& c, Failure failure,
                                             std::string message, bool keep_alive);
  http::request<http::string_body> upstream_request(http::request<http::string_body>& request);
};

asio::awaitable<Outcome> ModelProxy::Impl::send_error(const Impl& self, Connection& c,
                                                      Failure failure, std::string message,
                                                      bool keep_alive) {
  http::response<http::string_body> res{status_of(failure), 11};
  res.set(http::field::content_type, "application/json");
  // Both vendors' SDKs read this header: a used-up budget is not worth retrying.
  if (failure == Failure::budget) res.set("x-should-retry", "false");
  res.body() = error_body(self.options.provider, failure, "switchboard model proxy: " + message);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  Outcome out{res.result_int(), res.body().size(), keep_alive};
  c.stream.expires_after(self.options.idle_timeout);
  auto [ec, n] = co_await http::async_write(c.stream, res, kAsTuple);
  if (ec) out.reusable = false;
  co_return out;
}

http::request<http::string_body> ModelProxy::Impl::upstream_request(
    http::request<http::string_body>& request) {
  const UpstreamUrl& url = upstream.value();
  http::request<http::string_body> up;
  if (request.method() != http::verb::unknown) {
    up.method(request.method());
  } else {
    up.method_string(request.method_string());
  }
  up.target(upstream_target(url.prefix, request.target()));
  up.version(11);
  const auto tokens = connection_tokens(request[http::field::connection]);
  for (const auto& field : request) {
    if (dropped_from_request(field.name_string()) || listed(field.name_string(), tokens)) {
      continue;
    }
    up.insert(field.name_string(), field.value());
  }
  up.set(http::field::host, host_header);
  // Identity, so that usage can be read from the body as it passes.
  up.set(http::field::accept_encoding, "identity");
  if (options.provider == ModelProvider::anthropic) {
    if (!options.api_key.empty()) up.set("x-api-key", options.api_key);
    if (up.find("anthropic-version") == up.end()) {
      up.set("anthropic-version", options.anthropic_version);
    }
  } else if (!options.api_key.empty()) {
    up.set(http::field::authorization, "Bearer " + options.api_key);
  }
  up.body() = std::move(request.body());
  up.keep_alive(false);
  up.prepare_payload();
  return up;
}

asio::awaitable<void> ModelProxy::Impl::accept_loop(std::shared_ptr<Impl> self,
                                                    std::shared_ptr<Listener> listener) {
  while (!listener->closed && !self->stopped) {
    auto [ec, socket] = co_await listener->acceptor.async_accept(kAsTuple);
    if (listener->closed || self->stopped) break;
    if (ec) {
      // Out of file descriptors and the like: say so, pause, go on.
      spdlog::warn("model proxy: accept on {} failed: {}", listener->path.string(), ec.message());
      asio::steady_timer pause(self->executor, std::chrono::milliseconds(50));
      co_await pause.async_wait(kAsTuple);
      continue;
    }
    auto connection = std::make_shared<Connection>(std::move(socket), listener);
    self->connections.insert(connection);
    auto finished = [self, connection](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("model proxy: group {}: connection ended by an unexpected error: {}",
                        connection->listener->group, ex.what());
        }
      }
      self->connections.erase(connection);
    };
    asio::co_spawn(self->executor, serve(self, connection), std::move(finished));
  }
}

asio::awaitable<void> ModelProxy::Impl::serve(std::shared_ptr<Impl> self,
                                              std::shared_ptr<Connection> c) {
  const ProxyOptions& o = self->options;
  const std::string& group = c->listener->group;
  while (!self->stopped && !c->listener->closed) {
    c->busy = false;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(o.max_header_bytes));
    parser.body_limit(o.max_request_bytes);
    c->stream.expires_after(o.idle_timeout);
    auto [ec, n] = co_await http::async_read_header(c->stream, c->buffer, parser, kAsTuple);
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || self->stopped) {
      break;
    }
    c->busy = true;
    const auto started = Clock::now();
    const std::string too_large =
        "request body exceeds " + std::to_string(o.max_request_bytes) + " bytes";
    std::optional<std::pair<Failure, std::string>> refusal;
    if (ec == http::error::body_limit) {  // Content-Length over the limit
      refusal.emplace(Failure::too_large, too_large);
    } else if (ec == http::error::header_limit) {
      refusal.emplace(Failure::header_too_large,
                      "request headers exceed " + std::to_string(o.max_header_bytes) + " bytes");
    } else if (ec) {
      refusal.emplace(Failure::bad_request, "malformed HTTP request: " + ec.message());
    } else {
      if (iequals(parser.get()[http::field::expect], "100-continue")) {
        constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [wec, wn] = co_await asio::async_write(c->stream, asio::buffer(kContinue), kAsTuple);
        if (wec) break;
      }
      auto [bec, bn] = co_await http::async_read(c->stream, c->buffer, parser, kAsTuple);
      if (bec == http::error::body_limit) {
        refusal.emplace(Failure::too_large, too_large);
      } else if (bec) {
        break;  // the agent went away or stalled mid-request; nobody to answer
      }
    }
    const bool body_read = !refusal;
    Outcome out;
    if (refusal) {
      // The rest of the request is unread, so the connection cannot go on after this.
      auto reply = send_error(*self, *c, refusal->first, std::move(refusal->second), false);
      out = co_await std::move(reply);
    }

    std::string method, target;
    if (parser.is_header_done()) {
      method = std::string(parser.get().method_string());
      target = std::string(parser.get().target());
    }
    if (body_read) {
      ++self->requests;
      auto request = parser.release();
      auto reply = forward(self, *c, request);
      out = co_await std::move(reply);
    }
    spdlog::debug(
        "model proxy: group {}: {} {} -> {}, {} bytes, {} ms", group, method, target, out.status,
        out.bytes,
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
    if (!body_read) {
      if (out.status != 0 && !self->stopped) co_await close_gracefully(c->stream);
      break;
    }
    if (!out.reusable) break;
  }
  c->stream.close();
}

asio::awaitable<Outcome> ModelProxy::Impl::forward(std::shared_ptr<Impl> self, Connection& c,
                                                   http::request<http::string_body>& request) {
  const ProxyOptions& o = self->options;
  const std::string& group = c.listener->group;
  const bool keep_alive = request.keep_alive();
  if (request.target().empty() || request.target().front() != '/') {
    auto reply = send_error(*self, c, Failure::bad_request,
                            "the request target must be a path such as /v1/messages", keep_alive);
    co_return co_await std::move(reply);
  }
  if (self->budget) {
    if (auto refusal = self->budget(group)) {
      ++self->refused_budget;
      spdlog::info("model proxy: group {}: request refused: {}", group, *refusal);
      auto reply = send_error(*self, c, Failure::budget,
                              "the token budget of group '" + group + "' is used up: " + *refusal,
                              keep_alive);
      co_return co_await std::move(reply);
    }
  }

  auto up_request = self->upstream_request(request);
  const UpstreamUrl& url = self->upstream.value();
  const auto connect_deadline = Clock::now() + o.connect_timeout;
  auto fail = [&](Failure failure, std::string message) {
    ++self->upstream_errors;
    spdlog::warn("model proxy: group {}: {}", group, message);
    return send_error(*self, c, failure, std::move(message), keep_alive);
  };

  // The resolver cannot take a deadline itself; a timer cancels it.
  auto resolver = std::make_shared<tcp::resolver>(self->executor);
  asio::steady_timer resolve_timer(self->executor, connect_deadline);
  auto on_resolve_timeout = [weak = std::weak_ptr<tcp::resolver>(resolver)](beast::error_code ec) {
    if (auto r = weak.lock(); r && !ec) r->cancel();
  };
  resolve_timer.async_wait(on_resolve_timeout);
  const std::string port = std::to_string(url.port);
  auto [rec, endpoints] = co_await resolver->async_resolve(url.host, port, kAsTuple);
  resolve_timer.cancel();
  if (self->stopped) co_return Outcome{0, 0, false};
  if (rec) {
    const bool timed_out = Clock::now() >= connect_deadline;
    auto reply =
        fail(timed_out ? Failure::timeout : Failure::upstream,
             "cannot resolve the model provider host " + url.host + ": " +
                 (timed_out ? "timed out after " + std::to_string(o.connect_timeout.count()) + " ms"
                            : rec.message()));
    co_return co_await std::move(reply);
  }

  auto connect_failure = [&](const beast::error_code& ec, std::string_view step) {
    const bool timed_out = ec == beast::error::timeout;
    return fail(
        timed_out ? Failure::timeout : Failure::upstream,
        std::string(step) + " " + self->upstream_name + " failed: " +
            (timed_out ? "timed out after " + std::to_string(o.connect_timeout.count()) + " ms"
                       : ec.message()));
  };

  if (!url.tls) {
    beast::tcp_stream upstream(self->executor);
    UpstreamGuard guard(c, upstream);
    upstream.expires_at(connect_deadline);
    auto [cec, endpoint] = co_await upstream.async_connect(endpoints, kAsTuple);
    if (self->stopped) co_return Outcome{0, 0, false};
    if (cec) {
      auto reply = connect_failure(cec, "connecting to the model provider at");
      co_return co_await std::move(reply);
    }
    auto reply = exchange(self, c, upstream, upstream, up_request, keep_alive);
    co_return co_await std::move(reply);
  }

  beast::ssl_stream<beast::tcp_stream> upstream(self->executor, self->tls());
  auto& lowest = beast::get_lowest_layer(upstream);
  UpstreamGuard guard(c, lowest);
  beast::error_code address_ec;
  asio::ip::make_address(url.host, address_ec);
  // SNI takes names only, never address literals.
  if (address_ec && !SSL_set_tlsext_host_name(upstream.native_handle(), url.host.c_str())) {
    auto reply =
        fail(Failure::upstream, "cannot set the TLS server name for " + self->upstream_name);
    co_return co_await std::move(reply);
  }
  upstream.set_verify_callback(ssl::host_name_verification(url.host));
  lowest.expires_at(connect_deadline);
  auto [cec, endpoint] = co_await lowest.async_connect(endpoints, kAsTuple);
  if (self->stopped) co_return Outcome{0, 0, false};
  if (cec) {
    auto reply = connect_failure(cec, "connecting to the model provider at");
    co_return co_await std::move(reply);
  }
  auto [hec] = co_await upstream.async_handshake(ssl::stream_base::client, kAsTuple);
  if (self->stopped) co_return Outcome{0, 0, false};
  if (hec) {
    auto reply = connect_failure(hec, "the TLS handshake with");
    co_return co_await std::move(reply);
  }
  auto reply = exchange(self, c, upstream, lowest, up_request, keep_alive);
  co_return co_await std::move(reply);
}

template <class Upstream>
asio::awaitable<Outcome> ModelProxy::Impl::exchange(std::shared_ptr<Impl> self, Connection& c,
                                                    Upstream& upstream, beast::tcp_stream& lowest,
                                                    http::request<http::string_body>& up_request,
                                                    bool keep_alive) {
  const ProxyOptions& o = self->options;
  const std::string& group = c.listener->group;
  const auto deadline = Clock::now() + o.response_timeout;
  const bool is_head = up_request.method() == http::verb::head;
  const bool is_post = up_request.method() == http::verb::post;
  auto fail = [&](const beast::error_code& ec, std::string_view step) {
    ++self->upstream_errors;
    const bool timed_out = ec == beast::error::timeout;
    std::string message =
        std::string(step) + " " + self->upstream_name + " failed: " +
        (timed_out ? "no response within " + std::to_string(o.response_timeout.count()) + " ms"
                   : ec.message());
    spdlog::warn("model proxy: group {}: {}", group, message);
    return send_error(*self, c, timed_out ? Failure::timeout : Failure::upstream,
                      std::move(message), keep_alive);
  };

  lowest.expires_at(deadline);
  auto [wec, wn] = co_await http::async_write(upstream, up_request, kAsTuple);
  if (self->stopped) co_return Outcome{0, 0, false};
  if (wec) {
    auto reply = fail(wec, "sending the request to");
    co_return co_await std::move(reply);
  }

  beast::flat_buffer up_buffer;
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(o.max_header_bytes));
  parser.body_limit(boost::none);  // relayed, not stored; the deadline bounds it
  if (is_head) parser.skip(true);
  auto [hec, hn] = co_await http::async_read_header(upstream, up_buffer, parser, kAsTuple);
  if (self->stopped) co_return Outcome{0, 0, false};
  if (hec) {
    auto reply = fail(hec, "reading the response of");
    co_return co_await std::move(reply);
  }

  const auto& up_res = parser.get();
  http::response<http::buffer_body> res;
  res.version(11);
  res.result(up_res.result_int());
  res.reason(up_res.reason());
  const auto tokens = connection_tokens(up_res[http::field::connection]);
  for (const auto& field : up_res) {
    if (dropped_from_response(field.name_string()) || listed(field.name_string(), tokens)) {
      continue;
    }
    res.insert(field.name_string(), field.value());
  }
  const unsigned status = up_res.result_int();
  const bool bodiless = is_head || status / 100 == 1 || status == 204 || status == 304;
  if (!bodiless) {
    if (auto length = parser.content_length()) {
      res.content_length(*length);
    } else {
      res.chunked(true);  // relay pieces as they come, whatever the upstream framing
    }
  }
  res.keep_alive(keep_alive);

  std::optional<UsageScanner> scanner;
  if (is_post && status / 100 == 2) {
    scanner.emplace(o.provider, is_event_stream(up_res[http::field::content_type])
                                    ? BodyFormat::sse
                                    : BodyFormat::json);
  }

  Outcome out{status, 0, keep_alive};
  http::response_serializer<http::buffer_body> serializer{res};
  c.stream.expires_at(deadline);
  auto [dec, dn] = co_await http::async_write_header(c.stream, serializer, kAsTuple);
  if (dec) co_return Outcome{status, 0, false};

  std::vector<char> piece(16 * 1024);
  bool complete = true;
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    auto [rec, rn] = co_await http::async_read_some(upstream, up_buffer, parser, kAsTuple);
    if (rec == http::error::need_buffer) rec = {};
    if (rec) {
      if (!self->stopped) {
        ++self->upstream_errors;
        spdlog::warn("model proxy: group {}: the response of {} broke off after {} bytes: {}",
                     group, self->upstream_name, out.bytes,
                     rec == beast::error::timeout ? "timed out" : rec.message());
      }
      complete = false;
      break;
    }
    const std::size_t n = piece.size() - parser.get().body().size;
    if (n == 0) continue;  // a chunk header without data yet
    if (scanner) scanner->feed(std::string_view(piece.data(), n));
    out.bytes += n;
    res.body().data = piece.data();
    res.body().size = n;
    res.body().more = true;
    auto [bec, bn] = co_await http::async_write(c.stream, serializer, kAsTuple);
    if (bec == http::error::need_buffer) bec = {};
    if (bec) {
      complete = false;  // the agent went away; the upstream connection closes with us
      break;
    }
  }
  if (complete) {
    res.body().data = nullptr;
    res.body().size = 0;
    res.body().more = false;
    auto [fec, fn] = co_await http::async_write(c.stream, serializer, kAsTuple);
    if (fec) complete = false;
  }
  lowest.close();
  if (!complete) out.reusable = false;

  if (scanner && !self->stopped) {
    // A stream cut short still reports what it counted (the input at least).
    auto usage = scanner->finish();
    if (usage) {
      if (self->sink) self->sink(group, *usage);
    } else {
      spdlog::warn("model proxy: group {}: usage unknown for {} {}: {}", group,
                   up_request.method_string(), up_request.target(), scanner->note());
    }
  }
  co_return out;
}

ModelProxy::ModelProxy(asio::any_io_executor executor, ProxyOptions options, UsageSink sink,
                       BudgetCheck budget)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options), std::move(sink),
                                   std::move(budget))) {}

ModelProxy::~ModelProxy() { stop(); }

Result<bool> ModelProxy::open(const std::string& group, const std::filesystem::path& socket_path) {
  Impl& s = *impl_;
  const std::string where = socket_path.string();
  if (s.stopped) return make_error("model proxy is stopped; cannot open " + where);
  if (!s.upstream) return s.upstream.error();
  if (s.listeners.count(group) != 0) {
    return make_error("group '" + group + "' already has a model socket at " +
                      s.listeners[group]->path.string() + "; close it first");
  }
  if (where.size() >= sizeof(sockaddr_un::sun_path)) {
    return make_error("model socket path " + where + " is " + std::to_string(where.size()) +
                      " bytes long; unix socket paths must be shorter than " +
                      std::to_string(sizeof(sockaddr_un::sun_path)) +
                      ": choose a shorter data directory");
  }
  std::error_code fec;
  const auto parent = socket_path.parent_path();
  if (!parent.empty() && std::filesystem::create_directories(parent, fec)) {
    std::filesystem::permissions(parent, std::filesystem::perms::owner_all, fec);
  }
  if (fec) return make_error("cannot create directory " + parent.string() + ": " + fec.message());
  const auto existing = std::filesystem::symlink_status(socket_path, fec);
  if (std::filesystem::exists(existing)) {
    if (!std::filesystem::is_socket(existing)) {
      return make_error("cannot create the model socket " + where +
                        ": something other than a socket is there; remove it");
    }
    std::filesystem::remove(socket_path, fec);  // stale, from an earlier run
    if (fec) return make_error("cannot remove the stale socket " + where + ": " + fec.message());
  }

  auto listener = std::make_shared<Listener>(s.executor, group, socket_path);
  beast::error_code ec;
  listener->acceptor.open(local(), ec);
  if (!ec) listener->acceptor.bind(local::endpoint(where), ec);
  if (ec) return make_error("cannot listen on the model socket " + where + ": " + ec.message());
  if (::chmod(where.c_str(), static_cast<mode_t>(s.options.socket_mode)) != 0) {
    std::error_code cec(errno, std::generic_category());
    listener->acceptor.close(ec);
    std::filesystem::remove(socket_path, fec);
    return make_error("cannot set the mode of the model socket " + where + ": " + cec.message());
  }
  listener->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    listener->acceptor.close(ec);
    std::filesystem::remove(socket_path, fec);
    return make_error("cannot listen on the model socket " + where + ": " + ec.message());
  }
  s.listeners[group] = listener;
  auto on_end = [group](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("model proxy: group {}: accepting ended by an unexpected error: {}", group,
                    ex.what());
    }
  };
  asio::co_spawn(s.executor, Impl::accept_loop(impl_, listener), std::move(on_end));
  spdlog::debug("model proxy: group {} listens on {}", group, where);
  return true;
}

namespace {

void shut_listener(Listener& listener) {
  listener.closed = true;
  beast::error_code ec;
  listener.acceptor.close(ec);
  std::error_code fec;
  std::filesystem::remove(listener.path, fec);
}

}  // namespace

void ModelProxy::close(const std::string& group) {
  Impl& s = *impl_;
  auto it = s.listeners.find(group);
  if (it == s.listeners.end()) return;
  auto listener = it->second;
  s.listeners.erase(it);
  shut_listener(*listener);
  for (const auto& c : s.connections) {
    if (c->listener == listener && !c->busy) c->cut();
  }
}

void ModelProxy::stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  for (auto& [group, listener] : s.listeners) shut_listener(*listener);
  s.listeners.clear();
  for (const auto& c : s.connections) c->cut();
}

ModelProxy::Stats ModelProxy::stats() const {
  return Stats{impl_->requests.load(), impl_->upstream_errors.load(), impl_->refused_budget.load()};
}

}  // namespace sb::host

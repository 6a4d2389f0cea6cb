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
#include <span>
#include <vector>

#include "common/async.h"
#include "common/http_limits.h"
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

enum class Failure {
  bad_request,
  not_found,
  method_not_allowed,
  too_large,
  header_too_large,
  budget,
  upstream,
  timeout
};

// A JSON error body in the shape the provider's own errors have, so that agents and SDKs
// show it like any other API error.
std::string error_body(ModelProvider provider, Failure failure, std::string_view message) {
  boost::json::object error;
  if (provider == ModelProvider::anthropic) {
    std::string_view type = "api_error";
    switch (failure) {
      case Failure::bad_request:
      case Failure::method_not_allowed:
      case Failure::header_too_large:
        type = "invalid_request_error";
        break;
      case Failure::not_found:
        type = "not_found_error";
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
    case Failure::not_found:
      code = "not_found";
      break;
    case Failure::method_not_allowed:
      code = "method_not_allowed";
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
    case Failure::not_found:
      return http::status::not_found;
    case Failure::method_not_allowed:
      return http::status::method_not_allowed;
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
  if (!has_valid_path(*url)) return bad("has an invalid host or port");
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

// One (method, path) the proxy forwards; kModelId in a path matches one model id segment.
struct Route {
  std::string_view method;
  std::string_view path;
};
constexpr std::string_view kModelId = "<id>";
constexpr std::array<Route, 4> kAnthropicRoutes{{{"POST", "/v1/messages"},
                                                 {"POST", "/v1/messages/count_tokens"},
                                                 {"GET", "/v1/models"},
                                                 {"GET", "/v1/models/<id>"}}};
constexpr std::array<Route, 5> kOpenAiRoutes{{{"POST", "/v1/chat/completions"},
                                              {"POST", "/v1/completions"},
                                              {"POST", "/v1/embeddings"},
                                              {"GET", "/v1/models"},
                                              {"GET", "/v1/models/<id>"}}};

std::span<const Route> routes_of(ModelProvider provider) {
  if (provider == ModelProvider::anthropic) return kAnthropicRoutes;
  return kOpenAiRoutes;
}

std::vector<std::string_view> split_segments(std::string_view path) {
  std::vector<std::string_view> segments;
  path.remove_prefix(1);  // the leading '/'
  while (true) {
    const auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

bool is_ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 3986 pchar without pct-encoded: unreserved, sub-delims, ':' and '@'.
bool is_path_char(char c) {
  return is_ascii_alnum(c) ||
         std::string_view("-._~!$&'()*+,;=:@").find(c) != std::string_view::npos;
}

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

bool is_model_id(std::string_view segment) {
  if (segment.empty() || segment.size() > 256 || !is_ascii_alnum(segment.front())) return false;
  for (char c : segment) {
    if (!is_ascii_alnum(c) && std::string_view("._:@-").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The segment with its percent-encoding decoded; nullopt when a '%' is not followed by two
// hex digits.
std::optional<std::string> percent_decoded(std::string_view segment) {
  std::string out;
  for (std::size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out += segment[i];
      continue;
    }
    if (i + 2 >= segment.size()) return std::nullopt;
    const int high = hex_value(segment[i + 1]), low = hex_value(segment[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

bool matches(std::string_view pattern, const std::vector<std::string_view>& segments) {
  const auto wanted = split_segments(pattern);
  if (wanted.size() != segments.size()) return false;
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    if (wanted[i] == kModelId ? !is_model_id(segments[i]) : wanted[i] != segments[i]) return false;
  }
  return true;
}

std::string listed_routes(ModelProvider provider) {
  std::string out;
  for (const Route& r : routes_of(provider)) {
    if (!out.empty()) out += ", ";
    out += std::string(r.method) + " " + std::string(r.path);
  }
  return out;
}

// A refusal for the path's syntax; nullopt when the path (origin-form, no query) is plain.
std::optional<std::string> path_fault(std::string_view path) {
  for (char c : path) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte == 0) return "contains a NUL byte";
    if (is_control(byte)) return "contains a control character";
    if (c == '\\') return "contains a backslash";
    if (c == '#') return "has a fragment (#)";
    if (c != '/' && c != '%' && !is_path_char(c)) {
      return "contains a byte that is not allowed in a path (" + loggable(std::string_view(&c, 1)) +
             ")";
    }
  }
  if (path == "/") return std::nullopt;
  for (std::string_view segment : split_segments(path)) {
    if (segment.empty()) return "has an empty path segment (// or a trailing /)";
    const auto decoded = percent_decoded(segment);
    if (!decoded) return "has malformed percent-encoding (a % not followed by two hex digits)";
    if (*decoded == "." || *decoded == "..") return "has a dot segment (. or .., also encoded)";
    for (char c : *decoded) {
      if (c == '/' || c == '\\') return "has an encoded slash or backslash (%2f, %5c)";
      if (is_control(static_cast<unsigned char>(c))) return "has an encoded control character";
    }
  }
  return std::nullopt;
}

}  // namespace

std::string loggable(std::string_view text, std::size_t max) {
  std::string out;
  const std::string_view kept = text.substr(0, max);
  for (char c : kept) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte > 0x20 && byte < 0x7f && c != '\\') {
      out += c;
    } else {
      constexpr std::string_view kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  if (text.size() > kept.size()) {
    out += "...(" + std::to_string(text.size() - kept.size()) + " more bytes)";
  }
  return out;
}

RequestCheck check_request(ModelProvider provider, std::string_view method,
                           std::string_view target) {
  using Verdict = RequestCheck::Verdict;
  auto refuse = [&](Verdict verdict, std::string_view why, std::string allow = {}) {
    return RequestCheck{verdict,
                        loggable(method, 24) + " " + loggable(target) + ": " + std::string(why),
                        std::move(allow)};
  };
  if (target.empty() || target.front() != '/') {
    return refuse(Verdict::bad_target,
                  "the request target must be a path such as /v1/messages; absolute-form "
                  "(http://host/...), authority-form (host:port) and * are not forwarded");
  }
  const auto query = target.find('?');
  const std::string_view path = target.substr(0, query);
  if (auto fault = path_fault(path)) return refuse(Verdict::bad_target, "the path " + *fault);
  if (query != std::string_view::npos) {
    return refuse(Verdict::bad_target, "query strings are not forwarded");
  }

  const auto segments = path == "/" ? std::vector<std::string_view>{} : split_segments(path);
  std::string allow;
  for (const Route& r : routes_of(provider)) {
    if (!matches(r.path, segments)) continue;
    if (r.method == method) return RequestCheck{};
    if (!allow.empty()) allow += ", ";
    allow += r.method;
  }
  if (method != "GET" && method != "POST") {
    return refuse(Verdict::method_not_allowed, "the proxy forwards only GET and POST requests",
                  allow);
  }
  if (allow.empty()) {
    return refuse(Verdict::not_found,
                  "not a path the proxy forwards; it forwards " + listed_routes(provider));
  }
  return refuse(Verdict::method_not_allowed, "this path takes only " + allow, allow);
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
  beast::flat_buffer buffer{kMaxHttpReadBuffer};  // common/http_limits.h: no oversized field
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
  std::atomic<std::uint64_t> requests{0}, upstream_errors{0}, refused_budget{0}, refused_request{0};

  // Runs accept_loop; should it end by an unexpected error (out of memory, say), that is
  // logged and accepting starts again after a pause while the socket is open.
  static void start_accepting(std::shared_ptr<Impl> self, std::shared_ptr<Listener> listener);
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
  // `allow`: the Allow header of a 405, omitted when empty. `head`: the request was a HEAD,
  // so the answer is the header alone.
  static asio::awaitable<Outcome> send_error(const Impl& self, Connection& c, Failure failure,
                                             std::string message, bool keep_alive,
                                             std::string allow = {}, bool head = false);
  http::request<http::string_body> upstream_request(http::request<http::string_body>& request);
};

asio::awaitable<Outcome> ModelProxy::Impl::send_error(const Impl& self, Connection& c,
                                                      Failure failure, std::string message,
                                                      bool keep_alive, std::string allow,
                                                      bool head) {
  http::response<http::string_body> res{status_of(failure), 11};
  res.set(http::field::content_type, "application/json");
  if (!allow.empty()) res.set(http::field::allow, allow);
  // Both vendors' SDKs read this header: a used-up budget is not worth retrying.
  if (failure == Failure::budget) res.set("x-should-retry", "false");
  res.body() = error_body(self.options.provider, failure, "switchboard model proxy: " + message);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  if (head) res.body().clear();  // Content-Length stays: what a GET would have got
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
  up.method(request.method());  // GET or POST: check_request let nothing else through
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

void ModelProxy::Impl::start_accepting(std::shared_ptr<Impl> self,
                                       std::shared_ptr<Listener> listener) {
  auto on_end = [self, listener](std::exception_ptr e) {
    if (!e) return;
    log_failure("model proxy: group " + listener->group + ": accepting connections")(e);
    if (listener->closed || self->stopped) return;
    auto pause =
        std::make_shared<asio::steady_timer>(self->executor, std::chrono::milliseconds(100));
    pause->async_wait([self, listener, pause](beast::error_code) {
      if (!listener->closed && !self->stopped) start_accepting(self, listener);
    });
  };
  asio::co_spawn(self->executor, accept_loop(self, listener), std::move(on_end));
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
    // An exception out of a connection's coroutine (of any type) ends that connection only.
    auto finished = [self, connection](std::exception_ptr e) {
      log_failure("model proxy: group " + connection->listener->group +
                  ": connection ended by an unexpected error")(e);
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
        "model proxy: group {}: {} {} -> {}, {} bytes, {} ms", group, loggable(method, 24),
        loggable(target), out.status, out.bytes,
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
  // Decided before anything else, the budget check included: a refused request never goes
  // upstream, so the key is never sent for it. The connection ends after the refusal.
  if (auto check = check_request(o.provider, request.method_string(), request.target());
      check.verdict != RequestCheck::Verdict::forward) {
    ++self->refused_request;
    spdlog::warn("model proxy: group {}: refused {}", group, check.reason);
    const Failure failure = check.verdict == RequestCheck::Verdict::not_found ? Failure::not_found
                            : check.verdict == RequestCheck::Verdict::method_not_allowed
                                ? Failure::method_not_allowed
                                : Failure::bad_request;
    auto reply = send_error(*self, c, failure, std::move(check.reason), false, check.allow,
                            request.method() == http::verb::head);
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

  beast::flat_buffer up_buffer{kMaxHttpReadBuffer};
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(o.max_header_bytes));
  parser.body_limit(boost::none);  // relayed, not stored; the deadline bounds it
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
  const bool bodiless = status / 100 == 1 || status == 204 || status == 304;
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
  Impl::start_accepting(impl_, listener);
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
  return Stats{impl_->requests.load(), impl_->upstream_errors.load(), impl_->refused_budget.load(),
               impl_->refused_request.load()};
}

}  // namespace sb::host

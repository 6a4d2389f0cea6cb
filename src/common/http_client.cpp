#include "common/http_client.h"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <limits>
#include <map>

#include "common/http_limits.h"
#include "common/tls_client.h"
#include "common/url_parts.h"

namespace sb {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct HttpClient::State {
  State(asio::any_io_executor ex, HttpClientOptions opts)
      : executor(std::move(ex)), options(std::move(opts)) {}

  asio::any_io_executor executor;
  HttpClientOptions options;
  ssl::context tls{ssl::context::tls_client};
  bool cancelled = false;
  // How to abort each piece of I/O in flight (a resolver, a socket), by registration id.
  std::map<std::uint64_t, std::function<void()>> aborters;
  std::uint64_t next_id = 0;
};

namespace {

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxHeaderBytes = kMaxHttpHeaderBytes;
constexpr std::size_t kMaxUrlBytes = 8 * 1024;

using StatePtr = std::shared_ptr<HttpClient::State>;

// Registers how to abort one piece of I/O for as long as the guard lives.
class AbortRegistration {
 public:
  AbortRegistration(HttpClient::State& state, std::function<void()> abort)
      : state_(state), id_(++state.next_id) {
    state_.aborters.emplace(id_, std::move(abort));
  }
  ~AbortRegistration() { state_.aborters.erase(id_); }
  AbortRegistration(const AbortRegistration&) = delete;
  AbortRegistration& operator=(const AbortRegistration&) = delete;

 private:
  HttpClient::State& state_;
  std::uint64_t id_;
};

struct Target : HttpEndpoint {
  std::string origin;   // scheme://host:port, for the same-origin check
  std::string display;  // for messages: no user info, no query
};

Result<Target> parse_target(std::string_view text) {
  if (text.size() > kMaxUrlBytes) {
    return make_error("a URL longer than " + std::to_string(kMaxUrlBytes) + " bytes");
  }
  auto url = boost::urls::parse_uri(text);
  if (!url) return make_error("'" + url_for_messages(text) + "' is not an absolute URL");
  auto endpoint = http_endpoint(*url);
  if (!endpoint) return make_error("'" + url_for_messages(text) + "' " + endpoint.error().message);
  Target target;
  static_cast<HttpEndpoint&>(target) = std::move(*endpoint);
  target.origin = std::string(target.tls ? "https://" : "http://") +
                  std::string(url->encoded_host()) + ":" + target.port;
  target.display = url_for_messages(text);
  return target;
}

std::string millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

// The message for a failed step; "cancelled" wins over whatever the abort looked like.
Error step_error(const HttpClient::State& state, const beast::error_code& ec, std::string_view step,
                 const Target& target, std::chrono::milliseconds timeout) {
  if (state.cancelled) return make_error("the request to " + target.display + " was cancelled");
  std::string what = std::string(step) + " " + target.display;
  if (ec == beast::error::timeout) return make_error(what + " timed out after " + millis(timeout));
  if (ec == asio::error::eof || ec == ssl::error::stream_truncated ||
      ec == http::error::end_of_stream || ec == http::error::partial_message) {
    return make_error(what + " failed: the server closed the connection");
  }
  return make_error(what + " failed: " + ec.message());
}

// Resolves, connects and (for https) shakes hands, all before `deadline`.
asio::awaitable<Result<void>> open(const StatePtr& state,
                                   beast::ssl_stream<beast::tcp_stream>& stream,
                                   const Target& target, Clock::time_point deadline) {
  auto& lowest = beast::get_lowest_layer(stream);
  const auto timeout = state->options.connect_timeout;
  auto resolver = std::make_shared<tcp::resolver>(state->executor);
  // The resolver takes no deadline: a timer cancels it, and outlives this frame harmlessly.
  asio::steady_timer timer(state->executor, deadline);
  std::weak_ptr<tcp::resolver> weak = resolver;
  timer.async_wait([weak](const boost::system::error_code& ec) {
    if (auto live = weak.lock(); live && !ec) live->cancel();
  });
  std::optional<AbortRegistration> abort_resolve(std::in_place, *state, [weak] {
    if (auto live = weak.lock()) live->cancel();
  });
  auto [rec, endpoints] = co_await resolver->async_resolve(target.host, target.port, kAsTuple);
  timer.cancel();
  abort_resolve.reset();
  if (state->cancelled) co_return make_error("the request to " + target.display + " was cancelled");
  if (rec) {
    if (Clock::now() >= deadline) {
      co_return make_error("resolving " + target.host + " timed out after " + millis(timeout));
    }
    co_return make_error("cannot resolve " + target.host + ": " + rec.message());
  }
  lowest.expires_at(deadline);
  auto [cec, endpoint] = co_await lowest.async_connect(endpoints, kAsTuple);
  if (cec || state->cancelled) co_return step_error(*state, cec, "connecting to", target, timeout);
  boost::system::error_code ignored;
  lowest.socket().set_option(tcp::no_delay(true), ignored);
  if (!target.tls) co_return Result<void>{};
  SSL* ssl = stream.native_handle();
  if (auto prepared = prepare_tls_handshake(ssl, target.host, state->options.verify_certificate);
      !prepared) {
    co_return prepared.error();
  }
  auto [hec] = co_await stream.async_handshake(ssl::stream_base::client, kAsTuple);
  if (state->cancelled || hec == beast::error::timeout) {
    co_return step_error(*state, hec, "the TLS handshake with", target, timeout);
  }
  if (hec) {
    co_return make_error(
        tls_handshake_error(ssl, hec, target.display, state->options.verify_certificate));
  }
  co_return Result<void>{};
}

http::request<http::string_body> make_request(const HttpRequest& request, const Target& target,
                                              http::verb verb) {
  http::request<http::string_body> req{verb, target.request_target, 11};
  req.set(http::field::host, target.host_header);
  req.set(http::field::user_agent, "switchboard");
  req.set(http::field::accept_encoding, "identity");
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.keep_alive(false);
  req.body() = request.body;
  if (!request.body.empty() || verb == http::verb::post || verb == http::verb::put) {
    req.prepare_payload();
  }
  return req;
}

template <class Fields>
void copy_head(const http::header<false, Fields>& head, HttpResponse& out) {
  out.status = head.result_int();
  for (const auto& field : head) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
}

// One exchange over a new connection: the whole answer, its body capped.
asio::awaitable<Result<HttpResponse>> exchange(StatePtr state, const HttpRequest& request,
                                               const Target& target, http::verb verb,
                                               Clock::time_point deadline, std::size_t cap) {
  const auto& options = state->options;
  beast::ssl_stream<beast::tcp_stream> stream(state->executor, state->tls);
  auto& lowest = beast::get_lowest_layer(stream);
  AbortRegistration abort(*state, [&lowest] { lowest.close(); });
  auto opened = co_await open(state, stream, target,
                              std::min(deadline, Clock::now() + options.connect_timeout));
  if (!opened) co_return opened.error();

  auto req = make_request(request, target, verb);
  lowest.expires_at(deadline);
  beast::flat_buffer buffer{kMaxHttpReadBuffer};  // common/http_limits.h
  http::response_parser<http::string_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(cap);
  beast::error_code ec;
  if (target.tls) {
    std::tie(ec, std::ignore) = co_await http::async_write(stream, req, kAsTuple);
    if (!ec)
      std::tie(ec, std::ignore) = co_await http::async_read(stream, buffer, parser, kAsTuple);
  } else {
    std::tie(ec, std::ignore) = co_await http::async_write(lowest, req, kAsTuple);
    if (!ec)
      std::tie(ec, std::ignore) = co_await http::async_read(lowest, buffer, parser, kAsTuple);
  }
  if (ec == http::error::body_limit && !state->cancelled) {
    co_return make_error("the answer of " + target.display + " is larger than " +
                         std::to_string(cap) + " bytes");
  }
  if (ec || state->cancelled) {
    co_return step_error(*state, ec, "the request to", target, options.request_timeout);
  }
  HttpResponse response;
  copy_head(parser.get().base(), response);
  response.body = std::move(parser.get().body());
  co_return response;
}

template <class Stream>
asio::awaitable<Result<HttpResponse>> read_stream(const StatePtr& state, Stream& stream,
                                                  beast::tcp_stream& lowest, const Target& target,
                                                  Clock::time_point deadline, std::size_t cap,
                                                  std::chrono::milliseconds inactivity,
                                                  const HttpClient::BodyHandler& on_body) {
  beast::flat_buffer buffer{kMaxHttpReadBuffer};  // common/http_limits.h
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  lowest.expires_at(deadline);
  auto [hec, header_bytes] = co_await http::async_read_header(stream, buffer, parser, kAsTuple);
  if (hec || state->cancelled) {
    co_return step_error(*state, hec, "the request to", target, state->options.request_timeout);
  }
  HttpResponse head;
  copy_head(parser.get().base(), head);
  const bool streaming = head.status == 200;
  if (streaming) {
    if (auto go_on = on_body(head, {}); !go_on) co_return go_on.error();
  }
  std::array<char, 16 * 1024> chunk;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    if (streaming) {
      lowest.expires_after(inactivity);
    } else {
      lowest.expires_at(deadline);
    }
    auto [ec, n] = co_await http::async_read_some(stream, buffer, parser, kAsTuple);
    if (ec == http::error::need_buffer) ec = {};
    if (ec || state->cancelled) {
      if (ec == beast::error::timeout && streaming && !state->cancelled) {
        co_return make_error("the stream of " + target.display + " was silent for " +
                             millis(inactivity));
      }
      co_return step_error(*state, ec, "reading from", target, state->options.request_timeout);
    }
    const std::size_t got = chunk.size() - parser.get().body().size;
    if (got == 0) continue;
    if (streaming) {
      if (auto go_on = on_body(head, std::string_view(chunk.data(), got)); !go_on) {
        co_return go_on.error();
      }
    } else {
      if (head.body.size() + got > cap) {
        co_return make_error("the answer of " + target.display + " is larger than " +
                             std::to_string(cap) + " bytes");
      }
      head.body.append(chunk.data(), got);
    }
  }
  co_return head;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (beast::iequals(key, name)) return value;
  }
  return {};
}

std::string url_for_messages(std::string_view text) {
  auto url = boost::urls::parse_uri_reference(text);
  if (!url) {
    std::string cut(text.substr(0, std::min(text.find_first_of("?#"), std::size_t{200})));
    for (char& c : cut) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    return cut;
  }
  boost::urls::url copy(*url);
  copy.remove_userinfo();
  copy.remove_query();
  copy.remove_fragment();
  return std::string(copy.buffer());
}

HttpClient::HttpClient(asio::any_io_executor executor, HttpClientOptions options)
    : state_(std::make_shared<State>(std::move(executor), std::move(options))) {}

HttpClient::~HttpClient() { cancel(); }

Result<std::unique_ptr<HttpClient>> HttpClient::make(asio::any_io_executor executor,
                                                     HttpClientOptions options) {
  std::unique_ptr<HttpClient> client(new HttpClient(std::move(executor), std::move(options)));
  auto& state = *client->state_;
  if (auto loaded =
          configure_tls_client(state.tls, state.options.verify_certificate, state.options.ca_file);
      !loaded) {
    return loaded.error();
  }
  return client;
}

void HttpClient::cancel() {
  state_->cancelled = true;
  // An aborter may run completions that unregister others: work on a copy.
  auto aborters = state_->aborters;
  for (auto& [id, abort] : aborters) abort();
}

bool HttpClient::cancelled() const { return state_->cancelled; }

asio::awaitable<Result<HttpResponse>> HttpClient::request(HttpRequest request) {
  StatePtr state = state_;  // the frame keeps the state alive whatever happens to *this
  const auto deadline = Clock::now() + state->options.request_timeout;
  const std::size_t cap = request.max_response_bytes.value_or(state->options.max_response_bytes);
  const http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) co_return make_error("unknown HTTP method " + request.method);
  auto target = parse_target(request.url);
  if (!target) co_return target.error();
  for (int redirects = 0;; ++redirects) {
    if (state->cancelled)
      co_return make_error("the request to " + target->display + " was cancelled");
    auto answer = co_await exchange(state, request, *target, verb, deadline, cap);
    if (!answer) co_return answer.error();
    answer->url = request.url;
    const std::string location = answer->header("Location");
    if (verb != http::verb::get || !is_redirect_status(answer->status) || location.empty() ||
        redirects >= request.max_redirects) {
      co_return answer;
    }
    auto next_url = resolve_location(request.url, location);
    if (!next_url)
      co_return make_error(target->display + " answered with " + next_url.error().message);
    auto next = parse_target(*next_url);
    if (!next) co_return make_error(target->display + " redirected to " + next.error().message);
    if (next->tls != target->tls) {
      co_return make_error(target->display + " redirected to another scheme: " + next->display);
    }
    if (next->origin != target->origin) {
      std::erase_if(request.headers, [](const auto& header) {
        return beast::iequals(header.first, "Authorization");
      });
    }
    request.url = *next_url;
    target = std::move(next);
  }
}

asio::awaitable<Result<HttpResponse>> HttpClient::stream(HttpRequest request, BodyHandler on_body,
                                                         std::chrono::milliseconds inactivity) {
  StatePtr state = state_;
  const auto& options = state->options;
  const auto deadline = Clock::now() + options.request_timeout;
  const std::size_t cap = request.max_response_bytes.value_or(options.max_response_bytes);
  auto target = parse_target(request.url);
  if (!target) co_return target.error();
  if (state->cancelled)
    co_return make_error("the request to " + target->display + " was cancelled");
  beast::ssl_stream<beast::tcp_stream> stream(state->executor, state->tls);
  auto& lowest = beast::get_lowest_layer(stream);
  AbortRegistration abort(*state, [&lowest] { lowest.close(); });
  auto opened = co_await open(state, stream, *target,
                              std::min(deadline, Clock::now() + options.connect_timeout));
  if (!opened) co_return opened.error();
  auto req = make_request(request, *target, http::verb::get);
  lowest.expires_at(deadline);
  beast::error_code wec;
  if (target->tls) {
    std::tie(wec, std::ignore) = co_await http::async_write(stream, req, kAsTuple);
  } else {
    std::tie(wec, std::ignore) = co_await http::async_write(lowest, req, kAsTuple);
  }
  if (wec || state->cancelled) {
    co_return step_error(*state, wec, "the request to", *target, options.request_timeout);
  }
  // Not a conditional expression: g++ 12 miscompiles co_await inside one.
  std::optional<Result<HttpResponse>> answer;
  if (target->tls) {
    answer.emplace(
        co_await read_stream(state, stream, lowest, *target, deadline, cap, inactivity, on_body));
  } else {
    answer.emplace(
        co_await read_stream(state, lowest, lowest, *target, deadline, cap, inactivity, on_body));
  }
  if (*answer) (*answer)->url = request.url;
  co_return std::move(*answer);
}

}  // namespace sb

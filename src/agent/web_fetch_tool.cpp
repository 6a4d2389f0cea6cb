#include "agent/web_fetch_tool.h"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <exception>
#include <limits>
#include <optional>

#include "agent/workspace_tools.h"
#include "common/html_text.h"
#include "common/url_parts.h"

namespace sb::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxUrlBytes = 8 * 1024;
constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
constexpr std::size_t kBinaryProbeBytes = 8 * 1024;

// Where one request goes.
struct Target : HttpEndpoint {
  std::string url;  // as given or as resolved from a redirect, for messages
};

Result<Target> parse_target(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  auto url = boost::urls::parse_uri(text);
  if (!url) return make_error(quoted + " is not an absolute URL (like https://example.org/)");
  if (url->scheme_id() != boost::urls::scheme::https &&
      url->scheme_id() != boost::urls::scheme::http) {
    return make_error("only http and https URLs can be fetched, not " + quoted);
  }
  if (url->has_userinfo()) {
    return make_error(quoted + " contains a user name or password, which web_fetch does not send");
  }
  auto endpoint = http_endpoint(*url);
  if (!endpoint) return make_error(quoted + " " + endpoint.error().message);
  Target target;
  static_cast<HttpEndpoint&>(target) = std::move(*endpoint);
  target.url = std::string(text);
  return target;
}

// What one request brought back.
struct Exchange {
  std::string error;  // empty on success
  int status = 0;
  std::string reason;
  std::string content_type;
  std::string location;
  std::string body;
  bool truncated = false;
};

std::string failure_text(const beast::error_code& ec, std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) return "timed out after " + seconds_text(timeout);
  return ec.message();
}

template <class Stream>
asio::awaitable<void> request(Stream& stream, beast::tcp_stream& lowest, const Target& target,
                              std::size_t max_bytes, Clock::time_point deadline,
                              std::chrono::milliseconds timeout, Exchange& out) {
  http::request<http::empty_body> req{http::verb::get, target.request_target, 11};
  req.set(http::field::host, target.host_header);
  req.set(http::field::user_agent, "switchboard-agent");
  req.set(http::field::accept, "text/html, text/plain;q=0.9, */*;q=0.8");
  req.set(http::field::accept_encoding, "identity");
  req.keep_alive(false);
  lowest.expires_at(deadline);
  auto [wec, written] = co_await http::async_write(stream, req, kAsTuple);
  if (wec) {
    out.error = "sending the request failed: " + failure_text(wec, timeout);
    co_return;
  }

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  auto [hec, header_bytes] = co_await http::async_read_header(stream, buffer, parser, kAsTuple);
  if (hec) {
    out.error = "reading the response failed: " + failure_text(hec, timeout);
    co_return;
  }
  const auto& head = parser.get();
  out.status = head.result_int();
  out.reason = std::string(head.reason());
  out.content_type = std::string(head[http::field::content_type]);
  out.location = std::string(head[http::field::location]);
  if (is_redirect_status(out.status) && !out.location.empty()) co_return;

  char chunk[16 * 1024];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    auto [rec, n] = co_await http::async_read(stream, buffer, parser, kAsTuple);
    if (rec && rec != http::error::need_buffer) {
      out.error = "reading the response body failed after " + std::to_string(out.body.size()) +
                  " bytes: " + failure_text(rec, timeout);
      co_return;
    }
    const std::size_t got = sizeof chunk - parser.get().body().size;
    const std::size_t room = max_bytes - out.body.size();
    out.body.append(chunk, std::min(got, room));
    if (got > room || (out.body.size() == max_bytes && !parser.is_done())) {
      out.truncated = true;
      co_return;
    }
  }
}

asio::awaitable<void> fetch(const Target& target, std::size_t max_bytes, Clock::time_point deadline,
                            std::chrono::milliseconds timeout, Exchange& out) {
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(target.host, target.port, kAsTuple);
  if (rec) {
    out.error = "cannot resolve " + target.host + ": " + rec.message();
    co_return;
  }
  const std::string where = target.host + " port " + target.port;
  if (!target.tls) {
    beast::tcp_stream stream(executor);
    stream.expires_at(deadline);
    auto [cec, endpoint] = co_await stream.async_connect(endpoints, kAsTuple);
    if (cec) {
      out.error = "cannot connect to " + where + ": " + failure_text(cec, timeout);
      co_return;
    }
    co_await request(stream, stream, target, max_bytes, deadline, timeout, out);
    co_return;
  }

  ssl::context tls(ssl::context::tls_client);
  beast::error_code ec;
  tls.set_default_verify_paths(ec);
  if (ec) {
    out.error = "cannot load the system's trusted certificates: " + ec.message();
    co_return;
  }
  tls.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(executor, tls);
  auto& lowest = beast::get_lowest_layer(stream);
  beast::error_code address_ec;
  asio::ip::make_address(target.host, address_ec);
  // SNI takes names only, never address literals.
  if (address_ec && !SSL_set_tlsext_host_name(stream.native_handle(), target.host.c_str())) {
    out.error = "cannot set the TLS server name " + target.host;
    co_return;
  }
  stream.set_verify_callback(ssl::host_name_verification(target.host));
  lowest.expires_at(deadline);
  auto [cec, endpoint] = co_await lowest.async_connect(endpoints, kAsTuple);
  if (cec) {
    out.error = "cannot connect to " + where + ": " + failure_text(cec, timeout);
    co_return;
  }
  auto [hec] = co_await stream.async_handshake(ssl::stream_base::client, kAsTuple);
  if (hec) {
    out.error = "the TLS handshake with " + target.host + " failed: " + failure_text(hec, timeout);
    co_return;
  }
  co_await request(stream, lowest, target, max_bytes, deadline, timeout, out);
}

Exchange fetch_blocking(const Target& target, std::size_t max_bytes, Clock::time_point deadline,
                        std::chrono::milliseconds timeout) {
  Exchange out;
  asio::io_context io;
  auto done = [&out](std::exception_ptr failure) {
    if (!failure) return;
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      out.error = e.what();
    }
  };
  asio::co_spawn(io, fetch(target, max_bytes, deadline, timeout, out), done);
  io.run();
  return out;
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && beast::iequals(text.substr(0, prefix.size()), prefix);
}

bool looks_binary(std::string_view content_type, std::string_view body) {
  for (std::string_view kind : {"image/", "audio/", "video/", "font/", "application/octet-stream",
                                "application/pdf", "application/zip", "application/gzip"}) {
    if (starts_with_ci(content_type, kind)) return true;
  }
  return body.substr(0, kBinaryProbeBytes).find('\0') != std::string_view::npos;
}

}  // namespace

WebFetchTool::WebFetchTool() {
  spec_.name = "web_fetch";
  spec_.description =
      "Fetch a web page or file with HTTP GET (http and https only; https certificates are "
      "verified). Follows up to 5 redirects. Returns the final URL, status, content type and "
      "the body as text (HTML pages converted to readable text; binary content is not shown). "
      "Reads at most "
      "max_bytes of the body (default 524288, at most 8388608) and says when it was cut; long "
      "output keeps its beginning and end.";
  spec_.input_schema = json::parse(R"({"type":"object","properties":{
      "url":{"type":"string","description":"The http:// or https:// URL."},
      "max_bytes":{"type":"integer","minimum":1,"maximum":8388608,
                   "description":"Most bytes of body to read. Default 524288."}},
      "required":["url"]})")
                           .as_object();
}

ToolOutput WebFetchTool::run(const json::object& input, const ToolContext& context) {
  auto url = required_string(input, "url");
  if (!url) return ToolOutput::error(url.error().message);
  if (url->size() > kMaxUrlBytes) {
    return ToolOutput::error("'url' is longer than " + std::to_string(kMaxUrlBytes) + " bytes");
  }
  auto max_bytes = optional_integer(input, "max_bytes", 1, kMaxFetchBytes);
  if (!max_bytes) return ToolOutput::error(max_bytes.error().message);
  const auto body_cap = static_cast<std::size_t>(max_bytes->value_or(kDefaultFetchBytes));
  auto target = parse_target(*url);
  if (!target) return ToolOutput::error(target.error().message);

  const auto deadline = Clock::now() + context.timeout;
  std::vector<std::string> redirects;
  Exchange exchange;
  while (true) {
    exchange = fetch_blocking(*target, body_cap, deadline, context.timeout);
    if (!exchange.error.empty()) {
      return ToolOutput::error("fetching " + target->url + " failed: " + exchange.error);
    }
    if (!is_redirect_status(exchange.status) || exchange.location.empty()) break;
    if (redirects.size() == static_cast<std::size_t>(kMaxRedirects)) {
      return ToolOutput::error("fetching " + *url + " failed: more than " +
                               std::to_string(kMaxRedirects) + " redirects (the last to " +
                               exchange.location + ")");
    }
    auto next = resolve_location(target->url, exchange.location);
    if (!next) {
      return ToolOutput::error("fetching " + target->url + " failed: " + next.error().message);
    }
    auto next_target = parse_target(*next);
    if (!next_target) {
      return ToolOutput::error("fetching " + target->url + " failed: redirected, but " +
                               next_target.error().message);
    }
    redirects.push_back(*next);
    target = std::move(next_target);
  }

  std::string out = "URL: " + target->url + "\n";
  if (!redirects.empty()) out += "Redirected from: " + *url + "\n";
  out += "Status: " + std::to_string(exchange.status) + " " + exchange.reason + "\n";
  out +=
      "Content-Type: " + (exchange.content_type.empty() ? "(none)" : exchange.content_type) + "\n";
  if (looks_binary(exchange.content_type, exchange.body)) {
    out += "\n[binary content, " + std::to_string(exchange.body.size()) + " bytes" +
           (exchange.truncated ? " read before the cut" : "") + "; not shown]\n";
  } else {
    // HTML is read as text, as a person would see the page; tags cost the model tokens.
    const bool html = exchange.content_type.find("html") != std::string::npos;
    const std::string text = to_valid_utf8(html ? html_to_text(exchange.body) : exchange.body);
    out += "\n" + text;
    if (exchange.truncated) {
      if (!text.empty() && text.back() != '\n') out += '\n';
      out += "[body cut after " + std::to_string(body_cap) +
             " bytes; pass a larger max_bytes (up to " + std::to_string(kMaxFetchBytes) +
             ") to read more]\n";
    }
  }
  return {cap_output(out, context.max_output_bytes), exchange.status >= 400};
}

}  // namespace sb::agent

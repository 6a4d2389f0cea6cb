// What a web server (a JMAP server) answers to the daemon's HTTP client, read as
// common/http_client.cpp reads it: Boost.Beast's response_parser with the client's header
// limit, read buffer (common/http_limits.h) and body cap, both as a whole answer
// (HttpClient::request) and as a stream handed out in 16 KiB pieces (HttpClient::stream);
// then what the client does with the head: the headers as HttpResponse keeps them, and a
// redirect's Location resolved against the request's URL and checked as the next target.
//
// Properties checked beyond "no crash": the body never exceeds the cap; a URL made fit for
// messages has no fragment and no control characters.
#include <array>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/url/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "common/http_client.h"
#include "common/http_limits.h"
#include "common/url_parts.h"
#include "fuzz_support.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using sb::fuzz::require;

constexpr std::string_view kUrl = "https://jmap.example.org/jmap/session?x=1";
constexpr std::size_t kCap = 8192;  // HttpClientOptions' 16 MiB, scaled down

template <class Fields>
sb::HttpResponse head_of(const http::header<false, Fields>& head) {
  sb::HttpResponse out;
  out.status = head.result_int();
  for (const auto& field : head) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.url = std::string(kUrl);
  return out;
}

void check_message_url(std::string_view url) {
  const std::string shown = sb::url_for_messages(url);
  require(shown.find('#') == std::string::npos, "no fragment in messages");
  for (unsigned char c : shown) require(c >= 0x20 && c != 0x7f, "no controls in messages");
}

void follow(const sb::HttpResponse& response) {
  const std::string location = response.header("Location");
  if (!sb::is_redirect_status(response.status) || location.empty()) return;
  auto next = sb::resolve_location(response.url, location);
  if (!next) return;
  require(next->find('#') == std::string::npos, "a redirect target has no fragment");
  check_message_url(*next);
  if (auto url = boost::urls::parse_uri(*next)) {
    if (auto endpoint = sb::http_endpoint(*url)) {
      require(!endpoint->host.empty() && !endpoint->port.empty(), "an endpoint to dial");
      require(endpoint->request_target.starts_with("/"), "an origin-form request target");
    }
  }
}

void whole_answer(std::string_view bytes) {
  sb::fuzz::PieceStream stream(bytes);
  beast::flat_buffer buffer{sb::kMaxHttpReadBuffer};
  http::response_parser<http::string_body> parser;
  parser.header_limit(sb::kMaxHttpHeaderBytes);
  parser.body_limit(kCap);
  beast::error_code ec;
  http::read(stream, buffer, parser, ec);
  if (ec) return;
  sb::HttpResponse response = head_of(parser.get().base());
  response.body = std::move(parser.get().body());
  require(response.body.size() <= kCap, "the body is capped");
  follow(response);
}

void streamed_answer(std::string_view bytes) {
  sb::fuzz::PieceStream stream(bytes);
  beast::flat_buffer buffer{sb::kMaxHttpReadBuffer};
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(sb::kMaxHttpHeaderBytes);
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  beast::error_code ec;
  http::read_header(stream, buffer, parser, ec);
  if (ec) return;
  sb::HttpResponse head = head_of(parser.get().base());
  std::array<char, 16 * 1024> chunk;
  std::size_t streamed = 0;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    http::read_some(stream, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return;
    const std::size_t got = chunk.size() - parser.get().body().size;
    streamed += got;
    if (head.status != 200) {
      if (head.body.size() + got > kCap) return;  // "larger than N bytes"
      head.body.append(chunk.data(), got);
    }
  }
  require(streamed <= bytes.size(), "no more body than bytes");
  follow(head);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = sb::fuzz::as_text(data, size);
  whole_answer(bytes);
  streamed_answer(bytes);
  check_message_url(bytes.substr(0, 512));
  return 0;
}

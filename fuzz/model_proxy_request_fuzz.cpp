// What an agent sends to the model proxy's socket, read as ModelProxy reads it
// (host/model_proxy.cpp): Boost.Beast's request_parser with the proxy's limits (ProxyOptions'
// header and body limits, the read buffer of common/http_limits.h), several requests on one
// connection, then the proxy's decision for each (check_request, for both providers) and the
// target it would send upstream.
//
// Properties checked beyond "no crash": a forwarded request is a listed GET or POST whose
// upstream target is a plain path under the prefix (no dot segment, no encoded slash, no
// query, nothing that could climb out of the provider's API); refusals are loggable text.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/http_limits.h"
#include "fuzz_support.h"
#include "host/model_proxy.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using namespace sb::host;
using sb::fuzz::require;

bool is_plain_ascii(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void check(ModelProvider provider, std::string_view method, std::string_view target) {
  const RequestCheck verdict = check_request(provider, method, target);
  require(is_plain_ascii(verdict.reason), "a refusal is loggable");
  if (verdict.verdict != RequestCheck::Verdict::forward) {
    require(!verdict.reason.empty(), "a refusal says why");
    return;
  }
  require(method == "GET" || method == "POST", "only GET and POST go upstream");
  for (std::string_view prefix : {"", "/v1", "/api/openai/v1"}) {
    const std::string up = upstream_target(prefix, target);
    require(up.starts_with(std::string(prefix) + "/"), "upstream stays under the prefix");
    const std::string low = lower(up);
    for (std::string_view bad : {"/./", "/../", "//", "?", "#", "%2f", "%5c", "%2e", "\\"}) {
      require(low.find(bad) == std::string::npos, "a forwarded path is plain");
    }
    require(!low.ends_with("/.") && !low.ends_with("/.."), "no trailing dot segment");
    const std::string api =
        prefix.ends_with("/v1") ? std::string(prefix) + "/" : std::string(prefix) + "/v1/";
    require(low.starts_with(lower(api)), "only the provider's /v1 API");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ProxyOptions options;
  sb::fuzz::PieceStream stream(sb::fuzz::as_text(data, size));
  beast::flat_buffer buffer{sb::kMaxHttpReadBuffer};
  for (int requests = 0; requests < 16; ++requests) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    parser.body_limit(options.max_request_bytes);
    beast::error_code ec;
    http::read_header(stream, buffer, parser, ec);
    if (ec) break;  // refused (400/413/431) and closed, or the agent went away
    http::read(stream, buffer, parser, ec);
    if (ec) break;
    const auto& request = parser.get();
    for (auto provider : {ModelProvider::anthropic, ModelProvider::openai}) {
      check(provider, request.method_string(), request.target());
    }
    loggable(request.method_string(), 24);
    if (!request.keep_alive()) break;
  }
  return 0;
}

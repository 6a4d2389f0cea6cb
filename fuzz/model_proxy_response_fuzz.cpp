// What a model provider answers, read as the model proxy reads it while relaying it
// (host/model_proxy.cpp, ModelProxy::Impl::exchange): Boost.Beast's response_parser with the
// proxy's header limit and read buffer (common/http_limits.h), the body taken in the relay's
// 16 KiB pieces, and the token usage read from it (UsageScanner, JSON or event stream by the
// Content-Type, for both providers).
//
// Properties checked beyond "no crash": the usage read from the relayed pieces equals the
// usage read from the whole body at once; token counts are never negative.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_limits.h"
#include "fuzz_support.h"
#include "host/model_proxy.h"
#include "host/usage.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using namespace sb::host;
using sb::fuzz::require;

// Small caps so that the fuzzer reaches them (the proxy's are 8 MiB and 1 MiB).
constexpr std::size_t kMaxJson = 4096;
constexpr std::size_t kMaxLine = 512;

bool same(const std::optional<TokenUsage>& a, const std::optional<TokenUsage>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->input_tokens == b->input_tokens && a->output_tokens == b->output_tokens &&
                a->model == b->model);
}

void scan(BodyFormat format, const std::vector<std::string>& pieces, const std::string& body) {
  for (auto provider : {ModelProvider::anthropic, ModelProvider::openai}) {
    UsageScanner relayed(provider, format, kMaxJson, kMaxLine);
    for (const auto& piece : pieces) relayed.feed(piece);
    const auto usage = relayed.finish();
    UsageScanner whole(provider, format, kMaxJson, kMaxLine);
    whole.feed(body);
    require(same(usage, whole.finish()), "pieces give the same usage");
    require(relayed.note() == whole.note(), "pieces give the same note");
    if (usage) require(usage->input_tokens >= 0 && usage->output_tokens >= 0, "counts >= 0");
    UsageScanner split(provider, format, kMaxJson, kMaxLine);
    for (auto piece : sb::fuzz::Pieces::split(body, 8)) split.feed(piece);
    require(same(usage, split.finish()), "small pieces give the same usage");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ProxyOptions options;
  sb::fuzz::PieceStream stream(sb::fuzz::as_text(data, size));
  beast::flat_buffer buffer{sb::kMaxHttpReadBuffer};
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
  parser.body_limit(boost::none);
  beast::error_code ec;
  http::read_header(stream, buffer, parser, ec);
  if (ec) return 0;  // 502 to the agent
  const auto content_type = parser.get()[http::field::content_type];
  constexpr std::string_view kSse = "text/event-stream";
  const bool sse = content_type.size() >= kSse.size() &&
                   beast::iequals(content_type.substr(0, kSse.size()), kSse);

  std::vector<std::string> pieces;
  std::string body;
  std::vector<char> piece(16 * 1024);
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    http::read_some(stream, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) break;  // cut off: the usage seen so far still counts
    const std::size_t n = piece.size() - parser.get().body().size;
    if (n == 0) continue;
    pieces.emplace_back(piece.data(), n);
    body.append(piece.data(), n);
  }
  scan(sse ? BodyFormat::sse : BodyFormat::json, pieces, body);
  return 0;
}

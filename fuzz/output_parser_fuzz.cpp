// An agent's stdout as the agent runner reads it (sandbox/output_parser.h): OutputParser fed
// the stream, then finish(); parse_result_json on the whole input as one framed payload.
//
// Properties checked beyond "no crash": the same results and noise whether the stream arrives
// whole or in pieces split anywhere (inside a marker, between CR and LF); noise lines and
// result payloads within their limits.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "sandbox/output_parser.h"

namespace {

using namespace sb::sandbox;
using sb::fuzz::require;

constexpr OutputParser::Limits kLimits{.max_result_bytes = 2048, .max_noise_line_bytes = 128};

std::string describe(const AgentResult& r) {
  auto field = [](const std::optional<std::string>& v) { return v ? "=" + *v : "-"; };
  return std::string(to_string(r.status)) + '\0' + field(r.result) + '\0' +
         field(r.new_session_id) + '\0' + field(r.error);
}

// Results and noise, each in stream order (one feed() hands out each list separately, so
// their interleaving depends on where the stream was split).
struct Found {
  std::vector<std::string> results;
  std::vector<std::string> noise;
  bool operator==(const Found&) const = default;
};

Found run(const std::vector<std::string_view>& pieces) {
  OutputParser parser(kLimits);
  Found out;
  auto take = [&](const OutputParser::Output& output) {
    for (const auto& result : output.results) {
      if (result.result) {
        require(result.result->size() <= kLimits.max_result_bytes, "a result within its limit");
      }
      out.results.push_back(describe(result));
    }
    for (const auto& noise : output.noise) {
      require(noise.size() <= kLimits.max_noise_line_bytes + 32, "noise lines are cut");
      out.noise.push_back(noise);
    }
  };
  for (auto piece : pieces) take(parser.feed(piece));
  take(parser.finish());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = sb::fuzz::as_text(data, size);
  require(run({input}) == run(sb::fuzz::Pieces::split(input, 16)),
          "pieces give the same results and noise");
  const AgentResult direct = parse_result_json(input);
  require(direct.status == AgentResult::Status::success || direct.error.has_value(),
          "an error result says what was wrong");
  return 0;
}

// What an IMAP server sends, read as the IMAP client reads it (channels/email/imap_protocol.h):
// ImapParser fed the bytes, then the readers the session applies to each response
// (capabilities, FETCH items).
//
// Properties checked beyond "no crash": the parser gives the same responses (or the same
// failure) whether the bytes arrive whole or in pieces split anywhere, literals included.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "channels/email/imap_protocol.h"
#include "fuzz_support.h"

namespace {

using namespace sb::email;
using sb::fuzz::require;

// The client's limits, scaled down so that the fuzzer reaches them.
ImapLimits limits() {
  ImapLimits l;
  l.max_line = 2048;
  l.max_search_line = 8192;
  l.max_literal = 4096;
  l.max_response = 16384;
  l.max_depth = 8;
  return l;
}

// A response written out for comparison.
void describe(const ImapValue& value, std::string& out) {
  out += static_cast<char>('0' + static_cast<int>(value.kind));
  out += value.text;
  out += '(';
  for (const auto& item : value.items) describe(item, out);
  out += ')';
}

std::string describe(const ImapResponse& r) {
  std::string out = std::to_string(static_cast<int>(r.kind)) + "|" + r.tag + "|" +
                    std::to_string(static_cast<int>(r.status)) + "|" + r.code + "|" + r.code_args +
                    "|" + r.text + "|" + (r.number ? std::to_string(*r.number) : "-") + "|" +
                    r.name + "|";
  for (const auto& value : r.values) describe(value, out);
  for (auto n : r.numbers) out += "," + std::to_string(n);
  return out + (r.unknown ? "?" : "");
}

struct Outcome {
  std::vector<std::string> responses;
  bool broken = false;
};

Outcome run(const std::vector<std::string_view>& pieces) {
  ImapParser parser(limits());
  Outcome out;
  for (auto piece : pieces) {
    const bool fed = static_cast<bool>(parser.feed(piece));
    require(fed == !parser.broken(), "feed() fails exactly when the parser is broken");
    while (auto response = parser.next()) {
      require(response->text.size() <= 500, "response text is bounded");
      for (unsigned char c : response->text) require(c >= 0x20 && c < 0x7f, "printable text");
      out.responses.push_back(describe(*response));
      imap_capabilities(*response);
      if (response->name == "FETCH") {
        auto fetch = imap_fetch(*response);
        if (fetch && fetch->body) {
          require(fetch->body->size() <= limits().max_literal || fetch->body->size() <= 2048,
                  "a body comes from a bounded literal or line");
        }
      }
    }
    if (!fed) {
      out.broken = true;
      require(!parser.feed("* OK\r\n"), "a broken parser stays broken");
      break;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = sb::fuzz::as_text(data, size);
  const Outcome whole = run({input});
  const Outcome pieces = run(sb::fuzz::Pieces::split(input, 16));
  require(whole.broken == pieces.broken, "pieces break the parser exactly when the whole does");
  if (!whole.broken) require(whole.responses == pieces.responses, "pieces give the same responses");
  return 0;
}

// A JMAP push stream (text/event-stream) read as JmapReceiver reads it: EventStreamParser
// (channels/email/event_stream.h) fed the body, each event's data read as a StateChange.
//
// Properties checked beyond "no crash": the same events (or the same failure) whether the
// bytes arrive whole or in pieces split anywhere (inside a CRLF, inside the BOM); events and
// lines within their limits.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "channels/email/event_stream.h"
#include "channels/email/jmap_protocol.h"
#include "fuzz_support.h"

namespace {

using namespace sb::email;
using sb::fuzz::require;

constexpr EventStreamParser::Limits kLimits{.max_line_bytes = 256, .max_data_bytes = 1024};

struct Outcome {
  std::vector<std::string> events;
  bool failed = false;
  std::string last_event_id;
  long long retry = -1;
};

Outcome run(const std::vector<std::string_view>& pieces) {
  EventStreamParser parser(kLimits);
  Outcome out;
  auto on_event = [&](const ServerSentEvent& event) {
    require(event.data.size() <= kLimits.max_data_bytes, "event data within its limit");
    out.events.push_back(event.type + '\0' + event.data + '\0' + event.id);
    (void)jmap::read_state_change(event.data);
  };
  for (auto piece : pieces) {
    if (!parser.feed(piece, on_event)) {
      out.failed = true;
      break;
    }
  }
  out.last_event_id = parser.last_event_id();
  if (auto retry = parser.retry()) out.retry = retry->count();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = sb::fuzz::as_text(data, size);
  const Outcome whole = run({input});
  const Outcome pieces = run(sb::fuzz::Pieces::split(input, 8));
  require(whole.failed == pieces.failed, "pieces fail exactly when the whole does");
  if (!whole.failed) {
    require(whole.events == pieces.events, "pieces give the same events");
    require(whole.last_event_id == pieces.last_event_id, "pieces give the same last id");
    require(whole.retry == pieces.retry, "pieces give the same retry");
  }
  return 0;
}

#pragma once
// Reading a text/event-stream (Server-Sent Events, WHATWG HTML "9.2 Server-sent events"), as
// JMAP push (RFC 8620 7.3) sends it: bytes in any chunking → events. Lines end in CRLF, LF
// or CR (a CR at the end of one chunk and an LF at the start of the next are one line end);
// a leading UTF-8 BOM is skipped; "event:", "data:" (several joined by "\n"), "id:" and
// "retry:" fields, one optional space after the colon; lines starting with ":" are comments
// (JMAP servers send pings as comments or as "ping" events); unknown fields are ignored; an
// empty line dispatches the event when it has data. The last event id persists across events
// (for Last-Event-ID on reconnect). Pure: no I/O.
//
// Errors: a line or an event's data over its bound (the stream must be dropped then; the
// parser is unusable afterwards).
//
// Threading: one parser per stream, used from one thread.

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sb::email {

struct ServerSentEvent {
  std::string type = "message";  // the "event:" field, or "message"
  std::string data;              // the "data:" lines joined by "\n"
  std::string id;                // the last event id at dispatch
};

class EventStreamParser {
 public:
  struct Limits {
    std::size_t max_line_bytes = 64 * 1024;
    std::size_t max_data_bytes = 1024 * 1024;
  };
  EventStreamParser() = default;
  explicit EventStreamParser(Limits limits) : limits_(limits) {}

  // Parses `bytes` and calls `on_event` for each event completed by them, in order.
  Result<void> feed(std::string_view bytes,
                    const std::function<void(const ServerSentEvent&)>& on_event);

  // The last event id as of the last dispatch (a blank line), "" before any "id:".
  const std::string& last_event_id() const { return last_event_id_; }
  // The reconnection time the server asked for with "retry:", if it did.
  std::optional<std::chrono::milliseconds> retry() const { return retry_; }

 private:
  Result<void> line(std::string_view text,
                    const std::function<void(const ServerSentEvent&)>& on_event);

  Limits limits_;
  std::string line_;
  bool after_cr_ = false;     // the previous byte ended a line with CR
  bool bom_checked_ = false;  // the first bytes were looked at for a BOM
  std::string bom_prefix_;    // the first bytes, while fewer than 3 arrived
  std::string event_type_;
  std::string data_;
  std::string id_buffer_;
  std::string last_event_id_;
  std::optional<std::chrono::milliseconds> retry_;
  bool failed_ = false;
};

}  // namespace sb::email

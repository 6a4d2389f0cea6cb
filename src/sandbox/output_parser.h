#pragma once
// OutputParser: reads an agent's stdout as it streams in and hands out the results framed
// by marker lines (docs/agent-protocol.md):
//
//   ---SWITCHBOARD_OUTPUT_START---
//   {"status":"success","result":"…","newSessionId":"…"}
//   ---SWITCHBOARD_OUTPUT_END---
//
// A marker counts only when it is a whole line (a trailing CR is tolerated, so CRLF works).
// Chunks may be split anywhere, even inside a marker. The JSON between the markers is
// normally one line; several lines are joined with '\n' before parsing, so pretty-printed
// JSON is accepted too. Lines outside the markers are "noise": handed out (truncated to a
// bounded length) for the log and otherwise ignored.
//
// Hostile output never crashes the parser and never makes it hold more than about twice
// `max_result_bytes` plus `max_noise_line_bytes`: malformed JSON, a JSON value that is not a
// result object, an oversized result or a START without END each become an error result
// that says what was wrong.
//
// Not thread-safe; one parser per agent process.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sb::sandbox {

inline constexpr std::string_view kOutputStartMarker = "---SWITCHBOARD_OUTPUT_START---";
inline constexpr std::string_view kOutputEndMarker = "---SWITCHBOARD_OUTPUT_END---";

// One result of an agent, as it printed it (or an error result describing what it printed
// wrongly).
struct AgentResult {
  enum class Status { success, error };
  Status status = Status::error;
  std::optional<std::string> result;          // null/absent: the agent had nothing to say
  std::optional<std::string> new_session_id;  // "newSessionId"
  std::optional<std::string> error;
};

// "success" or "error".
std::string_view to_string(AgentResult::Status status);

class OutputParser {
 public:
  struct Limits {
    // The JSON between one START/END pair; more → an error result.
    std::size_t max_result_bytes = 4 * 1024 * 1024;
    // Noise lines longer than this are cut (and marked " …[truncated]").
    std::size_t max_noise_line_bytes = 4096;
  };

  // What one feed() or finish() found, each list in stdout order.
  struct Output {
    std::vector<AgentResult> results;
    std::vector<std::string> noise;  // without the line terminator
  };

  OutputParser() : OutputParser(Limits{}) {}
  explicit OutputParser(Limits limits);

  // Consumes the next bytes of stdout; returns the results and noise lines completed by them.
  Output feed(std::string_view chunk);

  // Call at end of stream: a last line without a newline is treated as complete, and a
  // result left open (START without END) becomes an error result. The parser is then reset.
  Output finish();

 private:
  enum class State { outside, inside };

  void end_line(Output& out);
  void handle_line(std::string_view line, bool overlong, Output& out);
  void emit_payload(Output& out);

  Limits limits_;
  State state_ = State::outside;
  std::string line_;            // the current, incomplete line (bounded)
  bool line_overlong_ = false;  // bytes of the current line were dropped
  std::string payload_;         // JSON lines between START and END
  bool payload_overlong_ = false;
};

// Interprets the JSON text between the markers. Never throws: malformed JSON, a non-object,
// a missing or unknown status or wrongly typed fields give an error result naming the
// problem.
AgentResult parse_result_json(std::string_view json);

}  // namespace sb::sandbox

#pragma once
// Writes the agent's results to stdout in the framed form the host parses
// (docs/agent-protocol.md#stdout-results), flushed at once so each reaches the chat while the
// agent keeps working.

#include <optional>
#include <ostream>
#include <string>

namespace sb::agent {

struct AgentOutput {
  bool success = true;
  std::optional<std::string> result;  // text for the chat; nullopt: nothing to say
  std::string session_id;             // newSessionId
  std::optional<std::string> error;   // for failures: what went wrong (logged by the host)
};

inline constexpr const char* kOutputStart = "---SWITCHBOARD_OUTPUT_START---";
inline constexpr const char* kOutputEnd = "---SWITCHBOARD_OUTPUT_END---";

void write_result(std::ostream& out, const AgentOutput& output);

}  // namespace sb::agent

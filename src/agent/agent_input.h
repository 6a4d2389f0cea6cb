#pragma once
// The input object the host writes to the agent's stdin (docs/agent-protocol.md), parsed
// with bounds, and the limits the agent works under. Unknown fields are ignored; a field of
// the wrong type is an error naming it.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sb::agent {

struct AgentLimits {
  int max_tool_rounds = 50;                          // model calls with tools per turn
  int max_output_tokens = 8192;                      // per model call
  std::chrono::milliseconds tool_timeout{120'000};   // per tool call
  std::chrono::milliseconds model_timeout{300'000};  // per model request
  std::int64_t context_window = 0;                   // tokens; 0: the provider's default
  std::size_t max_tool_output_bytes = 30 * 1024;     // what one tool result hands the model
};

struct AgentInput {
  std::string prompt;
  std::optional<std::string> session_id;
  std::string group_folder;
  std::string chat_jid;
  bool is_main = false;
  bool is_scheduled_task = false;
  std::string assistant_name = "Andy";
  std::string run_id;
  std::string model;                   // empty: the provider's default model
  std::string provider = "anthropic";  // anthropic | openai
  bool network = false;                // the sandbox has network (web_fetch is offered)
  std::string timezone;                // IANA name for the local time; empty: UTC
  AgentLimits limits;
};

inline constexpr std::size_t kMaxInputBytes = 16 * 1024 * 1024;

// Parses the stdin document. Errors: not JSON, not an object, missing prompt, a known field
// of the wrong type or out of range, an unknown provider.
Result<AgentInput> parse_agent_input(std::string_view json);

// A session id the agent may use as a file name: 1–64 of [A-Za-z0-9_-].
bool is_valid_session_id(std::string_view id);

}  // namespace sb::agent

#pragma once
// The built-in agent's loop (docs/agent.md): for each batch of messages it sends the
// conversation to the model, carries out the tool calls it asks for, and loops until the
// model ends its turn; then it writes the answer as a result and waits for follow-ups in
// `input/` until the host asks it to close.
//
// Single-threaded and synchronous: the agent is its own process in the group's sandbox.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_input.h"
#include "agent/conversation.h"
#include "agent/input_inbox.h"
#include "agent/result_writer.h"
#include "agent/session_store.h"
#include "agent/tool.h"

namespace sb::agent {

class ModelClient;

struct AgentEnvironment {
  std::string system_prompt;
  std::filesystem::path conversations_dir;       // where compaction archives (group/conversations)
  std::function<std::string()> today;            // "2026-11-21", for archive names
  std::function<void(const AgentOutput&)> emit;  // writes a result
  std::function<void(const std::string&)> log;   // a diagnostic line (stderr)
};

class AgentLoop {
 public:
  // References must outlive the loop.
  AgentLoop(AgentInput input, ModelClient& model, ToolList tools, const ToolContext& tool_context,
            const SessionStore& sessions, InputInbox& inbox, AgentEnvironment env);

  // Runs until the host asks to close (after finishing the work in hand) or a model error
  // ends the run. Returns the process exit status: 0, or 1 after a model error (reported as
  // an error result first).
  int run();

  // The context window used for compaction decisions, in tokens.
  std::int64_t context_window() const { return context_window_; }

 private:
  struct TurnOutcome {
    AgentOutput output;
    bool fatal = false;         // the model failed: end the run
    std::size_t first_new = 0;  // the turn's first message in the conversation, to save
  };

  TurnOutcome run_turn(std::string user_text);
  ToolResult execute(const ToolCall& call);
  void maybe_compact();
  void take_inbox();
  void persist(std::size_t from);
  ModelRequest request() const;

  AgentInput input_;
  ModelClient& model_;
  ToolList tools_;
  const ToolContext& tool_context_;
  const SessionStore& sessions_;
  InputInbox& inbox_;
  AgentEnvironment env_;

  std::string session_id_;
  std::vector<Message> conversation_;
  std::vector<std::string> pending_;  // follow-ups not yet given to the model
  bool closing_ = false;
  std::int64_t last_context_tokens_ = 0;  // what the last model call read and wrote
  std::int64_t context_window_ = 0;
};

}  // namespace sb::agent

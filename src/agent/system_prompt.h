#pragma once
// What the built-in agent tells its model before the conversation: who it is, where it is
// talking, how its answers reach people, its workspace, and its memory — the global memory
// file (for non-main groups; the main group edits it as a file) and the group's `CLAUDE.md`.

#include <filesystem>
#include <string>

#include "agent/agent_input.h"

namespace sb::agent {

struct PromptPaths {
  std::filesystem::path workspace;  // the group folder (holds CLAUDE.md)
  std::filesystem::path global;     // the global memory folder (holds CLAUDE.md)
};

inline constexpr std::size_t kMaxMemoryFileBytes = 64 * 1024;

// The system prompt. Memory files that are missing are left out; longer than 64 KiB are cut
// with a note. `now` is the current local time as text.
std::string build_system_prompt(const AgentInput& input, const PromptPaths& paths,
                                const std::string& now);

// The first user message of a run: the prompt, marked as a scheduled task when it is one.
std::string first_user_text(const AgentInput& input);

}  // namespace sb::agent

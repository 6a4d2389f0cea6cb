#pragma once
// Compaction: when a conversation approaches the model's context window, the agent archives
// the whole conversation as Markdown in the group's `conversations/` folder, asks the model
// for a summary, and continues from that summary (docs/agent.md#compaction).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/conversation.h"
#include "common/result.h"

namespace sb::agent {

class ModelClient;

// A rough token count (characters / 4) of a conversation and its system prompt, for when the
// provider's own count of the last request is not known yet.
std::int64_t estimate_tokens(const std::vector<Message>& messages, const std::string& system);

// The conversation as readable Markdown (`## User` / `## Assistant` sections, tool calls and
// results as fenced blocks, each tool result cut at `max_result_chars`).
std::string render_markdown(const std::vector<Message>& messages, std::size_t max_result_chars);

// `<date>-<slug>.md`, where the slug comes from the first words of the first user text
// (lower case letters and digits joined by '-', at most 40 characters; "conversation" when
// there are none), made unique in `dir` with "-2", "-3"….
std::filesystem::path archive_path(const std::filesystem::path& dir, const std::string& date,
                                   const std::vector<Message>& messages);

struct Compacted {
  std::vector<Message> messages;  // the conversation to continue with
  std::filesystem::path archive;  // where the full conversation was written
};

// Archives `messages` into `conversations_dir` and asks `model` (with `model_name`, no tools)
// for a summary. Errors: the archive cannot be written, or the model call failed — the
// caller then continues with the conversation as it was.
Result<Compacted> compact(ModelClient& model, const std::string& model_name,
                          const std::vector<Message>& messages,
                          const std::filesystem::path& conversations_dir, const std::string& date,
                          std::size_t max_transcript_chars);

}  // namespace sb::agent

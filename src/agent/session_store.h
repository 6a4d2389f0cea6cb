#pragma once
// The agent's session transcripts: one JSON Lines file per session in the group's session
// directory, `<session_dir>/sessions/<id>.jsonl`, one message per line:
//   {"role":"user","content":[{"type":"text","text":"…"},
//                             {"type":"tool_result","id":"toolu_1","content":"…","is_error":false}]}
//   {"role":"assistant","content":[{"type":"text","text":"…"},
//                                  {"type":"tool_call","id":"toolu_1","name":"bash","input":{…}}]}
// A later run resumes by loading the file. Compaction rewrites it atomically.
//
// The session directory belongs to the agent (the host never reads it), so a damaged line is
// skipped with a warning rather than failing the run.

#include <boost/json/value.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/conversation.h"
#include "common/result.h"

namespace sb::agent {

boost::json::value message_to_json(const Message& message);
// Errors: not an object, unknown role or block type, fields of the wrong type.
Result<Message> message_from_json(const boost::json::value& value);

class SessionStore {
 public:
  explicit SessionStore(std::filesystem::path session_dir);

  // A fresh id: "s-" and 24 hex digits.
  static std::string new_id();

  // The transcript of `id` (empty when there is none yet). `warnings` gets a line for each
  // skipped line. Errors: the file exists but cannot be read, or is over 64 MiB.
  Result<std::vector<Message>> load(const std::string& id,
                                    std::vector<std::string>& warnings) const;

  // Appends messages (one line each) and flushes them to disk.
  Result<void> append(const std::string& id, const std::vector<Message>& messages) const;

  // Replaces the whole transcript atomically (temp file + rename).
  Result<void> rewrite(const std::string& id, const std::vector<Message>& messages) const;

  std::filesystem::path file(const std::string& id) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace sb::agent

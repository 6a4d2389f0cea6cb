#pragma once
// A tool the built-in agent offers its model. Each tool has a spec (name, description, JSON
// Schema of its input) and runs synchronously in the agent process (which is single-threaded
// and already inside the group's sandbox). A tool never throws for bad input or a failed
// action: it returns an error output the model can read and act on.

#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agent/conversation.h"

namespace sb::agent {

// A directory tree the file tools may touch.
struct WorkspaceRoot {
  std::filesystem::path path;  // absolute
  bool writable = false;
};

// What a tool may use. Built once per agent run from the input and the environment.
struct ToolContext {
  std::filesystem::path workspace;     // the group folder; relative paths resolve against it
  std::vector<WorkspaceRoot> roots;    // where paths are confined (workspace first, writable)
  std::filesystem::path ipc_dir;       // $SWITCHBOARD_IPC_DIR
  std::filesystem::path snapshot_dir;  // $SWITCHBOARD_SNAPSHOT_DIR: the host's snapshots, read-only
  std::string group_folder;
  std::string chat_jid;
  bool is_main = false;
  bool network = false;                        // the group's sandbox has network
  std::chrono::milliseconds timeout{120'000};  // per tool call
  std::size_t max_output_bytes = 30 * 1024;    // what one tool result may hand the model
};

struct ToolOutput {
  std::string text;
  bool is_error = false;

  static ToolOutput error(std::string message) { return {std::move(message), true}; }
};

class Tool {
 public:
  virtual ~Tool() = default;
  virtual const ToolSpec& spec() const = 0;
  virtual ToolOutput run(const boost::json::object& input, const ToolContext& context) = 0;
};

using ToolList = std::vector<std::unique_ptr<Tool>>;

}  // namespace sb::agent

#pragma once
// The bash tool: runs a shell command in the group folder and returns its output.
//
// {command, timeout_seconds?}: `/bin/bash -c command` (`/bin/sh` where bash is missing) with
// the agent's environment, the workspace as working directory, stdin from /dev/null, stdout
// and stderr merged into one pipe, in a process group of its own. The deadline is the
// smaller of timeout_seconds and ToolContext::timeout; at the deadline the group gets
// SIGTERM, then SIGKILL two seconds later, and the result is an error saying "timed out
// after N s". When the shell exits, whatever it left running in its group is killed.
// Output is drained as it comes (the child never blocks on a full pipe) and capped at
// ToolContext::max_output_bytes, keeping head and tail around a note "[… N bytes of output
// omitted …]". A non-zero exit adds "[exit status N]" and makes the output an error. The
// child is always reaped before run() returns.
//
// Threading: run() blocks the calling thread for the command's duration.

#include <chrono>

#include "agent/tool.h"

namespace sb::agent {

class BashTool final : public Tool {
 public:
  // The context's timeout and output cap are stated in the description the model reads; run()
  // applies those of the context it is given.
  explicit BashTool(const ToolContext& context);
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const boost::json::object& input, const ToolContext& context) override;

 private:
  ToolSpec spec_;
};

}  // namespace sb::agent

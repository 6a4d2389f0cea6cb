#pragma once
// The host tools: what an agent may ask the switchboard host for (docs/ipc.md), offered as
// Tools. Each call checks its arguments, validates the request as the host would
// (host::parse_ipc_request; schedules with parse_schedule) and writes one request file
// atomically into context.ipc_dir: `messages/` for send_message, `tasks/` for the rest.
// list_tasks only reads the host's `current_tasks.json` snapshot in context.snapshot_dir.
//
// The host reads the files later and answers nothing back, so a tool's success means "the
// request is written", never "the host did it"; the outputs say so. Used by the built-in
// agent (`switchboard agent`) and by `switchboard mcp` for agents built on other SDKs.
//
// Threading: the tools keep no state; run them from one thread at a time.

#include <boost/json/object.hpp>
#include <string_view>

#include "agent/tool.h"
#include "common/result.h"

namespace sb::agent {

// send_message, schedule_task, list_tasks, pause_task, resume_task, cancel_task, and
// register_group when context.is_main. Descriptions mention context.chat_jid (send_message's
// default chat). The tools write under the ToolContext handed to run(), normally the same.
ToolList make_host_tools(const ToolContext& context);

// Checks `input` against `spec.input_schema`, in the subset the host tools use: an object
// whose required properties are present and not null, whose other keys are all declared
// properties (a misspelt optional argument must not silently fall back to its default), and
// whose values have the declared type ("string", "boolean", "integer", "number", "object",
// "array"; null is accepted for an optional property and means absent) and, for "enum", one of
// the listed values. The error names the argument and what is expected. The host tools run it
// themselves; `switchboard mcp` runs it first to answer bad arguments as invalid params.
Result<void> check_tool_input(const ToolSpec& spec, const boost::json::object& input);

// The tool of `tools` named `name`, or nullptr. The list keeps ownership.
Tool* find_tool(const ToolList& tools, std::string_view name);

// The error output for a call to a tool that is not in `tools`: names the tools that are,
// and for register_group explains that only the main group is offered it (a model may know
// of it from documentation and call it anyway).
ToolOutput unknown_tool_output(const ToolList& tools, std::string_view name);

}  // namespace sb::agent

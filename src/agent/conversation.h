#pragma once
// The agent's conversation, independent of any provider's wire format: what the agent loop
// keeps, what the session transcript stores (src/agent/session_store.h), and what each
// provider codec (src/agent/provider.h) turns into its own JSON and back.
//
// A conversation is a list of messages, alternating user / assistant. A message holds blocks:
// text, a tool call (assistant), or a tool result (user, answering a call by its id).

#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace sb::agent {

enum class Role { user, assistant };

struct ToolCall {
  std::string id;             // the provider's id ("toolu_…", "call_…")
  std::string name;           // the tool's name
  boost::json::object input;  // the arguments (OpenAI's JSON string, parsed)
  // Empty when the arguments were a JSON object. Otherwise why they could not be read (not
  // JSON, not an object); input is then {} and the loop answers the call with an error
  // result instead of running the tool.
  std::string input_error;
};

struct ToolResult {
  std::string call_id;  // the ToolCall::id it answers
  std::string content;  // what the tool printed or returned, already capped
  bool is_error = false;
};

struct Block {
  enum class Kind { text, tool_call, tool_result };
  Kind kind = Kind::text;
  std::string text;   // kind text
  ToolCall call;      // kind tool_call
  ToolResult result;  // kind tool_result

  static Block make_text(std::string t) {
    Block b;
    b.text = std::move(t);
    return b;
  }
  static Block make_call(ToolCall c) {
    Block b;
    b.kind = Kind::tool_call;
    b.call = std::move(c);
    return b;
  }
  static Block make_result(ToolResult r) {
    Block b;
    b.kind = Kind::tool_result;
    b.result = std::move(r);
    return b;
  }
};

struct Message {
  Role role = Role::user;
  std::vector<Block> blocks;
};

// A tool the model may call: name, what it does, and a JSON Schema of its input object.
struct ToolSpec {
  std::string name;
  std::string description;
  boost::json::object input_schema;  // {"type":"object","properties":{…},"required":[…]}
};

struct ModelRequest {
  std::string model;   // empty: the codec's default model
  std::string system;  // the system prompt
  std::vector<Message> messages;
  std::vector<ToolSpec> tools;
  int max_tokens = 8192;
};

enum class StopReason {
  end_turn,    // the model finished its answer
  tool_use,    // it wants the tool calls in the message carried out
  max_tokens,  // cut off by the output token limit
  other,       // anything else the provider said (refusal, content filter, …)
};

struct Usage {
  std::int64_t input_tokens = 0;  // everything the model read, cache reads included
  std::int64_t output_tokens = 0;
};

struct ModelResponse {
  Message message;  // role assistant: text and tool-call blocks in order
  StopReason stop = StopReason::end_turn;
  std::string stop_detail;  // the provider's own word for the stop ("refusal", …)
  std::string model;        // the model that answered
  Usage usage;
};

}  // namespace sb::agent

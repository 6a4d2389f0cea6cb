#pragma once
// Shared by the provider codec harnesses: what the agent loop does with a decoded answer.
// It keeps the assistant message in the conversation, answers its tool calls, and encodes
// the whole conversation again for the next model call; so a decoded answer must survive
// being encoded by the same codec.
#include <boost/json/serialize.hpp>
#include <string>
#include <string_view>

#include "agent/conversation.h"
#include "common/result.h"
#include "common/utf8.h"
#include "fuzz_support.h"

namespace sb::fuzz {

template <class Decode, class Encode, class Describe>
void check_codec(std::string_view body, Decode decode, Encode encode, Describe describe) {
  const std::string description = describe(body);
  require(description.size() <= 4096, "describe_error is bounded");
  auto decoded = decode(body);
  if (!decoded) {
    require(!decoded.error().message.empty(), "a refusal says why");
    return;
  }
  agent::ModelRequest next;
  next.system = "You are a test.";
  next.messages.push_back({agent::Role::user, {agent::Block::make_text("hello")}});
  next.messages.push_back(decoded->message);
  agent::Message results{agent::Role::user, {}};
  for (const auto& block : decoded->message.blocks) {
    if (block.kind != agent::Block::Kind::tool_call) continue;
    require(!block.call.id.empty(), "every tool call has an id");
    require(block.call.input_error.empty() || block.call.input.empty(),
            "unreadable input becomes {}");
    results.blocks.push_back(agent::Block::make_result({block.call.id, "done", false}));
  }
  if (!results.blocks.empty()) next.messages.push_back(std::move(results));
  const std::string encoded = boost::json::serialize(encode(next, ""));
  require(is_valid_utf8(encoded), "an encoded request is UTF-8");
}

}  // namespace sb::fuzz

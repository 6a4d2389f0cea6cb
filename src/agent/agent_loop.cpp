#include "agent/agent_loop.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>

#include "agent/compaction.h"
#include "agent/host_tools.h"
#include "agent/provider.h"
#include "agent/system_prompt.h"

namespace sb::agent {

namespace {

// Compaction starts when the conversation fills this share of the context window, leaving
// room for the next answer and the summary request itself.
constexpr double kCompactAt = 0.75;

std::string text_of(const Message& message) {
  std::string out;
  for (const auto& b : message.blocks) {
    if (b.kind != Block::Kind::text || b.text.empty()) continue;
    if (!out.empty()) out += "\n\n";
    out += b.text;
  }
  return out;
}

std::int64_t default_context_window(const std::string& provider) {
  return provider == "anthropic" ? 200'000 : 128'000;
}

}  // namespace

AgentLoop::AgentLoop(AgentInput input, ModelClient& model, ToolList tools,
                     const ToolContext& tool_context, const SessionStore& sessions,
                     InputInbox& inbox, AgentEnvironment env)
    : input_(std::move(input)),
      model_(model),
      tools_(std::move(tools)),
      tool_context_(tool_context),
      sessions_(sessions),
      inbox_(inbox),
      env_(std::move(env)) {
  context_window_ = input_.limits.context_window > 0 ? input_.limits.context_window
                                                     : default_context_window(input_.provider);
}

int AgentLoop::run() {
  if (input_.session_id && is_valid_session_id(*input_.session_id)) {
    session_id_ = *input_.session_id;
    std::vector<std::string> warnings;
    auto loaded = sessions_.load(session_id_, warnings);
    for (const auto& w : warnings) env_.log("session " + session_id_ + ": " + w);
    if (loaded) {
      conversation_ = std::move(*loaded);
    } else {
      env_.log(loaded.error().message + "; starting a new session");
      session_id_ = SessionStore::new_id();
    }
  } else {
    if (input_.session_id) env_.log("ignoring the malformed session id; starting a new session");
    session_id_ = SessionStore::new_id();
  }

  pending_.push_back(first_user_text(input_));
  take_inbox();
  while (true) {
    if (!pending_.empty()) {
      std::string text = fmt::format("{}", fmt::join(pending_, "\n\n"));
      pending_.clear();
      TurnOutcome turn = run_turn(std::move(text));
      env_.emit(turn.output);
      if (turn.fatal) return 1;
      // After the answer is out: the fsync of the transcript must not delay the reply.
      persist(turn.first_new);
      take_inbox();
      continue;
    }
    if (closing_) return 0;
    inbox_.wait(std::chrono::seconds(1));
    take_inbox();
  }
}

void AgentLoop::take_inbox() {
  InboxBatch batch = inbox_.take();
  for (auto& w : batch.warnings) env_.log(w);
  for (auto& m : batch.messages) pending_.push_back(std::move(m));
  if (batch.close) closing_ = true;
}

ModelRequest AgentLoop::request() const {
  ModelRequest r;
  r.model = input_.model;
  r.system = env_.system_prompt;
  r.messages = conversation_;
  r.max_tokens = input_.limits.max_output_tokens;
  for (const auto& tool : tools_) r.tools.push_back(tool->spec());
  return r;
}

void AgentLoop::maybe_compact() {
  const std::int64_t used =
      std::max(last_context_tokens_, estimate_tokens(conversation_, env_.system_prompt));
  const auto threshold =
      static_cast<std::int64_t>(static_cast<double>(context_window_) * kCompactAt);
  if (conversation_.size() < 2 || used < threshold) return;
  env_.log("the conversation holds about " + std::to_string(used) + " of " +
           std::to_string(context_window_) + " tokens: compacting");
  // The transcript for the summary must itself fit: half the window, ~4 characters a token.
  const auto max_chars = static_cast<std::size_t>(context_window_ / 2 * 4);
  auto compacted =
      compact(model_, input_.model, conversation_, env_.conversations_dir, env_.today(), max_chars);
  if (!compacted) {
    env_.log("compaction failed, continuing with the full conversation: " +
             compacted.error().message);
    return;
  }
  conversation_ = std::move(compacted->messages);
  last_context_tokens_ = 0;
  if (auto saved = sessions_.rewrite(session_id_, conversation_); !saved) {
    env_.log("cannot rewrite the session after compaction: " + saved.error().message);
  }
  env_.log("conversation archived to " + compacted->archive.string());
}

void AgentLoop::persist(std::size_t from) {
  std::vector<Message> added(conversation_.begin() + static_cast<std::ptrdiff_t>(from),
                             conversation_.end());
  if (auto saved = sessions_.append(session_id_, added); !saved) {
    env_.log("cannot save the session: " + saved.error().message);
  }
}

ToolResult AgentLoop::execute(const ToolCall& call) {
  ToolResult result{call.id, {}, false};
  Tool* tool = find_tool(tools_, call.name);
  if (!tool) {
    ToolOutput unknown = unknown_tool_output(tools_, call.name);
    result.content = std::move(unknown.text);
    result.is_error = true;
    return result;
  }
  if (!call.input_error.empty()) {
    result.content = "the arguments of this call could not be read: " + call.input_error +
                     "; send them as a JSON object";
    result.is_error = true;
    return result;
  }
  try {
    ToolOutput output = tool->run(call.input, tool_context_);
    result.content = std::move(output.text);
    result.is_error = output.is_error;
  } catch (const std::exception& e) {
    result.content = "the tool failed: " + std::string(e.what());
    result.is_error = true;
  }
  // The tools cap their own output; this guards the conversation against one that does not.
  const std::size_t hard_cap = tool_context_.max_output_bytes * 2 + 1024;
  if (result.content.size() > hard_cap) {
    result.content.resize(hard_cap);
    result.content += "\n[… output cut at " + std::to_string(hard_cap) + " bytes …]";
  }
  return result;
}

AgentLoop::TurnOutcome AgentLoop::run_turn(std::string user_text) {
  maybe_compact();
  const std::size_t start = conversation_.size();
  conversation_.push_back(Message{Role::user, {Block::make_text(std::move(user_text))}});

  for (int round = 0;; ++round) {
    if (round >= input_.limits.max_tool_rounds) {
      const std::string why = "stopped after " + std::to_string(round) +
                              " rounds of tool calls without finishing (the limit is " +
                              std::to_string(input_.limits.max_tool_rounds) +
                              ", [agent] max_tool_rounds)";
      return {AgentOutput{false, "I had to stop: I " + why + ". Ask me to continue if needed.",
                          session_id_, why},
              false, start};
    }
    auto response = model_.complete(request());
    if (!response) {
      conversation_.resize(start);  // the host hands these messages over again
      return {AgentOutput{false, std::nullopt, session_id_, response.error().message}, true, start};
    }
    last_context_tokens_ = response->usage.input_tokens + response->usage.output_tokens;
    conversation_.push_back(response->message);

    std::vector<const ToolCall*> calls;
    for (const auto& b : conversation_.back().blocks) {
      if (b.kind == Block::Kind::tool_call) calls.push_back(&b.call);
    }
    if (calls.empty()) {
      std::string answer = text_of(conversation_.back());
      if (response->stop == StopReason::max_tokens) {
        answer += "\n\n[my answer was cut off at the output limit of " +
                  std::to_string(input_.limits.max_output_tokens) + " tokens]";
      }
      if (answer.empty())
        return {AgentOutput{true, std::nullopt, session_id_, std::nullopt}, false, start};
      return {AgentOutput{true, std::move(answer), session_id_, std::nullopt}, false, start};
    }

    Message results{Role::user, {}};
    for (const ToolCall* call : calls) results.blocks.push_back(Block::make_result(execute(*call)));
    take_inbox();
    if (!pending_.empty()) {
      results.blocks.push_back(Block::make_text(
          "[New messages arrived while you were working; take them into account:]\n" +
          fmt::format("{}", fmt::join(pending_, "\n"))));
      pending_.clear();
    }
    conversation_.push_back(std::move(results));
  }
}

}  // namespace sb::agent

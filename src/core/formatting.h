#pragma once
// What the agent sees and what leaves it: the <messages> block a batch of chat messages is
// turned into, the trigger rule that decides whether a batch wakes the agent at all, and the
// removal of <internal> reasoning from the agent's output before it is sent anywhere.
//
// Everything here is a pure function of its arguments (no clock, no I/O); safe to call from
// any thread.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/message.h"
#include "common/result.h"

namespace sb::core {

// The block handed to the agent as its prompt, one line per message in the order given:
//   <messages>
//   <message sender="NAME" time="TIMESTAMP">CONTENT</message>
//   </messages>
// NAME is sender_name, else sender, else "unknown" (empty strings count as absent). A
// non-empty subject adds ` subject="…"` after time. Content keeps its own newlines, so a
// "line" may span several. Every value is escaped with escape_xml (common/html_text.h). An empty
// span gives
// "<messages>\n</messages>".
std::string format_messages(std::span<const Message> messages);

// "@" + assistant_name: the trigger a group gets when it configures none.
std::string default_trigger(std::string_view assistant_name);

// Decides whether a message is addressed to the assistant: the message, after leading
// whitespace (spaces, tabs, newlines), starts with one of the triggers, compared
// ASCII-case-insensitively, and the trigger is followed by the end of the text or by a
// character that is not [A-Za-z0-9_]. So for "@Andy": "@andy's idea" and "@Andy, hi" match;
// "@Andyextra" and "hello @Andy" do not. A byte >= 0x80 after the trigger (a non-ASCII
// letter) counts as a non-word character. Cheap to copy.
class TriggerMatcher {
 public:
  // Validates and normalises `triggers`: a trigger without a leading '@' gets one. Fails,
  // naming the offending trigger, when the list is empty, or a trigger's name (the part after
  // '@') is empty, longer than 64 bytes, or contains whitespace or control characters.
  static Result<TriggerMatcher> make(std::vector<std::string> triggers);

  bool matches(std::string_view content) const;

  // The triggers as normalised by make (with '@', original case), in the order given.
  const std::vector<std::string>& triggers() const { return triggers_; }

 private:
  explicit TriggerMatcher(std::vector<std::string> triggers);

  std::vector<std::string> triggers_;
  std::vector<std::string> lowered_;
};

// `output` without its <internal>…</internal> blocks (tags case-sensitive, blocks may span
// lines and nest), then without surrounding whitespace. An <internal> that is never closed
// hides everything after it: internal reasoning must never leak to a chat. A stray
// </internal> outside any block is kept as text. The result may be empty; the caller then
// sends nothing.
std::string strip_internal(std::string_view output);

// How a group decides whether pending messages wake its agent.
struct GatingRules {
  bool is_main = false;          // the main (admin) group answers everything
  bool requires_trigger = true;  // other groups only answer when addressed
};

// The messages of a pending batch (oldest first) to hand to the agent, or an empty vector when
// the batch should not start a run. Messages with from_assistant are never returned (the
// caller should already have excluded them; this is a second guard against the agent talking
// to itself). A main group, or one with requires_trigger off, runs for any non-empty batch;
// any other group runs only when at least one remaining message matches `matcher`, and then
// gets the whole batch: the messages before the trigger are the conversation it answers.
std::vector<Message> messages_for_agent(std::span<const Message> pending, const GatingRules& rules,
                                        const TriggerMatcher& matcher);

}  // namespace sb::core

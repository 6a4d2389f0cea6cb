#include "core/formatting.h"

#include <cstddef>
#include <optional>
#include <utility>

#include "common/html_text.h"

namespace sb::core {
namespace {

constexpr std::size_t kMaxTriggerNameBytes = 64;
constexpr std::string_view kWhitespace = " \t\n\r\f\v";
constexpr std::string_view kInternalOpen = "<internal>";
constexpr std::string_view kInternalClose = "</internal>";

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ascii_lowered(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string_view trim_left(std::string_view text) {
  const auto first = text.find_first_not_of(kWhitespace);
  return first == std::string_view::npos ? std::string_view{} : text.substr(first);
}

std::string_view trim(std::string_view text) {
  text = trim_left(text);
  const auto last = text.find_last_not_of(kWhitespace);
  return last == std::string_view::npos ? std::string_view{} : text.substr(0, last + 1);
}

// ASCII whitespace and controls, and their UTF-8 cousins a name would hide: the C1 controls
// (U+0080-U+009F) and the no-break space (U+00A0).
bool has_invisible_char(std::string_view name) {
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c <= 0x20 || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < name.size()) {
      const auto next = static_cast<unsigned char>(name[i + 1]);
      if (next >= 0x80 && next <= 0xa0) return true;
    }
  }
  return false;
}

const std::string& non_empty_or(const std::optional<std::string>& value,
                                const std::string& fallback) {
  return value && !value->empty() ? *value : fallback;
}

}  // namespace

std::string format_messages(std::span<const Message> messages) {
  static const std::string kUnknown = "unknown";
  static const std::string kNone;
  std::string out = "<messages>\n";
  for (const Message& m : messages) {
    const std::string& sender = non_empty_or(m.sender_name, non_empty_or(m.sender, kUnknown));
    out += "<message sender=\"";
    out += escape_xml(sender);
    out += "\" time=\"";
    out += escape_xml(m.timestamp);
    out += '"';
    if (const std::string& subject = non_empty_or(m.subject, kNone); !subject.empty()) {
      out += " subject=\"";
      out += escape_xml(subject);
      out += '"';
    }
    out += '>';
    out += escape_xml(m.content);
    out += "</message>\n";
  }
  out += "</messages>";
  return out;
}

std::string default_trigger(std::string_view assistant_name) {
  return "@" + std::string(assistant_name);
}

Result<TriggerMatcher> TriggerMatcher::make(std::vector<std::string> triggers) {
  if (triggers.empty()) {
    return make_error(
        "no trigger given: a group that requires a trigger needs at least one, "
        "e.g. \"@Andy\"");
  }
  for (std::string& trigger : triggers) {
    if (trigger.empty() || trigger.front() != '@') trigger.insert(trigger.begin(), '@');
    const std::string_view name = std::string_view(trigger).substr(1);
    if (name.empty()) {
      return make_error("trigger \"" + trigger + "\" has no name after '@'; write e.g. \"@Andy\"");
    }
    if (name.size() > kMaxTriggerNameBytes) {
      return make_error("trigger \"" + trigger + "\" is longer than " +
                        std::to_string(kMaxTriggerNameBytes) + " bytes; choose a shorter name");
    }
    if (has_invisible_char(name)) {
      return make_error("trigger \"" + trigger +
                        "\" contains whitespace or control characters; a trigger is one word");
    }
  }
  return TriggerMatcher(std::move(triggers));
}

TriggerMatcher::TriggerMatcher(std::vector<std::string> triggers) : triggers_(std::move(triggers)) {
  lowered_.reserve(triggers_.size());
  for (const std::string& trigger : triggers_) lowered_.push_back(ascii_lowered(trigger));
}

bool TriggerMatcher::matches(std::string_view content) const {
  const std::string_view text = trim_left(content);
  for (const std::string& trigger : lowered_) {
    if (text.size() < trigger.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < trigger.size() && same; ++i) {
      same = ascii_lower(text[i]) == trigger[i];
    }
    if (same && (text.size() == trigger.size() || !is_word_char(text[trigger.size()]))) {
      return true;
    }
  }
  return false;
}

std::string strip_internal(std::string_view output) {
  std::string kept;
  std::size_t pos = 0;
  int depth = 0;
  while (pos < output.size()) {
    const std::size_t open = output.find(kInternalOpen, pos);
    if (depth == 0) {
      if (open == std::string_view::npos) {
        kept.append(output.substr(pos));
        break;
      }
      kept.append(output.substr(pos, open - pos));
      depth = 1;
      pos = open + kInternalOpen.size();
      continue;
    }
    const std::size_t close = output.find(kInternalClose, pos);
    if (close == std::string_view::npos) break;  // never closed: hide the rest
    if (open != std::string_view::npos && open < close) {
      ++depth;
      pos = open + kInternalOpen.size();
    } else {
      --depth;
      pos = close + kInternalClose.size();
    }
  }
  return std::string(trim(kept));
}

std::vector<Message> messages_for_agent(std::span<const Message> pending, const GatingRules& rules,
                                        const TriggerMatcher& matcher) {
  std::vector<Message> batch;
  bool triggered = rules.is_main || !rules.requires_trigger;
  for (const Message& m : pending) {
    if (m.from_assistant) continue;
    if (!triggered) triggered = matcher.matches(m.content);
    batch.push_back(m);
  }
  if (!triggered) batch.clear();
  return batch;
}

}  // namespace sb::core

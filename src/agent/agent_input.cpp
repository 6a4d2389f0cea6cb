#include "agent/agent_input.h"

#include <boost/json.hpp>

namespace sb::agent {

namespace json = boost::json;

namespace {

// Reads one optional field into `out`; a field of another type is an error.
class FieldReader {
 public:
  explicit FieldReader(const json::object& object) : object_(object) {}

  void string(std::string_view name, std::string& out) {
    const json::value* v = find(name);
    if (!v) return;
    if (!v->is_string()) return fail(name, "a string");
    out = std::string(v->get_string());
  }
  void boolean(std::string_view name, bool& out) {
    const json::value* v = find(name);
    if (!v) return;
    if (!v->is_bool()) return fail(name, "true or false");
    out = v->get_bool();
  }
  // A positive integer no larger than `max`.
  void integer(std::string_view name, std::int64_t max, std::int64_t& out) {
    const json::value* v = find(name);
    if (!v) return;
    if (!v->is_int64() || v->get_int64() <= 0 || v->get_int64() > max) {
      return fail(name, "a positive integer up to " + std::to_string(max));
    }
    out = v->get_int64();
  }

  const std::optional<Error>& error() const { return error_; }

 private:
  const json::value* find(std::string_view name) const {
    const json::value* v = object_.if_contains(name);
    return v && !v->is_null() ? v : nullptr;
  }
  void fail(std::string_view name, const std::string& expected) {
    if (!error_) error_ = make_error("input field '" + std::string(name) + "' must be " + expected);
  }

  const json::object& object_;
  std::optional<Error> error_;
};

}  // namespace

bool is_valid_session_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Result<AgentInput> parse_agent_input(std::string_view text) {
  if (text.size() > kMaxInputBytes) {
    return make_error("the input is larger than " + std::to_string(kMaxInputBytes) + " bytes");
  }
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec) return make_error("the input is not JSON: " + ec.message());
  if (!doc.is_object()) return make_error("the input must be a JSON object");
  const json::object& o = doc.get_object();

  AgentInput in;
  FieldReader read(o);
  read.string("prompt", in.prompt);
  std::string session;
  read.string("sessionId", session);
  read.string("groupFolder", in.group_folder);
  read.string("chatJid", in.chat_jid);
  read.boolean("isMain", in.is_main);
  read.boolean("isScheduledTask", in.is_scheduled_task);
  read.string("assistantName", in.assistant_name);
  read.string("runId", in.run_id);
  read.string("model", in.model);
  read.string("provider", in.provider);
  read.boolean("network", in.network);
  read.string("timezone", in.timezone);

  std::int64_t rounds = in.limits.max_tool_rounds, tokens = in.limits.max_output_tokens;
  std::int64_t tool_ms = in.limits.tool_timeout.count(), model_ms = in.limits.model_timeout.count();
  std::int64_t window = 0, tool_bytes = static_cast<std::int64_t>(in.limits.max_tool_output_bytes);
  if (const json::value* limits = o.if_contains("limits"); limits && !limits->is_null()) {
    if (!limits->is_object()) return make_error("input field 'limits' must be an object");
    FieldReader lim(limits->get_object());
    lim.integer("maxToolRounds", 10'000, rounds);
    lim.integer("maxOutputTokens", 1'000'000, tokens);
    lim.integer("toolTimeoutMs", 24 * 3'600'000, tool_ms);
    lim.integer("modelTimeoutMs", 24 * 3'600'000, model_ms);
    lim.integer("contextWindowTokens", 100'000'000, window);
    lim.integer("maxToolOutputBytes", 16 * 1024 * 1024, tool_bytes);
    if (lim.error()) return *lim.error();
  }
  if (read.error()) return *read.error();

  if (in.prompt.empty()) return make_error("input field 'prompt' is missing or empty");
  if (in.provider != "anthropic" && in.provider != "openai") {
    return make_error("input field 'provider' must be \"anthropic\" or \"openai\" (got \"" +
                      in.provider + "\")");
  }
  if (!session.empty()) in.session_id = session;
  in.limits.max_tool_rounds = static_cast<int>(rounds);
  in.limits.max_output_tokens = static_cast<int>(tokens);
  in.limits.tool_timeout = std::chrono::milliseconds(tool_ms);
  in.limits.model_timeout = std::chrono::milliseconds(model_ms);
  in.limits.context_window = window;
  in.limits.max_tool_output_bytes = static_cast<std::size_t>(tool_bytes);
  return in;
}

}  // namespace sb::agent

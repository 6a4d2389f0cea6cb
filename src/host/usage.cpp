#include "host/usage.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <limits>

namespace sb::host {

namespace json = boost::json;

namespace {

// A token count: a non-negative number (servers differ in integer vs float), else nullopt.
std::optional<std::int64_t> count_of(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64() && v->get_int64() >= 0) return v->get_int64();
  if (v->is_uint64()) {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(v->get_uint64(), std::numeric_limits<std::int64_t>::max()));
  }
  if (v->is_double() && std::isfinite(v->get_double()) && v->get_double() >= 0 &&
      v->get_double() < 9e18) {
    return static_cast<std::int64_t>(v->get_double());
  }
  return std::nullopt;
}

const json::object* object_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? v->if_object() : nullptr;
}

void take_model(const json::object& o, TokenUsage& usage) {
  const json::value* v = o.if_contains("model");
  if (v != nullptr && v->is_string()) usage.model = std::string(v->get_string());
}

// Anthropic splits input into uncached, cache-written and cache-read tokens; all are input.
struct AnthropicInput {
  std::int64_t uncached = 0, cache_creation = 0, cache_read = 0;
  std::int64_t total() const { return uncached + cache_creation + cache_read; }
  // Updates the parts present in `usage`; true if any was.
  bool update(const json::object& usage) {
    bool any = false;
    if (auto n = count_of(usage, "input_tokens")) uncached = *n, any = true;
    if (auto n = count_of(usage, "cache_creation_input_tokens")) cache_creation = *n, any = true;
    if (auto n = count_of(usage, "cache_read_input_tokens")) cache_read = *n, any = true;
    return any;
  }
};

std::optional<json::object> parse_object(std::string_view text, std::string* error) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) {
    if (error != nullptr) *error = ec.message();
    return std::nullopt;
  }
  if (!v.is_object()) {
    if (error != nullptr) *error = "not a JSON object";
    return std::nullopt;
  }
  return std::move(v.as_object());
}

}  // namespace

std::string_view to_string(ModelProvider provider) {
  return provider == ModelProvider::anthropic ? "anthropic" : "openai";
}

UsageScanner::UsageScanner(ModelProvider provider, BodyFormat format, std::size_t max_json_bytes,
                           std::size_t max_line_bytes)
    : provider_(provider),
      format_(format),
      max_json_bytes_(max_json_bytes),
      max_line_bytes_(max_line_bytes) {}

void UsageScanner::feed(std::string_view chunk) {
  if (format_ == BodyFormat::sse) {
    feed_sse(chunk);
    return;
  }
  if (json_oversized_) return;
  if (json_.size() + chunk.size() > max_json_bytes_) {
    json_oversized_ = true;
    std::string().swap(json_);
    return;
  }
  json_.append(chunk);
}

std::optional<TokenUsage> UsageScanner::finish() {
  if (format_ == BodyFormat::sse) {
    if (!line_.empty() || line_oversized_) end_sse_line();  // a last line without its newline
    dispatch_sse_event();
    if (skipped_events_ > 0) {
      note_ = std::to_string(skipped_events_) + " SSE events over " +
              std::to_string(max_line_bytes_) + " bytes skipped";
    }
    if (malformed_events_ > 0) {
      if (!note_.empty()) note_ += "; ";
      note_ += std::to_string(malformed_events_) + " SSE events not JSON objects";
    }
    if (!seen_usage_) {
      if (!note_.empty()) note_ += "; ";
      note_ += provider_ == ModelProvider::openai
                   ? "no usage in the stream (OpenAI streams carry usage only when the "
                     "request sets stream_options.include_usage)"
                   : "no usage in the stream";
      return std::nullopt;
    }
    return usage_;
  }

  if (json_oversized_) {
    note_ = "body over " + std::to_string(max_json_bytes_) + " bytes, not parsed for usage";
    return std::nullopt;
  }
  std::string error;
  auto body = parse_object(json_, &error);
  std::string().swap(json_);
  if (!body) {
    note_ = "body is not a JSON object: " + error;
    return std::nullopt;
  }
  const json::object* usage = object_at(*body, "usage");
  if (usage == nullptr) {
    note_ = "no usage in the response";
    return std::nullopt;
  }
  TokenUsage result;
  take_model(*body, result);
  if (provider_ == ModelProvider::anthropic) {
    AnthropicInput input;
    bool any = input.update(*usage);
    auto output = count_of(*usage, "output_tokens");
    if (!any && !output) {
      note_ = "usage has no token counts";
      return std::nullopt;
    }
    result.input_tokens = input.total();
    result.output_tokens = output.value_or(0);
  } else {
    auto prompt = count_of(*usage, "prompt_tokens");
    auto completion = count_of(*usage, "completion_tokens");
    if (!prompt && !completion) {
      note_ = "usage has no token counts";
      return std::nullopt;
    }
    result.input_tokens = prompt.value_or(0);
    result.output_tokens = completion.value_or(0);
  }
  return result;
}

void UsageScanner::feed_sse(std::string_view chunk) {
  std::size_t i = 0;
  if (!chunk.empty()) {
    if (after_cr_ && chunk.front() == '\n') i = 1;  // the LF of a CRLF split across chunks
    after_cr_ = false;
  }
  while (i < chunk.size()) {
    const std::size_t eol = chunk.find_first_of("\r\n", i);
    const std::string_view piece =
        chunk.substr(i, eol == std::string_view::npos ? std::string_view::npos : eol - i);
    if (!line_oversized_) {
      if (line_.size() + piece.size() > max_line_bytes_) {
        line_oversized_ = true;
        std::string().swap(line_);
      } else {
        line_.append(piece);
      }
    }
    if (eol == std::string_view::npos) break;
    end_sse_line();
    i = eol + 1;
    if (chunk[eol] == '\r') {
      if (i == chunk.size()) {
        after_cr_ = true;
      } else if (chunk[i] == '\n') {
        ++i;
      }
    }
  }
}

void UsageScanner::end_sse_line() {
  if (line_oversized_) {
    event_oversized_ = true;
    line_oversized_ = false;
    std::string().swap(line_);
    return;
  }
  if (line_.empty()) {
    dispatch_sse_event();
    return;
  }
  std::string_view line = line_;
  const std::size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  if (field == "data") {
    std::string_view value =
        colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    // An event's data lines are joined with LF; the whole event obeys the line cap.
    const std::size_t joined = event_data_.size() + (event_data_.empty() ? 0 : 1) + value.size();
    if (joined > max_line_bytes_) {
      event_oversized_ = true;
      std::string().swap(event_data_);
    } else if (!event_oversized_) {
      if (!event_data_.empty()) event_data_ += '\n';
      event_data_.append(value);
    }
  }
  // "event:", "id:", "retry:" and ":" comments carry nothing usage needs: the data's own
  // "type" names the event in both formats.
  line_.clear();
}

void UsageScanner::dispatch_sse_event() {
  if (event_oversized_) {
    ++skipped_events_;
  } else if (!event_data_.empty()) {
    scan_sse_data(event_data_);
  }
  event_oversized_ = false;
  event_data_.clear();
}

void UsageScanner::scan_sse_data(std::string_view data) {
  if (done_) return;
  if (provider_ == ModelProvider::openai && data == "[DONE]") {
    done_ = true;
    return;
  }
  auto event = parse_object(data, nullptr);
  if (!event) {
    ++malformed_events_;
    return;
  }
  if (provider_ == ModelProvider::openai) {
    take_model(*event, usage_);
    if (const json::object* usage = object_at(*event, "usage")) {
      auto prompt = count_of(*usage, "prompt_tokens");
      auto completion = count_of(*usage, "completion_tokens");
      if (prompt || completion) {
        usage_.input_tokens = prompt.value_or(0);
        usage_.output_tokens = completion.value_or(0);
        seen_usage_ = true;
      }
    }
    return;
  }

  const json::value* type = event->if_contains("type");
  if (type == nullptr || !type->is_string()) return;
  if (type->get_string() == "message_start") {
    const json::object* message = object_at(*event, "message");
    if (message == nullptr) return;
    take_model(*message, usage_);
    if (const json::object* usage = object_at(*message, "usage")) {
      AnthropicInput input;
      bool any = input.update(*usage);
      auto output = count_of(*usage, "output_tokens");
      if (any || output) {
        anthropic_input_uncached_ = input.uncached;
        anthropic_input_cache_creation_ = input.cache_creation;
        anthropic_input_cache_read_ = input.cache_read;
        usage_.input_tokens = input.total();
        usage_.output_tokens = output.value_or(0);
        seen_usage_ = true;
      }
    }
  } else if (type->get_string() == "message_delta") {
    const json::object* usage = object_at(*event, "usage");
    if (usage == nullptr) return;
    // The counts in message_delta are cumulative: the last one wins. Newer API versions
    // repeat the input counts here too.
    AnthropicInput input{anthropic_input_uncached_, anthropic_input_cache_creation_,
                         anthropic_input_cache_read_};
    bool any = input.update(*usage);
    auto output = count_of(*usage, "output_tokens");
    if (any) {
      anthropic_input_uncached_ = input.uncached;
      anthropic_input_cache_creation_ = input.cache_creation;
      anthropic_input_cache_read_ = input.cache_read;
      usage_.input_tokens = input.total();
    }
    if (output) usage_.output_tokens = *output;
    if (any || output) seen_usage_ = true;
  }
}

}  // namespace sb::host

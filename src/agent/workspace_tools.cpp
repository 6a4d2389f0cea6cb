#include "agent/workspace_tools.h"

#include <boost/json/value.hpp>
#include <charconv>
#include <cstdio>

#include "agent/bash_tool.h"
#include "agent/file_tools.h"
#include "agent/web_fetch_tool.h"

namespace sb::agent {

namespace json = boost::json;

ToolList make_workspace_tools(const ToolContext& context) {
  ToolList tools;
  tools.push_back(std::make_unique<BashTool>(context));
  tools.push_back(std::make_unique<ReadFileTool>());
  tools.push_back(std::make_unique<WriteFileTool>());
  tools.push_back(std::make_unique<EditFileTool>());
  tools.push_back(std::make_unique<ListFilesTool>());
  tools.push_back(std::make_unique<GlobTool>());
  tools.push_back(std::make_unique<GrepTool>());
  if (context.network) tools.push_back(std::make_unique<WebFetchTool>());
  return tools;
}

namespace {

const json::value* field(const json::object& input, std::string_view name) {
  const auto it = input.find(name);
  if (it == input.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

std::string in_quotes(std::string_view name) { return "'" + std::string(name) + "'"; }

}  // namespace

Result<std::string> required_string(const json::object& input, std::string_view name) {
  auto value = optional_string(input, name);
  if (!value) return value.error();
  if (!*value) return make_error(in_quotes(name) + " is required");
  return std::move(**value);
}

Result<std::optional<std::string>> optional_string(const json::object& input,
                                                   std::string_view name) {
  const json::value* value = field(input, name);
  if (value == nullptr) return std::optional<std::string>();
  if (!value->is_string()) return make_error(in_quotes(name) + " must be a string");
  return std::optional<std::string>(std::string(value->get_string()));
}

Result<std::optional<std::int64_t>> optional_integer(const json::object& input,
                                                     std::string_view name, std::int64_t min,
                                                     std::int64_t max) {
  const json::value* value = field(input, name);
  if (value == nullptr) return std::optional<std::int64_t>();
  const std::string range =
      in_quotes(name) + " must be between " + std::to_string(min) + " and " + std::to_string(max);
  std::int64_t number = 0;
  if (value->is_int64()) {
    number = value->get_int64();
  } else if (value->is_uint64()) {
    return make_error(range);
  } else if (value->is_double()) {
    const double d = value->get_double();
    if (d != static_cast<double>(static_cast<std::int64_t>(d)) || d < -9e18 || d > 9e18) {
      return make_error(in_quotes(name) + " must be an integer");
    }
    number = static_cast<std::int64_t>(d);
  } else if (value->is_string()) {
    const auto& s = value->get_string();
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), number);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
      return make_error(in_quotes(name) + " must be an integer");
    }
  } else {
    return make_error(in_quotes(name) + " must be an integer");
  }
  if (number < min || number > max) return make_error(range);
  return std::optional<std::int64_t>(number);
}

Result<bool> optional_bool(const json::object& input, std::string_view name, bool default_value) {
  const json::value* value = field(input, name);
  if (value == nullptr) return default_value;
  if (value->is_bool()) return value->get_bool();
  if (value->is_string() && value->get_string() == "true") return true;
  if (value->is_string() && value->get_string() == "false") return false;
  return make_error(in_quotes(name) + " must be true or false");
}

namespace {

// Room kept for the omission note, so that head + note + tail stays within the cap.
constexpr std::size_t kNoteRoom = 64;

// `text` without a multi-byte character cut short at its end.
std::string_view without_partial_end(std::string_view text) {
  for (std::size_t back = 1; back <= 3 && back <= text.size(); ++back) {
    const auto c = static_cast<unsigned char>(text[text.size() - back]);
    if ((c & 0xC0) == 0x80) continue;
    const std::size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (length > back) return text.substr(0, text.size() - back);
    break;
  }
  return text;
}

// `text` without the continuation bytes of a character whose start was cut off.
std::string_view without_partial_start(std::string_view text) {
  std::size_t skip = 0;
  while (skip < 3 && skip < text.size() &&
         (static_cast<unsigned char>(text[skip]) & 0xC0) == 0x80) {
    ++skip;
  }
  return text.substr(skip);
}

}  // namespace

OutputCap::OutputCap(std::size_t max_bytes) : max_(max_bytes) {
  if (max_bytes < 4 * kNoteRoom) {
    head_limit_ = max_bytes;
    tail_limit_ = 0;
  } else {
    const std::size_t content = max_bytes - kNoteRoom;
    tail_limit_ = content / 2;
    head_limit_ = content - tail_limit_;
  }
}

void OutputCap::append(std::string_view data) {
  total_ += data.size();
  if (head_.size() < head_limit_) {
    const std::size_t take = std::min(head_limit_ - head_.size(), data.size());
    head_.append(data.substr(0, take));
    data.remove_prefix(take);
  }
  if (data.empty() || tail_limit_ == 0) return;
  tail_.append(data);
  if (tail_.size() > 2 * tail_limit_) tail_.erase(0, tail_.size() - tail_limit_);
}

std::string OutputCap::finish() const {
  if (!truncated()) return to_valid_utf8(head_ + tail_);
  const std::string_view head = without_partial_end(head_);
  std::string_view tail = tail_;
  if (tail.size() > tail_limit_) tail.remove_prefix(tail.size() - tail_limit_);
  tail = without_partial_start(tail);
  const std::size_t omitted = total_ - head.size() - tail.size();
  std::string out = to_valid_utf8(head);
  if (!out.empty() && out.back() != '\n') out += '\n';
  out += "[\xE2\x80\xA6 " + std::to_string(omitted) + " bytes of output omitted \xE2\x80\xA6]\n";
  out += to_valid_utf8(tail);
  return out;
}

std::string cap_output(std::string_view text, std::size_t max_bytes) {
  OutputCap cap(max_bytes);
  cap.append(text);
  return cap.finish();
}

std::string seconds_text(std::chrono::milliseconds duration) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g s", static_cast<double>(duration.count()) / 1000.0);
  return buffer;
}

}  // namespace sb::agent

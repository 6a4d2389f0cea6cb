#include "sandbox/output_parser.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstring>

namespace sb::sandbox {
namespace {

namespace json = boost::json;

constexpr std::string_view kTruncated = " …[truncated]";

AgentResult error_result(std::string message) {
  AgentResult r;
  r.status = AgentResult::Status::error;
  r.error = std::move(message);
  return r;
}

// A string field that may be absent or null; false if it has another type.
bool optional_string(const json::object& object, std::string_view key,
                     std::optional<std::string>& out) {
  const auto* value = object.if_contains(key);
  if (value == nullptr || value->is_null()) return true;
  if (!value->is_string()) return false;
  out = std::string(value->get_string());
  return true;
}

}  // namespace

std::string_view to_string(AgentResult::Status status) {
  return status == AgentResult::Status::success ? "success" : "error";
}

AgentResult parse_result_json(std::string_view text) {
  boost::system::error_code ec;
  const json::value value = json::parse(text, ec);
  if (ec) {
    return error_result("the agent printed malformed JSON between the output markers (" +
                        ec.message() + ")");
  }
  const auto* object = value.if_object();
  if (object == nullptr) {
    return error_result("the agent printed JSON between the output markers that is not an object");
  }
  const auto* status = object->if_contains("status");
  if (status == nullptr || !status->is_string() ||
      (status->get_string() != "success" && status->get_string() != "error")) {
    return error_result(
        "the agent's result has no valid \"status\" (expected \"success\" or \"error\")");
  }
  AgentResult r;
  r.status =
      status->get_string() == "success" ? AgentResult::Status::success : AgentResult::Status::error;
  for (const auto& [key, field] :
       {std::pair{"result", &r.result}, std::pair{"newSessionId", &r.new_session_id},
        std::pair{"error", &r.error}}) {
    if (!optional_string(*object, key, *field)) {
      return error_result(std::string("the agent's result has a non-string \"") + key + "\"");
    }
  }
  return r;
}

OutputParser::OutputParser(Limits limits) : limits_(limits) {}

OutputParser::Output OutputParser::feed(std::string_view chunk) {
  Output out;
  // Room for the longest marker and a CR, whatever the limits say, so markers are recognised.
  const std::size_t marker_room = std::max(kOutputStartMarker.size(), kOutputEndMarker.size()) + 1;
  while (!chunk.empty()) {
    const auto* newline = static_cast<const char*>(std::memchr(chunk.data(), '\n', chunk.size()));
    const std::size_t take =
        newline ? static_cast<std::size_t>(newline - chunk.data()) : chunk.size();
    const std::size_t cap =
        std::max(marker_room, state_ == State::inside ? limits_.max_result_bytes + 1
                                                      : limits_.max_noise_line_bytes + 1);
    const std::size_t room = cap > line_.size() ? cap - line_.size() : 0;
    if (take > room) line_overlong_ = true;
    line_.append(chunk.data(), std::min(take, room));
    if (newline == nullptr) break;
    end_line(out);
    chunk.remove_prefix(take + 1);
  }
  return out;
}

OutputParser::Output OutputParser::finish() {
  Output out;
  if (!line_.empty() || line_overlong_) end_line(out);
  if (state_ == State::inside) {
    out.results.push_back(error_result("the agent's output ended inside a result (no " +
                                       std::string(kOutputEndMarker) +
                                       " line after the last start marker)"));
  }
  state_ = State::outside;
  payload_.clear();
  payload_overlong_ = false;
  return out;
}

void OutputParser::end_line(Output& out) {
  std::string_view line = line_;
  if (!line_overlong_ && !line.empty() && line.back() == '\r') line.remove_suffix(1);
  handle_line(line, line_overlong_, out);
  line_.clear();
  line_overlong_ = false;
}

void OutputParser::handle_line(std::string_view line, bool overlong, Output& out) {
  const bool is_start = !overlong && line == kOutputStartMarker;
  const bool is_end = !overlong && line == kOutputEndMarker;
  if (state_ == State::outside) {
    if (is_start) {
      state_ = State::inside;
      return;
    }
    std::string noise(line.substr(0, limits_.max_noise_line_bytes));
    if (overlong || line.size() > limits_.max_noise_line_bytes) noise += kTruncated;
    out.noise.push_back(std::move(noise));
    return;
  }
  if (is_end) {
    emit_payload(out);
    state_ = State::outside;
    return;
  }
  if (is_start) {
    // The agent began a new result without ending the previous one (it crashed mid-result
    // and restarted, say): report the lost one and keep the new one.
    out.results.push_back(
        error_result("the agent started a new result before ending the previous one"));
    payload_.clear();
    payload_overlong_ = false;
    return;
  }
  if (payload_overlong_) return;
  const std::size_t joined = payload_.size() + (payload_.empty() ? 0 : 1) + line.size();
  if (overlong || joined > limits_.max_result_bytes) {
    payload_overlong_ = true;
    payload_.clear();
    payload_.shrink_to_fit();
    return;
  }
  if (!payload_.empty()) payload_ += '\n';
  payload_ += line;
}

void OutputParser::emit_payload(Output& out) {
  if (payload_overlong_) {
    out.results.push_back(error_result("the agent's result exceeded " +
                                       std::to_string(limits_.max_result_bytes) + " bytes"));
  } else {
    out.results.push_back(parse_result_json(payload_));
  }
  payload_.clear();
  payload_overlong_ = false;
}

}  // namespace sb::sandbox

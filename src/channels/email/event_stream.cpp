#include "channels/email/event_stream.h"

#include <cstdint>

namespace sb::email {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

}  // namespace

Result<void> EventStreamParser::feed(std::string_view bytes,
                                     const std::function<void(const ServerSentEvent&)>& on_event) {
  if (failed_) return make_error("the event stream was already found malformed");
  std::string held;
  if (!bom_checked_) {
    // The BOM may arrive split over chunks: hold the first bytes until they can tell.
    bom_prefix_.append(bytes);
    if (bom_prefix_.size() < kBom.size() && kBom.starts_with(bom_prefix_)) return {};
    bom_checked_ = true;
    held = std::move(bom_prefix_);
    bom_prefix_.clear();
    if (held.starts_with(kBom)) held.erase(0, kBom.size());
    bytes = held;
  }
  while (!bytes.empty()) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    const auto end = bytes.find_first_of("\r\n");
    const std::string_view part = bytes.substr(0, end);
    if (line_.size() + part.size() > limits_.max_line_bytes) {
      failed_ = true;
      return make_error("the event stream sent a line longer than " +
                        std::to_string(limits_.max_line_bytes) + " bytes");
    }
    line_.append(part);
    if (end == std::string_view::npos) break;
    after_cr_ = bytes[end] == '\r';
    bytes.remove_prefix(end + 1);
    const std::string complete = std::move(line_);
    line_.clear();
    if (auto done = line(complete, on_event); !done) {
      failed_ = true;
      return done;
    }
  }
  return {};
}

Result<void> EventStreamParser::line(std::string_view text,
                                     const std::function<void(const ServerSentEvent&)>& on_event) {
  if (text.empty()) {
    last_event_id_ = id_buffer_;
    if (data_.empty()) {
      event_type_.clear();
      return {};
    }
    ServerSentEvent event;
    event.type = event_type_.empty() ? "message" : std::move(event_type_);
    data_.pop_back();  // the "\n" after the last data line
    event.data = std::move(data_);
    event.id = last_event_id_;
    event_type_.clear();
    data_.clear();
    on_event(event);
    return {};
  }
  if (text.front() == ':') return {};
  const auto colon = text.find(':');
  const std::string_view field = text.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : text.substr(colon + 1);
  if (value.starts_with(' ')) value.remove_prefix(1);
  if (field == "event") {
    event_type_ = value;
  } else if (field == "data") {
    if (data_.size() + value.size() + 1 > limits_.max_data_bytes) {
      return make_error("the event stream sent an event of more than " +
                        std::to_string(limits_.max_data_bytes) + " bytes");
    }
    data_.append(value);
    data_ += '\n';
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) id_buffer_ = value;
  } else if (field == "retry") {
    if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) {
      return {};
    }
    std::uint64_t ms = 0;
    for (char c : value) {
      ms = ms * 10 + static_cast<std::uint64_t>(c - '0');
      if (ms > 86'400'000) break;  // a day: anything longer is as good as "never"
    }
    retry_ = std::chrono::milliseconds(std::min<std::uint64_t>(ms, 86'400'000));
  }
  return {};
}

}  // namespace sb::email

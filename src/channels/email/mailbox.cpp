#include "channels/email/mailbox.h"

#include <algorithm>

#include "common/time.h"

namespace sb::email {

boost::json::value json_time(const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) return nullptr;
  return boost::json::string(
      format_iso8601(std::chrono::time_point_cast<std::chrono::milliseconds>(*t)));
}

boost::json::object MailboxStatus::to_json() const {
  boost::json::object out{{"state", state},
                          {"last_success", json_time(last_success)},
                          {"last_error_at", json_time(last_error_at)},
                          {"messages", messages},
                          {"failures", failures}};
  if (last_error.empty()) {
    out["last_error"] = nullptr;
  } else {
    out["last_error"] = last_error;
  }
  return out;
}

std::chrono::milliseconds reconnect_delay(std::uint32_t failures, std::chrono::milliseconds first,
                                          std::chrono::milliseconds cap) {
  if (failures == 0) return std::chrono::milliseconds(0);
  std::chrono::milliseconds delay = first;
  for (std::uint32_t i = 1; i < failures && delay < cap; ++i) delay *= 2;
  return std::min(delay, cap);
}

}  // namespace sb::email

#include "common/message.h"

#include <array>

namespace sb {

namespace {

constexpr std::array<std::pair<MessageStatus, std::string_view>, 6> kStatusNames{{
    {MessageStatus::unread, "unread"},
    {MessageStatus::processing, "processing"},
    {MessageStatus::replied, "replied"},
    {MessageStatus::read, "read"},
    {MessageStatus::filtered, "filtered"},
    {MessageStatus::failed, "failed"},
}};

constexpr std::size_t kMaxChannelBytes = 32;
constexpr std::size_t kMaxAddressBytes = 512;

bool is_channel_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7f;
}

}  // namespace

std::string_view to_string(MessageStatus status) {
  for (const auto& [value, name] : kStatusNames) {
    if (value == status) return name;
  }
  return "unknown";
}

std::optional<MessageStatus> parse_message_status(std::string_view text) {
  for (const auto& [value, name] : kStatusNames) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::optional<ChatId> parse_chat_id(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view channel = text.substr(0, colon);
  const std::string_view address = text.substr(colon + 1);
  if (channel.empty() || channel.size() > kMaxChannelBytes) return std::nullopt;
  for (char c : channel) {
    if (!is_channel_char(c)) return std::nullopt;
  }
  if (address.empty() || address.size() > kMaxAddressBytes) return std::nullopt;
  for (char c : address) {
    if (is_control(c)) return std::nullopt;
  }
  return ChatId{std::string(channel), std::string(address)};
}

}  // namespace sb

#pragma once
// The HTTP channel: chats "http:<name>" live in the API. Delivering a reply stores it as a
// message of that chat (marked as the assistant's), readable with GET /messages?chat=…, and
// wakes clients waiting on GET /messages/wait for that chat.
//
// Threading: on the event-loop thread.

#include <string>

#include "channels/channel.h"
#include "core/message_events.h"
#include "store/write_queue.h"

namespace sb::channels {

class HttpChannel final : public Channel {
 public:
  // `on_stored` is told about each stored reply (the dispatcher ignores the assistant's own).
  HttpChannel(WriteQueue& writer, core::MessageEvents& events, std::string assistant_name);

  std::string_view name() const override { return "http"; }
  boost::asio::awaitable<SendOutcome> send(const OutboxItem& item) override;

 private:
  WriteQueue& writer_;
  core::MessageEvents& events_;
  std::string assistant_name_;
};

}  // namespace sb::channels

#pragma once
// A channel delivers the assistant's outgoing messages to the outside world (HTTP clients,
// email, WhatsApp). The core never includes a channel's protocol code: it hands outbox
// items to the channel named by the chat id ("http:alice" → the "http" channel).
//
// Threading: send() runs on the event-loop thread.

#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>

#include "store/store.h"

namespace sb::channels {

struct SendOutcome {
  enum class Kind {
    sent,    // the remote accepted it: the item is marked sent
    retry,   // a temporary failure (4xx, connection lost): retried with backoff
    failed,  // a permanent failure (5xx, bad address): marked failed with `error`
  };
  Kind kind = Kind::sent;
  std::string error;  // what the remote said, for the outbox row and the logs
};

class Channel {
 public:
  virtual ~Channel() = default;
  // The chat-id prefix this channel serves ("http", "email").
  virtual std::string_view name() const = 0;
  // Delivers one outbox item. Must be idempotent by item.idempotency_key: a crash between
  // delivery and marking it sent delivers it again.
  virtual boost::asio::awaitable<SendOutcome> send(const OutboxItem& item) = 0;
};

}  // namespace sb::channels

#pragma once
// What a mailbox reader (IMAP, JMAP) needs from the rest of the daemon, and what it tells
// the daemon about itself (docs/email.md "Mailbox providers"). The readers know nothing of
// groups, chats or the store: they hand each message's RFC 5322 bytes to `store` and keep
// their sync position with `load_state` / `save_state`.
//
// Threading: every hook is called on the event-loop thread; MailboxStatus is read and
// written there only.

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sb::email {

struct MailboxHooks {
  // Stores one message and returns once it is committed (an error: nothing was stored, try
  // again later; the reader must not mark it read then). A message stored before (same
  // Message-ID, or the same bytes when it has none) is not stored twice and still counts as
  // success. `origin` names the message at its source for logs and for mail without a
  // Message-ID ("imap:<account>:<uidvalidity>:<uid>", "jmap:<account>:<email id>");
  // `extra` is kept in the message's metadata (e.g. {"jmap_id": "M123"}).
  std::function<boost::asio::awaitable<Result<void>>(std::string data, std::string origin,
                                                     boost::json::object extra)>
      store;
  // The reader's saved sync position under `key` (its own format), or nothing.
  std::function<std::optional<std::string>(const std::string& key)> load_state;
  // Saves it durably; returns after the commit.
  std::function<boost::asio::awaitable<Result<void>>(std::string key, std::string value)>
      save_state;
};

// A reader's health as GET /health shows it.
struct MailboxStatus {
  // "starting", "connecting", "idle" (connected, waiting for push: IMAP IDLE, JMAP event
  // stream), "polling" (connected, checking every poll_interval), "syncing" (fetching
  // mail), "backoff" (waiting before the next attempt after an error), "stopped".
  std::string state = "starting";
  std::optional<std::chrono::system_clock::time_point> last_success;  // last good sync
  std::optional<std::chrono::system_clock::time_point> last_error_at;
  std::string last_error;      // never holds a password or token
  std::uint64_t messages = 0;  // stored by this reader since start
  std::uint32_t failures = 0;  // consecutive failed connections (0 after a good one)

  boost::json::object to_json() const;
};

// A moment for /health: ISO-8601 UTC with milliseconds, or null.
boost::json::value json_time(const std::optional<std::chrono::system_clock::time_point>& t);

// The wait before reconnect attempt `failures` (1-based): 1 s, 2 s, 4 s … capped at `cap`.
std::chrono::milliseconds reconnect_delay(std::uint32_t failures,
                                          std::chrono::milliseconds first = std::chrono::seconds(1),
                                          std::chrono::milliseconds cap = std::chrono::seconds(60));

}  // namespace sb::email

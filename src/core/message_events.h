#pragma once
// MessageEvents: wakes clients waiting for new messages in a chat (the API's long-poll), so
// nobody polls the store. publish() after a message is committed; wait() returns when a
// message for that chat is published or the timeout passes.
//
// Threading: everything on the event-loop thread. A waiter that checks the store and then
// calls wait() without an await in between cannot miss a publish.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/message.h"

namespace sb::core {

class MessageEvents {
 public:
  explicit MessageEvents(boost::asio::any_io_executor executor) : executor_(executor) {}

  void publish(const Message& message);
  // Returns true if woken by a message for `chat`, false on timeout or shutdown.
  boost::asio::awaitable<bool> wait(std::string chat, std::chrono::milliseconds timeout);
  // Wakes every waiter (at shutdown).
  void wake_all();
  std::size_t waiters() const;

 private:
  struct Waiter {
    boost::asio::steady_timer timer;
    bool woken = false;
    explicit Waiter(boost::asio::any_io_executor executor) : timer(executor) {}
  };
  boost::asio::any_io_executor executor_;
  std::multimap<std::string, std::shared_ptr<Waiter>, std::less<>> waiters_;
};

}  // namespace sb::core

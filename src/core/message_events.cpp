#include "core/message_events.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sb::core {

void MessageEvents::publish(const Message& message) {
  if (!message.chat) return;
  auto [begin, end] = waiters_.equal_range(*message.chat);
  for (auto it = begin; it != end; ++it) {
    it->second->woken = true;
    it->second->timer.cancel();
  }
}

void MessageEvents::wake_all() {
  for (auto& [chat, waiter] : waiters_) waiter->timer.cancel();
}

std::size_t MessageEvents::waiters() const { return waiters_.size(); }

boost::asio::awaitable<bool> MessageEvents::wait(std::string chat,
                                                 std::chrono::milliseconds timeout) {
  auto waiter = std::make_shared<Waiter>(executor_);
  waiter->timer.expires_after(timeout);
  auto entry = waiters_.emplace(chat, waiter);
  boost::system::error_code ec;
  co_await waiter->timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  waiters_.erase(entry);
  co_return waiter->woken;
}

}  // namespace sb::core

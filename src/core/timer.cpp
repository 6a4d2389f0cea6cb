#include "core/timer.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <unordered_map>

namespace sb::core {

struct AsioTimer::State {
  struct Entry {
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::function<void()> fn;
  };
  std::unordered_map<Handle, Entry> entries;
  Handle next_handle = 1;
};

AsioTimer::AsioTimer(boost::asio::any_io_executor executor)
    : executor_(std::move(executor)), state_(std::make_shared<State>()) {}

// Destroying the steady_timers aborts their waits; the handlers then find the state gone.
AsioTimer::~AsioTimer() = default;

Timer::Handle AsioTimer::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  const Handle handle = state_->next_handle++;
  auto timer = std::make_unique<boost::asio::steady_timer>(executor_);
  timer->expires_after(std::max(delay, std::chrono::milliseconds::zero()));
  std::weak_ptr<State> weak = state_;
  timer->async_wait([weak, handle](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled (operation_aborted)
    const auto state = weak.lock();
    if (!state) return;
    // The wait may have completed just before cancel(): cancel() erased the entry then.
    const auto it = state->entries.find(handle);
    if (it == state->entries.end()) return;
    auto fn = std::move(it->second.fn);
    state->entries.erase(it);
    fn();
  });
  state_->entries.emplace(handle, State::Entry{std::move(timer), std::move(fn)});
  return handle;
}

void AsioTimer::cancel(Handle handle) { state_->entries.erase(handle); }

std::size_t AsioTimer::pending() const { return state_->entries.size(); }

Timer::Handle ManualTimer::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  const Handle handle = next_handle_++;
  const auto due = now_ + std::max(delay, std::chrono::milliseconds::zero());
  queue_.emplace(Key{due, handle}, std::move(fn));
  due_of_.emplace(handle, due);
  return handle;
}

void ManualTimer::cancel(Handle handle) {
  const auto it = due_of_.find(handle);
  if (it == due_of_.end()) return;
  queue_.erase(Key{it->second, handle});
  due_of_.erase(it);
}

void ManualTimer::advance(std::chrono::milliseconds by) {
  const auto target = now_ + std::max(by, std::chrono::milliseconds::zero());
  // Re-read the front each round: a callback may schedule or cancel others.
  while (!queue_.empty() && queue_.begin()->first.first <= target) {
    const auto first = queue_.begin();
    const auto [due, handle] = first->first;
    auto fn = std::move(first->second);
    queue_.erase(first);
    due_of_.erase(handle);
    now_ = due;
    fn();
  }
  now_ = target;
}

std::chrono::milliseconds ManualTimer::next_due_in() const {
  if (queue_.empty()) return std::chrono::milliseconds{-1};
  return queue_.begin()->first.first - now_;
}

}  // namespace sb::core

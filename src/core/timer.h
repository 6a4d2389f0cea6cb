#pragma once
// Timer: "call this function after that delay", the one notion of time the orchestrator's
// state machines (group queue, scheduler) need. Production code uses AsioTimer on the event
// loop; tests use ManualTimer and move time forward by hand, so no test sleeps.
//
// Threading: every Timer here is single-threaded. Call it, and receive its callbacks, on the
// event-loop thread (ManualTimer: on the test's thread, from advance()).

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>

namespace sb::core {

class Timer {
 public:
  // Identifies one scheduled callback. Never 0, never reused by the same Timer.
  using Handle = std::uint64_t;

  virtual ~Timer() = default;

  // Calls fn once, `delay` from now (a negative delay counts as zero). Never calls fn
  // synchronously from inside after(). fn may call after() and cancel() itself.
  virtual Handle after(std::chrono::milliseconds delay, std::function<void()> fn) = 0;

  // Makes sure the callback of `handle` does not run (its function is destroyed). A handle
  // that already fired, was already cancelled or is unknown is ignored.
  virtual void cancel(Handle handle) = 0;
};

// Runs callbacks from a boost::asio::steady_timer each on the given executor. Destroying it
// cancels everything still scheduled; a callback never runs after its AsioTimer is gone.
class AsioTimer final : public Timer {
 public:
  explicit AsioTimer(boost::asio::any_io_executor executor);
  ~AsioTimer() override;
  AsioTimer(const AsioTimer&) = delete;
  AsioTimer& operator=(const AsioTimer&) = delete;

  Handle after(std::chrono::milliseconds delay, std::function<void()> fn) override;
  void cancel(Handle handle) override;
  // How many callbacks are scheduled and not yet run or cancelled.
  std::size_t pending() const;

 private:
  struct State;
  boost::asio::any_io_executor executor_;
  // Shared with the wait handlers (which hold it weakly), so that a handler completing after
  // this AsioTimer was destroyed finds nothing instead of a dangling pointer.
  std::shared_ptr<State> state_;
};

// A timer whose clock only moves when the test calls advance(). Starts at 0 ms.
class ManualTimer final : public Timer {
 public:
  Handle after(std::chrono::milliseconds delay, std::function<void()> fn) override;
  void cancel(Handle handle) override;

  // Moves the clock forward by `by` (a negative value counts as zero), running every
  // callback that falls due on the way, in due order (equal due times: in the order they
  // were scheduled), with now() set to each callback's due time while it runs. Callbacks
  // scheduled while advancing run too if they fall due within the advanced span.
  void advance(std::chrono::milliseconds by);

  // The time since construction, as moved by advance().
  std::chrono::milliseconds now() const { return now_; }
  // How many callbacks are scheduled and not yet run or cancelled.
  std::size_t pending() const { return queue_.size(); }
  // Time from now until the earliest scheduled callback is due; -1 ms when none is.
  std::chrono::milliseconds next_due_in() const;

 private:
  // Ordered by (due time, handle): handles grow, so ties run in scheduling order.
  using Key = std::pair<std::chrono::milliseconds, Handle>;
  std::map<Key, std::function<void()>> queue_;
  std::map<Handle, std::chrono::milliseconds> due_of_;
  std::chrono::milliseconds now_{0};
  Handle next_handle_ = 1;
};

}  // namespace sb::core

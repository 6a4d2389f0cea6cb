#pragma once
// WriteQueue: runs store writes on a dedicated thread, off the event loop, and commits them
// in groups. Whatever is queued while one commit is being made goes into the next, so a
// burst of N writes costs a handful of fsyncs, not N (group commit), while each write still
// sees its own result only after its commit is durable.
//
// Threading: construct, submit() and stop() on the event-loop thread. The Store passed in
// is used only by the writer thread from then on.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <variant>

#include "store/store.h"

namespace sb {

class WriteQueue {
 public:
  struct Stats {
    std::uint64_t commits = 0;
    std::uint64_t writes = 0;
    std::uint64_t failed_writes = 0;
  };
  // Called on the writer thread after each commit with the batch size and its duration.
  using CommitObserver = std::function<void(std::size_t ops, std::chrono::nanoseconds took)>;

  // `max_batch` bounds how many writes share one commit.
  WriteQueue(std::unique_ptr<Store> store, std::size_t max_batch = 512,
             CommitObserver observer = {});
  ~WriteQueue();  // stop()s
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  // Runs fn(store) on the writer thread inside a group commit and resumes the caller (on
  // its executor) once the commit is durable. Returns fn's result, or rethrows what fn
  // threw (its effects rolled back) or the StoreError of a failed commit.
  // Callers: pass a named variable, not a lambda written inside the co_await expression;
  // g++ 12 destroys non-trivial temporaries of a co_await expression twice.
  template <class Fn>
  auto run(Fn fn) -> boost::asio::awaitable<std::invoke_result_t<Fn, Store&>> {
    using R = std::invoke_result_t<Fn, Store&>;
    using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
    auto executor = co_await boost::asio::this_coro::executor;
    // Named, not a temporary inside the co_await: g++ 12 may destroy such temporaries twice.
    auto initiation = [this, executor, fn = std::move(fn)](auto handler) mutable {
      auto shared = std::make_shared<decltype(handler)>(std::move(handler));
      auto result = std::make_shared<std::optional<Value>>();
      Job job;
      job.op = [fn = std::move(fn), result](Store& store) mutable {
        if constexpr (std::is_void_v<R>) {
          fn(store);
          result->emplace();
        } else {
          result->emplace(fn(store));
        }
      };
      // A tracked executor keeps the event loop running until the result is back.
      auto tracked =
          boost::asio::prefer(executor, boost::asio::execution::outstanding_work.tracked);
      job.done = [tracked, shared, result](std::exception_ptr error) {
        boost::asio::post(tracked,
                          [shared, result, error]() { (*shared)(error, std::move(*result)); });
      };
      enqueue(std::move(job));
    };
    auto outcome =
        co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>,
                                             void(std::exception_ptr, std::optional<Value>)>(
            std::move(initiation), boost::asio::use_awaitable);
    if constexpr (!std::is_void_v<R>) co_return std::move(*outcome);
  }

  // Finishes every queued write, then joins the writer thread. Later run()s fail.
  void stop();

  Stats stats() const;

 private:
  struct Job {
    std::function<void(Store&)> op;
    std::function<void(std::exception_ptr)> done;
  };
  void enqueue(Job job);
  void loop();

  std::unique_ptr<Store> store_;
  std::size_t max_batch_;
  CommitObserver observer_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace sb

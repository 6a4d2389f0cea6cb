#pragma once
// For tests that run a service on an io_context in a thread of its own: call into the
// service on that thread (where it expects to be called) and wait for the result.

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <future>

namespace sb::test {

// Runs `f` on `io`'s thread and returns what it returned. `io` must be running.
template <class F>
auto run_on_loop(boost::asio::io_context& io, F f) -> decltype(f()) {
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto result = task.get_future();
  boost::asio::post(io, [&task] { task(); });
  return result.get();
}

}  // namespace sb::test

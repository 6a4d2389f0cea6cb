#pragma once
// A real store, its writer and an io_context for tests of the orchestrator's services, and
// run() to drive one coroutine to completion on that io_context.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>

#include "store/store.h"
#include "store/write_queue.h"
#include "support/temp_dir.h"

namespace sb::test {

class OrchestratorFixture {
 public:
  OrchestratorFixture()
      : reader_holder(open_sqlite_store(dir.path() / "db" / "switchboard.db")),
        reader(*reader_holder),
        writer(open_sqlite_store(dir.path() / "db" / "switchboard.db")) {}
  ~OrchestratorFixture() { writer.stop(); }

  // Runs `work` on the io_context until it completes (or 10 s pass: a test bug).
  template <class T>
  T run(boost::asio::awaitable<T> work) {
    std::optional<T> result;
    auto wrapper = [&]() -> boost::asio::awaitable<void> {
      result.emplace(co_await std::move(work));
    };
    drive(wrapper());
    return std::move(*result);
  }
  void run(boost::asio::awaitable<void> work) { drive(std::move(work)); }

  void drive(boost::asio::awaitable<void> work) {
    auto future = boost::asio::co_spawn(io, std::move(work), boost::asio::use_future);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("run timed out");
      io.restart();
      io.run_for(std::chrono::milliseconds(5));
    }
    future.get();
  }

  // Lets queued handlers run for a while (timers, posted completions).
  void settle(std::chrono::milliseconds how_long = std::chrono::milliseconds(50)) {
    io.restart();
    io.run_for(how_long);
  }

  TempDir dir;
  std::unique_ptr<Store> reader_holder;
  Store& reader;
  WriteQueue writer;
  boost::asio::io_context io;
};

}  // namespace sb::test

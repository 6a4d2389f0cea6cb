#pragma once
// Small helpers for coroutines started with co_spawn.

#include <spdlog/spdlog.h>

#include <exception>
#include <string>

namespace sb {

// A co_spawn completion handler that logs an exception escaping the coroutine, naming
// `what` ("outbox worker", "group 'family': message run"), instead of losing it.
inline auto log_failure(std::string what) {
  return [what = std::move(what)](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      spdlog::error("{}: {}", what, e.what());
    } catch (...) {
      spdlog::error("{}: unknown exception", what);
    }
  };
}

}  // namespace sb

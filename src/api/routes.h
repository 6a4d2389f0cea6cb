#pragma once
// The API's routes and the context their handlers share. docs/api.md describes each route.
//
// Threading: handlers run on the event-loop thread; reads use `reader` directly (indexed,
// bounded queries), writes go through `writer` and resume after their commit.

#include <chrono>
#include <filesystem>

#include "api/router.h"
#include "common/metrics.h"
#include "store/store.h"
#include "store/write_queue.h"

namespace sb::api {

struct ApiContext {
  Store& reader;
  WriteQueue& writer;
  MetricsRegistry& metrics;
  std::filesystem::path database_file;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// The largest `limit` a listing accepts, and the default.
inline constexpr int kMaxListLimit = 1000;
inline constexpr int kDefaultListLimit = 50;

// POST /messages, GET /messages, GET /messages/unread, GET /messages/{id},
// POST /messages/{id}/read.
void add_message_routes(Router& router, ApiContext& context);

// GET /health (no auth), GET /metrics.
void add_health_routes(Router& router, ApiContext& context);

}  // namespace sb::api

#pragma once
// The API's routes and the context their handlers share. docs/api.md describes each route.
//
// Threading: handlers run on the event-loop thread; reads use `reader` directly (indexed,
// bounded queries), writes go through `writer` and resume after their commit.

#include <boost/json/object.hpp>
#include <chrono>
#include <filesystem>
#include <functional>

#include "api/router.h"
#include "common/metrics.h"
#include "store/store.h"
#include "store/write_queue.h"

namespace sb::core {
class GroupRegistry;
class Scheduler;
class Dispatcher;
class MessageEvents;
class GroupQueue;
class Outbox;
}  // namespace sb::core

namespace sb::api {

struct ApiContext {
  Store& reader;
  WriteQueue& writer;
  MetricsRegistry& metrics;
  std::filesystem::path database_file;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // The orchestrator, when running (the daemon sets these; route tests may leave them).
  core::GroupRegistry* groups = nullptr;
  core::Scheduler* scheduler = nullptr;
  core::Dispatcher* dispatcher = nullptr;
  core::MessageEvents* events = nullptr;
  core::GroupQueue* queue = nullptr;
  core::Outbox* outbox = nullptr;
  std::vector<std::string> email_accounts;            // addresses of the configured email accounts
  std::function<boost::json::object()> email_health;  // the email channel's part of /health
  // Told about every message the API committed (wakes the dispatcher and waiting clients).
  std::function<void(const Message&)> on_stored;
};

// The largest `limit` a listing accepts, and the default.
inline constexpr int kMaxListLimit = 1000;
inline constexpr int kDefaultListLimit = 50;

// POST /messages, GET /messages, GET /messages/unread, GET /messages/{id},
// POST /messages/{id}/read.
void add_message_routes(Router& router, ApiContext& context);

// POST /email (queue a mail in the outbox), GET /email/{id}. Needs context.outbox.
void add_email_routes(Router& router, ApiContext& context);

// GET /health (no auth), GET /metrics.
void add_health_routes(Router& router, ApiContext& context);

// POST /groups, GET /groups, GET/PATCH/DELETE /groups/{folder}. Needs context.groups.
void add_group_routes(Router& router, ApiContext& context);

// GET/POST /tasks, GET /tasks/{id}, POST /tasks/{id}/{pause,resume,cancel},
// GET /tasks/{id}/runs, GET /usage, GET /outbox. Needs context.scheduler.
void add_task_routes(Router& router, ApiContext& context);

}  // namespace sb::api

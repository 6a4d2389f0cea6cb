#include <boost/json/serialize.hpp>

#include "api/routes.h"
#include "core/dispatcher.h"
#include "core/group_queue.h"
#include "core/groups.h"
#include "generated/version.h"

namespace sb::api {
namespace json = boost::json;

void add_health_routes(Router& router, ApiContext& ctx) {
  ctx.metrics.computed_gauge(
      "switchboard_uptime_seconds", "Seconds since the daemon started.", [&ctx] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.started)
            .count();
      });
  ctx.metrics.computed_gauge("switchboard_messages", "Messages in the store.",
                             [&ctx] { return static_cast<double>(ctx.reader.counts().total); });
  ctx.metrics.computed_gauge("switchboard_messages_unread",
                             "Messages not yet read (unread, processing or replied).",
                             [&ctx] { return static_cast<double>(ctx.reader.counts().unread); });
  ctx.metrics.computed_gauge("switchboard_store_commits",
                             "Durable commits made by the store writer (one per group).",
                             [&ctx] { return static_cast<double>(ctx.writer.stats().commits); });
  ctx.metrics.computed_gauge(
      "switchboard_store_failed_writes", "Store writes that failed and were rolled back.",
      [&ctx] { return static_cast<double>(ctx.writer.stats().failed_writes); });

  if (ctx.queue) {
    ctx.metrics.computed_gauge("switchboard_agents_active", "Agent runs in progress.",
                               [&ctx] { return static_cast<double>(ctx.queue->active_count()); });
    ctx.metrics.computed_gauge(
        "switchboard_agents_waiting", "Groups waiting for a free agent slot.",
        [&ctx] { return static_cast<double>(ctx.queue->waiting_groups().size()); });
  }

  router.add("GET", "/health", [&ctx](Request&) -> boost::asio::awaitable<Response> {
    json::object body;
    body["status"] = "ok";
    body["version"] = kVersion;
    body["uptime_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now() - ctx.started)
                                 .count();
    Response r;
    try {
      auto counts = ctx.reader.counts();
      body["messages"] = {{"total", counts.total}, {"unread", counts.unread}};
    } catch (const StoreError& e) {
      body["status"] = "error";
      body["error"] = e.what();
      r.status = 503;
    }
    if (ctx.queue && ctx.dispatcher && ctx.groups) {
      json::array runs;
      const auto now = std::chrono::steady_clock::now();
      for (const auto& run : ctx.dispatcher->active_runs()) {
        runs.push_back(json::object{
            {"group", run.group},
            {"run_id", run.run_id},
            {"kind", run.kind},
            {"chat", run.chat},
            {"results", run.results},
            {"seconds",
             std::chrono::duration_cast<std::chrono::seconds>(now - run.started).count()}});
      }
      json::array waiting;
      for (const std::string& group : ctx.queue->waiting_groups())
        waiting.push_back(json::value(group));
      json::array groups;
      for (const auto& status : ctx.queue->snapshot()) {
        groups.push_back(json::object{
            {"group", status.group},
            {"active", status.active_kind ? json::value(core::to_string(*status.active_kind))
                                          : json::value(nullptr)},
            {"idle", status.idle},
            {"pending_tasks", status.pending_tasks},
            {"pending_messages", status.pending_messages},
            {"waiting", status.waiting},
            {"failures", status.failures},
            {"retry_scheduled", status.retry_scheduled}});
      }
      // Groups whose agent runs fail without answering (a model provider outage, a wrong
      // key, an agent that crashes): the service is degraded until their next good run.
      json::array failing;
      for (const auto& [group, error] : ctx.dispatcher->failing_groups()) {
        failing.push_back(json::object{{"group", group}, {"error", error}});
      }
      if (!failing.empty() && body["status"] == "ok") body["status"] = "degraded";
      body["agents"] = json::object{{"groups_registered", ctx.groups->all().size()},
                                    {"active", ctx.queue->active_count()},
                                    {"max_concurrent", ctx.queue->options().max_concurrent},
                                    {"waiting", waiting},
                                    {"runs", runs},
                                    {"queue", groups},
                                    {"failing", failing}};
    }
    if (ctx.email_health) body["email"] = ctx.email_health();
    auto stats = ctx.writer.stats();
    body["store"] = {{"file", ctx.database_file.string()},
                     {"commits", stats.commits},
                     {"writes", stats.writes},
                     {"failed_writes", stats.failed_writes}};
    r.body = json::serialize(body);
    co_return r;
  });

  router.add("GET", "/metrics", [&ctx](Request&) -> boost::asio::awaitable<Response> {
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = ctx.metrics.render();
    co_return r;
  });
}

}  // namespace sb::api

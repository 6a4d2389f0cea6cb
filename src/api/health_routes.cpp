#include <boost/json/serialize.hpp>

#include "api/routes.h"
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

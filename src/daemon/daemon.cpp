#include "daemon/daemon.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "api/http_server.h"
#include "api/routes.h"
#include "daemon/systemd_notify.h"
#include "generated/version.h"
#include "store/write_queue.h"

namespace sb {

int run_daemon(const Config& config) {
  const auto started = std::chrono::steady_clock::now();
  if (config.api.token.empty() && !is_loopback_host(config.api.host)) {
    spdlog::critical(
        "refusing to listen on {} without a token: set [api] token or token_env, or listen on "
        "a loopback address",
        config.api.host);
    return 2;
  }

  auto db_file = std::filesystem::absolute(config.database_file());
  std::unique_ptr<Store> reader;
  std::unique_ptr<Store> writer_store;
  try {
    const SqliteOptions options{.synchronous_full = config.store.synchronous_full};
    writer_store = open_sqlite_store(db_file, options);  // runs the migrations
    reader = open_sqlite_store(db_file, options);
  } catch (const StoreError& e) {
    spdlog::critical("cannot open the store: {}", e.what());
    return 1;
  }

  MetricsRegistry metrics;
  auto& commit_seconds = metrics.histogram("switchboard_store_commit_duration_seconds",
                                           "Duration of one group commit on the writer thread.");
  WriteQueue writer(std::move(writer_store), 512,
                    [&commit_seconds](std::size_t, std::chrono::nanoseconds took) {
                      commit_seconds.observe(took);
                    });

  boost::asio::io_context io(1);
  api::ApiContext context{*reader, writer, metrics, db_file, started};
  api::Router router;
  api::add_health_routes(router, context);
  api::add_message_routes(router, context);
  api::HttpServer server(io, config.api, router, metrics);
  // Before listening: a stop signal from then on must reach the orderly shutdown.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("received {}, shutting down: no new connections, finishing requests in flight",
                 signal == SIGINT ? "SIGINT" : "SIGTERM");
    systemd_notify("STOPPING=1");
    server.stop([&signals] {
      spdlog::debug("api: all connections closed");
      signals.cancel();  // the last outstanding work: io.run() returns
    });
  });
  auto endpoint = server.listen();
  if (!endpoint) {
    spdlog::critical("{}", endpoint.error().message);
    return 1;
  }
  server.start();

  const auto ready_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count();
  auto address = endpoint->address();
  spdlog::info("switchboard {} listening on http://{}:{} (ready in {:.1f} ms)", kVersion,
               address.is_v6() ? "[" + address.to_string() + "]" : address.to_string(),
               endpoint->port(), ready_us / 1000.0);
  spdlog::info("data in {}", db_file.string());
  if (config.api.token.empty()) spdlog::info("api: no token configured; loopback only");
  systemd_notify("READY=1");

  io.run();

  writer.stop();  // every queued write is committed before the store closes
  auto stats = writer.stats();
  spdlog::info("stopped cleanly ({} writes in {} commits)", stats.writes, stats.commits);
  return 0;
}

}  // namespace sb

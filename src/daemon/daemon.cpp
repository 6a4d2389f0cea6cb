#include "daemon/daemon.h"

#include <pwd.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include "api/http_server.h"
#include "api/routes.h"
#include "channels/email/email_service.h"
#include "channels/http/http_channel.h"
#include "common/async.h"
#include "core/dispatcher.h"
#include "core/group_queue.h"
#include "core/groups.h"
#include "core/message_events.h"
#include "core/outbox.h"
#include "core/scheduler.h"
#include "core/timer.h"
#include "daemon/data_lock.h"
#include "daemon/systemd_notify.h"
#include "generated/version.h"
#include "host/ipc_watcher.h"
#include "host/model_proxy.h"
#include "sandbox/agent_runner.h"
#include "sandbox/mount_allowlist.h"
#include "sandbox/process.h"
#include "sandbox/sandbox_command.h"
#include "store/write_queue.h"

namespace sb {
namespace {

std::filesystem::path default_allowlist_path() {
  const char* config_home = std::getenv("XDG_CONFIG_HOME");
  if (config_home && *config_home) {
    return std::filesystem::path(config_home) / "switchboard" / "mount-allowlist.json";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home ? home : "/root") / ".config" / "switchboard" /
         "mount-allowlist.json";
}

bool is_inside(const std::filesystem::path& path, const std::filesystem::path& dir) {
  auto p = path.lexically_normal();
  auto d = dir.lexically_normal();
  auto [d_end, p_it] = std::mismatch(d.begin(), d.end(), p.begin(), p.end());
  return d_end == d.end();
}

// The sandbox runtime from [agent] runtime; "auto" picks what this machine has. bwrap on
// PATH is taken at once, without the trial sandbox detect_runtime() starts (tens of ms):
// start-up stays fast and check_bwrap() tries it in the background.
std::optional<sandbox::Runtime> choose_runtime(const AgentConfig& agent) {
  if (agent.runtime != "auto") {
    auto runtime = sandbox::parse_runtime(agent.runtime);  // the config loader checked it
    return runtime ? std::optional(runtime.value()) : std::nullopt;
  }
  if (sandbox::find_executable("bwrap")) return sandbox::Runtime::bwrap;
  return sandbox::detect_runtime();
}

// Starts a trial sandbox (as the agents' user) and logs loudly if bwrap cannot create one
// here (no user namespaces, for instance): every agent run would fail the same way.
void check_bwrap(std::optional<sandbox::Identity> run_as) {
  sandbox::SandboxSpec probe;
  probe.argv = {"true"};
  probe.run_as = run_as;
  const auto launch = sandbox::launch_command(sandbox::Runtime::bwrap, probe);
  auto trial = sandbox::run_captured(launch.argv, {}, 4096, std::chrono::seconds(10), launch.setup);
  if (!trial) {
    spdlog::error("bwrap cannot start: {}; agent runs will fail", trial.error().message);
  } else if (trial->status.exit_code != 0) {
    spdlog::error(
        "bwrap cannot create a sandbox here ({}): {}; agent runs will fail until that "
        "is fixed (user namespaces must be allowed), or set [agent] runtime",
        sandbox::describe(trial->status), trial->err);
  } else {
    spdlog::debug("bwrap trial sandbox: ok");
  }
}

// The host user agents run as when the daemon runs as root: `[agent] user`, a name or
// "uid:gid". Error: unknown user, or root.
Result<sandbox::Identity> agent_user(const std::string& user) {
  sandbox::Identity identity;
  unsigned uid = 0, gid = 0;
  char rest = 0;
  if (std::sscanf(user.c_str(), "%u:%u%c", &uid, &gid, &rest) == 2) {
    identity = {static_cast<uid_t>(uid), static_cast<gid_t>(gid)};
  } else {
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
        found == nullptr) {
      return make_error("[agent] user \"" + user +
                        "\" does not exist: create it (useradd --system --no-create-home " + user +
                        ") or name another user");
    }
    identity = {found->pw_uid, found->pw_gid};
  }
  if (identity.uid == 0 || identity.gid == 0) {
    return make_error("[agent] user \"" + user + "\" is root: agents must not run as root");
  }
  return identity;
}

// Where the proxy forwards to when [model] base_url is not set.
std::string default_base_url(const std::string& provider) {
  return provider == "openai" ? "https://api.openai.com" : "https://api.anthropic.com";
}

}  // namespace

int run_daemon(const Config& config) {
  const auto started = std::chrono::steady_clock::now();
  if (config.api.token.empty() && !is_loopback_host(config.api.host)) {
    spdlog::critical(
        "refusing to listen on {} without a token: set [api] token or token_env, or listen on "
        "a loopback address",
        config.api.host);
    return 2;
  }

  const auto data_dir = std::filesystem::absolute(config.data_dir).lexically_normal();
  const auto allowlist_file = config.agent.mount_allowlist.empty()
                                  ? default_allowlist_path()
                                  : std::filesystem::absolute(config.agent.mount_allowlist);
  if (is_inside(allowlist_file, data_dir)) {
    spdlog::critical(
        "the mount allowlist {} must live outside data_dir {}: agents could change "
        "it otherwise",
        allowlist_file.string(), data_dir.string());
    return 2;
  }
  auto allowlist = sandbox::load_mount_allowlist(allowlist_file);
  if (!allowlist) {
    spdlog::critical("{}", allowlist.error().message);
    return 2;
  }
  auto zone = load_time_zone(config.timezone);
  if (!zone) {
    spdlog::critical("timezone: {}", zone.error().message);
    return 2;
  }
  auto runtime = choose_runtime(config.agent);
  if (!runtime) {
    // The API still works; every agent run fails with bwrap's error until one is installed.
    spdlog::error(
        "no working sandbox found: install bubblewrap (apt install bubblewrap), "
        "docker or podman, or set [agent] runtime; agent runs will fail until then");
    runtime = sandbox::Runtime::bwrap;
  }
  const bool shares_host_network =
      *runtime == sandbox::Runtime::bwrap || *runtime == sandbox::Runtime::none;
  if (config.agent.network && config.api.token.empty() && shares_host_network) {
    spdlog::critical(
        "[agent] network = true needs an API token ([api] token or token_env): a sandbox with "
        "network shares the host's loopback, where its agent could use the daemon's API");
    return 2;
  }
  // As root, agents run as an unprivileged user: a sandbox whose processes are the host's
  // root could write host sysctls (kernel.core_pattern runs a program as root) and own
  // every file it can reach.
  std::optional<sandbox::Identity> run_as;
  if (::geteuid() == 0) {
    auto user = agent_user(config.agent.user);
    if (!user) {
      spdlog::critical("{}", user.error().message);
      return 2;
    }
    run_as = *user;
    spdlog::info("the daemon runs as root: agents run as user {} ({}:{})", config.agent.user,
                 run_as->uid, run_as->gid);
  }
  if (*runtime == sandbox::Runtime::none) {
    spdlog::warn("**********************************************************************");
    spdlog::warn("[agent] runtime = \"none\": agents run WITHOUT a sandbox and can read and");
    spdlog::warn("change everything this user can. Use this for development only.");
    spdlog::warn("**********************************************************************");
  }

  // Before the store is opened or anything written: one daemon per data directory. Held
  // until the end of this function, after the store has closed.
  auto data_lock = DataDirLock::acquire(data_dir);
  if (!data_lock) {
    spdlog::critical("{}", data_lock.error().message);
    return 1;
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
  auto executor = io.get_executor();
  const std::string instance =
      "sb-" + std::to_string(std::hash<std::string>{}(data_dir.string()) % 1'000'000'000ULL);
  if (auto removed = sandbox::cleanup_leftovers(*runtime, instance); !removed) {
    spdlog::warn("cannot clean up sandboxes left from a previous run: {}", removed.error().message);
  } else if (removed.value() > 0) {
    spdlog::info("removed {} sandbox(es) left from a previous run", removed.value());
  }

  // The orchestrator.
  core::MessageEvents events(executor);
  core::GroupRegistry groups(*reader, writer, core::GroupPaths{data_dir}, config.assistant_name);
  groups.set_aliases(config.agent.trigger_aliases);
  groups.load();
  core::Outbox outbox(executor, *reader, writer, metrics);
  channels::HttpChannel http_channel(writer, events, config.assistant_name);
  outbox.add_channel(http_channel);
  // Set once the dispatcher exists; channels that store messages tell it through this.
  std::function<void(const Message&)> on_stored;
  auto email = email::EmailService::create(executor, config, *reader, writer, groups, metrics,
                                           [&on_stored](const Message& message) {
                                             if (on_stored) on_stored(message);
                                           });
  if (!email) {
    spdlog::critical("{}", email.error().message);
    return 2;
  }
  outbox.add_channel((*email)->channel());

  core::Dispatcher* dispatcher_ptr = nullptr;
  host::ProxyOptions proxy_options;
  proxy_options.provider = config.model.provider == "openai"
                               ? host::ProxyOptions::Provider::openai
                               : host::ProxyOptions::Provider::anthropic;
  proxy_options.base_url = config.model.base_url.empty() ? default_base_url(config.model.provider)
                                                         : config.model.base_url;
  proxy_options.api_key = config.model.api_key;
  host::ModelProxy proxy(
      executor, proxy_options,
      [&dispatcher_ptr](const std::string& group, const host::TokenUsage& usage) {
        if (dispatcher_ptr) dispatcher_ptr->record_usage(group, usage);
      },
      [&dispatcher_ptr](const std::string& group) -> std::optional<std::string> {
        return dispatcher_ptr ? dispatcher_ptr->budget_refusal(group) : std::nullopt;
      });
  if (config.model.api_key.empty()) {
    spdlog::warn(
        "no model API key configured ([model] api_key_env): agents that call the "
        "model through the proxy will get the provider's 401");
  }

  core::GroupQueue* queue_ptr = nullptr;
  core::Scheduler scheduler(executor, *reader, writer, *zone,
                            [&queue_ptr](const std::string& folder, const std::string& task_id) {
                              if (queue_ptr) queue_ptr->enqueue_task(folder, task_id);
                            });

  core::DispatcherOptions options;
  options.runtime = *runtime;
  options.agent_command = config.agent.command;
  if (options.agent_command == std::vector<std::string>{"switchboard", "agent"}) {
    // The default agent is this very binary.
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) options.agent_command.front() = self.string();
  }
  options.image = config.agent.image;
  options.instance_label = instance;
  options.assistant_name = config.assistant_name;
  options.model = config.model.model;
  options.provider = config.model.provider;
  options.timezone = config.timezone;
  options.agent_limits = {{"maxToolRounds", config.agent.max_tool_rounds},
                          {"maxOutputTokens", config.agent.max_output_tokens},
                          {"toolTimeoutMs", config.agent.tool_timeout.count()},
                          {"modelTimeoutMs", config.agent.model_timeout.count()}};
  if (config.agent.context_window > 0) {
    options.agent_limits["contextWindowTokens"] = config.agent.context_window;
  }
  options.timeout = config.agent.timeout;
  options.idle_timeout = config.agent.idle_timeout;
  options.kill_grace = config.agent.kill_grace;
  options.max_output_bytes = config.agent.max_output_bytes;
  options.max_batch_messages = config.agent.max_batch_messages;
  options.default_network = config.agent.network;
  options.default_daily_budget = config.model.daily_token_budget;
  options.allowlist = std::move(allowlist.value());
  options.protected_paths = sandbox::ProtectedPaths{allowlist_file, data_dir};
  options.run_as = run_as;
  options.limits = sandbox::SandboxLimits{
      .processes = config.agent.max_processes,
      .memory = config.agent.max_memory,
      .cpu_time = std::chrono::duration_cast<std::chrono::seconds>(config.agent.max_cpu_time),
      .file_size = config.agent.max_file_size,
      .open_files = config.agent.max_open_files};
  options.max_disk = config.agent.max_disk;
  if (config.api.token.empty() && shares_host_network) {
    // A sandbox with network shares the host's: its agent could call this API on loopback.
    options.network_refusal =
        "network access needs an API token ([api] token or token_env): a sandbox with network "
        "shares the host's loopback and could otherwise use the daemon's API";
  }
  core::Dispatcher dispatcher(executor, *reader, writer, groups, scheduler, outbox, proxy, metrics,
                              std::move(options));
  dispatcher_ptr = &dispatcher;
  core::AsioTimer timer(executor);
  core::GroupQueue queue(
      dispatcher, timer,
      core::QueueOptions{.max_concurrent = static_cast<int>(config.agent.max_concurrent),
                         .retry_base = config.agent.retry_base,
                         .max_retries = static_cast<int>(config.agent.max_retries)});
  queue_ptr = &queue;
  dispatcher.attach_queue(queue);

  host::IpcView ipc_view{
      .group_of_chat = [&groups](std::string_view chat) -> std::optional<std::string> {
        const GroupRecord* group = groups.for_chat(chat);
        return group ? std::optional(group->folder) : std::nullopt;
      },
      .group_of_task = [&reader](std::string_view id) -> std::optional<std::string> {
        auto task = reader->task(id);
        return task ? std::optional(task->group_folder) : std::nullopt;
      }};
  host::IpcWatcher ipc(
      executor, groups.paths().ipc_root(),
      [&groups](std::string_view folder) -> std::optional<host::IpcSource> {
        const GroupRecord* group = groups.find(folder);
        if (!group) return std::nullopt;
        return host::IpcSource{group->folder, group->is_main};
      },
      ipc_view,
      [&dispatcher](const host::IpcSource& source, const host::IpcRequest& request) {
        return dispatcher.handle_ipc(source, request);
      });
  auto watch = [&ipc](const std::string& folder) {
    if (auto watching = ipc.watch_group(folder); !watching) {
      spdlog::error("group '{}': cannot watch its IPC directory: {}", folder,
                    watching.error().message);
    }
  };
  groups.on_saved = [&watch, &dispatcher](const GroupRecord& group) {
    dispatcher.group_changed(group.folder);
    watch(group.folder);
  };
  groups.on_removed = [&ipc, &dispatcher](const std::string& folder) {
    dispatcher.group_changed(folder);
    ipc.unwatch_group(folder);
  };
  metrics.computed_gauge("switchboard_ipc_processed", "IPC requests carried out.",
                         [&ipc] { return static_cast<double>(ipc.counters().processed); });
  metrics.computed_gauge("switchboard_ipc_refused", "IPC requests refused (not authorized).",
                         [&ipc] { return static_cast<double>(ipc.counters().refused); });
  metrics.computed_gauge("switchboard_ipc_errors",
                         "IPC files that could not be parsed or carried out (moved to errors/).",
                         [&ipc] { return static_cast<double>(ipc.counters().errors); });

  api::ApiContext context{*reader, writer, metrics, db_file, started};
  context.groups = &groups;
  context.scheduler = &scheduler;
  context.dispatcher = &dispatcher;
  context.events = &events;
  context.queue = &queue;
  on_stored = [&events, &dispatcher](const Message& message) {
    events.publish(message);
    dispatcher.message_stored(message);
  };
  context.on_stored = on_stored;
  context.outbox = &outbox;
  context.email_accounts = (*email)->addresses();
  context.email_health = [&email] { return (*email)->health(); };
  api::Router router;
  api::add_health_routes(router, context);
  api::add_message_routes(router, context);
  api::add_group_routes(router, context);
  api::add_task_routes(router, context);
  api::add_email_routes(router, context);
  api::HttpServer server(io, config.api, router, metrics);

  // Before listening: a stop signal from then on must reach the orderly shutdown.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  bool stopping = false;
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec || stopping) return;
    stopping = true;
    spdlog::info(
        "received {}, shutting down: no new connections or runs, finishing work in "
        "flight",
        signal == SIGINT ? "SIGINT" : "SIGTERM");
    systemd_notify("STOPPING=1");
    server.stop([] { spdlog::debug("api: all connections closed"); });
    (*email)->stop();
    events.wake_all();
    auto shutdown = [&]() -> boost::asio::awaitable<void> {
      co_await dispatcher.shutdown(config.agent.shutdown_grace);
      scheduler.stop();
      ipc.stop();
      outbox.stop();
      proxy.stop();
      signals.cancel();
    };
    boost::asio::co_spawn(io, std::move(shutdown), log_failure("shutdown"));
  });
  auto endpoint = server.listen();
  if (!endpoint) {
    spdlog::critical("{}", endpoint.error().message);
    return 1;
  }
  server.start();
  if (auto listening = (*email)->listen(); !listening) {
    spdlog::critical("{}", listening.error().message);
    return 1;
  }

  auto start_orchestrator = [&]() -> boost::asio::awaitable<void> {
    if (auto started_ipc = ipc.start(); !started_ipc) {
      spdlog::critical("cannot watch the IPC directories: {}", started_ipc.error().message);
    }
    for (const GroupRecord& group : groups.all()) watch(group.folder);
    co_await (*email)->start();
    co_await outbox.start();
    co_await scheduler.start();
    co_await dispatcher.recover();
  };
  boost::asio::co_spawn(io, std::move(start_orchestrator), log_failure("start-up"));

  const auto ready_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count();
  auto address = endpoint->address();
  spdlog::info("switchboard {} listening on http://{}:{} (ready in {:.1f} ms)", kVersion,
               address.is_v6() ? "[" + address.to_string() + "]" : address.to_string(),
               endpoint->port(), ready_us / 1000.0);
  spdlog::info("data in {}; agents run with {}; {} group(s)", data_dir.string(),
               sandbox::to_string(*runtime), groups.all().size());
  if (config.api.token.empty()) spdlog::info("api: no token configured; loopback only");
  systemd_notify("READY=1");
  std::jthread bwrap_check;
  if (*runtime == sandbox::Runtime::bwrap) bwrap_check = std::jthread(check_bwrap, run_as);

  // Coroutines end with their exceptions caught (co_spawn hands them to a handler that logs
  // them); an exception thrown from inside a library's own handler would still end run().
  // It drops only the operation it came from: logged, and the loop runs on.
  for (bool running = true; running;) {
    try {
      io.run();
      running = false;
    } catch (const std::exception& e) {
      spdlog::critical("event loop: an operation failed unexpectedly and was dropped: {}",
                       e.what());
    } catch (...) {
      spdlog::critical("event loop: an operation failed unexpectedly and was dropped");
    }
  }

  writer.stop();  // every queued write is committed before the store closes
  auto stats = writer.stats();
  spdlog::info("stopped cleanly ({} writes in {} commits)", stats.writes, stats.commits);
  return 0;
}

}  // namespace sb

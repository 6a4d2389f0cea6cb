#include "channels/email/jmap_receiver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <deque>
#include <set>

#include "channels/email/event_stream.h"
#include "channels/email/jmap_session.h"
#include "common/async.h"
#include "config/units.h"

namespace sb::email {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
// A full sync reads at most this many unseen emails; more is a mailbox nobody reads.
constexpr std::size_t kMaxFullSync = 10'000;
constexpr std::uint64_t kPageSize = 50;
constexpr std::uint64_t kMaxChanges = 256;
// Email/changes rounds per sync (each up to kMaxChanges): bounded, the next sync goes on.
constexpr int kMaxChangeRounds = 40;
// Emails stored lately, so that a flag change does not download them again.
constexpr std::size_t kRecentIds = 2'000;

const json::array& email_properties() {
  static const json::array properties{"id", "blobId", "mailboxIds", "keywords", "size"};
  return properties;
}

}  // namespace

struct JmapReceiver::Impl {
  Impl(asio::any_io_executor ex, JmapClient& jmap_client, MailboxHooks& mailbox_hooks)
      : executor(std::move(ex)),
        client(jmap_client.shared_impl()),
        hooks(mailbox_hooks),
        options(client->options),
        key("jmap:" + options.account + ":Email"),
        wake(executor),
        backoff(executor),
        push_wait(executor) {}

  asio::any_io_executor executor;
  std::shared_ptr<JmapClient::Impl> client;
  MailboxHooks& hooks;
  const JmapOptions& options;
  const std::string key;
  std::unique_ptr<HttpClient> http;
  MailboxStatus status;
  bool started = false;
  bool stopped = false;
  asio::steady_timer wake, backoff, push_wait;
  bool wake_pending = false;
  bool stream_live = false;
  bool push_started = false;
  AccountPtr account;  // of the last sync
  std::string last_event_id;
  std::deque<std::string> recent_order;
  std::set<std::string> recent;

  const std::string& log_name() const { return client->log_name(); }

  void notify() {
    wake_pending = true;
    wake.cancel();
  }

  void remember(const std::string& id) {
    if (!recent.insert(id).second) return;
    recent_order.push_back(id);
    if (recent_order.size() > kRecentIds) {
      recent.erase(recent_order.front());
      recent_order.pop_front();
    }
  }

  void fail(const std::string& error) {
    ++status.failures;
    status.last_error = error;
    status.last_error_at = std::chrono::system_clock::now();
    status.state = "backoff";
  }

  std::vector<std::string> capabilities() const { return client->capabilities(*account); }

  // `self` keeps the Impl alive for as long as the coroutine runs (the frame holds it from
  // its creation, before co_spawn starts it).
  asio::awaitable<void> run(std::shared_ptr<Impl> self) {
    while (!stopped) {
      if (!http) {
        auto made = client->make_http();
        if (made) {
          http = std::move(*made);
        } else {
          fail(made.error().message);
        }
      }
      Result<void> synced = make_error("");
      if (http) {
        if (status.state != "starting" && status.state != "connecting") status.state = "syncing";
        wake_pending = false;
        // An unexpected error (a bug, out of memory) is a failed sync: back off, try again.
        try {
          synced = co_await sync();
        } catch (const std::exception& e) {
          synced = make_error(std::string("unexpected error: ") + e.what());
        }
        if (stopped) break;
        if (!synced) fail(synced.error().message);
      }
      if (!synced) {
        const auto delay =
            reconnect_delay(status.failures, options.backoff_first, options.backoff_cap);
        spdlog::warn("{}: {}; trying again in {}", log_name(), status.last_error,
                     format_duration(delay));
        backoff.expires_after(delay);
        co_await backoff.async_wait(kAsTuple);
        continue;
      }
      if (status.failures > 0) spdlog::info("{}: syncing works again", log_name());
      status.failures = 0;
      status.last_success = std::chrono::system_clock::now();
      if (!push_started) {
        push_started = true;
        if (options.push && !account->session.event_source_url.empty()) {
          asio::co_spawn(executor, push(self), log_failure(log_name() + ": push"));
        } else {
          spdlog::info("{}: {}; polling every {}", log_name(),
                       options.push ? "the server offers no event source" : "push is off",
                       format_duration(options.poll_interval));
        }
      }
      if (wake_pending) continue;
      status.state = stream_live ? "idle" : "polling";
      wake.expires_after(stream_live ? options.poll_interval * 10 : options.poll_interval);
      co_await wake.async_wait(kAsTuple);
    }
    status.state = "stopped";
  }

  // One sync: the changes since the saved state, or everything unseen in the Inbox.
  asio::awaitable<Result<void>> sync() {
    auto fetched = co_await client->account(*http);
    if (!fetched.ok()) co_return make_error(fetched.failure.message);
    account = *fetched.value;
    if (account->inbox_id.empty()) {
      co_return make_error("the JMAP account has no Inbox (a mailbox with role inbox)");
    }
    if (status.state == "starting" || status.state == "connecting") status.state = "syncing";
    if (auto saved = hooks.load_state(key); saved && !saved->empty()) {
      auto changed = co_await changes(*saved);
      if (!changed) co_return changed.error();
      if (*changed) co_return Result<void>{};
      spdlog::info(
          "{}: the server cannot calculate changes since the saved state; reading the "
          "Inbox again",
          log_name());
    }
    co_return co_await full_sync();
  }

  // Reads a method's answer or says what went wrong.
  static Result<const json::object*> arguments_of(const jmap::Response& response,
                                                  const std::string& call,
                                                  std::string_view method) {
    auto answer = jmap::answer_for(response, call, method);
    if (!answer) return answer.error();
    if (answer->error) return make_error(std::string(method) + " failed: " + answer->error->text());
    return answer->arguments;
  }

  asio::awaitable<Result<void>> full_sync() {
    std::string state;
    std::vector<jmap::Email> emails;
    std::set<std::string> seen_ids;
    std::uint64_t position = 0;
    // Bounded in pages too: a server repeating the same ids must not keep us here.
    for (std::size_t page = 0; page <= kMaxFullSync / kPageSize && emails.size() < kMaxFullSync;
         ++page) {
      jmap::Request request(capabilities());
      const std::string query = request.add(
          "Email/query",
          json::object{
              {"accountId", account->account_id},
              {"filter", json::object{{"inMailbox", account->inbox_id}, {"notKeyword", "$seen"}}},
              {"sort",
               json::array{json::object{{"property", "receivedAt"}, {"isAscending", true}}}},
              {"position", position},
              {"limit", kPageSize}});
      const std::string get = request.add(
          "Email/get", json::object{{"accountId", account->account_id},
                                    {"#ids", jmap::result_reference(query, "Email/query", "/ids")},
                                    {"properties", email_properties()}});
      auto answer = co_await client->call(*http, request);
      if (stopped) co_return make_error("stopped");
      if (!answer.ok()) co_return make_error(answer.failure.message);
      auto query_arguments = arguments_of(*answer.value, query, "Email/query");
      if (!query_arguments) co_return query_arguments.error();
      auto get_arguments = arguments_of(*answer.value, get, "Email/get");
      if (!get_arguments) co_return get_arguments.error();
      auto ids = jmap::read_query(**query_arguments);
      if (!ids) co_return ids.error();
      auto got = jmap::read_emails(**get_arguments);
      if (!got) co_return got.error();
      // The state before anything was read: what arrives from now on, changes will bring.
      if (page == 0) state = got->state;
      for (auto& email : got->list) {
        if (seen_ids.insert(email.id).second) emails.push_back(std::move(email));
      }
      position += ids->ids.size();
      if (ids->ids.size() < kPageSize || (ids->total && position >= *ids->total)) break;
    }
    if (emails.size() >= kMaxFullSync) {
      spdlog::warn("{}: more than {} unseen emails in the Inbox; reading the oldest {}", log_name(),
                   kMaxFullSync, kMaxFullSync);
    }
    spdlog::debug("{}: full sync: {} unseen email(s) in the Inbox", log_name(), emails.size());
    if (auto stored = co_await store_all(emails); !stored) co_return stored;
    co_return co_await save(state);
  }

  // Follows Email/changes from `since`. False: the server cannot calculate them.
  asio::awaitable<Result<bool>> changes(std::string since) {
    std::uint64_t max_changes = kMaxChanges;
    if (account->session.max_objects_in_get > 0) {
      max_changes = std::min(max_changes, account->session.max_objects_in_get);
    }
    for (int round = 0; round < kMaxChangeRounds; ++round) {
      jmap::Request request(capabilities());
      const std::string changes =
          request.add("Email/changes", json::object{{"accountId", account->account_id},
                                                    {"sinceState", since},
                                                    {"maxChanges", max_changes}});
      std::vector<std::string> gets;
      for (const char* path : {"/created", "/updated"}) {
        gets.push_back(request.add(
            "Email/get",
            json::object{{"accountId", account->account_id},
                         {"#ids", jmap::result_reference(changes, "Email/changes", path)},
                         {"properties", email_properties()}}));
      }
      auto answer = co_await client->call(*http, request);
      if (stopped) co_return make_error("stopped");
      if (!answer.ok()) co_return make_error(answer.failure.message);
      auto changed = jmap::answer_for(*answer.value, changes, "Email/changes");
      if (!changed) co_return changed.error();
      if (changed->error) {
        if (changed->error->type == "cannotCalculateChanges") co_return false;
        co_return make_error("Email/changes failed: " + changed->error->text());
      }
      auto read = jmap::read_changes(*changed->arguments);
      if (!read) co_return read.error();
      std::vector<jmap::Email> wanted;
      for (std::size_t i = 0; i < gets.size(); ++i) {
        auto get_arguments = arguments_of(*answer.value, gets[i], "Email/get");
        if (!get_arguments) co_return get_arguments.error();
        auto emails = jmap::read_emails(**get_arguments);
        if (!emails) co_return emails.error();
        for (auto& email : emails->list) {
          if (!email.mailbox_ids.contains(account->inbox_id)) continue;  // Sent, Drafts, …
          if (email.keywords.contains("$seen")) continue;
          wanted.push_back(std::move(email));
        }
      }
      if (!read->created.empty() || !wanted.empty()) {
        spdlog::debug("{}: {} created, {} updated, {} to store", log_name(), read->created.size(),
                      read->updated.size(), wanted.size());
      }
      if (auto stored = co_await store_all(wanted); !stored) co_return stored.error();
      if (read->new_state != since) {
        if (auto saved = co_await save(read->new_state); !saved) co_return saved.error();
      }
      if (!read->has_more_changes || read->new_state == since) co_return true;
      since = read->new_state;
    }
    co_return true;
  }

  asio::awaitable<Result<void>> store_all(const std::vector<jmap::Email>& emails) {
    for (const auto& email : emails) {
      if (stopped) co_return make_error("stopped");
      // Stored (or skipped) by this process already: a flag change, or a sync repeated
      // after a failure, does not download it again.
      if (recent.contains(email.id)) continue;
      const std::string id = jmap::printable(email.id, 100);
      if (email.blob_id.empty()) {
        spdlog::warn("{}: email {} has no blobId; skipped", log_name(), id);
        continue;
      }
      if (email.size > options.max_message_bytes) {
        spdlog::warn("{}: email {} is {} bytes, more than max_message_bytes ({}); skipped",
                     log_name(), id, email.size, options.max_message_bytes);
        remember(email.id);
        continue;
      }
      auto data = co_await client->download(*http, email.blob_id, options.max_message_bytes);
      if (stopped) co_return make_error("stopped");
      if (!data.ok()) {
        if (data.failure.http_status == 404) {
          spdlog::info("{}: email {} is gone from the server; skipped", log_name(), id);
          continue;
        }
        co_return make_error(data.failure.message);
      }
      json::object extra{{"jmap_id", email.id}};
      auto stored = co_await hooks.store(
          std::move(*data.value), "jmap:" + options.account + ":" + email.id, std::move(extra));
      if (!stored)
        co_return make_error("storing email " + id + " failed: " + stored.error().message);
      ++status.messages;
      remember(email.id);
      spdlog::debug("{}: stored email {}", log_name(), id);
    }
    co_return Result<void>{};
  }

  asio::awaitable<Result<void>> save(const std::string& state) {
    if (state.empty()) co_return Result<void>{};
    auto saved = co_await hooks.save_state(key, state);
    if (!saved) co_return make_error("saving the Email state failed: " + saved.error().message);
    co_return Result<void>{};
  }

  // The event source: wakes the sync on a StateChange for Email or EmailDelivery; while it
  // is down, run() polls. A server without push (204, 404, 405, not an event stream) ends
  // it for good.
  asio::awaitable<void> push(std::shared_ptr<Impl> /*keeps the Impl alive, as in run*/) {
    std::uint32_t failures = 0;
    while (!stopped) {
      const AccountPtr current = account;
      const auto ping = std::max<std::chrono::seconds>(options.push_ping, std::chrono::seconds(1));
      HttpRequest request;
      request.url = jmap::expand_template(current->session.event_source_url,
                                          {{"types", "Email,EmailDelivery"},
                                           {"closeafter", "no"},
                                           {"ping", std::to_string(ping.count())}});
      request.headers = {{"Accept", "text/event-stream"}, {"Cache-Control", "no-cache"}};
      if (!last_event_id.empty()) request.headers.emplace_back("Last-Event-ID", last_event_id);
      for (const auto& header : client->auth_headers()) request.headers.push_back(header);
      EventStreamParser parser;
      bool not_event_stream = false;
      auto on_body = [&](const HttpResponse& head, std::string_view bytes) -> Result<void> {
        if (!stream_live) {
          if (!head.header("Content-Type").starts_with("text/event-stream")) {
            not_event_stream = true;
            return make_error("not an event stream");
          }
          stream_live = true;
          failures = 0;
          spdlog::info("{}: push connected", log_name());
          notify();  // what changed while the stream was down
        }
        return parser.feed(bytes, [&](const ServerSentEvent& event) { on_event(event); });
      };
      auto answer = co_await http->stream(request, on_body, 2 * ping);
      const bool was_live = stream_live;
      stream_live = false;
      if (!parser.last_event_id().empty()) last_event_id = parser.last_event_id();
      if (stopped) break;
      const int status_code = answer ? answer->status : 0;
      if (not_event_stream || status_code == 204 || status_code == 404 || status_code == 405) {
        spdlog::info("{}: the server offers no push ({}); polling every {}", log_name(),
                     not_event_stream ? "its event source is not an event stream"
                                      : "HTTP " + std::to_string(status_code),
                     format_duration(options.poll_interval));
        if (was_live) notify();
        co_return;
      }
      std::string why =
          answer ? (answer->status == 200 ? "the server ended the stream"
                                          : http_failure(*answer, "the event source").message)
                 : answer.error().message;
      if (status_code == 401) client->invalidate();
      ++failures;
      auto delay = reconnect_delay(failures, options.backoff_first, options.backoff_cap);
      if (auto asked = parser.retry(); asked && *asked > delay)
        delay = std::min(*asked, options.backoff_cap);
      if (was_live) {
        notify();  // poll at the short interval while the stream is down
        spdlog::info("{}: push stream ended ({}); reconnecting in {}", log_name(), why,
                     format_duration(delay));
      } else {
        spdlog::warn("{}: push: {}; trying again in {}", log_name(), why, format_duration(delay));
      }
      push_wait.expires_after(delay);
      co_await push_wait.async_wait(kAsTuple);
    }
  }

  void on_event(const ServerSentEvent& event) {
    if (event.type != "state" && event.type != "message") return;  // pings and the rest
    auto changes = jmap::read_state_change(event.data);
    if (!changes) {
      spdlog::debug("{}: push: ignoring an event: {}", log_name(), changes.error().message);
      return;
    }
    auto it = changes->find(account->account_id);
    if (it == changes->end()) return;
    if (it->second.contains("Email") || it->second.contains("EmailDelivery")) {
      spdlog::debug("{}: push: Email changed", log_name());
      notify();
    }
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    status.state = "stopped";
    if (http) http->cancel();
    wake.cancel();
    backoff.cancel();
    push_wait.cancel();
    client->wake_waiters();
  }
};

JmapReceiver::JmapReceiver(asio::any_io_executor executor, JmapClient& client, MailboxHooks& hooks)
    : impl_(std::make_shared<Impl>(std::move(executor), client, hooks)) {}

JmapReceiver::~JmapReceiver() { impl_->stop(); }

void JmapReceiver::start() {
  if (impl_->started || impl_->stopped) return;
  impl_->started = true;
  impl_->status.state = "connecting";
  spdlog::info("{}: reading the Inbox of {}", impl_->log_name(),
               url_for_messages(impl_->options.session_url));
  asio::co_spawn(impl_->executor, impl_->run(impl_), log_failure(impl_->log_name()));
}

void JmapReceiver::stop() { impl_->stop(); }

const MailboxStatus& JmapReceiver::status() const { return impl_->status; }

std::string JmapReceiver::state_key() const { return impl_->key; }

}  // namespace sb::email

#include "core/outbox.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/async.h"
#include "common/time.h"

namespace sb::core {
namespace {

constexpr int kBatch = 50;
constexpr auto kIdleSleep = std::chrono::hours(1);

}  // namespace

Outbox::Outbox(boost::asio::any_io_executor executor, Store& reader, WriteQueue& writer,
               MetricsRegistry& metrics, OutboxOptions options)
    : executor_(executor),
      reader_(reader),
      writer_(writer),
      options_(options),
      wakeup_(executor),
      sent_(metrics.counter("switchboard_outbox_sent_total", "Outgoing messages delivered.")),
      retried_(
          metrics.counter("switchboard_outbox_retries_total",
                          "Outgoing deliveries that failed temporarily and wait for a retry.")),
      failed_(metrics.counter("switchboard_outbox_failed_total",
                              "Outgoing messages that failed for good.")) {}

void Outbox::add_channel(channels::Channel& channel) {
  channels_[std::string(channel.name())] = &channel;
}

void Outbox::wake() {
  pending_wake_ = true;
  wakeup_.cancel();
}

boost::asio::awaitable<OutboxItem> Outbox::enqueue_text(std::string chat, std::string text,
                                                        std::string key,
                                                        std::function<void(Store&)> also) {
  std::string payload = boost::json::serialize(boost::json::object{{"text", text}});
  co_return co_await enqueue(std::move(chat), "text", std::move(payload), std::move(key),
                             std::move(also));
}

boost::asio::awaitable<OutboxItem> Outbox::enqueue(std::string chat, std::string kind,
                                                   std::string payload_json, std::string key,
                                                   std::function<void(Store&)> also) {
  OutboxItem item;
  item.idempotency_key = std::move(key);
  const auto parsed = parse_chat_id(chat);
  item.channel = parsed ? parsed->channel : "";
  item.chat_jid = std::move(chat);
  item.kind = std::move(kind);
  item.payload_json = std::move(payload_json);
  auto add = [item, also = std::move(also)](Store& store) {
    OutboxItem stored = store.enqueue_outbox(item).first;
    if (also) also(store);
    return stored;
  };
  OutboxItem stored = co_await writer_.run(std::move(add));
  wake();
  co_return stored;
}

boost::asio::awaitable<void> Outbox::start() {
  auto requeue = [](Store& store) { return store.requeue_sending_outbox(); };
  const int requeued = co_await writer_.run(std::move(requeue));
  if (requeued > 0) {
    spdlog::warn("outbox: {} message(s) were being sent when the daemon stopped; sending again",
                 requeued);
  }
  auto run = [this]() -> boost::asio::awaitable<void> { co_await loop(); };
  boost::asio::co_spawn(executor_, std::move(run), log_failure("outbox worker stopped"));
}

void Outbox::stop() {
  stopped_ = true;
  wakeup_.cancel();
}

boost::asio::awaitable<void> Outbox::loop() {
  while (!stopped_) {
    pending_wake_ = false;
    const auto due = reader_.due_outbox(format_iso8601(now_utc()), kBatch);
    if (!due.empty()) {
      // One commit marks the batch "sending" and one marks what was delivered "sent", instead
      // of two per message: a crash in between sends those again, which the channels
      // deduplicate by the row's key.
      std::vector<std::int64_t> ids;
      for (const OutboxItem& item : due) ids.push_back(item.id);
      auto sending = [ids](Store& store) {
        for (std::int64_t id : ids) store.mark_outbox_sending(id);
      };
      co_await writer_.run(std::move(sending));
      std::vector<std::int64_t> sent;
      for (const OutboxItem& item : due) {
        if (stopped_) break;
        if (co_await deliver(item)) sent.push_back(item.id);
      }
      if (!sent.empty()) {
        auto mark = [sent](Store& store) {
          for (std::int64_t id : sent) store.mark_outbox_sent(id);
        };
        co_await writer_.run(std::move(mark));
        sent_.inc(sent.size());
      }
    }
    if (stopped_) break;
    if (pending_wake_ || due.size() == static_cast<std::size_t>(kBatch)) continue;
    auto sleep = std::chrono::duration_cast<std::chrono::milliseconds>(kIdleSleep);
    if (auto next = reader_.next_outbox_due()) {
      if (auto at = parse_iso8601(*next)) {
        sleep = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*at - now_utc()),
                           std::chrono::milliseconds(0), sleep);
      }
    }
    wakeup_.expires_after(sleep);
    boost::system::error_code ec;
    co_await wakeup_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }
}

boost::asio::awaitable<bool> Outbox::deliver(OutboxItem item) {
  const std::int64_t id = item.id;
  auto it = channels_.find(item.channel);
  if (it == channels_.end()) {
    const std::string error =
        "no channel '" + item.channel + "' is configured for " + item.chat_jid;
    auto fail = [id, error](Store& store) { store.mark_outbox_failed(id, error); };
    co_await writer_.run(std::move(fail));
    failed_.inc();
    spdlog::error("outbox: message {} failed: {}", id, error);
    co_return false;
  }
  channels::SendOutcome outcome;
  try {
    outcome = co_await it->second->send(item);
  } catch (const std::exception& e) {
    outcome = {channels::SendOutcome::Kind::retry, e.what()};
  }
  const int attempts = item.attempts + 1;
  if (outcome.kind == channels::SendOutcome::Kind::retry && attempts >= options_.max_attempts) {
    outcome.kind = channels::SendOutcome::Kind::failed;
    outcome.error = "gave up after " + std::to_string(attempts) + " attempts: " + outcome.error;
  }
  switch (outcome.kind) {
    case channels::SendOutcome::Kind::sent:
      spdlog::debug("outbox: message {} delivered to {}", id, item.chat_jid);
      co_return true;
    case channels::SendOutcome::Kind::retry: {
      auto delay = options_.retry_base * (1LL << std::min(attempts - 1, 20));
      delay = std::min<std::chrono::milliseconds>(delay, options_.retry_cap);
      const std::string at = format_iso8601(now_utc() + delay);
      auto mark = [id, at, error = outcome.error](Store& store) {
        store.mark_outbox_retry(id, at, error);
      };
      co_await writer_.run(std::move(mark));
      retried_.inc();
      spdlog::warn("outbox: message {} to {} failed (attempt {}): {}; retrying at {}", id,
                   item.chat_jid, attempts, outcome.error, at);
      break;
    }
    case channels::SendOutcome::Kind::failed: {
      auto mark = [id, error = outcome.error](Store& store) {
        store.mark_outbox_failed(id, error);
      };
      co_await writer_.run(std::move(mark));
      failed_.inc();
      spdlog::error("outbox: message {} to {} failed: {}", id, item.chat_jid, outcome.error);
      break;
    }
  }
  co_return false;
}

}  // namespace sb::core

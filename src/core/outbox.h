#pragma once
// The outbox worker: every outgoing message is a row in the store's outbox first, and is
// handed to its channel from there. A row is marked sent only after the channel delivered
// it; a temporary failure is retried with backoff (5 s, 10 s, 20 s … capped at 10 min, at
// most `max_attempts` tries), a permanent one is marked failed with the reason, visible in
// the API. A row left "sending" by a crash is sent again at start-up (channels are
// idempotent by the row's key), so nothing is lost and nothing doubled.
//
// Threading: everything on the event-loop thread.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "channels/channel.h"
#include "common/metrics.h"
#include "store/store.h"
#include "store/write_queue.h"

namespace sb::core {

struct OutboxOptions {
  std::chrono::milliseconds retry_base{5'000};
  std::chrono::milliseconds retry_cap{10 * 60'000};
  int max_attempts = 10;
};

class Outbox {
 public:
  Outbox(boost::asio::any_io_executor executor, Store& reader, WriteQueue& writer,
         MetricsRegistry& metrics, OutboxOptions options = {});

  // Channels must outlive the worker.
  void add_channel(channels::Channel& channel);

  // Stores a text message for `chat` (durably) and wakes the worker. A repeated `key`
  // returns the row stored the first time and sends nothing again. `also` runs in the same
  // commit (so that, say, marking the answered messages cannot be lost apart from it).
  boost::asio::awaitable<OutboxItem> enqueue_text(std::string chat, std::string text,
                                                  std::string key,
                                                  std::function<void(Store&)> also = {});

  // The same for any kind of item the chat's channel understands (e.g. "email" with a
  // JSON object of recipients, subject and body: see the channel).
  boost::asio::awaitable<OutboxItem> enqueue(std::string chat, std::string kind,
                                             std::string payload_json, std::string key,
                                             std::function<void(Store&)> also = {});

  // Requeues rows left "sending" and starts the worker loop.
  boost::asio::awaitable<void> start();
  void stop();

 private:
  boost::asio::awaitable<void> loop();
  // Hands a row marked sending to its channel; true when it was sent (the caller marks it
  // so), otherwise it is marked for a retry or failed here.
  boost::asio::awaitable<bool> deliver(OutboxItem item);
  void wake();

  boost::asio::any_io_executor executor_;
  Store& reader_;
  WriteQueue& writer_;
  OutboxOptions options_;
  std::map<std::string, channels::Channel*, std::less<>> channels_;
  boost::asio::steady_timer wakeup_;
  bool stopped_ = false;
  bool pending_wake_ = false;
  Counter& sent_;
  Counter& retried_;
  Counter& failed_;
};

}  // namespace sb::core

#include "channels/email/imap_receiver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <limits>
#include <optional>
#include <utility>

#include "channels/email/imap_session.h"
#include "common/async.h"

namespace sb::email {

namespace {

namespace asio = boost::asio;
using Security = ImapOptions::Security;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
// After stop(): how long a command in flight and LOGOUT may take before the socket closes.
constexpr std::chrono::milliseconds kStopGrace{1'000};
// Messages fetched per round of sizes; each body is fetched alone, so memory holds one.
constexpr std::size_t kSyncBatch = 100;

struct Position {
  std::uint32_t uidvalidity = 0;
  // Messages above it are new to us: the highest UID dealt with (stored, or skipped as too
  // large), or UIDNEXT - 1 at the first SELECT.
  std::uint32_t uid = 0;
};

// "<uidvalidity>:<uid>"; nothing when it is not that.
std::optional<Position> parse_position(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  Position p;
  auto read = [](std::string_view digits, std::uint32_t& out) {
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return !digits.empty() && ec == std::errc() && end == digits.data() + digits.size();
  };
  if (!read(text.substr(0, colon), p.uidvalidity) || !read(text.substr(colon + 1), p.uid)) {
    return std::nullopt;
  }
  return p;
}

std::string format_position(const Position& p) {
  return std::to_string(p.uidvalidity) + ":" + std::to_string(p.uid);
}

}  // namespace

struct ImapReceiver::Impl {
  Impl(asio::any_io_executor executor, ImapOptions options, MailboxHooks& hooks)
      : executor(executor),
        options(std::move(options)),
        hooks(hooks),
        wait_timer(executor),
        stop_timer(executor) {}

  asio::any_io_executor executor;
  const ImapOptions options;
  MailboxHooks& hooks;  // not touched once stopped: the receiver may be gone
  MailboxStatus status;
  bool started = false;
  bool stopped = false;
  asio::steady_timer wait_timer;  // backoff and polling waits
  asio::steady_timer stop_timer;  // closes the session kStopGrace after stop()
  std::shared_ptr<ImapSession> session;

  std::string key() const { return "imap:" + options.account + ":" + options.folder; }

  // Waits `delay`; false when stopped meanwhile.
  asio::awaitable<bool> sleep(std::chrono::milliseconds delay) {
    wait_timer.expires_after(delay);
    co_await wait_timer.async_wait(kAsTuple);
    co_return !stopped;
  }

  void fail(const std::string& error) {
    status.failures = std::min(status.failures + 1, std::numeric_limits<std::uint32_t>::max() - 1);
    status.last_error = error;
    status.last_error_at = std::chrono::system_clock::now();
    status.state = "backoff";
  }

  static asio::awaitable<void> run(std::shared_ptr<Impl> self);
  asio::awaitable<Result<void>> serve(ImapSession& session);
  asio::awaitable<Result<void>> sync(ImapSession& session, std::uint32_t uidvalidity,
                                     std::optional<Position>& position, bool search_unseen);
};

asio::awaitable<void> ImapReceiver::Impl::run(std::shared_ptr<Impl> self) {
  Impl& s = *self;
  const std::string& account = s.options.account;
  while (!s.stopped) {
    s.status.state = "connecting";
    auto session = std::make_shared<ImapSession>(s.executor, s.options);
    s.session = session;
    // An unexpected error (a bug, out of memory) ends this connection like a failed one: the
    // account backs off and connects again rather than stopping for good.
    Result<void> outcome = make_error("no result");
    try {
      outcome = co_await s.serve(*session);
    } catch (const std::exception& e) {
      outcome = make_error(std::string("unexpected error: ") + e.what());
    }
    if (s.stopped) {
      co_await session->logout(kStopGrace);
      break;
    }
    session->close();
    s.session.reset();
    const std::string error =
        outcome ? std::string("the connection ended") : outcome.error().message;
    s.fail(error);
    const auto delay =
        reconnect_delay(s.status.failures, s.options.backoff_first, s.options.backoff_cap);
    spdlog::warn("imap {}: {}; connecting again in {} ms (attempt {})", account, error,
                 delay.count(), s.status.failures + 1);
    if (!co_await s.sleep(delay)) break;
  }
  s.session.reset();
  s.stop_timer.cancel();
  s.status.state = "stopped";
  spdlog::info("imap {}: stopped", account);
}

asio::awaitable<Result<void>> ImapReceiver::Impl::serve(ImapSession& session) {
  const std::string& account = options.account;
  if (auto opened = co_await session.open(); !opened) co_return opened.error();
  if (stopped) co_return Result<void>{};
  auto selected = co_await session.select(options.folder);
  if (!selected) co_return selected.error();
  if (stopped) co_return Result<void>{};
  spdlog::info("imap {}: connected to {}; {} has {} message(s), UIDVALIDITY {}{}", account,
               session.server(), options.folder, selected->exists, selected->uidvalidity,
               selected->read_only ? " (read-only: messages cannot be marked read)" : "");

  std::optional<Position> position;
  if (auto saved = hooks.load_state(key())) {
    position = parse_position(*saved);
    if (!position) {
      spdlog::warn(
          "imap {}: the saved position \"{}\" is unreadable; reading the unseen "
          "messages again",
          account, saved->substr(0, 100));
    } else if (position->uidvalidity != selected->uidvalidity) {
      spdlog::warn(
          "imap {}: UIDVALIDITY of {} changed from {} to {}; reading the unseen "
          "messages again",
          account, options.folder, position->uidvalidity, selected->uidvalidity);
      position.reset();
    }
  }
  // The first time (or after a new UIDVALIDITY) only the unseen messages are read, and
  // everything from UIDNEXT on is new to us, read elsewhere or not. Saved before reading
  // the backlog: a sync cut short reads the rest of it (still unseen) and nothing older.
  const bool fresh = !position;
  if (fresh && selected->uidnext && *selected->uidnext > 1) {
    const Position start{selected->uidvalidity, *selected->uidnext - 1};
    auto saved = co_await hooks.save_state(key(), format_position(start));
    if (!saved) co_return make_error("saving the position failed: " + saved.error().message);
    if (stopped) co_return Result<void>{};
    position = start;
  }
  // A read-only folder cannot mark anything read, so "unseen" never shrinks: its unseen
  // backlog is read once, right after the position was set, and from then on only newer mail.
  bool search_unseen = fresh || !selected->read_only;
  if (!session.has_idle()) {
    spdlog::info("imap {}: {} does not offer IDLE; checking every {} ms", account, session.server(),
                 options.poll_interval.count());
  }

  for (;;) {
    status.state = "syncing";
    do {
      session.take_new_mail();  // what woke us up is what this sync reads
      auto synced = co_await sync(session, selected->uidvalidity, position, search_unseen);
      if (!synced) co_return synced.error();
      if (stopped) co_return Result<void>{};
      search_unseen = !selected->read_only;
    } while (session.take_new_mail());  // more arrived while syncing
    status.last_success = std::chrono::system_clock::now();
    status.failures = 0;

    if (session.has_idle()) {
      status.state = "idle";
      for (;;) {
        auto ended = co_await session.idle(options.idle_renew);
        if (!ended) co_return ended.error();
        if (stopped) co_return Result<void>{};
        if (*ended == ImapSession::IdleEnd::new_mail) break;
      }
    } else {
      status.state = "polling";
      if (!co_await sleep(options.poll_interval)) co_return Result<void>{};
      if (auto checked = co_await session.noop(); !checked) co_return checked.error();
      if (stopped) co_return Result<void>{};
    }
  }
}

asio::awaitable<Result<void>> ImapReceiver::Impl::sync(ImapSession& session,
                                                       std::uint32_t uidvalidity,
                                                       std::optional<Position>& position,
                                                       bool search_unseen) {
  const std::string& account = options.account;
  // The unseen messages, and every message above the position (read elsewhere meanwhile,
  // it is still new to us).
  std::vector<std::uint32_t> uids;
  if (search_unseen || !position) {
    auto unseen = co_await session.uid_search("UNSEEN");
    if (!unseen) co_return unseen.error();
    uids = std::move(*unseen);
  }
  if (position && position->uid < std::numeric_limits<std::uint32_t>::max()) {
    auto above = co_await session.uid_search("UID " + std::to_string(position->uid + 1) + ":*");
    if (!above) co_return above.error();
    // "n:*" names the highest message even when its UID is below n (RFC 9051 6.4.8).
    for (std::uint32_t uid : *above) {
      if (uid > position->uid) uids.push_back(uid);
    }
    std::sort(uids.begin(), uids.end());
    uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  }
  if (stopped || uids.empty()) co_return Result<void>{};
  spdlog::debug("imap {}: {} message(s) to read", account, uids.size());

  auto commit_position = [&](std::uint32_t uid) -> asio::awaitable<Result<void>> {
    if (position && uid <= position->uid) co_return Result<void>{};
    const Position next{uidvalidity, uid};
    auto saved = co_await hooks.save_state(key(), format_position(next));
    if (!saved) {
      co_return make_error("saving the position after message UID " + std::to_string(uid) +
                           " failed: " + saved.error().message);
    }
    position = next;
    co_return Result<void>{};
  };

  for (std::size_t start = 0; start < uids.size(); start += kSyncBatch) {
    const std::vector<std::uint32_t> batch(
        uids.begin() + static_cast<std::ptrdiff_t>(start),
        uids.begin() + static_cast<std::ptrdiff_t>(std::min(uids.size(), start + kSyncBatch)));
    auto sizes = co_await session.uid_sizes(batch);
    if (!sizes) co_return sizes.error();
    for (std::uint32_t uid : batch) {
      if (stopped) co_return Result<void>{};
      const auto size = sizes->find(uid);
      if (size == sizes->end()) continue;  // expunged meanwhile
      if (size->second > options.max_message_bytes) {
        spdlog::warn(
            "imap {}: message UID {} is {} bytes, over the limit of {}: not read, "
            "marked read",
            account, uid, size->second, options.max_message_bytes);
        if (auto saved = co_await commit_position(uid); !saved) co_return saved.error();
        if (stopped) co_return Result<void>{};
        if (auto marked = co_await session.uid_mark_seen(uid); !marked) co_return marked.error();
        continue;
      }
      auto body = co_await session.uid_fetch_body(uid);
      if (!body) co_return body.error();
      if (stopped) co_return Result<void>{};
      if (body->outcome == ImapBody::Outcome::refused) {
        spdlog::warn(
            "imap {}: {} would not give message UID {} ({}); left unread, tried again "
            "with the next sync",
            account, session.server(), uid, body->reason);
        continue;
      }
      if (body->outcome == ImapBody::Outcome::gone) continue;
      const std::size_t bytes = body->data.size();
      boost::json::object extra{
          {"imap_uid", uid}, {"imap_uidvalidity", uidvalidity}, {"imap_folder", options.folder}};
      const std::string origin =
          "imap:" + account + ":" + std::to_string(uidvalidity) + ":" + std::to_string(uid);
      auto stored = co_await hooks.store(std::move(body->data), origin, std::move(extra));
      if (stopped) co_return Result<void>{};
      if (!stored) {
        co_return make_error("storing message UID " + std::to_string(uid) +
                             " failed: " + stored.error().message);
      }
      ++status.messages;
      spdlog::debug("imap {}: stored message UID {} ({} bytes)", account, uid, bytes);
      if (auto saved = co_await commit_position(uid); !saved) co_return saved.error();
      if (stopped) co_return Result<void>{};
      if (auto marked = co_await session.uid_mark_seen(uid); !marked) co_return marked.error();
    }
  }
  co_return Result<void>{};
}

ImapReceiver::ImapReceiver(asio::any_io_executor executor, ImapOptions options, MailboxHooks& hooks)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options), hooks)) {}

ImapReceiver::~ImapReceiver() { stop(); }

void ImapReceiver::start() {
  if (impl_->started || impl_->stopped) return;
  impl_->started = true;
  const std::string account = impl_->options.account;
  asio::co_spawn(impl_->executor, Impl::run(impl_), log_failure("imap " + account));
}

void ImapReceiver::stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  s.wait_timer.cancel();
  if (!s.started) {
    s.status.state = "stopped";
    return;
  }
  if (s.session) s.session->interrupt();
  s.stop_timer.expires_after(kStopGrace);
  s.stop_timer.async_wait([weak = std::weak_ptr<Impl>(impl_)](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto live = weak.lock(); live && live->session) live->session->close();
  });
}

const MailboxStatus& ImapReceiver::status() const { return impl_->status; }

std::string ImapReceiver::state_key() const { return impl_->key(); }

std::vector<std::string> imap_warnings(const ImapOptions& options) {
  std::vector<std::string> warnings;
  const std::string server = options.host + ":" + std::to_string(options.port);
  if (options.security == Security::plain) {
    warnings.push_back("email: TLS is off for the IMAP server " + server + " of " +
                       options.account +
                       " (security = plain): the password and the mail travel unencrypted; use "
                       "this only for a local test server");
  } else if (!options.verify_certificate) {
    warnings.push_back("email: certificate verification is off for the IMAP server " + server +
                       " of " + options.account +
                       ": anyone on the network path can pose as the server and read the "
                       "password and the mail");
  }
  return warnings;
}

}  // namespace sb::email

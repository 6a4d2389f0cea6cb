// The IMAP receiver against a real Dovecot (tests/support/dovecot_server.h) and a real
// SQLite store: its hooks commit each message through a WriteQueue with the Message-ID as
// external_id (so dedupe is the store's) and keep the sync position in the store's cursors,
// as the daemon does. What the server ends up with is read from its Maildir; what the
// receiver reports, from status().

#include "channels/email/imap_receiver.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "store/write_queue.h"
#include "support/dovecot_server.h"
#include "support/run_on_loop.h"
#include "support/temp_dir.h"
#include "support/test_certs.h"

namespace sb::email {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using Security = ImapOptions::Security;
using test::DovecotOptions;
using test::DovecotServer;
using test::run_on_loop;

constexpr const char* kUser = "alice@example.com";
constexpr const char* kPassword = "Imap-Test-Secret-42";

std::string mail(const std::string& id, const std::string& body = "Hello.") {
  return "From: bob@example.org\r\nTo: alice@example.com\r\nSubject: test " + id +
         "\r\nMessage-ID: <" + id + "@example.org>\r\n\r\n" + body + "\r\n";
}

std::string message_id(const std::string& data) {
  test::MaildirMessage parsed;
  parsed.data = data;
  return parsed.message_id();
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// What the store hook does besides committing, set by a test before or while the
// receiver runs.
struct HookBehaviour {
  std::atomic<int> fail_next{0};  // that many calls fail before committing anything
  std::atomic<int> fail_call{0};  // the call with this number (from 1) fails
  // The next commit is followed by the process "dying": the event loop stops before the
  // hook returns, so the receiver never hears that the message was stored.
  std::atomic<bool> crash_after_commit{false};
  std::atomic<int> calls{0}, inserted{0}, duplicates{0}, failed{0};
};

// One run of the daemon: an event-loop thread, the store (a writer thread and a reader on
// the loop, as in the daemon) and the receiver over them. Destroying it shuts down cleanly,
// unless the hook "crashed" it: then the receiver and its coroutine are abandoned where
// they stood, as a killed process would leave them.
class ReceiverRun {
 public:
  ReceiverRun(const std::filesystem::path& db, ImapOptions options, HookBehaviour& behaviour)
      : reader_(open_sqlite_store(db)),
        writer_(std::make_unique<WriteQueue>(open_sqlite_store(db))),
        behaviour_(behaviour) {
    hooks_.store = [this](std::string data, std::string origin,
                          json::object extra) -> asio::awaitable<Result<void>> {
      return store(std::move(data), std::move(origin), std::move(extra));
    };
    hooks_.load_state = [this](const std::string& key) { return reader_->cursor(key); };
    hooks_.save_state = [this](std::string key,
                               std::string value) -> asio::awaitable<Result<void>> {
      return save_state(std::move(key), std::move(value));
    };
    thread_ = std::thread([this] {
      io_.run();
      loop_ended_ = true;
    });
    run_on_loop(io_, [&] {
      receiver_ = std::make_unique<ImapReceiver>(io_.get_executor(), options, hooks_);
      receiver_->start();
    });
  }

  ~ReceiverRun() {
    if (!crashed_) {
      run_on_loop(io_, [this] {
        receiver_->stop();
        receiver_.reset();
      });
      work_.reset();
      const auto deadline = std::chrono::steady_clock::now() + 5s;
      while (!loop_ended_ && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
      }
      if (!loop_ended_) {
        ADD_FAILURE() << "the receiver still had work 5 s after stop()";
        io_.stop();
      }
    }
    thread_.join();
    // After a crash the loop is stopped: nothing runs concurrently with these.
    receiver_.reset();
  }

  MailboxStatus status() {
    if (crashed_) return {};
    return run_on_loop(io_, [this] { return receiver_->status(); });
  }
  std::string state_key() {
    return run_on_loop(io_, [this] { return receiver_->state_key(); });
  }
  bool crashed() const { return crashed_ && loop_ended_; }

 private:
  asio::awaitable<Result<void>> store(std::string data, std::string origin, json::object extra) {
    const int call = ++behaviour_.calls;
    if (behaviour_.fail_next > 0 || call == behaviour_.fail_call) {
      if (behaviour_.fail_next > 0) --behaviour_.fail_next;
      ++behaviour_.failed;
      co_return make_error("the test's store refused this message");
    }
    NewMessage message;
    message.source = "email";
    message.content = std::move(data);
    const auto id = message_id(message.content);
    message.external_id = id.empty() ? origin : id;
    extra["origin"] = origin;
    message.metadata_json = json::serialize(extra);
    auto add = [message](Store& s) { return s.add_message(message); };
    AddResult added;
    try {
      added = co_await writer_->run(std::move(add));
    } catch (const std::exception& e) {
      co_return make_error(std::string("store: ") + e.what());
    }
    ++(added.inserted ? behaviour_.inserted : behaviour_.duplicates);
    if (behaviour_.crash_after_commit.exchange(false)) {
      crashed_ = true;
      io_.stop();
      asio::steady_timer never(co_await asio::this_coro::executor, std::chrono::hours(1));
      co_await never.async_wait(asio::use_awaitable);
    }
    co_return Result<void>{};
  }

  asio::awaitable<Result<void>> save_state(std::string key, std::string value) {
    auto set = [key, value](Store& s) { s.set_cursor(key, value); };
    try {
      co_await writer_->run(std::move(set));
    } catch (const std::exception& e) {
      co_return make_error(std::string("store: ") + e.what());
    }
    co_return Result<void>{};
  }

  // Destroyed in reverse: the receiver, then the loop (with any abandoned coroutine frame
  // in it, which still refers to the hooks and the writer), then the rest.
  std::unique_ptr<Store> reader_;
  std::unique_ptr<WriteQueue> writer_;
  HookBehaviour& behaviour_;
  MailboxHooks hooks_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<ImapReceiver> receiver_;
  std::thread thread_;
  std::atomic<bool> loop_ended_{false};
  std::atomic<bool> crashed_{false};
};

class ImapReceiverTest : public ::testing::Test {
 protected:
  // With the test CA's certificate for localhost and 127.0.0.1 unless given another.
  void start_dovecot(bool idle = true, test::CertificateFiles certificate = {}) {
    DovecotOptions o;
    o.idle = idle;
    o.tls_cert = certificate.cert.empty() ? certs.server_cert() : certificate.cert;
    o.tls_key = certificate.key.empty() ? certs.server_key() : certificate.key;
    o.users = {{kUser, kPassword}};
    dovecot = std::make_unique<DovecotServer>(o);
  }

  // Implicit TLS with the test CA, short timeouts and backoff.
  ImapOptions options(Security security = Security::tls) {
    ImapOptions o;
    o.account = kUser;
    o.host = "127.0.0.1";
    o.security = security;
    o.port = security == Security::tls ? dovecot->imaps_port() : dovecot->imap_port();
    o.ca_file = certs.ca_cert();
    o.username = kUser;
    o.password = kPassword;
    o.poll_interval = 300ms;
    o.connect_timeout = 5s;
    o.command_timeout = 5s;
    o.backoff_first = 200ms;
    o.backoff_cap = 1s;
    return o;
  }

  void run(ImapOptions o) { receiver = std::make_unique<ReceiverRun>(db(), std::move(o), hook); }

  std::filesystem::path db() const { return dir.path() / "store.db"; }
  Store& probe() {
    if (!probe_) probe_ = open_sqlite_store(db());
    return *probe_;
  }
  std::int64_t rows() { return probe().counts().total; }
  bool stored(const std::string& id) {
    return probe().message_by_external_id("<" + id + "@example.org>").has_value();
  }
  // The server's UID of the message with this id, 0 when unknown.
  std::uint32_t uid_of(const std::string& id) {
    for (const auto& m : dovecot->messages(kUser)) {
      if (m.message_id() == "<" + id + "@example.org>") return m.uid;
    }
    return 0;
  }
  // The server's copy of the message with this id: "seen", "unseen" or "missing".
  std::string on_server(const std::string& id) {
    for (const auto& m : dovecot->messages(kUser)) {
      if (m.message_id() == "<" + id + "@example.org>") return m.seen() ? "seen" : "unseen";
    }
    return "missing";
  }

  bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }
  bool wait_for_state(const std::string& state, std::chrono::milliseconds timeout = 10s) {
    return wait_until([&] { return receiver->status().state == state; }, timeout);
  }

  // For failure messages: the receiver's status and the end of Dovecot's log.
  std::string explain() {
    std::string text = "\nstatus: ";
    if (receiver && !receiver->crashed()) text += json::serialize(receiver->status().to_json());
    const std::string log = dovecot ? dovecot->log() : "";
    text += "\ndovecot log (end):\n" + log.substr(log.size() > 4000 ? log.size() - 4000 : 0);
    return text;
  }

  test::TempDir dir;
  test::TestCertificates certs{dir.path()};
  std::unique_ptr<DovecotServer> dovecot;
  HookBehaviour hook;
  std::unique_ptr<ReceiverRun> receiver;  // declared last: stopped before the server goes

 private:
  std::unique_ptr<Store> probe_;
};

TEST_F(ImapReceiverTest, StoresUnseenMailAlreadyInTheInboxThenFlagsItSeen) {
  start_dovecot();
  dovecot->append(kUser, mail("read-elsewhere"), "S");
  dovecot->sync(kUser);
  dovecot->deliver(kUser, mail("one"));
  dovecot->deliver(kUser, mail("two", "Second body."));
  const auto uidvalidity = dovecot->uidvalidity(kUser);
  ASSERT_EQ(uid_of("two"), 3u);
  run(options());
  ASSERT_TRUE(
      wait_until([&] { return on_server("one") == "seen" && on_server("two") == "seen"; }, 10s))
      << explain();
  EXPECT_TRUE(stored("one"));
  ASSERT_TRUE(stored("two"));
  EXPECT_NE(probe().message_by_external_id("<two@example.org>")->content.find("Second body."),
            std::string::npos);
  ASSERT_TRUE(wait_for_state("idle")) << explain();
  EXPECT_EQ(rows(), 2) << "mail already \\Seen on the server is not new mail";
  EXPECT_EQ(on_server("read-elsewhere"), "seen");
  const auto status = receiver->status();
  EXPECT_EQ(status.messages, 2u);
  EXPECT_EQ(status.failures, 0u);
  EXPECT_TRUE(status.last_success.has_value());
  const std::string key = receiver->state_key();
  EXPECT_EQ(key, std::string("imap:") + kUser + ":INBOX");
  EXPECT_EQ(probe().cursor(key).value_or(""), std::to_string(uidvalidity) + ":3");
}

TEST_F(ImapReceiverTest, MailDeliveredWhileIdlingArrivesWithinTwoSeconds) {
  start_dovecot();
  run(options());
  ASSERT_TRUE(wait_for_state("idle")) << explain();
  for (const char* id : {"pushed-1", "pushed-2"}) {
    const auto sent = std::chrono::steady_clock::now();
    dovecot->deliver(kUser, mail(id));
    ASSERT_TRUE(wait_until([&] { return stored(id); }, 10s)) << id << explain();
    const auto took = std::chrono::steady_clock::now() - sent;
    std::printf("%s stored %lld ms after delivery\n", id,
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
    EXPECT_LT(took, 2500ms) << id;
    EXPECT_TRUE(wait_until([&] { return on_server(id) == "seen"; }, 5s)) << id << explain();
    EXPECT_TRUE(wait_for_state("idle")) << explain();
  }
  EXPECT_EQ(rows(), 2);
}

TEST_F(ImapReceiverTest, AFailedStoreLeavesTheMessageUnseenUntilItIsStored) {
  start_dovecot();
  hook.fail_next = 2;
  dovecot->deliver(kUser, mail("retried"));
  run(options());
  ASSERT_TRUE(wait_until([&] { return hook.failed >= 1; }, 10s)) << explain();
  EXPECT_EQ(on_server("retried"), "unseen") << "flagged \\Seen although the store failed";
  ASSERT_TRUE(wait_until([&] { return on_server("retried") == "seen"; }, 15s)) << explain();
  EXPECT_EQ(hook.failed, 2);
  EXPECT_EQ(hook.inserted, 1);
  EXPECT_EQ(rows(), 1);
}

TEST_F(ImapReceiverTest, AFirstSyncCutShortReadsNoMailThatWasAlreadyRead) {
  start_dovecot();
  dovecot->deliver(kUser, mail("first"));
  dovecot->append(kUser, mail("read-before"), "S");
  dovecot->sync(kUser);
  dovecot->deliver(kUser, mail("third"));
  ASSERT_EQ(uid_of("read-before"), 2u);
  hook.fail_call = 2;  // "first" is stored, then "third" fails: the first sync is cut short
  run(options());
  ASSERT_TRUE(wait_until([&] { return on_server("third") == "seen"; }, 15s)) << explain();
  EXPECT_EQ(hook.failed, 1);
  EXPECT_FALSE(stored("read-before")) << "mail read before the first start is not new mail";
  EXPECT_EQ(rows(), 2);
}

TEST_F(ImapReceiverTest, SeenOnlyAfterCommitAndACrashInBetweenLosesAndDuplicatesNothing) {
  start_dovecot();
  dovecot->deliver(kUser, mail("crash"));
  hook.crash_after_commit = true;
  run(options());
  ASSERT_TRUE(wait_until([&] { return receiver->crashed(); }, 10s)) << explain();
  EXPECT_EQ(rows(), 1) << "the hook committed before the crash";
  // The receiver was stopped dead before store() returned: the flag must not be there.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(on_server("crash"), "unseen");
  receiver.reset();
  EXPECT_EQ(on_server("crash"), "unseen");

  const int calls_before = hook.calls;
  run(options());
  ASSERT_TRUE(wait_until([&] { return on_server("crash") == "seen"; }, 10s)) << explain();
  EXPECT_GT(hook.calls, calls_before) << "the unflagged message was not read again";
  EXPECT_EQ(hook.duplicates, 1) << "the second read is the store's duplicate";
  EXPECT_EQ(rows(), 1);
  EXPECT_TRUE(stored("crash"));
}

TEST_F(ImapReceiverTest, ReconnectsAfterDovecotRestartsAndReadsMailThatCameMeanwhile) {
  start_dovecot();
  dovecot->deliver(kUser, mail("before"));
  run(options());
  ASSERT_TRUE(wait_until([&] { return on_server("before") == "seen"; }, 10s)) << explain();
  ASSERT_TRUE(wait_for_state("idle")) << explain();

  dovecot->stop();
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = receiver->status();
        return s.state == "backoff" && s.failures >= 2;
      },
      10s))
      << explain();
  const auto down = receiver->status();
  EXPECT_FALSE(down.last_error.empty());
  EXPECT_TRUE(down.last_error_at.has_value());
  // Mail arriving while IMAP is down, as the MTA would drop it into the Maildir.
  dovecot->append(kUser, mail("while-down"));
  dovecot->start();

  ASSERT_TRUE(wait_until([&] { return stored("while-down"); }, 10s)) << explain();
  ASSERT_TRUE(wait_until([&] { return on_server("while-down") == "seen"; }, 5s)) << explain();
  ASSERT_TRUE(wait_for_state("idle")) << explain();
  const auto up = receiver->status();
  EXPECT_EQ(up.failures, 0u) << "failures are reset after a good sync";
  ASSERT_TRUE(up.last_success.has_value());
  ASSERT_TRUE(down.last_error_at.has_value());
  EXPECT_GT(*up.last_success, *down.last_error_at);
  EXPECT_EQ(rows(), 2);
  dovecot->deliver(kUser, mail("after"));
  EXPECT_TRUE(wait_until([&] { return stored("after"); }, 5s)) << explain();
}

TEST_F(ImapReceiverTest, PollsAServerWithoutIdle) {
  start_dovecot(/*idle=*/false);
  run(options());
  ASSERT_TRUE(wait_for_state("polling")) << explain();
  dovecot->deliver(kUser, mail("polled"));
  bool idled = false;
  ASSERT_TRUE(wait_until(
      [&] {
        idled = idled || receiver->status().state == "idle";
        return stored("polled");
      },
      5s))
      << explain();
  EXPECT_FALSE(idled) << "the server does not offer IDLE";
  EXPECT_TRUE(wait_until([&] { return on_server("polled") == "seen"; }, 5s)) << explain();
  EXPECT_EQ(dovecot->count_in_log("Login: user=<alice@example.com>"), 1u)
      << "polling reuses the connection" << explain();
}

TEST_F(ImapReceiverTest, StarttlsWithTheTestCaWorks) {
  start_dovecot();
  dovecot->deliver(kUser, mail("starttls"));
  auto o = options(Security::starttls);
  o.host = "localhost";
  run(o);
  ASSERT_TRUE(wait_until([&] { return on_server("starttls") == "seen"; }, 10s)) << explain();
  EXPECT_TRUE(stored("starttls"));
  // Dovecot notes how the session was secured on its login line.
  EXPECT_EQ(dovecot->count_in_log("Login: user=<alice@example.com>"), 1u) << explain();
  EXPECT_EQ(dovecot->count_in_log(", TLS, session="), 1u) << explain();
}

TEST_F(ImapReceiverTest, ImplicitTlsWithTheTestCaWorks) {
  start_dovecot();
  dovecot->deliver(kUser, mail("implicit"));
  run(options(Security::tls));
  ASSERT_TRUE(wait_until([&] { return on_server("implicit") == "seen"; }, 10s)) << explain();
  EXPECT_TRUE(stored("implicit"));
  EXPECT_EQ(dovecot->count_in_log(", TLS, session="), 1u) << explain();
}

TEST_F(ImapReceiverTest, AnUntrustedCertificateIsACertificateError) {
  start_dovecot();
  dovecot->deliver(kUser, mail("untrusted"));
  for (const auto security : {Security::tls, Security::starttls}) {
    auto o = options(security);
    o.ca_file.clear();  // the system's CAs, which never signed the test certificate
    run(o);
    ASSERT_TRUE(wait_until([&] { return receiver->status().failures >= 1; }, 10s)) << explain();
    const auto status = receiver->status();
    EXPECT_NE(lower(status.last_error).find("certificate"), std::string::npos) << status.last_error;
    receiver.reset();
  }
  EXPECT_EQ(rows(), 0);
  EXPECT_EQ(on_server("untrusted"), "unseen");
  EXPECT_EQ(dovecot->count_in_log("Login: "), 0u) << explain();
}

TEST_F(ImapReceiverTest, ACertificateForAnotherHostIsRefused) {
  start_dovecot(true, certs.issue("elsewhere", {"DNS:mail.example.org"}));
  dovecot->deliver(kUser, mail("misnamed"));
  for (const auto& host : {"127.0.0.1", "localhost"}) {
    auto o = options(Security::tls);
    o.host = host;
    run(o);
    ASSERT_TRUE(wait_until([&] { return receiver->status().failures >= 1; }, 10s))
        << host << explain();
    const auto status = receiver->status();
    EXPECT_NE(lower(status.last_error).find("certificate"), std::string::npos) << status.last_error;
    receiver.reset();
  }
  EXPECT_EQ(rows(), 0);
  EXPECT_EQ(on_server("misnamed"), "unseen");
  EXPECT_EQ(dovecot->count_in_log("Login: "), 0u) << explain();
}

TEST_F(ImapReceiverTest, AWrongPasswordIsAClearErrorAndTheRetriesSlowDown) {
  start_dovecot();
  auto o = options();
  o.password = "Wrong-Pass-Word-7";
  o.backoff_first = 150ms;
  o.backoff_cap = 60s;
  run(o);
  // When each consecutive failure was seen; Dovecot answers a refused login after ~0.5 s.
  std::vector<std::chrono::steady_clock::time_point> seen_at;
  std::uint32_t last = 0;
  const auto began = std::chrono::steady_clock::now();
  std::string last_error;
  while (std::chrono::steady_clock::now() - began < 4500ms) {
    const auto status = receiver->status();
    if (status.failures > last) {
      last = status.failures;
      seen_at.push_back(std::chrono::steady_clock::now());
      last_error = status.last_error;
    }
    std::this_thread::sleep_for(10ms);
  }
  const auto attempts = dovecot->count_in_log("auth failed");
  EXPECT_GE(attempts, 3u) << explain();
  EXPECT_LE(attempts, 7u) << "not backing off" << explain();
  ASSERT_GE(seen_at.size(), 4u) << explain();
  const auto first_gap = seen_at[1] - seen_at[0];
  const auto last_gap = seen_at.back() - seen_at[seen_at.size() - 2];
  EXPECT_GT(last_gap, first_gap * 3 / 2) << "the wait between attempts does not grow";
  EXPECT_NE(receiver->status().state, "idle");
  const auto error = lower(last_error);
  EXPECT_TRUE(error.find("login") != std::string::npos ||
              error.find("authenticat") != std::string::npos)
      << last_error;
  EXPECT_EQ(last_error.find(o.password), std::string::npos) << "the password leaked into the error";
  EXPECT_EQ(last_error.find(kPassword), std::string::npos);
}

// A saved position counts only for its UIDVALIDITY: with the right one every UID above it
// is read (even mail another client has seen); with another, only unseen mail.
TEST_F(ImapReceiverTest, APositionFromAnotherUidvalidityIsForgotten) {
  start_dovecot();
  dovecot->append(kUser, mail("old"), "S");
  dovecot->sync(kUser);
  dovecot->deliver(kUser, mail("new-unseen"));
  dovecot->append(kUser, mail("new-seen"), "S");
  dovecot->sync(kUser);
  dovecot->deliver(kUser, mail("probe"));
  const auto uidvalidity = dovecot->uidvalidity(kUser);
  ASSERT_NE(uidvalidity, 0u);
  ASSERT_EQ(uid_of("old"), 1u);
  ASSERT_EQ(uid_of("new-unseen"), 2u);
  ASSERT_EQ(uid_of("new-seen"), 3u);
  ASSERT_EQ(uid_of("probe"), 4u);
  const std::string key = std::string("imap:") + kUser + ":INBOX";
  probe().set_cursor(key, std::to_string(uidvalidity + 1) + ":1");
  run(options());
  ASSERT_TRUE(wait_until([&] { return stored("new-unseen") && stored("probe"); }, 10s))
      << explain();
  ASSERT_TRUE(wait_for_state("idle")) << explain();
  EXPECT_FALSE(stored("new-seen")) << "read above a position of another UIDVALIDITY";
  EXPECT_FALSE(stored("old"));
  EXPECT_EQ(probe().cursor(key).value_or(""), std::to_string(uidvalidity) + ":4");
  receiver.reset();

  // The same with the server's UIDVALIDITY: UIDs above 1 are read, seen or not.
  probe().set_cursor(key, std::to_string(uidvalidity) + ":1");
  run(options());
  ASSERT_TRUE(wait_until([&] { return stored("new-seen"); }, 10s)) << explain();
  EXPECT_FALSE(stored("old"));
  EXPECT_EQ(rows(), 3);
}

TEST_F(ImapReceiverTest, ANewUidvalidityOnTheServerRereadsUnseenMailWithoutDuplicates) {
  start_dovecot();
  dovecot->deliver(kUser, mail("first"));
  dovecot->deliver(kUser, mail("second"));
  run(options());
  ASSERT_TRUE(wait_until([&] { return on_server("second") == "seen"; }, 10s)) << explain();
  receiver.reset();
  const auto before = dovecot->uidvalidity(kUser);
  const std::string key = std::string("imap:") + kUser + ":INBOX";
  ASSERT_EQ(probe().cursor(key).value_or(""), std::to_string(before) + ":2");

  // Rebuilt on the server: new UIDVALIDITY, and "first" is unseen again.
  ASSERT_TRUE(dovecot->set_flags(kUser, "<first@example.org>", ""));
  dovecot->reset_uidvalidity(kUser);
  dovecot->deliver(kUser, mail("third"));
  const auto after = dovecot->uidvalidity(kUser);
  ASSERT_NE(after, before);
  run(options());
  ASSERT_TRUE(
      wait_until([&] { return on_server("first") == "seen" && on_server("third") == "seen"; }, 10s))
      << explain();
  EXPECT_EQ(rows(), 3);
  EXPECT_GE(hook.duplicates, 1) << "first was read again and deduplicated";
  EXPECT_TRUE(wait_until(
      [&] { return probe().cursor(key).value_or("").rfind(std::to_string(after) + ":", 0) == 0; },
      5s))
      << probe().cursor(key).value_or("");
}

TEST_F(ImapReceiverTest, MailLargerThanTheLimitIsSkippedAndMarkedSeen) {
  start_dovecot();
  dovecot->deliver(kUser, mail("huge", std::string(200'000, 'x')));
  dovecot->deliver(kUser, mail("small"));
  auto o = options();
  o.max_message_bytes = 64 * 1024;
  run(o);
  ASSERT_TRUE(wait_until([&] { return stored("small"); }, 10s)) << explain();
  ASSERT_TRUE(wait_until([&] { return on_server("huge") == "seen"; }, 5s)) << explain();
  EXPECT_FALSE(stored("huge"));
  EXPECT_EQ(rows(), 1);
  EXPECT_EQ(receiver->status().messages, 1u);
}

}  // namespace
}  // namespace sb::email

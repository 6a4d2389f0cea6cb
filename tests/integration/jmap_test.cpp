// JmapClient and JmapReceiver (src/channels/email/jmap_client.h, jmap_receiver.h) against
// real peers: a throwaway Cyrus 3.6 (tests/support/cyrus_server.h) for sending, marking
// read, the query path and Email/changes polling (Debian's Cyrus has no push: its event
// source answers 204), and the scripted push server (tests/support/jmap_push_server.h) for
// the event stream. The receiver's hooks store into a real SQLite store, with the
// Message-ID as external_id and the sync state as a store cursor, as the daemon does.
// What the servers hold is checked through their own JMAP (mail_tool.py) or control
// interface, never through the code under test.

#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "channels/email/jmap_client.h"
#include "channels/email/jmap_receiver.h"
#include "channels/email/mailbox.h"
#include "channels/email/mime_builder.h"
#include "channels/email/mime_parser.h"
#include "store/store.h"
#include "support/cyrus_server.h"
#include "support/jmap_push_server.h"
#include "support/run_on_loop.h"
#include "support/temp_dir.h"

namespace sb::email {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using channels::SendOutcome;
using Kind = SendOutcome::Kind;
using test::CyrusOptions;
using test::CyrusServer;
using test::JmapPushServer;
using test::run_on_loop;
using test::TempDir;

const char* kind_name(Kind kind) {
  return kind == Kind::sent ? "sent" : kind == Kind::retry ? "retry" : "failed";
}

std::string raw_mail(const std::string& to, const std::string& message_id,
                     const std::string& subject) {
  return "From: Alice <alice@example.com>\r\nTo: " + to + "\r\nSubject: " + subject +
         "\r\nMessage-ID: <" + message_id + ">\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n" +
         "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, " + subject + ".\r\n";
}

bool has_keyword(const boost::json::object& email, const char* keyword) {
  return email.at("keywords").as_object().contains(keyword);
}

// Polls `check` (on the test thread) every 50 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& check, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(50ms);  // the peers and the loop thread at work
  }
  return check();
}

// One event loop on a thread of its own, a SQLite store used on it, and the hooks a JMAP
// receiver gets in the daemon: store by Message-ID (origin when there is none), state in a
// store cursor.
class JmapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
    open_store();
    hooks_.store = [this](std::string data, std::string origin,
                          boost::json::object extra) -> asio::awaitable<Result<void>> {
      const ParsedMail parsed = parse_mail(data);
      NewMessage message;
      message.source = "email";
      message.sender = parsed.from.address;
      message.subject = parsed.subject;
      message.content = parsed.text;
      message.metadata_json = boost::json::serialize(extra);
      message.external_id = parsed.message_id.empty() ? origin : parsed.message_id;
      ++store_calls_[*message.external_id];
      origins_[*message.external_id] = origin;
      store_->add_message(message);
      co_return Result<void>{};
    };
    hooks_.load_state = [this](const std::string& key) { return store_->cursor(key); };
    hooks_.save_state = [this](std::string key,
                               std::string value) -> asio::awaitable<Result<void>> {
      store_->set_cursor(key, value);
      co_return Result<void>{};
    };
  }

  void TearDown() override {
    stop_receiver();
    run_on_loop(io_, [this] { store_.reset(); });
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  // (Re)opens the store file, as a restarted daemon would.
  void open_store() {
    run_on_loop(io_, [this] {
      store_.reset();
      store_ = open_sqlite_store(dir_.path() / "store.db");
    });
  }

  JmapOptions cyrus_options(const CyrusServer& cyrus, const std::string& user = "bot@example.org") {
    JmapOptions o;
    o.account = user;
    o.session_url = cyrus.base_url();  // no path: discovery through /.well-known/jmap
    o.username = user;
    o.password = cyrus.password(user);
    o.connect_timeout = 5s;
    o.request_timeout = 20s;
    o.poll_interval = 500ms;
    o.push_ping = 1s;
    o.backoff_first = 100ms;
    o.backoff_cap = 1s;
    return o;
  }

  JmapOptions push_options(const JmapPushServer& push) {
    JmapOptions o;
    o.account = push.account();
    o.session_url = push.base_url();
    o.username = push.account();
    o.password = push.password();
    o.connect_timeout = 5s;
    o.request_timeout = 10s;
    o.poll_interval = 60s;  // only push can deliver within the test's few seconds
    o.push_ping = 1s;
    o.backoff_first = 100ms;
    o.backoff_cap = 1s;
    return o;
  }

  void make_client(JmapOptions options) {
    run_on_loop(io_, [&] { client_ = std::make_unique<JmapClient>(io_.get_executor(), options); });
  }

  void start_receiver() {
    run_on_loop(io_, [this] {
      receiver_ = std::make_unique<JmapReceiver>(io_.get_executor(), *client_, hooks_);
      receiver_->start();
    });
  }

  // Stops and destroys the receiver, then the client; the store stays.
  void stop_receiver() {
    run_on_loop(io_, [this] {
      if (receiver_) receiver_->stop();
    });
    std::this_thread::sleep_for(200ms);  // cancelled coroutines unwinding on the loop
    run_on_loop(io_, [this] {
      receiver_.reset();
      client_.reset();
    });
  }

  template <class MakeAwaitable>
  auto on_loop(MakeAwaitable make) {
    using T = typename decltype(make())::value_type;
    std::promise<T> promise;
    auto result = promise.get_future();
    asio::co_spawn(
        io_, [make]() -> asio::awaitable<T> { co_return co_await make(); },
        [&promise](std::exception_ptr error, T value) {
          if (error) {
            promise.set_exception(error);
          } else {
            promise.set_value(std::move(value));
          }
        });
    if (result.wait_for(60s) != std::future_status::ready) {
      ADD_FAILURE() << "the call did not finish within a minute";
      std::abort();  // the coroutine still refers to the promise
    }
    return result.get();
  }

  SendOutcome send(const OutgoingMail& mail) {
    return on_loop([this, &mail] { return client_->send(mail); });
  }

  MailboxStatus status() {
    return run_on_loop(io_, [this] { return receiver_->status(); });
  }
  std::optional<Message> stored(const std::string& message_id) {
    return run_on_loop(io_, [&] { return store_->message_by_external_id(message_id); });
  }
  bool eventually_stored(const std::string& message_id, std::chrono::milliseconds timeout) {
    return eventually([&] { return stored(message_id).has_value(); }, timeout);
  }
  std::int64_t rows() {
    return run_on_loop(io_, [this] { return store_->counts().total; });
  }
  int store_calls(const std::string& message_id) {
    return run_on_loop(io_, [&] {
      const auto it = store_calls_.find(message_id);
      return it == store_calls_.end() ? 0 : it->second;
    });
  }
  std::string describe_status() {
    const auto s = status();
    return "state " + s.state + ", last error: " + s.last_error;
  }

  OutgoingMail reply_to_alice(const std::string& subject) {
    OutgoingMail mail;
    mail.from = {"bot@example.org", "Switchboard"};
    mail.to = {{"alice@example.com", "Alice"}};
    mail.subject = subject;
    mail.message_id = make_message_id("example.org");
    mail.in_reply_to = "question-1@example.com";
    mail.references = {"root-1@example.com", "question-1@example.com"};
    mail.markdown_body = "**Yes**, see you on *Friday*.";
    mail.auto_submitted = "auto-replied";
    return mail;
  }

  TempDir dir_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io_.get_executor()};
  std::thread thread_;
  std::unique_ptr<Store> store_;  // used on the loop thread only
  MailboxHooks hooks_;
  std::map<std::string, int> store_calls_;      // by external id, on the loop thread
  std::map<std::string, std::string> origins_;  // by external id, on the loop thread
  std::unique_ptr<JmapClient> client_;
  std::unique_ptr<JmapReceiver> receiver_;
};

// --- Sending, against Cyrus -------------------------------------------------------------

TEST_F(JmapTest, SendsAReplyWithThreadingHeadersAndKeepsOneReadCopyInSent) {
  CyrusServer cyrus(dir_.path());
  make_client(cyrus_options(cyrus));
  const OutgoingMail mail = reply_to_alice("Re: Plans");

  const SendOutcome outcome = send(mail);
  ASSERT_EQ(outcome.kind, Kind::sent) << kind_name(outcome.kind) << ": " << outcome.error;

  const auto relayed = cyrus.relay().messages();
  ASSERT_EQ(relayed.size(), 1u);
  EXPECT_EQ(relayed[0].at("mail_from").as_string(), "bot@example.org");
  EXPECT_EQ(relayed[0].at("rcpt_tos"), boost::json::array({"alice@example.com"}));
  const std::string data(relayed[0].at("data").as_string());
  const ParsedMail sent = parse_mail(data);
  EXPECT_EQ(sent.message_id, mail.message_id);
  EXPECT_EQ(sent.in_reply_to, "question-1@example.com");
  EXPECT_EQ(sent.references, mail.references);
  EXPECT_EQ(sent.subject, "Re: Plans");
  EXPECT_EQ(sent.from.address, "bot@example.org");
  EXPECT_NE(sent.text.find("Yes"), std::string::npos) << sent.text;
  EXPECT_NE(data.find("Auto-Submitted: auto-replied"), std::string::npos) << data;
  EXPECT_NE(data.find("text/html"), std::string::npos) << "the Markdown rendered as HTML";

  const auto copies = cyrus.emails("bot@example.org", "sent");
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].at("messageId"), boost::json::array({boost::json::string(mail.message_id)}));
  EXPECT_EQ(copies[0].at("mailboxRoles"), boost::json::array({"sent"}));
  EXPECT_FALSE(has_keyword(copies[0], "$draft")) << boost::json::serialize(copies[0]);
  EXPECT_TRUE(has_keyword(copies[0], "$seen")) << boost::json::serialize(copies[0]);
  EXPECT_TRUE(cyrus.emails("bot@example.org", "drafts").empty());
  // Alice got it from the relay, not by a local delivery.
  EXPECT_EQ(cyrus.emails("alice@example.com", "inbox").size(), 1u);
}

TEST_F(JmapTest, SendsTwoMailsOverlappingOnOneClient) {
  CyrusServer cyrus(dir_.path());
  make_client(cyrus_options(cyrus));
  const OutgoingMail first = reply_to_alice("First"), second = reply_to_alice("Second");
  // Both start before either has a session: they overlap in discovery and in sending.
  std::promise<SendOutcome> one, two;
  auto spawn = [this](const OutgoingMail& mail, std::promise<SendOutcome>& promise) {
    asio::co_spawn(
        io_,
        [this, &mail]() -> asio::awaitable<SendOutcome> { co_return co_await client_->send(mail); },
        [&promise](std::exception_ptr error, SendOutcome outcome) {
          if (error) {
            promise.set_exception(error);
          } else {
            promise.set_value(std::move(outcome));
          }
        });
  };
  auto a_result = one.get_future(), b_result = two.get_future();
  run_on_loop(io_, [&] {
    spawn(first, one);
    spawn(second, two);
  });
  if (a_result.wait_for(60s) != std::future_status::ready ||
      b_result.wait_for(60s) != std::future_status::ready) {
    ADD_FAILURE() << "the sends did not finish within a minute";
    std::abort();  // the coroutines still refer to the promises
  }
  const SendOutcome a = a_result.get(), b = b_result.get();
  EXPECT_EQ(a.kind, Kind::sent) << a.error;
  EXPECT_EQ(b.kind, Kind::sent) << b.error;
  EXPECT_EQ(cyrus.relay().messages().size(), 2u);
  EXPECT_EQ(cyrus.emails("bot@example.org", "sent").size(), 2u);
  EXPECT_TRUE(cyrus.emails("bot@example.org", "drafts").empty());
}

TEST_F(JmapTest, AfterSendDestroyKeepsNoCopy) {
  CyrusServer cyrus(dir_.path());
  auto options = cyrus_options(cyrus);
  options.after_send = JmapOptions::AfterSend::destroy;
  make_client(options);

  const SendOutcome outcome = send(reply_to_alice("Re: No copy"));
  ASSERT_EQ(outcome.kind, Kind::sent) << kind_name(outcome.kind) << ": " << outcome.error;
  EXPECT_EQ(cyrus.relay().messages().size(), 1u);
  EXPECT_TRUE(cyrus.emails("bot@example.org", "sent").empty());
  EXPECT_TRUE(cyrus.emails("bot@example.org", "drafts").empty());
}

TEST_F(JmapTest, SubmissionRefusedByTheServerFailsWithTheServerErrorAndLeavesNoDraft) {
  // The relay refuses every recipient; Cyrus reports that for the submission object (as
  // tooManyRecipients, Cyrus 3.6's mapping of a refused RCPT).
  CyrusOptions refusing;
  refusing.relay.rcpt_script = "550";
  CyrusServer cyrus(dir_.path(), refusing);
  make_client(cyrus_options(cyrus));

  const SendOutcome outcome = send(reply_to_alice("Re: Refused"));
  EXPECT_EQ(outcome.kind, Kind::failed) << kind_name(outcome.kind) << ": " << outcome.error;
  EXPECT_NE(outcome.error.find("tooManyRecipients"), std::string::npos) << outcome.error;
  EXPECT_TRUE(cyrus.relay().messages().empty());
  EXPECT_TRUE(cyrus.emails("bot@example.org", "sent").empty());
  EXPECT_TRUE(eventually([&] { return cyrus.emails("bot@example.org", "drafts").empty(); }, 5s))
      << "the draft of a failed submission is destroyed";
}

TEST_F(JmapTest, WrongPasswordFailsWithoutSending) {
  CyrusServer cyrus(dir_.path());
  auto options = cyrus_options(cyrus);
  options.password = "not-the-password";
  make_client(options);
  const SendOutcome outcome = send(reply_to_alice("Re: Locked out"));
  EXPECT_EQ(outcome.kind, Kind::failed) << kind_name(outcome.kind) << ": " << outcome.error;
  EXPECT_NE(outcome.error.find("401"), std::string::npos) << outcome.error;
  EXPECT_EQ(outcome.error.find("not-the-password"), std::string::npos);
  EXPECT_TRUE(cyrus.relay().messages().empty());
}

TEST_F(JmapTest, MarkSeenSetsTheKeywordOnTheServer) {
  CyrusServer cyrus(dir_.path());
  cyrus.deliver("bot@example.org", raw_mail("bot@example.org", "seen-1@example.com", "Read me"));
  const auto unread = cyrus.email("bot@example.org", "inbox", "seen-1@example.com");
  ASSERT_TRUE(unread.has_value());
  ASSERT_FALSE(has_keyword(*unread, "$seen"));
  const std::string id(unread->at("id").as_string());
  make_client(cyrus_options(cyrus));

  const Result<void> marked = on_loop([this, id] { return client_->mark_seen(id); });
  ASSERT_TRUE(marked) << marked.error().message;
  EXPECT_TRUE(has_keyword(*cyrus.email("bot@example.org", "inbox", "seen-1@example.com"), "$seen"));

  const Result<void> missing = on_loop([this] { return client_->mark_seen("Mdoesnotexist"); });
  EXPECT_FALSE(missing) << "marking an email the server does not have must fail";
}

// --- Receiving, against Cyrus (no push: polling) ----------------------------------------

TEST_F(JmapTest, StoresMailFromBeforeTheStartAndPollsForLaterMail) {
  CyrusServer cyrus(dir_.path());
  cyrus.deliver("bot@example.org", raw_mail("bot@example.org", "early-1@example.com", "Early"));
  const auto on_server = cyrus.email("bot@example.org", "inbox", "early-1@example.com");
  ASSERT_TRUE(on_server.has_value());
  const std::string jmap_id(on_server->at("id").as_string());
  make_client(cyrus_options(cyrus));
  start_receiver();

  ASSERT_TRUE(eventually_stored("early-1@example.com", 10s)) << describe_status();
  const auto early = stored("early-1@example.com");
  EXPECT_EQ(early->subject, "Early");
  const auto metadata = boost::json::parse(early->metadata_json).as_object();
  EXPECT_EQ(metadata.at("jmap_id"), boost::json::value(jmap_id)) << early->metadata_json;
  EXPECT_EQ(run_on_loop(io_, [this] { return origins_["early-1@example.com"]; }),
            "jmap:bot@example.org:" + jmap_id);
  EXPECT_EQ(rows(), 1) << "the Welcome message is $seen and not stored";
  EXPECT_FALSE(
      has_keyword(*cyrus.email("bot@example.org", "inbox", "early-1@example.com"), "$seen"))
      << "the receiver leaves marking read to the channel (after the answer)";

  // Cyrus's event source answers 204: no push, the receiver polls.
  EXPECT_TRUE(eventually([&] { return status().state == "polling"; }, 10s)) << describe_status();
  const std::string key = run_on_loop(io_, [this] { return receiver_->state_key(); });
  EXPECT_EQ(key, "jmap:bot@example.org:Email");
  EXPECT_TRUE(run_on_loop(io_, [&] { return store_->cursor(key); }).has_value());

  cyrus.deliver("bot@example.org", raw_mail("bot@example.org", "later-1@example.com", "Later"));
  ASSERT_TRUE(eventually_stored("later-1@example.com", 10s)) << describe_status();
  EXPECT_EQ(rows(), 2);
  EXPECT_EQ(store_calls("early-1@example.com"), 1) << "Email/changes does not fetch it again";
  const auto s = status();
  EXPECT_EQ(s.messages, 2u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_TRUE(s.last_success.has_value());
}

TEST_F(JmapTest, RestartedReceiverStoresNothingTwiceAndSkipsOwnSentCopies) {
  CyrusServer cyrus(dir_.path());
  cyrus.deliver("bot@example.org", raw_mail("bot@example.org", "one@example.com", "One"));
  make_client(cyrus_options(cyrus));
  start_receiver();
  ASSERT_TRUE(eventually_stored("one@example.com", 10s)) << describe_status();

  const OutgoingMail reply = reply_to_alice("Re: One");
  const SendOutcome outcome = send(reply);
  ASSERT_EQ(outcome.kind, Kind::sent) << outcome.error;
  cyrus.deliver("bot@example.org", raw_mail("bot@example.org", "two@example.com", "Two"));
  ASSERT_TRUE(eventually_stored("two@example.com", 10s)) << describe_status();

  stop_receiver();
  open_store();
  cyrus.deliver("bot@example.org", raw_mail("bot@example.org", "three@example.com", "Three"));
  make_client(cyrus_options(cyrus));
  start_receiver();
  ASSERT_TRUE(eventually_stored("three@example.com", 10s)) << describe_status();
  std::this_thread::sleep_for(1500ms);  // a few more polls that must change nothing

  EXPECT_EQ(rows(), 3);
  EXPECT_EQ(store_calls("one@example.com"), 1) << "the restart resumes from the saved state";
  EXPECT_EQ(store_calls("two@example.com"), 1);
  EXPECT_EQ(store_calls("three@example.com"), 1);
  EXPECT_EQ(store_calls(reply.message_id), 0) << "our own copy in Sent is not incoming mail";
  EXPECT_FALSE(stored(reply.message_id).has_value());
  EXPECT_EQ(cyrus.emails("bot@example.org", "sent").size(), 1u);
}

// --- Push, against the scripted server ---------------------------------------------------

TEST_F(JmapTest, PushStoresMailWithinSecondsWhilePollingIsSlow) {
  JmapPushServer push(dir_.path());
  make_client(push_options(push));
  start_receiver();
  ASSERT_TRUE(eventually([&] { return status().state == "idle"; }, 10s)) << describe_status();

  push.deliver(raw_mail(push.account(), "pushed-1@example.com", "Pushed"));
  const auto delivered = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually_stored("pushed-1@example.com", 3s)) << describe_status();
  const auto took = std::chrono::steady_clock::now() - delivered;
  EXPECT_LT(took, 2s);
  EXPECT_EQ(stored("pushed-1@example.com")->subject, "Pushed");

  bool stream_asked_right = false;
  for (const auto& request : push.requests()) {
    if (request.at("kind") != "stream") continue;
    const auto& query = request.at("query").as_object();
    const std::string types(query.at("types").as_string());
    stream_asked_right = types.find("Email") != std::string::npos &&
                         query.at("closeafter") == "no" && query.at("ping") == "1";
  }
  EXPECT_TRUE(stream_asked_right) << push.log();
  EXPECT_TRUE(eventually([&] { return status().state == "idle"; }, 3s)) << describe_status();
}

TEST_F(JmapTest, ReconnectsWithLastEventIdWhenTheStreamIsCut) {
  JmapPushServer push(dir_.path());
  make_client(push_options(push));
  start_receiver();
  ASSERT_TRUE(eventually([&] { return status().state == "idle"; }, 10s)) << describe_status();
  push.deliver(raw_mail(push.account(), "before-cut@example.com", "Before"));
  ASSERT_TRUE(eventually_stored("before-cut@example.com", 3s)) << describe_status();

  EXPECT_EQ(push.drop_streams(), 1);
  auto reconnected = [&] {
    for (const auto& request : push.requests()) {
      if (request.at("kind") == "stream" && request.at("last_event_id") == "e1") return true;
    }
    return false;
  };
  ASSERT_TRUE(eventually(reconnected, 10s)) << "no stream with Last-Event-ID e1: " << push.log();
  ASSERT_TRUE(eventually([&] { return status().state == "idle"; }, 5s)) << describe_status();

  push.deliver(raw_mail(push.account(), "after-cut@example.com", "After"));
  EXPECT_TRUE(eventually_stored("after-cut@example.com", 3s)) << describe_status();
  EXPECT_EQ(rows(), 2);
  EXPECT_EQ(store_calls("before-cut@example.com"), 1);
}

TEST_F(JmapTest, CannotCalculateChangesResyncsWithoutDuplicates) {
  JmapPushServer push(dir_.path());
  make_client(push_options(push));
  start_receiver();
  ASSERT_TRUE(eventually([&] { return status().state == "idle"; }, 10s)) << describe_status();
  push.deliver(raw_mail(push.account(), "kept-1@example.com", "Kept"));
  ASSERT_TRUE(eventually_stored("kept-1@example.com", 3s)) << describe_status();

  // The server loses its change history while a new message arrives: the receiver's
  // saved state can no longer be brought up to date.
  push.pause_push(true);
  push.deliver(raw_mail(push.account(), "resync-1@example.com", "Resync"));
  push.forget_changes();
  push.pause_push(false);

  ASSERT_TRUE(eventually_stored("resync-1@example.com", 5s)) << describe_status();
  std::this_thread::sleep_for(500ms);  // let a duplicate show up if there is one
  EXPECT_EQ(rows(), 2);
  int queries = 0;
  for (const auto& request : push.requests()) {
    if (request.at("kind") != "api") continue;
    for (const auto& call : request.at("calls").as_array()) {
      if (call == "Email/query") ++queries;
    }
  }
  EXPECT_GE(queries, 2) << "the first sync and the resync query the Inbox: " << push.log();
  EXPECT_NE(status().state, "backoff") << describe_status();
}

}  // namespace
}  // namespace sb::email

// End to end through a mailbox at a provider: mail delivered to a real Dovecot (IMAP, IDLE)
// or a real Cyrus (JMAP) is read by the daemon, answered by the test agent in a bwrap
// sandbox, and the answer goes out — by SMTP to an aiosmtpd sink for the IMAP account, through
// Cyrus's own JMAP submission (relayed to its sink) for the JMAP account. The answered mail
// ends up read on the server, and /health shows each account's state.

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "chat_helpers.h"
#include "daemon_fixture.h"
#include "support/cyrus_server.h"
#include "support/dovecot_server.h"
#include "support/mail_headers.h"
#include "support/smtp_sink.h"
#include "support/test_certs.h"

namespace sb::test {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

std::string mail(const std::string& from, const std::string& to, const std::string& subject,
                 const std::string& message_id, const std::string& body) {
  return "From: Alice <" + from + ">\r\nTo: " + to + "\r\nSubject: " + subject +
         "\r\nMessage-ID: <" + message_id +
         ">\r\nDate: Sun, 22 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
         "Content-Type: text/plain; charset=utf-8\r\n\r\n" +
         body + "\r\n";
}

// Waits until `done` holds (checked every 100 ms) or `limit` passes; the last result.
template <class Fn>
bool eventually(Fn done, std::chrono::milliseconds limit = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

// The agents' run logs of the group, for failure messages.
std::string run_logs(const std::filesystem::path& dir, const std::string& group) {
  std::string out;
  const auto logs = dir / "data" / "logs" / group;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(logs, ec)) {
    std::ifstream in(entry.path());
    out += "--- " + entry.path().filename().string() + "\n" +
           std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

json::object account_health(const Daemon& daemon, const std::string& address) {
  const auto health = daemon.json("GET", "/health", 200);
  for (const auto& a : health.at("email").at("accounts").as_array()) {
    if (a.at("address").as_string() == address) return a.as_object();
  }
  ADD_FAILURE() << "no account " << address << " in " << json::serialize(health);
  return {};
}

class ImapEndToEnd : public ::testing::Test {
 protected:
  static constexpr const char* kPassword = "imap pass word";
  void SetUp() override {
    SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox");
    std::filesystem::create_directories(dir.path() / "certs");
    std::filesystem::create_directories(dir.path() / "sink");
    certs = std::make_unique<TestCertificates>(dir.path() / "certs");
    DovecotOptions options;
    options.tls_cert = certs->server_cert();
    options.tls_key = certs->server_key();
    options.users = {{"andy@example.test", kPassword}};
    dovecot = std::make_unique<DovecotServer>(options);
    sink = std::make_unique<SmtpSink>(dir.path() / "sink");
    const std::string toml = bwrap_test_agent_toml(dir.path()) +
                             "[[email.accounts]]\n"
                             "address = \"andy@example.test\"\n"
                             "allow_from = [\"alice@example.org\"]\n"
                             "receive = \"imap\"\n"
                             "[email.accounts.imap]\n"
                             "host = \"127.0.0.1\"\n"
                             "port = " +
                             std::to_string(dovecot->imaps_port()) +
                             "\n"
                             "ca_file = \"" +
                             certs->ca_cert().string() +
                             "\"\n"
                             "password_env = \"SB_E2E_IMAP_PASSWORD\"\n"
                             "[email.accounts.smtp]\n"
                             "host = \"127.0.0.1\"\n"
                             "port = " +
                             std::to_string(sink->port()) +
                             "\n"
                             "security = \"plain\"\n";
    daemon = std::make_unique<Daemon>(dir.path(), "", toml);
    ASSERT_TRUE(daemon->start({std::string("SB_E2E_IMAP_PASSWORD=") + kPassword})) << daemon->log();
  }

  TempDir dir;
  std::unique_ptr<TestCertificates> certs;
  std::unique_ptr<DovecotServer> dovecot;
  std::unique_ptr<SmtpSink> sink;
  std::unique_ptr<Daemon> daemon;
};

TEST_F(ImapEndToEnd, MailInTheMailboxIsAnsweredAndMarkedSeen) {
  ASSERT_TRUE(eventually(
      [&] {
        return account_health(*daemon, "andy@example.test").at("receiving").at("state") == "idle";
      },
      20s))
      << json::serialize(account_health(*daemon, "andy@example.test")) << daemon->log();

  dovecot->deliver("andy@example.test",
                   mail("alice@example.org", "andy@example.test", "Dinner plans",
                        "dinner.1@example.org", "reply Thanks, **noted**."));
  ASSERT_TRUE(eventually([&] { return !sink->messages().empty(); }))
      << daemon->log() << sink->log() << run_logs(dir.path(), "email");
  const auto mails = sink->messages();
  ASSERT_EQ(mails.size(), 1u);
  const std::string data(mails[0].at("data").as_string());
  EXPECT_EQ(header(data, "Subject"), "Re: Dinner plans");
  EXPECT_EQ(header(data, "In-Reply-To"), "<dinner.1@example.org>");
  EXPECT_NE(header(data, "To").find("alice@example.org"), std::string::npos);
  EXPECT_NE(data.find("<strong>noted</strong>"), std::string::npos);

  // The mail was stored in the correspondent's chat and is \Seen on the server.
  auto stored = daemon->json("GET", "/messages?chat=email:alice@example.org", 200).as_array();
  ASSERT_FALSE(stored.empty());
  EXPECT_EQ(stored.back().at("metadata").at("message_id"), "dinner.1@example.org");
  const auto on_server = dovecot->messages("andy@example.test");
  ASSERT_EQ(on_server.size(), 1u);
  EXPECT_TRUE(on_server[0].seen()) << "flags: " << on_server[0].flags;

  const auto account = account_health(*daemon, "andy@example.test");
  EXPECT_EQ(account.at("receive"), "imap");
  EXPECT_FALSE(account.at("receiving").at("last_success").is_null()) << json::serialize(account);
  EXPECT_TRUE(account.at("receiving").at("last_error").is_null()) << json::serialize(account);
  EXPECT_FALSE(account.at("sending").at("last_success").is_null()) << json::serialize(account);
  // The password is in no log line.
  EXPECT_EQ(daemon->log().find(kPassword), std::string::npos);
}

TEST_F(ImapEndToEnd, AServerThatGoesAwayIsShownInHealthAndMailIsPickedUpAfterwards) {
  ASSERT_TRUE(eventually(
      [&] {
        return account_health(*daemon, "andy@example.test").at("receiving").at("state") == "idle";
      },
      20s));
  dovecot->stop();
  ASSERT_TRUE(eventually([&] {
    const auto receiving = account_health(*daemon, "andy@example.test").at("receiving");
    return receiving.at("state") == "backoff" && !receiving.at("last_error").is_null();
  })) << json::serialize(account_health(*daemon, "andy@example.test"));
  dovecot->start();
  dovecot->deliver("andy@example.test", mail("alice@example.org", "andy@example.test", "Back",
                                             "back.1@example.org", "reply welcome back"));
  ASSERT_TRUE(eventually([&] { return !sink->messages().empty(); }, 90s))
      << daemon->log() << sink->log();
  EXPECT_EQ(header(std::string(sink->messages()[0].at("data").as_string()), "In-Reply-To"),
            "<back.1@example.org>");
}

class JmapEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox");
    cyrus = std::make_unique<CyrusServer>(dir.path());
    const std::string toml = bwrap_test_agent_toml(dir.path()) +
                             "[[email.accounts]]\n"
                             "address = \"bot@example.org\"\n"
                             "allow_from = [\"alice@example.com\"]\n"
                             "receive = \"jmap\"\n"
                             "send = \"jmap\"\n"
                             "[email.accounts.jmap]\n"
                             "session_url = \"" +
                             cyrus->base_url() +
                             "\"\n"
                             "password_env = \"SB_E2E_JMAP_PASSWORD\"\n"
                             "poll_interval = \"1s\"\n";
    daemon = std::make_unique<Daemon>(dir.path(), "", toml);
    ASSERT_TRUE(daemon->start({"SB_E2E_JMAP_PASSWORD=" + cyrus->password("bot@example.org")}))
        << daemon->log();
  }

  TempDir dir;
  std::unique_ptr<CyrusServer> cyrus;
  std::unique_ptr<Daemon> daemon;
};

TEST_F(JmapEndToEnd, MailIsAnsweredThroughJmapAndTheAnsweredMailIsRead) {
  cyrus->deliver("bot@example.org", mail("alice@example.com", "bot@example.org", "Shopping",
                                         "shop.1@example.com", "reply Milk and *bread*."));
  auto& relay = cyrus->relay();
  ASSERT_TRUE(eventually([&] { return !relay.messages().empty(); }, 45s))
      << daemon->log() << relay.log();
  const std::string data(relay.messages().back().at("data").as_string());
  EXPECT_EQ(header(data, "Subject"), "Re: Shopping");
  EXPECT_EQ(header(data, "In-Reply-To"), "<shop.1@example.com>");
  EXPECT_EQ(header(data, "Auto-Submitted"), "auto-replied");
  EXPECT_NE(header(data, "To").find("alice@example.com"), std::string::npos);

  // The answered mail is $seen; the answer is in Sent without $draft; Drafts is empty.
  auto keyword = [](const json::object& email, const char* name) {
    const auto* keywords = email.if_contains("keywords");
    return keywords && keywords->is_object() && keywords->as_object().contains(name);
  };
  ASSERT_TRUE(eventually(
      [&] {
        for (const auto& e : cyrus->emails("bot@example.org", "inbox")) {
          if (e.at("messageId").as_array().size() == 1 &&
              e.at("messageId").as_array()[0] == "shop.1@example.com")
            return keyword(e, "$seen");
        }
        return false;
      },
      15s))
      << json::serialize(json::value_from(cyrus->emails("bot@example.org", "inbox")));
  const auto sent = cyrus->emails("bot@example.org", "sent");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_FALSE(keyword(sent[0], "$draft"));
  EXPECT_TRUE(cyrus->emails("bot@example.org", "drafts").empty());

  const auto account = account_health(*daemon, "bot@example.org");
  EXPECT_EQ(account.at("receiving").at("state"), "polling")
      << "Cyrus offers no push: " << json::serialize(account);
  EXPECT_FALSE(account.at("sending").at("last_success").is_null()) << json::serialize(account);
  EXPECT_EQ(daemon->log().find(cyrus->password("bot@example.org")), std::string::npos);
  // Our own answer in Sent was not taken for incoming mail.
  const auto stored = daemon->json("GET", "/messages?chat=email:bot@example.org", 200);
  EXPECT_TRUE(stored.as_array().empty()) << json::serialize(stored);
}

}  // namespace
}  // namespace sb::test

// The Dovecot test peer (tests/support/dovecot_server.h) itself: the IMAP receiver's tests
// judge the receiver by it, so what they rely on is checked here with a raw IMAP exchange —
// logins, CAPABILITY with and without IDLE, LMTP delivery, flags read back from the
// Maildir, restart and UIDVALIDITY reset, teardown.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/dovecot_server.h"
#include "support/temp_dir.h"
#include "support/test_certs.h"

namespace sb::test {
namespace {
using namespace std::chrono_literals;

constexpr const char* kUser = "alice@example.com";
constexpr const char* kPassword = "s3cret-Pass";

std::string mail(const std::string& id, const std::string& body = "Hello.") {
  return "From: bob@example.org\r\nTo: alice@example.com\r\nSubject: test " + id +
         "\r\nMessage-ID: <" + id + "@example.org>\r\n\r\n" + body + "\r\n";
}

// The untagged CAPABILITY line's words, with a leading and trailing space.
std::string capability(LineClient& imap, const std::string& tag) {
  for (const auto& line : imap.imap(tag, "CAPABILITY")) {
    if (line.rfind("* CAPABILITY ", 0) == 0) return line.substr(12) + " ";
  }
  return "";
}

// Logs in over a new connection; the tagged answer.
std::string login(std::uint16_t port, const std::string& user, const std::string& password) {
  LineClient imap(port);
  EXPECT_EQ(imap.read_line().rfind("* OK", 0), 0u);
  return imap.imap("a", "LOGIN " + user + " " + password).back();
}

class DovecotFixture : public ::testing::Test {
 protected:
  DovecotOptions options(bool ssl = true, bool idle = true) {
    DovecotOptions o;
    o.ssl = ssl;
    o.idle = idle;
    o.tls_cert = certs.server_cert();
    o.tls_key = certs.server_key();
    o.users = {{kUser, kPassword}};
    return o;
  }
  TempDir dir;
  TestCertificates certs{dir.path()};
};

TEST_F(DovecotFixture, StartsQuicklyAndAcceptsOnlyTheRightPassword) {
  DovecotServer dovecot(options());
  RecordProperty("start_ms", static_cast<int>(dovecot.start_duration().count()));
  std::printf("dovecot started in %lld ms\n",
              static_cast<long long>(dovecot.start_duration().count()));
  EXPECT_LT(dovecot.start_duration(), 5s);
  EXPECT_NE(dovecot.imaps_port(), 0);
  EXPECT_EQ(login(dovecot.imap_port(), kUser, kPassword).rfind("a OK", 0), 0u);
  const std::string refused = login(dovecot.imap_port(), kUser, "wrong");
  EXPECT_EQ(refused.rfind("a NO", 0), 0u) << refused;
  EXPECT_NE(refused.find("AUTHENTICATIONFAILED"), std::string::npos) << refused;
  dovecot.add_user("bob@example.com", "later-added");
  EXPECT_EQ(login(dovecot.imap_port(), "bob@example.com", "later-added").rfind("a OK", 0), 0u);
}

TEST_F(DovecotFixture, RefusedLoginsAreNotSlowedDownByAPenalty) {
  DovecotServer dovecot(options());
  for (int i = 0; i < 4; ++i) {
    const auto began = std::chrono::steady_clock::now();
    EXPECT_EQ(login(dovecot.imap_port(), kUser, "wrong").rfind("a NO", 0), 0u);
    EXPECT_LT(std::chrono::steady_clock::now() - began, 1500ms) << "attempt " << i;
  }
  // Each refusal is logged when its connection has closed, a moment after the answer.
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (dovecot.count_in_log("auth failed") < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(dovecot.count_in_log("auth failed"), 4u) << dovecot.log();
}

TEST_F(DovecotFixture, AdvertisesIdleAndStarttlsOnlyWhenEnabled) {
  {
    DovecotServer dovecot(options(true, true));
    LineClient imap(dovecot.imap_port());
    imap.read_line();
    const auto before = capability(imap, "a");
    EXPECT_NE(before.find(" IDLE "), std::string::npos) << before;
    EXPECT_NE(before.find(" STARTTLS "), std::string::npos) << before;
  }
  DovecotServer dovecot(options(false, false));
  EXPECT_EQ(dovecot.imaps_port(), 0);
  LineClient imap(dovecot.imap_port());
  const std::string greeting = imap.read_line();
  EXPECT_EQ(greeting.find("IDLE"), std::string::npos) << greeting;
  const auto before = capability(imap, "a");
  EXPECT_EQ(before.find(" IDLE "), std::string::npos) << before;
  EXPECT_EQ(before.find(" STARTTLS "), std::string::npos) << before;
  const auto logged_in = imap.imap("b", std::string("LOGIN ") + kUser + " " + kPassword).back();
  EXPECT_EQ(logged_in.find("IDLE"), std::string::npos) << logged_in;
  const auto after = capability(imap, "c");
  EXPECT_EQ(after.find(" IDLE "), std::string::npos) << after;
  EXPECT_NE(after.find(" UIDPLUS "), std::string::npos) << after;
}

TEST_F(DovecotFixture, DeliveredMailIsUnseenUntilAClientFlagsIt) {
  DovecotServer dovecot(options());
  dovecot.deliver(kUser, mail("one", ".a line starting with a dot"));
  auto messages = dovecot.messages(kUser);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_FALSE(messages[0].seen());
  EXPECT_EQ(messages[0].message_id(), "<one@example.org>");
  // Dovecot keeps maildir files with LF line ends.
  EXPECT_NE(messages[0].data.find("\n.a line starting with a dot\n"), std::string::npos)
      << messages[0].data;

  LineClient imap(dovecot.imap_port());
  imap.read_line();
  ASSERT_EQ(imap.imap("a", std::string("LOGIN ") + kUser + " " + kPassword).back().rfind("a OK", 0),
            0u);
  ASSERT_EQ(imap.imap("b", "SELECT INBOX").back().rfind("b OK", 0), 0u);
  EXPECT_EQ(imap.imap("c", "UID SEARCH UNSEEN").front(), "* SEARCH 1");
  ASSERT_EQ(imap.imap("d", "UID STORE 1 +FLAGS.SILENT (\\Seen)").back().rfind("d OK", 0), 0u);
  messages = dovecot.messages(kUser);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_TRUE(messages[0].seen()) << messages[0].path;
  EXPECT_NE(dovecot.uidvalidity(kUser), 0u);
}

TEST_F(DovecotFixture, UnknownRecipientIsRefusedByLmtp) {
  DovecotServer dovecot(options());
  EXPECT_THROW(dovecot.deliver("nobody@example.com", mail("x")), std::runtime_error);
}

TEST_F(DovecotFixture, AppendedMailKeepsItsFlagsAndReachesAnIdlingClient) {
  DovecotServer dovecot(options());
  dovecot.append(kUser, mail("seen"), "S");
  EXPECT_EQ(dovecot.messages(kUser).at(0).uid, 0u) << "Dovecot has not looked yet";
  dovecot.sync(kUser);
  EXPECT_EQ(dovecot.messages(kUser).at(0).uid, 1u);
  LineClient imap(dovecot.imap_port());
  imap.read_line();
  imap.imap("a", std::string("LOGIN ") + kUser + " " + kPassword);
  imap.imap("b", "SELECT INBOX");
  EXPECT_EQ(imap.imap("c", "UID SEARCH UNSEEN").front(), "* SEARCH");
  EXPECT_EQ(imap.imap("d", "UID SEARCH SEEN").front(), "* SEARCH 1");
  imap.send("e IDLE\r\n");
  EXPECT_EQ(imap.read_line().rfind("+ ", 0), 0u);
  const auto sent = std::chrono::steady_clock::now();
  dovecot.deliver(kUser, mail("pushed"));
  EXPECT_EQ(imap.read_line(), "* 2 EXISTS");
  // messages() is in file-name order, which need not be the order of arrival.
  std::uint32_t pushed_uid = 0;
  for (const auto& m : dovecot.messages(kUser)) {
    if (m.message_id() == "<pushed@example.org>") pushed_uid = m.uid;
  }
  EXPECT_EQ(pushed_uid, 2u);
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 3s);
  imap.send("DONE\r\n");
  std::string line = imap.read_line();
  while (line.rfind("* ", 0) == 0) line = imap.read_line();
  EXPECT_EQ(line.rfind("e OK", 0), 0u) << line;
}

TEST_F(DovecotFixture, RestartKeepsPortsMailAndFlags) {
  DovecotServer dovecot(options());
  dovecot.deliver(kUser, mail("kept"));
  dovecot.append(kUser, mail("flagged"), "S");
  const auto imap_port = dovecot.imap_port();
  LineClient session(imap_port);
  session.read_line();
  session.imap("a", std::string("LOGIN ") + kUser + " " + kPassword);
  ASSERT_EQ(session.imap("b", "SELECT INBOX").back().rfind("b OK", 0), 0u);
  const auto began = std::chrono::steady_clock::now();
  dovecot.restart();
  std::printf("dovecot restarted in %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - began)
                                         .count()));
  // Open sessions end with the server.
  EXPECT_THROW(session.imap("c", "NOOP"), std::runtime_error) << "the old session survived";
  EXPECT_EQ(dovecot.imap_port(), imap_port);
  EXPECT_EQ(login(imap_port, kUser, kPassword).rfind("a OK", 0), 0u);
  const auto messages = dovecot.messages(kUser);
  ASSERT_EQ(messages.size(), 2u);
  int seen = 0;
  for (const auto& m : messages) seen += m.seen() ? 1 : 0;
  EXPECT_EQ(seen, 1);
}

TEST_F(DovecotFixture, ResetUidvalidityGivesTheInboxANewOne) {
  DovecotServer dovecot(options());
  dovecot.deliver(kUser, mail("one"));
  EXPECT_EQ(login(dovecot.imap_port(), kUser, kPassword).rfind("a OK", 0), 0u);
  LineClient first(dovecot.imap_port());
  first.read_line();
  first.imap("a", std::string("LOGIN ") + kUser + " " + kPassword);
  first.imap("b", "SELECT INBOX");
  const auto before = dovecot.uidvalidity(kUser);
  ASSERT_NE(before, 0u);
  dovecot.reset_uidvalidity(kUser);
  LineClient imap(dovecot.imap_port());
  imap.read_line();
  imap.imap("a", std::string("LOGIN ") + kUser + " " + kPassword);
  bool reported = false;
  for (const auto& line : imap.imap("b", "SELECT INBOX")) {
    if (line.find("[UIDVALIDITY ") != std::string::npos) {
      reported = true;
      EXPECT_EQ(line.find("[UIDVALIDITY " + std::to_string(before) + "]"), std::string::npos);
    }
  }
  EXPECT_TRUE(reported);
  EXPECT_NE(dovecot.uidvalidity(kUser), before);
  EXPECT_EQ(dovecot.messages(kUser).size(), 1u);
}

TEST_F(DovecotFixture, TearsDownProcessAndFilesWhenDestroyed) {
  std::filesystem::path where;
  std::uint16_t port = 0;
  {
    DovecotServer dovecot(options());
    where = dovecot.dir();
    port = dovecot.imap_port();
    dovecot.deliver(kUser, mail("gone"));
  }
  EXPECT_FALSE(std::filesystem::exists(where));
  EXPECT_THROW(LineClient probe(port), std::runtime_error);
}

}  // namespace
}  // namespace sb::test

// End to end through email: swaks sends mail to the daemon's SMTP receiver, the test agent
// (in a real bwrap sandbox) answers, and the answer arrives at an aiosmtpd sink standing in
// for the account's submission server — threaded on the mail it answers.

#include <gtest/gtest.h>

#include <thread>

#include "chat_helpers.h"
#include "daemon_fixture.h"
#include "support/mail_headers.h"
#include "support/smtp_sink.h"

namespace sb::test {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

class EmailEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_OR_FAIL_WITHOUT(bwrap_works(), "a working bwrap sandbox");
    SKIP_OR_FAIL_WITHOUT(std::system("swaks --version >/dev/null 2>&1") == 0, "swaks");
    sink = std::make_unique<SmtpSink>(dir.path());
    smtp_port = free_port();
    const std::string toml = bwrap_test_agent_toml(dir.path()) +
                             "[email.receiver]\n"
                             "enabled = true\n"
                             "listen = \"127.0.0.1:" +
                             std::to_string(smtp_port) +
                             "\"\n"
                             "hostname = \"mx.example.test\"\n"
                             "[[email.accounts]]\n"
                             "address = \"andy@example.test\"\n"
                             "allow_from = [\"alice@example.org\"]\n"
                             "[email.accounts.smtp]\n"
                             "host = \"127.0.0.1\"\n"
                             "port = " +
                             std::to_string(sink->port()) +
                             "\n"
                             "security = \"plain\"\n";
    daemon = std::make_unique<Daemon>(dir.path(), "", toml);
    ASSERT_TRUE(daemon->start()) << daemon->log();
  }

  // Sends a mail with swaks; extra arguments add headers and such. The exit status.
  int swaks(const std::string& from, const std::string& body,
            const std::vector<std::string>& headers) {
    std::string command = "swaks --silent 2 --server 127.0.0.1:" + std::to_string(smtp_port) +
                          " --to andy@example.test --from " + from + " --body '" + body + "'";
    for (const auto& h : headers) command += " --header '" + h + "'";
    return std::system((command + " >/dev/null 2>&1").c_str());
  }

  std::vector<json::object> sent(std::size_t count, std::chrono::seconds limit = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    auto got = sink->messages();
    while (got.size() < count && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
      got = sink->messages();
    }
    return got;
  }

  TempDir dir;
  std::unique_ptr<SmtpSink> sink;
  std::uint16_t smtp_port = 0;
  std::unique_ptr<Daemon> daemon;
};

TEST_F(EmailEndToEnd, AMailIsAnsweredByMailThreadedOnIt) {
  ASSERT_EQ(swaks("alice@example.org", "reply Thanks, **noted**.",
                  {"Subject: Re: Dinner plans", "Message-Id: <first.42@example.org>",
                   "References: <root.1@example.org>", "From: Alice <alice@example.org>"}),
            0);
  auto mails = sent(1);
  ASSERT_EQ(mails.size(), 1u) << daemon->log() << sink->log();
  const std::string data(mails[0].at("data").as_string());
  EXPECT_EQ(header(data, "Subject"), "Re: Dinner plans") << "no Re: Re:";
  EXPECT_EQ(header(data, "In-Reply-To"), "<first.42@example.org>");
  EXPECT_EQ(header(data, "References"), "<root.1@example.org> <first.42@example.org>");
  EXPECT_EQ(header(data, "Auto-Submitted"), "auto-replied");
  EXPECT_NE(header(data, "To").find("alice@example.org"), std::string::npos);
  EXPECT_NE(header(data, "From").find("andy@example.test"), std::string::npos);
  EXPECT_NE(header(data, "Content-Type").find("multipart/alternative"), std::string::npos);
  EXPECT_NE(data.find("<strong>noted</strong>"), std::string::npos) << "the HTML part";
  EXPECT_EQ(mails[0].at("mail_from").as_string(), "andy@example.test");

  // The mail is stored in the correspondent's own chat, in the email group.
  auto stored = daemon->json("GET", "/messages?chat=email:alice@example.org", 200).as_array();
  ASSERT_FALSE(stored.empty());
  const auto& inbound = stored.back().as_object();
  EXPECT_EQ(inbound.at("subject"), "Re: Dinner plans");
  EXPECT_EQ(inbound.at("metadata").at("message_id"), "first.42@example.org");
  auto group = daemon->json("GET", "/groups/email", 200);
  EXPECT_NE(json::serialize(group).find("email:alice@example.org"), std::string::npos);
}

TEST_F(EmailEndToEnd, AnAutoReplyFromTheOtherSideGetsNoAnswer) {
  ASSERT_EQ(swaks("alice@example.org", "reply this must not be sent",
                  {"Subject: Out of office", "Auto-Submitted: auto-replied"}),
            0);
  ASSERT_EQ(swaks("mallory@example.net", "reply neither this", {"Subject: Hi"}), 0);
  // Both are stored, filtered; nothing goes out.
  json::array stored;
  for (int i = 0; i < 100 && stored.size() < 2; ++i) {
    stored = daemon->json("GET", "/messages", 200).as_array();
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(stored.size(), 2u) << daemon->log();
  for (const auto& m : stored) EXPECT_EQ(m.at("status"), "filtered") << json::serialize(m);
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(sink->messages().empty()) << sink->log();
}

TEST_F(EmailEndToEnd, PostEmailQueuesAMailThatTheSinkReceives) {
  json::object body{{"to", "bob@example.org"},
                    {"subject", "Minutes"},
                    {"body", "# Minutes\n\n- one"},
                    {"attachments", json::array{json::object{{"filename", "m.txt"},
                                                             {"content_type", "text/plain"},
                                                             {"content_base64", "aGVsbG8="}}}}};
  auto queued = daemon->json("POST", "/email", 202, json::serialize(body)).as_object();
  const std::int64_t id = queued.at("id").as_int64();
  auto mails = sent(1);
  ASSERT_EQ(mails.size(), 1u) << daemon->log();
  const std::string data(mails[0].at("data").as_string());
  EXPECT_EQ(header(data, "Subject"), "Minutes");
  EXPECT_NE(header(data, "Content-Type").find("multipart/mixed"), std::string::npos);
  EXPECT_EQ(header(data, "Auto-Submitted"), "");
  json::value state;
  for (int i = 0; i < 100; ++i) {
    state = daemon->json("GET", "/email/" + std::to_string(id), 200);
    if (state.at("state") == "sent") break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(state.at("state"), "sent") << json::serialize(state);
  daemon->json("GET", "/email/999999", 404);
  daemon->json("POST", "/email", 422, R"({"to":"not an address","subject":"x","body":"y"})");
  daemon->json("POST", "/email", 422,
               "{\"to\":\"a@b.c\",\"subject\":\"x\\r\\nBcc: e@f.g\",\"body\":\"y\"}");
}

}  // namespace
}  // namespace sb::test

#include "channels/email/mail_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sb::email {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kSamples = fs::path(__FILE__).parent_path().parent_path() / "data" / "mail";

ParsedMail sample(const std::string& name) {
  std::ifstream in(kSamples / name, std::ios::binary);
  if (!in) throw std::runtime_error("missing sample " + name);
  std::stringstream content;
  content << in.rdbuf();
  return parse_mail(content.str());
}

AllowList allow(std::vector<std::string> entries) {
  auto list = AllowList::parse(entries);
  if (!list) throw std::runtime_error(list.error().message);
  return std::move(list).value();
}

ParsedMail from(std::string address) {
  ParsedMail mail;
  mail.from.address = std::move(address);
  return mail;
}

const std::vector<std::string> kOwn = {"assistant@example.org"};

TEST(AllowList, MatchesAddressesWithoutRegardToCase) {
  const AllowList list = allow({"Alice@Example.com", "bob@example.net"});
  EXPECT_TRUE(list.allows("alice@example.com"));
  EXPECT_TRUE(list.allows("ALICE@EXAMPLE.COM"));
  EXPECT_TRUE(list.allows(" <bob@example.net> "));
  EXPECT_FALSE(list.allows("carol@example.com"));
  EXPECT_FALSE(list.allows("alice@example.com.evil.org"));
  EXPECT_FALSE(list.allows("xalice@example.com"));
  EXPECT_FALSE(list.allows_everyone());
}

TEST(AllowList, ToleratesPlusTagsOfTheSender) {
  const AllowList list = allow({"alice@example.com", "bob+work@example.com"});
  EXPECT_TRUE(list.allows("alice+newsletter@example.com"));
  EXPECT_TRUE(list.allows("bob+work@example.com"));
  EXPECT_FALSE(list.allows("bob@example.com"));
  EXPECT_FALSE(list.allows("bob+home@example.com"));
}

TEST(AllowList, DomainEntriesMatchExactlyThatDomain) {
  const AllowList list = allow({"@Example.com"});
  EXPECT_TRUE(list.allows("anyone@example.com"));
  EXPECT_TRUE(list.allows("Someone+tag@EXAMPLE.COM"));
  EXPECT_FALSE(list.allows("anyone@sub.example.com"));
  EXPECT_FALSE(list.allows("anyone@notexample.com"));
  EXPECT_FALSE(list.allows("example.com"));
}

TEST(AllowList, EmptyListAllowsNobodyAndStarAllowsEveryone) {
  EXPECT_FALSE(allow({}).allows("alice@example.com"));
  const AllowList everyone = allow({"*"});
  EXPECT_TRUE(everyone.allows_everyone());
  EXPECT_TRUE(everyone.allows("anyone@anywhere.example"));
}

TEST(AllowList, InvalidEntriesAreErrorsNamingTheEntry) {
  for (const char* bad : {"", "alice", "@", "alice@", "@exa mple.org", "*@example.org",
                          "a b@example.org", "alice@example..org", "**", "@.example.org"}) {
    const auto list = AllowList::parse({"ok@example.org", bad});
    ASSERT_FALSE(list.ok()) << bad;
    EXPECT_NE(list.error().message.find("\"" + std::string(bad) + "\""), std::string::npos)
        << list.error().message;
  }
}

TEST(NoReplyReason, PersonalMailMayBeAnswered) {
  EXPECT_EQ(no_reply_reason(sample("gmail_alternative.eml"), kOwn), std::nullopt);
  EXPECT_EQ(no_reply_reason(sample("outlook_related.eml"), kOwn), std::nullopt);
  ParsedMail explicit_no = from("alice@example.com");
  explicit_no.auto_submitted = "No";
  EXPECT_EQ(no_reply_reason(explicit_no, kOwn), std::nullopt);
}

TEST(NoReplyReason, SamplesOfAutomaticMailAreRefused) {
  for (const char* name : {"bounce_dsn.eml", "auto_reply.eml", "mailing_list.eml"}) {
    EXPECT_NE(no_reply_reason(sample(name), kOwn), std::nullopt) << name;
  }
}

TEST(NoReplyReason, AutoSubmittedOtherThanNoIsRefused) {
  for (const char* value :
       {"auto-replied", "auto-generated", "auto-notified; owner-email=x", "AUTO-REPLIED"}) {
    ParsedMail mail = from("alice@example.com");
    mail.auto_submitted = value;
    const auto reason = no_reply_reason(mail, kOwn);
    ASSERT_TRUE(reason.has_value()) << value;
    EXPECT_NE(reason->find("Auto-Submitted"), std::string::npos);
  }
}

TEST(NoReplyReason, BulkListAndJunkPrecedenceAreRefused) {
  for (const char* value : {"bulk", "list", "junk", "Bulk"}) {
    ParsedMail mail = from("alice@example.com");
    mail.precedence = value;
    EXPECT_NE(no_reply_reason(mail, kOwn), std::nullopt) << value;
  }
  ParsedMail normal = from("alice@example.com");
  normal.precedence = "first-class";
  EXPECT_EQ(no_reply_reason(normal, kOwn), std::nullopt);
}

TEST(NoReplyReason, ListMailIsRefused) {
  ParsedMail with_id = from("alice@example.com");
  with_id.list_id = "<dev.lists.example.net>";
  EXPECT_NE(no_reply_reason(with_id, kOwn), std::nullopt);
  ParsedMail with_unsubscribe = from("alice@example.com");
  with_unsubscribe.has_list_headers = true;
  EXPECT_NE(no_reply_reason(with_unsubscribe, kOwn), std::nullopt);
}

TEST(NoReplyReason, RobotSendersAreRefused) {
  for (const char* address :
       {"MAILER-DAEMON@mx.example.org", "postmaster@example.com", "owner-dev@lists.example.net",
        "dev-request@lists.example.net", "noreply@service.example", "no-reply+x@service.example"}) {
    EXPECT_NE(no_reply_reason(from(address), kOwn), std::nullopt) << address;
  }
  ParsedMail bounce_path = from("alice@example.com");
  bounce_path.return_path = "mailer-daemon@example.com";
  EXPECT_NE(no_reply_reason(bounce_path, kOwn), std::nullopt);
}

TEST(NoReplyReason, NullReturnPathAndReportsAreRefused) {
  ParsedMail null_sender = from("alice@example.com");
  null_sender.return_path = "";
  EXPECT_NE(no_reply_reason(null_sender, kOwn), std::nullopt);
  ParsedMail report = from("alice@example.com");
  report.report_type = "disposition-notification";
  EXPECT_NE(no_reply_reason(report, kOwn), std::nullopt);
}

TEST(NoReplyReason, AutoreplyHeadersAndSuppressionAreHonoured) {
  ParsedMail autoreply = from("alice@example.com");
  autoreply.has_autoreply_headers = true;
  EXPECT_NE(no_reply_reason(autoreply, kOwn), std::nullopt);
  ParsedMail suppress_all = from("alice@example.com");
  suppress_all.auto_response_suppress = "All";
  EXPECT_NE(no_reply_reason(suppress_all, kOwn), std::nullopt);
  ParsedMail suppress_autoreply = from("alice@example.com");
  suppress_autoreply.auto_response_suppress = "OOF, AutoReply";
  EXPECT_NE(no_reply_reason(suppress_autoreply, kOwn), std::nullopt);
  ParsedMail suppress_reports = from("alice@example.com");
  suppress_reports.auto_response_suppress = "DR, RN, NRN, OOF";
  EXPECT_EQ(no_reply_reason(suppress_reports, kOwn), std::nullopt);
}

TEST(NoReplyReason, MailFromOurOwnAddressesIsRefused) {
  EXPECT_NE(no_reply_reason(from("Assistant+loop@EXAMPLE.org"), kOwn), std::nullopt);
  ParsedMail via_return_path = from("alice@example.com");
  via_return_path.return_path = "assistant@example.org";
  EXPECT_NE(no_reply_reason(via_return_path, kOwn), std::nullopt);
  EXPECT_EQ(no_reply_reason(from("assistant@example.com"), kOwn), std::nullopt);
}

TEST(NoReplyReason, MailWithoutSenderIsRefused) {
  EXPECT_NE(no_reply_reason(from(""), kOwn), std::nullopt);
  EXPECT_NE(no_reply_reason(from("not-an-address"), kOwn), std::nullopt);
}

class FakeClock {
 public:
  std::chrono::steady_clock::time_point now{std::chrono::hours(1000)};
  ReplyRateLimiter::Clock clock() {
    return [this] { return now; };
  }
};

TEST(ReplyRateLimiter, AllowsAtMostTheLimitPerWindow) {
  FakeClock time;
  ReplyRateLimiter limiter(3, 1h, 100, time.clock());
  EXPECT_TRUE(limiter.try_acquire("alice@example.com"));
  time.now += 10min;
  EXPECT_TRUE(limiter.try_acquire("alice@example.com"));
  EXPECT_TRUE(limiter.try_acquire("alice@example.com"));
  EXPECT_FALSE(limiter.try_acquire("alice@example.com"));
  EXPECT_TRUE(limiter.try_acquire("bob@example.com"));
  // The window slides: an hour after the first reply, one more is allowed.
  time.now += 50min;
  EXPECT_TRUE(limiter.try_acquire("alice@example.com"));
  EXPECT_FALSE(limiter.try_acquire("alice@example.com"));
  time.now += 10min;
  EXPECT_TRUE(limiter.try_acquire("alice@example.com"));
  EXPECT_TRUE(limiter.try_acquire("alice@example.com"));
  EXPECT_FALSE(limiter.try_acquire("alice@example.com"));
}

TEST(ReplyRateLimiter, CaseAndTagVariantsShareOneBudget) {
  FakeClock time;
  ReplyRateLimiter limiter(2, 1h, 100, time.clock());
  EXPECT_TRUE(limiter.try_acquire("alice@example.com"));
  EXPECT_TRUE(limiter.try_acquire("Alice+1@Example.com"));
  EXPECT_FALSE(limiter.try_acquire("alice+2@example.com"));
}

TEST(ReplyRateLimiter, MemoryIsBoundedByForgettingIdleSenders) {
  FakeClock time;
  ReplyRateLimiter limiter(1, 1h, 3, time.clock());
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(limiter.try_acquire("u" + std::to_string(i) + "@example.com"));
    time.now += 1min;
    EXPECT_LE(limiter.tracked_senders(), 3u);
  }
  // The most recent senders are still limited.
  EXPECT_FALSE(limiter.try_acquire("u9@example.com"));
  EXPECT_FALSE(limiter.try_acquire("u8@example.com"));
}

TEST(ReplyRateLimiter, ZeroLimitNeverAllowsAReply) {
  ReplyRateLimiter limiter(0, 1h);
  EXPECT_FALSE(limiter.try_acquire("alice@example.com"));
  EXPECT_EQ(limiter.tracked_senders(), 0u);
}

}  // namespace
}  // namespace sb::email

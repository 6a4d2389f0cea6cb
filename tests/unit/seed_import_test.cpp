#include "store/seed_import.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

// Hand-made samples in the seed's documented schema; see tests/data/telepathy/README.md.
const fs::path kSamples = fs::path(__FILE__).parent_path().parent_path() / "data" / "telepathy";

using test::TempDir;

std::vector<int> error_lines(const ImportReport& report) {
  std::vector<int> lines;
  for (const auto& [line, message] : report.errors) lines.push_back(line);
  return lines;
}

boost::json::object metadata_of(const Message& m) {
  return boost::json::parse(m.metadata_json).as_object();
}

class SeedImportTest : public ::testing::Test {
 protected:
  SeedImportTest() : store_(open_sqlite_store(dir_.path() / "switchboard.db")) {}

  fs::path write(const std::string& name, const std::string& content) {
    const fs::path file = dir_.path() / name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
  ImportReport import(const fs::path& file, SeedFormat format = SeedFormat::auto_detect,
                      SeedImportOptions options = {}) {
    auto result = import_seed_file(*store_, file, format, options);
    if (!result) throw std::runtime_error(result.error().message);
    return std::move(result).value();
  }
  std::vector<Message> all() { return store_->messages({.limit = 1000, .ascending = true}); }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(SeedImportTest, ImportsMessagesJsonlRecords) {
  const ImportReport report = import(kSamples / "messages.jsonl");
  EXPECT_EQ(report.detected, SeedFormat::messages);
  EXPECT_EQ(report.imported, 3);
  EXPECT_EQ(report.duplicates, 0);

  const auto messages = all();
  ASSERT_EQ(messages.size(), 3u);
  const Message& first = messages[0];
  EXPECT_EQ(first.source, "email-in");
  EXPECT_EQ(first.subject, "Hello");
  EXPECT_EQ(first.content, "First message");
  EXPECT_EQ(first.timestamp, "2026-05-01T09:00:00.000Z");  // naive: taken as UTC
  EXPECT_EQ(first.status, MessageStatus::read);
  EXPECT_EQ(first.chat, std::nullopt);
  EXPECT_EQ(first.external_id, "telepathy-messages:1");
  EXPECT_EQ(metadata_of(first),
            (boost::json::object{{"imported_from", "messages.jsonl"}, {"original_id", 1}}));

  const Message& second = messages[1];
  EXPECT_EQ(second.subject, std::nullopt);
  EXPECT_EQ(second.timestamp, "2026-05-02T08:30:00.123Z");
  EXPECT_EQ(second.status, MessageStatus::unread);
  EXPECT_EQ(second.external_id, "telepathy-messages:a7f3");
  EXPECT_EQ(metadata_of(second).at("original_id"), "a7f3");

  EXPECT_EQ(messages[2].content, "Grüße — ✓");
  EXPECT_EQ(messages[2].timestamp, "2026-05-07T08:15:00.000Z");
  EXPECT_EQ(store_->counts().unread, 2);
}

TEST_F(SeedImportTest, MalformedLineIsReportedWithItsNumberAndSkipped) {
  const ImportReport messages = import(kSamples / "messages.jsonl");
  EXPECT_EQ(error_lines(messages), (std::vector<int>{3, 5, 6, 7, 8}));
  ASSERT_EQ(messages.errors.size(), 5u);
  EXPECT_NE(messages.errors[0].second.find("not valid JSON"), std::string::npos);
  EXPECT_NE(messages.errors[1].second.find("'timestamp'"), std::string::npos);
  EXPECT_NE(messages.errors[1].second.find("yesterday"), std::string::npos);
  EXPECT_EQ(messages.errors[2].second, "not a JSON object");
  EXPECT_EQ(messages.errors[3].second, "'content' is missing");
  EXPECT_EQ(messages.errors[4].second, "'read' must be true or false");

  const ImportReport inbox = import(kSamples / "inbox.jsonl");
  EXPECT_EQ(error_lines(inbox), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(inbox.imported, 4);
}

TEST_F(SeedImportTest, ImportsInboxJsonlRecordsAsEmailChats) {
  const ImportReport report = import(kSamples / "inbox.jsonl");
  EXPECT_EQ(report.detected, SeedFormat::inbox);
  const auto messages = all();
  ASSERT_EQ(messages.size(), 4u);

  const Message& alice = messages[0];
  EXPECT_EQ(alice.source, "email");
  EXPECT_EQ(alice.chat, "email:alice@example.org");
  EXPECT_EQ(alice.sender, "Alice@Example.ORG");
  EXPECT_EQ(alice.sender_name, "Alice Example");
  EXPECT_EQ(alice.subject, "Question");
  EXPECT_EQ(alice.content, "Can you help?");
  EXPECT_EQ(alice.status, MessageStatus::read);
  EXPECT_EQ(alice.timestamp, "2026-05-10T08:00:00.000Z");
  EXPECT_EQ(alice.external_id, "telepathy-inbox:<abc123@example.org>");
  EXPECT_EQ(metadata_of(alice), (boost::json::object{{"imported_from", "inbox.jsonl"},
                                                     {"to", "muse@hydrascale.net"},
                                                     {"message_id", "<abc123@example.org>"}}));

  const Message& bob = messages[1];
  EXPECT_EQ(bob.chat, "email:bob@example.net");
  EXPECT_EQ(bob.sender, "bob@example.net");
  EXPECT_EQ(bob.sender_name, std::nullopt);
  EXPECT_EQ(bob.status, MessageStatus::unread);

  const Message& carol = messages[2];
  EXPECT_EQ(carol.chat, "email:carol@example.com");
  EXPECT_EQ(carol.sender_name, "Carol, C.");
  EXPECT_EQ(carol.timestamp, "2026-05-10T08:00:00.000Z");

  const Message& system = messages[3];
  EXPECT_EQ(system.chat, std::nullopt);
  EXPECT_EQ(system.sender, std::nullopt);
  EXPECT_EQ(system.sender_name, "Muse System");
}

TEST_F(SeedImportTest, InboxRecordWithoutMessageIdIsKeyedByTheHashOfItsLine) {
  const std::string line =
      R"({"timestamp": "2026-05-10T09:00:00", "from": "bob@example.net", "body": "Hi"})";
  const auto message = seed_record_to_message(line, SeedFormat::inbox);
  ASSERT_TRUE(message);
  // echo -n '<line>' | sha256sum
  EXPECT_EQ(message->external_id,
            "telepathy-inbox-sha256:"
            "7d53d8fb3300e9d705d381898cddce1a401d6958aeaee6c8689acf817f92f4ad");
  EXPECT_FALSE(
      metadata_of(Message{.metadata_json = message->metadata_json}).contains("message_id"));

  // The same record twice is one message; a different one is another.
  const fs::path file = write(
      "inbox.jsonl", line + "\n" + line + "\r\n" + R"({"from": "bob@example.net", "body": "Hi!"})");
  const ImportReport report = import(file);
  EXPECT_EQ(report.imported, 2);
  EXPECT_EQ(report.duplicates, 1);
}

TEST_F(SeedImportTest, ImportTwiceStoresNothingTwice) {
  const ImportReport first = import(kSamples / "inbox.jsonl");
  const ImportReport second = import(kSamples / "inbox.jsonl");
  EXPECT_EQ(second.imported, 0);
  EXPECT_EQ(second.duplicates, first.imported);
  EXPECT_EQ(store_->counts().total, first.imported);
}

TEST_F(SeedImportTest, FormatIsDetectedFromTheFirstRecord) {
  const fs::path file = write("data.jsonl",
                              "garbage\n"
                              "{\"unrelated\": true}\n"
                              "{\"from\": \"a@example.org\", \"body\": \"inbox\"}\n"
                              "{\"content\": \"looks like messages.jsonl, read as inbox\"}\n");
  const ImportReport report = import(file);
  EXPECT_EQ(report.detected, SeedFormat::inbox);
  EXPECT_EQ(report.imported, 1);
  EXPECT_EQ(error_lines(report), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(report.errors.back().second, "'body' is missing");
}

TEST_F(SeedImportTest, ForcedFormatOverridesDetection) {
  const fs::path file = write("data.jsonl", "{\"from\": \"x@example.org\", \"content\": \"c\"}\n");
  const ImportReport report = import(file, SeedFormat::inbox);
  EXPECT_EQ(report.detected, SeedFormat::inbox);
  EXPECT_EQ(report.imported, 0);
  EXPECT_EQ(error_lines(report), (std::vector<int>{1}));
}

TEST_F(SeedImportTest, AFileWithNoRecordOfEitherKindIsAnError) {
  const fs::path file = write("data.jsonl", "{\"a\": 1}\n[]\n");
  const auto result = import_seed_file(*store_, file);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find(file.string()), std::string::npos);
  EXPECT_NE(result.error().message.find("line 1"), std::string::npos);
}

TEST_F(SeedImportTest, AMissingFileIsAnErrorNamingIt) {
  const fs::path file = dir_.path() / "missing.jsonl";
  const auto result = import_seed_file(*store_, file);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find(file.string()), std::string::npos);
}

TEST_F(SeedImportTest, EmptyAndBlankFilesImportNothing) {
  const ImportReport report = import(write("empty.jsonl", "\n  \n\r\n"));
  EXPECT_EQ(report.imported, 0);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(report.detected, SeedFormat::auto_detect);
}

TEST_F(SeedImportTest, OverlongLinesAreReportedAndSkipped) {
  const std::string big(2 << 20, 'x');
  const fs::path file = write("messages.jsonl", "{\"id\": 1, \"content\": \"" + big + "\"}\n" +
                                                    "{\"id\": 2, \"content\": \"small\"}\n" +
                                                    "{\"id\": 3, \"content\": \"" + big + "\"}");
  const ImportReport report = import(file);
  EXPECT_EQ(report.imported, 1);
  EXPECT_EQ(error_lines(report), (std::vector<int>{1, 3}));
  EXPECT_EQ(all().at(0).content, "small");
}

TEST_F(SeedImportTest, CrlfBomAndAMissingFinalNewlineAreHandled) {
  const fs::path file = write("messages.jsonl",
                              "\xEF\xBB\xBF{\"id\": 1, \"content\": \"one\"}\r\n"
                              "\r\n"
                              "{\"id\": 2, \"content\": \"two\"}");
  const ImportReport report = import(file);
  EXPECT_EQ(report.imported, 2);
  EXPECT_TRUE(report.errors.empty());
  const auto messages = all();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1].content, "two");
  EXPECT_EQ(messages[0].source, "telepathy");  // no source in the record
}

TEST_F(SeedImportTest, BatchesCoverEveryRecordInFileOrder) {
  std::string content;
  for (int i = 1; i <= 23; ++i) {
    content += "{\"id\": " + std::to_string(i) + ", \"content\": \"m" + std::to_string(i) + "\"}\n";
    if (i == 10) content += "{\"id\": \"broken\"\n";
  }
  const ImportReport report =
      import(write("messages.jsonl", content), SeedFormat::auto_detect, {.batch_size = 5});
  EXPECT_EQ(report.imported, 23);
  EXPECT_EQ(error_lines(report), (std::vector<int>{11}));
  const auto messages = all();
  ASSERT_EQ(messages.size(), 23u);
  for (int i = 0; i < 23; ++i) EXPECT_EQ(messages[i].content, "m" + std::to_string(i + 1));
}

TEST_F(SeedImportTest, RecordsWithWrongTypesSayWhichField) {
  auto error = [](std::string_view line, SeedFormat format) {
    const auto m = seed_record_to_message(line, format);
    return m ? std::string("ok") : m.error().message;
  };
  EXPECT_EQ(error(R"({"id": 1.5, "content": "x"})", SeedFormat::messages),
            "'id' must be a string or an integer");
  EXPECT_EQ(error(R"({"id": 1, "content": 7})", SeedFormat::messages),
            "'content' must be a string");
  EXPECT_EQ(error(R"({"id": 1, "content": "x", "subject": []})", SeedFormat::messages),
            "'subject' must be a string");
  EXPECT_EQ(error(R"({"id": 1, "content": "x", "timestamp": 1715000000})", SeedFormat::messages),
            "'timestamp' must be a string");
  EXPECT_EQ(error(R"({"from": 3, "body": "x"})", SeedFormat::inbox), "'from' must be a string");
  EXPECT_EQ(error(R"({"body": "x", "message_id": 5})", SeedFormat::inbox),
            "'message_id' must be a string");
  EXPECT_EQ(error(R"({"body": "x"})", SeedFormat::inbox), "ok");
  EXPECT_EQ(error(R"({"body": "x"})", SeedFormat::auto_detect), "ok");
  EXPECT_NE(error(R"({"text": "x"})", SeedFormat::auto_detect).find("neither"), std::string::npos);
}

}  // namespace
}  // namespace sb

#include "channels/email/attachments.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace sb::email {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

void write(const fs::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

ParsedAttachment kept(std::string name, std::string type, std::string data) {
  ParsedAttachment a;
  a.filename = std::move(name);
  a.content_type = std::move(type);
  a.size = data.size();
  a.data = std::move(data);
  return a;
}

TEST(SafeFilename, KeepsOnlyTheLastPathComponent) {
  EXPECT_EQ(safe_filename("../../etc/passwd", "text/plain"), "passwd");
  EXPECT_EQ(safe_filename("C:\\Users\\eve\\evil.exe", ""), "evil.exe");
  EXPECT_EQ(safe_filename("/absolute/report.pdf", ""), "report.pdf");
}

TEST(SafeFilename, RemovesControlAndDirectionCharacters) {
  EXPECT_EQ(safe_filename("a\r\nb\t c\x7F.txt", ""), "ab c.txt");
  // U+202E (right-to-left override) would display "invoice\u202Efdp.exe" as "invoiceexe.pdf".
  EXPECT_EQ(safe_filename("invoice\xE2\x80\xAE"
                          "fdp.exe",
                          ""),
            "invoicefdp.exe");
  EXPECT_EQ(safe_filename(std::string("nul\0byte.txt", 12), ""), "nulbyte.txt");
}

TEST(SafeFilename, RemovesLeadingDotsAndTrailingDotsAndSpaces) {
  EXPECT_EQ(safe_filename(".bashrc", ""), "bashrc");
  EXPECT_EQ(safe_filename("..", ""), "attachment.bin");
  EXPECT_EQ(safe_filename(" . hidden.txt. . ", ""), "hidden.txt");
}

TEST(SafeFilename, ReplacesCharactersOtherSystemsReserve) {
  EXPECT_EQ(safe_filename("what?<why>:\"a|b\"*.txt", ""), "what__why___a_b__.txt");
}

TEST(SafeFilename, KeepsUnicodeAndReplacesInvalidBytes) {
  EXPECT_EQ(safe_filename("Contrat sign\xC3\xA9.pdf", ""), "Contrat sign\xC3\xA9.pdf");
  EXPECT_EQ(safe_filename("bad\xFF.txt", ""), "bad\xEF\xBF\xBD.txt");
}

TEST(SafeFilename, EmptyNamesGetAnExtensionFromTheType) {
  EXPECT_EQ(safe_filename("", "application/pdf"), "attachment.pdf");
  EXPECT_EQ(safe_filename("", "message/rfc822"), "attachment.eml");
  EXPECT_EQ(safe_filename("", "application/x-unknown"), "attachment.bin");
  EXPECT_EQ(safe_filename("///", "IMAGE/PNG"), "attachment.png");
}

TEST(SafeFilename, LongNamesAreCutButKeepTheirExtension) {
  const std::string name = safe_filename(std::string(300, 'a') + ".pdf", "");
  EXPECT_EQ(name.size(), 100u);
  EXPECT_TRUE(name.ends_with("a.pdf"));
  std::string accents;
  for (int i = 0; i < 100; ++i) accents += "\xC3\xA9";
  const std::string cut = safe_filename(accents + ".txt", "");
  EXPECT_LE(cut.size(), 100u);
  EXPECT_TRUE(cut.ends_with("\xC3\xA9.txt"));
}

TEST(SaveAttachments, WritesIntoTheAttachmentsFolderWithUniqueNames) {
  test::TempDir group;
  fs::create_directories(group.path() / "attachments");
  write(group.path() / "attachments" / "report.pdf", "older");
  const std::string binary("\x00\x01\xFF", 3);
  auto saved = save_attachments(group.path(), {kept("report.pdf", "application/pdf", binary),
                                               kept("../report.pdf", "application/pdf", "two"),
                                               kept("", "image/png", "png")});
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  ASSERT_EQ(saved->size(), 3u);
  EXPECT_EQ((*saved)[0].path, "attachments/report-2.pdf");
  EXPECT_EQ((*saved)[1].path, "attachments/report-3.pdf");
  EXPECT_EQ((*saved)[2].path, "attachments/attachment.png");
  EXPECT_EQ((*saved)[0].name, "report.pdf");
  EXPECT_EQ((*saved)[0].size, 3u);
  EXPECT_EQ(read(group.path() / "attachments" / "report.pdf"), "older");
  EXPECT_EQ(read(group.path() / "attachments" / "report-2.pdf"), binary);
  EXPECT_EQ(read(group.path() / "attachments" / "report-3.pdf"), "two");
}

TEST(SaveAttachments, SkippedAttachmentsAreListedButNotWritten) {
  test::TempDir group;
  ParsedAttachment big;
  big.filename = "film.mp4";
  big.content_type = "video/mp4";
  big.size = 50 * 1024 * 1024;
  big.skipped = "larger than the 10 MiB limit";
  auto saved = save_attachments(group.path(), {big});
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  ASSERT_EQ(saved->size(), 1u);
  EXPECT_TRUE((*saved)[0].path.empty());
  EXPECT_EQ((*saved)[0].skipped, "larger than the 10 MiB limit");
  EXPECT_FALSE(fs::exists(group.path() / "attachments" / "film.mp4"));
}

TEST(SaveAttachments, DoesNotFollowASymlinkedAttachmentsFolder) {
  test::TempDir group;
  test::TempDir elsewhere;
  fs::create_directory_symlink(elsewhere.path(), group.path() / "attachments");
  auto saved = save_attachments(group.path(), {kept("x.txt", "text/plain", "x")});
  ASSERT_FALSE(saved.ok());
  EXPECT_NE(saved.error().message.find("attachments"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(elsewhere.path()));
}

TEST(SaveAttachments, DoesNotWriteThroughAPlantedSymlinkFile) {
  test::TempDir group;
  test::TempDir elsewhere;
  write(elsewhere.path() / "target", "precious");
  fs::create_directories(group.path() / "attachments");
  fs::create_symlink(elsewhere.path() / "target", group.path() / "attachments" / "notes.txt");
  auto saved = save_attachments(group.path(), {kept("notes.txt", "text/plain", "new")});
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  EXPECT_EQ((*saved)[0].path, "attachments/notes-2.txt");
  EXPECT_EQ(read(elsewhere.path() / "target"), "precious");
}

TEST(SaveAttachments, MissingGroupFolderIsAnErrorNamingIt) {
  test::TempDir root;
  auto saved = save_attachments(root.path() / "missing", {kept("a.txt", "text/plain", "a")});
  ASSERT_FALSE(saved.ok());
  EXPECT_NE(saved.error().message.find("missing"), std::string::npos);
}

TEST(DescribeAttachments, ListsNameTypeSizeAndPathOrReason) {
  const std::vector<SavedAttachment> attachments = {
      {"report.pdf", "application/pdf", 123'456, "attachments/report.pdf", ""},
      {"film.mp4", "video/mp4", 52 * 1024 * 1024, "", "larger than the 10 MiB limit"},
      {"a.txt", "text/plain", 12, "attachments/a.txt", ""},
  };
  EXPECT_EQ(describe_attachments(attachments),
            "Attachments:\n"
            "- report.pdf (application/pdf, 120.6 KiB): attachments/report.pdf\n"
            "- film.mp4 (video/mp4, 52 MiB): not saved, larger than the 10 MiB limit\n"
            "- a.txt (text/plain, 12 bytes): attachments/a.txt");
  EXPECT_EQ(describe_attachments({}), "");
}

}  // namespace
}  // namespace sb::email

#include "core/groups.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "support/orchestrator_fixture.h"

namespace sb::core {
namespace {

using Failure = GroupRegistry::Failure;

class GroupsTest : public ::testing::Test, protected test::OrchestratorFixture {
 protected:
  GroupsTest() : groups(reader, writer, GroupPaths{dir.path() / "data"}, "Andy") { groups.load(); }

  std::variant<GroupRecord, Failure> create(std::string folder, std::vector<std::string> chats,
                                            bool main = false) {
    GroupChange change;
    change.folder = std::move(folder);
    change.chats = std::move(chats);
    change.is_main = main;
    return run(groups.create(std::move(change)));
  }

  GroupRegistry groups;
};

TEST(GroupFolderNames, AcceptSimpleNamesAndRejectPathTricks) {
  EXPECT_TRUE(validate_folder_name("family").ok());
  EXPECT_TRUE(validate_folder_name("work-team_2").ok());
  for (std::string_view bad :
       {"", "..", ".", "../etc", "a/b", "Family", "-x", "_x", "a b", "global", "errors", "x\n"}) {
    EXPECT_FALSE(validate_folder_name(bad).ok()) << bad;
  }
  EXPECT_FALSE(validate_folder_name(std::string(65, 'a')).ok());
}

TEST(GroupSettingsJson, ParsesEveryKeyAndNamesTheBadOne) {
  auto settings = parse_group_settings(
      R"({"timeout":"90s","network":true,"model":"m","daily_token_budget":5,)"
      R"("mounts":[{"hostPath":"~/x","containerPath":"x","readonly":false}]})");
  ASSERT_TRUE(settings.ok()) << settings.error().message;
  EXPECT_EQ(settings->timeout, std::chrono::milliseconds(90'000));
  EXPECT_EQ(settings->network, true);
  EXPECT_EQ(settings->daily_token_budget, 5);
  ASSERT_EQ(settings->mounts.size(), 1u);
  EXPECT_TRUE(settings->mounts[0].read_write);
  EXPECT_EQ(settings->mounts[0].host_path, "~/x");
  EXPECT_FALSE(parse_group_settings(R"({"timeout":90})").ok());
  EXPECT_FALSE(parse_group_settings(R"({"netwrok":true})").ok());
  EXPECT_FALSE(parse_group_settings(R"({"mounts":[{"containerPath":"x"}]})").ok());
  EXPECT_FALSE(parse_group_settings("[]").ok());
}

TEST_F(GroupsTest, CreatingAGroupMakesItsFoldersAndMemoryAndFindsItByChat) {
  auto created = create("family", {"http:alice", "http:bob"});
  ASSERT_TRUE(std::holds_alternative<GroupRecord>(created));
  const auto root = dir.path() / "data";
  EXPECT_TRUE(std::filesystem::is_regular_file(root / "groups/family/CLAUDE.md"));
  EXPECT_TRUE(std::filesystem::is_directory(root / "groups/family/conversations"));
  // Run logs are the host's: they live in data/logs/<folder>, where no agent writes.
  EXPECT_FALSE(std::filesystem::exists(root / "groups/family/logs"));
  EXPECT_TRUE(std::filesystem::is_directory(root / "groups/global"));
  EXPECT_TRUE(std::filesystem::is_directory(root / "ipc/family"));
  EXPECT_TRUE(std::filesystem::is_directory(root / "sessions/family"));
  ASSERT_NE(groups.for_chat("http:bob"), nullptr);
  EXPECT_EQ(groups.for_chat("http:bob")->folder, "family");
  EXPECT_EQ(groups.triggers(*groups.find("family")).front(), "@Andy");
  // And it is in the store for the next start.
  GroupRegistry reloaded(reader, writer, GroupPaths{root}, "Andy");
  reloaded.load();
  EXPECT_NE(reloaded.find("family"), nullptr);
}

TEST_F(GroupsTest, KeepsAnExistingMemoryFile) {
  const auto group_dir = dir.path() / "data/groups/family";
  std::filesystem::create_directories(group_dir);
  std::ofstream(group_dir / "CLAUDE.md") << "remember the milk\n";
  ASSERT_TRUE(std::holds_alternative<GroupRecord>(create("family", {"http:alice"})));
  std::ifstream in(group_dir / "CLAUDE.md");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "remember the milk");
}

TEST_F(GroupsTest, DoesNotCreateTheMemoryFileThroughADanglingSymlink) {
  // An agent left CLAUDE.md as a symlink to a file that does not exist yet, outside its
  // folder; the host must not create that file at start-up.
  const auto group_dir = dir.path() / "data/groups/family";
  const auto outside = dir.path() / "outside";
  std::filesystem::create_directories(group_dir);
  std::filesystem::create_directories(outside);
  std::filesystem::create_symlink(outside / "planted", group_dir / "CLAUDE.md");
  ASSERT_TRUE(std::holds_alternative<GroupRecord>(create("family", {"http:alice"})));
  GroupRegistry reloaded(reader, writer, GroupPaths{dir.path() / "data"}, "Andy");
  reloaded.load();
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(outside / "planted")));
  EXPECT_TRUE(std::filesystem::is_symlink(group_dir / "CLAUDE.md"));
}

TEST_F(GroupsTest, NewChatsStartAfterTheNewestMessageSoHistoryIsNotReplayed) {
  NewMessage old;
  old.source = "test";
  old.chat = "http:alice";
  old.content = "before the group existed";
  const Seq id = reader.add_message(old).message.id;
  ASSERT_TRUE(std::holds_alternative<GroupRecord>(create("family", {"http:alice"})));
  EXPECT_EQ(reader.cursor(delivered_cursor_key("family", "http:alice")), std::to_string(id));
}

TEST_F(GroupsTest, DuplicateFoldersTakenChatsAndASecondMainAreConflicts) {
  ASSERT_TRUE(std::holds_alternative<GroupRecord>(create("family", {"http:alice"}, true)));
  auto same_folder = create("family", {"http:carol"});
  ASSERT_TRUE(std::holds_alternative<Failure>(same_folder));
  EXPECT_TRUE(std::get<Failure>(same_folder).conflict);
  auto taken_chat = create("work", {"http:alice"});
  ASSERT_TRUE(std::holds_alternative<Failure>(taken_chat));
  EXPECT_TRUE(std::get<Failure>(taken_chat).conflict);
  EXPECT_NE(std::get<Failure>(taken_chat).message.find("family"), std::string::npos);
  auto second_main = create("work", {"http:carol"}, true);
  ASSERT_TRUE(std::holds_alternative<Failure>(second_main));
  EXPECT_NE(std::get<Failure>(second_main).message.find("main"), std::string::npos);
}

TEST_F(GroupsTest, BadInputIsRefusedWithoutAConflictFlag) {
  auto bad_folder = create("../escape", {"http:alice"});
  ASSERT_TRUE(std::holds_alternative<Failure>(bad_folder));
  EXPECT_FALSE(std::get<Failure>(bad_folder).conflict);
  auto bad_chat = create("ok", {"no-colon"});
  ASSERT_TRUE(std::holds_alternative<Failure>(bad_chat));
  EXPECT_EQ(groups.all().size(), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "data/groups/ok"));
}

TEST_F(GroupsTest, AGroupMayStartWithoutChatsAndGainThemLater) {
  // The email channel's group: a chat is bound per correspondent as mail arrives.
  ASSERT_TRUE(std::holds_alternative<GroupRecord>(create("email", {})));
  GroupChange change;
  change.chats = std::vector<std::string>{"email:alice@example.org"};
  ASSERT_TRUE(std::holds_alternative<GroupRecord>(run(groups.update("email", change))));
  EXPECT_EQ(groups.for_chat("email:alice@example.org")->folder, "email");
}

TEST_F(GroupsTest, UpdateChangesTriggerAndChatsAndRemoveForgetsTheGroupButKeepsItsFolder) {
  ASSERT_TRUE(std::holds_alternative<GroupRecord>(create("family", {"http:alice"})));
  GroupChange change;
  change.trigger = std::optional<std::string>("@Bot");
  change.chats = std::vector<std::string>{"http:alice", "http:bob"};
  change.requires_trigger = false;
  auto updated = run(groups.update("family", change));
  ASSERT_TRUE(std::holds_alternative<GroupRecord>(updated));
  EXPECT_EQ(groups.triggers(*groups.find("family")).front(), "@Bot");
  EXPECT_FALSE(groups.find("family")->requires_trigger);
  EXPECT_NE(groups.for_chat("http:bob"), nullptr);

  GroupChange unknown;
  auto missing = run(groups.update("nope", unknown));
  ASSERT_TRUE(std::holds_alternative<Failure>(missing));
  EXPECT_TRUE(std::get<Failure>(missing).not_found);

  EXPECT_FALSE(run(groups.remove("family")).has_value());
  EXPECT_EQ(groups.find("family"), nullptr);
  EXPECT_EQ(groups.for_chat("http:alice"), nullptr);
  EXPECT_FALSE(reader.group("family").has_value());
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "data/groups/family/CLAUDE.md"));
  EXPECT_TRUE(run(groups.remove("family")).has_value());
}

}  // namespace
}  // namespace sb::core

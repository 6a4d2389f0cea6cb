#include "sandbox/mount_allowlist.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace sb::sandbox {
namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// Points $HOME at a test directory for the life of the object.
class ScopedHome {
 public:
  explicit ScopedHome(const fs::path& home) {
    if (const char* old = std::getenv("HOME")) saved_ = old;
    ::setenv("HOME", home.c_str(), 1);
  }
  ~ScopedHome() {
    if (saved_) {
      ::setenv("HOME", saved_->c_str(), 1);
    } else {
      ::unsetenv("HOME");
    }
  }
  ScopedHome(const ScopedHome&) = delete;
  ScopedHome& operator=(const ScopedHome&) = delete;

 private:
  std::optional<std::string> saved_;
};

// Sends spdlog's default logger into a string for the life of the object.
class CapturedLog {
 public:
  CapturedLog() : saved_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out_);
    sink->set_pattern("%l %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(saved_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> saved_;
};

// A home directory with projects in it, a data directory and an allowlist file under
// ~/.config, the layout of a real installation:
//   <tmp>/home/projects/app/main.c    <tmp>/home/projects2/x    <tmp>/home/docs/report.txt
//   <tmp>/home/.config/switchboard/mount-allowlist.json        <tmp>/data/groups/main
//   <tmp>/outside/loot
class MountAllowlistTest : public ::testing::Test {
 protected:
  MountAllowlistTest()
      : root_(fs::canonical(tmp_.path())),
        home_(root_ / "home"),
        scoped_home_(home_),
        allowlist_file_(home_ / ".config/switchboard/mount-allowlist.json"),
        data_dir_(root_ / "data") {
    fs::create_directories(home_ / "projects/app");
    write_file(home_ / "projects/app/main.c", "int main() {}\n");
    fs::create_directories(home_ / "projects2/x");
    write_file(home_ / "docs/report.txt", "report\n");
    fs::create_directories(data_dir_ / "groups/main");
    fs::create_directories(root_ / "outside/loot");
  }

  // Writes `json` as the allowlist file and loads it; the test fails on an error.
  std::optional<MountAllowlist> load(const std::string& json) {
    write_file(allowlist_file_, json);
    auto loaded = load_mount_allowlist(allowlist_file_);
    if (!loaded) throw std::runtime_error(loaded.error().message);
    return std::move(loaded).value();
  }

  // The error loading `json` gives, or "ok".
  std::string load_error(const std::string& json) {
    write_file(allowlist_file_, json);
    const auto loaded = load_mount_allowlist(allowlist_file_);
    return loaded ? "ok" : loaded.error().message;
  }

  // The usual allowlist: ~/projects read-write, ~/docs read-only.
  std::optional<MountAllowlist> standard(bool non_main_read_only = true) {
    return load(R"({"allowedRoots": [
        {"path": "~/projects", "allowReadWrite": true, "description": "code"},
        {"path": "~/docs", "allowReadWrite": false}],
      "nonMainReadOnly": )" +
                std::string(non_main_read_only ? "true" : "false") + "}");
  }

  ProtectedPaths protected_paths() const { return {allowlist_file_, data_dir_}; }

  MountDecision check(const std::optional<MountAllowlist>& allowlist, std::string host,
                      std::string container = "", bool read_write = false, bool is_main = true) {
    return check_mount(allowlist, MountRequest{std::move(host), std::move(container), read_write},
                       is_main, protected_paths());
  }

  test::TempDir tmp_;
  fs::path root_;
  fs::path home_;
  ScopedHome scoped_home_;
  fs::path allowlist_file_;
  fs::path data_dir_;
};

// --- loading ---

TEST_F(MountAllowlistTest, MissingFileMeansNoAllowlist) {
  const auto loaded = load_mount_allowlist(root_ / "nowhere/mount-allowlist.json");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_FALSE(loaded->has_value());
}

TEST_F(MountAllowlistTest, LoadsRootsWithTildeExpandedAndSymlinksResolved) {
  fs::create_directory_symlink(home_ / "projects", home_ / "code");
  const auto allowlist = load(R"({"allowedRoots": [
      {"path": "~/code", "allowReadWrite": true, "description": "via a link"},
      {"path": ")" + (home_ / "docs").string() +
                              R"("}]})");
  ASSERT_TRUE(allowlist);
  ASSERT_EQ(allowlist->roots.size(), 2u);
  EXPECT_EQ(allowlist->roots[0].path, "~/code");
  EXPECT_EQ(allowlist->roots[0].resolved, home_ / "projects");
  EXPECT_TRUE(allowlist->roots[0].allow_read_write);
  EXPECT_EQ(allowlist->roots[0].description, "via a link");
  EXPECT_EQ(allowlist->roots[1].resolved, home_ / "docs");
  EXPECT_FALSE(allowlist->roots[1].allow_read_write);
  EXPECT_TRUE(allowlist->non_main_read_only);
  EXPECT_EQ(allowlist->file, allowlist_file_);
}

TEST_F(MountAllowlistTest, SkipsRootsThatDoNotExistWithAWarning) {
  CapturedLog log;
  const auto allowlist = load(R"({"allowedRoots": [{"path": "~/gone"}, {"path": "~/projects"}]})");
  ASSERT_TRUE(allowlist);
  ASSERT_EQ(allowlist->roots.size(), 1u);
  EXPECT_EQ(allowlist->roots[0].path, "~/projects");
  EXPECT_NE(log.text().find("warning"), std::string::npos) << log.text();
  EXPECT_NE(log.text().find("~/gone"), std::string::npos) << log.text();
}

TEST_F(MountAllowlistTest, AlwaysKeepsTheDefaultPatternsAndAddsTheFilesOwn) {
  const auto allowlist =
      load(R"({"allowedRoots": [], "blockedPatterns": ["secret-stuff", ".ssh"]})");
  ASSERT_TRUE(allowlist);
  std::vector<std::string> expected(std::begin(kDefaultBlockedPatterns),
                                    std::end(kDefaultBlockedPatterns));
  expected.push_back("secret-stuff");
  EXPECT_EQ(allowlist->blocked_patterns, expected);
  EXPECT_EQ(load(R"({"allowedRoots": []})")->blocked_patterns.size(), expected.size() - 1);
}

TEST_F(MountAllowlistTest, RejectsMalformedJsonNamingTheFileAndPlace) {
  const std::string error = load_error("{\n  \"allowedRoots\": [\n    {\"path\": ~/x}\n  ]\n}");
  EXPECT_NE(error.find(allowlist_file_.string()), std::string::npos) << error;
  EXPECT_NE(error.find("not valid JSON at line 3"), std::string::npos) << error;
}

TEST_F(MountAllowlistTest, RejectsTrailingGarbageAndEmptyFiles) {
  EXPECT_NE(load_error(R"({"allowedRoots": []} x)").find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error("").find("not valid JSON"), std::string::npos);
}

TEST_F(MountAllowlistTest, RejectsWrongTypesNamingTheFileAndKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([])", "top level must be a JSON object"},
      {R"({})", "\"allowedRoots\" is missing"},
      {R"({"allowedRoots": {}})", "\"allowedRoots\" must be an array"},
      {R"({"allowedRoots": ["~/projects"]})", "\"allowedRoots[0]\" must be an object"},
      {R"({"allowedRoots": [{"allowReadWrite": true}]})", "\"allowedRoots[0]\" has no \"path\""},
      {R"({"allowedRoots": [{"path": ""}]})", "\"allowedRoots[0].path\" must be a non-empty"},
      {R"({"allowedRoots": [{"path": 7}]})", "\"allowedRoots[0].path\" must be a non-empty"},
      {R"({"allowedRoots": [{"path": "~/projects"}, {"path": "~/docs", "allowReadWrite": "yes"}]})",
       "\"allowedRoots[1].allowReadWrite\" must be true or false"},
      {R"({"allowedRoots": [{"path": "~/docs", "description": 1}]})",
       "\"allowedRoots[0].description\" must be a string"},
      {R"({"allowedRoots": [{"path": "~/docs", "readOnly": true}]})", "unknown key \"readOnly\""},
      {R"({"allowedRoots": [], "blockedPatterns": "x"})", "\"blockedPatterns\" must be an array"},
      {R"({"allowedRoots": [], "blockedPatterns": [1]})",
       "\"blockedPatterns[0]\" must be a non-empty string"},
      {R"({"allowedRoots": [], "blockedPatterns": ["a", ""]})",
       "\"blockedPatterns[1]\" must be a non-empty string"},
      {R"({"allowedRoots": [], "nonMainReadOnly": "true"})",
       "\"nonMainReadOnly\" must be true or false"},
      {R"({"allowedRoots": [], "blockedPattern": ["x"]})", "unknown key \"blockedPattern\""},
      {R"({"allowedRoots": [{"path": "projects"}]})", "is not absolute"},
      {R"({"allowedRoots": [{"path": "~alice/projects"}]})", "only \"~\" and \"~/...\""},
  };
  for (const auto& [json, expected] : cases) {
    const std::string error = load_error(json);
    EXPECT_NE(error.find(expected), std::string::npos) << json << "\n  gave: " << error;
    EXPECT_NE(error.find(allowlist_file_.string()), std::string::npos) << error;
  }
}

TEST_F(MountAllowlistTest, RejectsAFileLargerThanTheLimit) {
  const std::string error =
      load_error(R"({"allowedRoots": []})" + std::string(kMaxMountAllowlistBytes, ' '));
  EXPECT_NE(error.find("more than the limit"), std::string::npos) << error;
}

TEST_F(MountAllowlistTest, RejectsADirectoryInPlaceOfTheFile) {
  fs::create_directories(root_ / "dir.json");
  const auto loaded = load_mount_allowlist(root_ / "dir.json");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("not a regular file"), std::string::npos);
}

TEST_F(MountAllowlistTest, TheTemplateIsAValidAllowlist) {
  fs::create_directories(home_ / "Documents/work");
  const auto allowlist = load(mount_allowlist_template());
  ASSERT_TRUE(allowlist);
  EXPECT_EQ(allowlist->roots.size(), 2u);
  EXPECT_TRUE(allowlist->non_main_read_only);
}

// --- roots ---

TEST_F(MountAllowlistTest, RefusesEverythingWithoutAnAllowlist) {
  const auto decision = check(std::nullopt, "~/projects/app");
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("no mount allowlist at " + allowlist_file_.string()),
            std::string::npos)
      << decision.reason;
}

TEST_F(MountAllowlistTest, AllowsAPathInsideARoot) {
  const auto decision = check(standard(), "~/projects/app", "", true);
  ASSERT_TRUE(decision.allowed) << decision.reason;
  EXPECT_EQ(decision.host_path, home_ / "projects/app");
  EXPECT_EQ(decision.container_path, "/workspace/extra/app");
  EXPECT_FALSE(decision.read_only);
  EXPECT_EQ(decision.reason, "allowed under root \"~/projects\" (code)");
}

TEST_F(MountAllowlistTest, AllowsTheRootItselfAndAFileInARoot) {
  const auto allowlist = standard();
  EXPECT_TRUE(check(allowlist, (home_ / "projects").string()).allowed);
  const auto file = check(allowlist, "~/projects/app/main.c");
  ASSERT_TRUE(file.allowed) << file.reason;
  EXPECT_EQ(file.container_path, "/workspace/extra/main.c");
}

TEST_F(MountAllowlistTest, DoesNotTreatASiblingWithTheSamePrefixAsInsideTheRoot) {
  const auto decision = check(standard(), "~/projects2/x");
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("is not inside an allowed root"), std::string::npos)
      << decision.reason;
}

TEST_F(MountAllowlistTest, RefusesASymlinkInsideARootThatPointsOutside) {
  fs::create_directory_symlink(root_ / "outside/loot", home_ / "projects/escape");
  const auto decision = check(standard(), "~/projects/escape");
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find((root_ / "outside/loot").string()), std::string::npos)
      << decision.reason;
  EXPECT_NE(decision.reason.find("is not inside an allowed root"), std::string::npos);
}

TEST_F(MountAllowlistTest, RefusesAPathThatClimbsOutOfARootWithDotDot) {
  EXPECT_FALSE(check(standard(), "~/projects/../projects2/x", "x").allowed);
}

TEST_F(MountAllowlistTest, AllowsASymlinkOutsideARootThatPointsInsideAndMountsItsTarget) {
  fs::create_directory_symlink(home_ / "projects/app", root_ / "outside/app-link");
  const auto decision = check(standard(), (root_ / "outside/app-link").string());
  ASSERT_TRUE(decision.allowed) << decision.reason;
  EXPECT_EQ(decision.host_path, home_ / "projects/app");
  EXPECT_EQ(decision.container_path, "/workspace/extra/app-link");
}

TEST_F(MountAllowlistTest, LetsTheDeepestRootDecideReadWrite) {
  const auto allowlist = load(R"({"allowedRoots": [
      {"path": "~/projects", "allowReadWrite": true},
      {"path": "~/projects/app", "allowReadWrite": false}]})");
  const auto decision = check(allowlist, "~/projects/app", "", true);
  ASSERT_TRUE(decision.allowed);
  EXPECT_TRUE(decision.read_only);
  EXPECT_NE(decision.reason.find("\"~/projects/app\""), std::string::npos) << decision.reason;
  EXPECT_FALSE(check(allowlist, "~/projects", "", true).read_only);
}

TEST_F(MountAllowlistTest, RefusesAHostPathThatDoesNotExist) {
  const auto decision = check(standard(), "~/projects/nope");
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("cannot be resolved"), std::string::npos) << decision.reason;
  EXPECT_NE(decision.reason.find("projects/nope"), std::string::npos) << decision.reason;
}

TEST_F(MountAllowlistTest, RefusesARelativeHostPath) {
  const auto decision = check(standard(), "projects/app", "app");
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("is not absolute"), std::string::npos) << decision.reason;
}

TEST_F(MountAllowlistTest, RefusesDevicesAndOtherSpecialFiles) {
  const auto allowlist = load(R"({"allowedRoots": [{"path": "/dev"}]})");
  const auto decision = check(allowlist, "/dev/null");
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("neither a directory nor a regular file"), std::string::npos)
      << decision.reason;
}

// --- blocked patterns ---

TEST_F(MountAllowlistTest, BlocksEveryDefaultPatternAsANameAndInsideAName) {
  const auto allowlist = standard();
  for (const std::string_view pattern : kDefaultBlockedPatterns) {
    for (const std::string& name : {std::string(pattern), "my" + std::string(pattern) + "-dir"}) {
      fs::create_directories(home_ / "projects" / name);
      const auto decision = check(allowlist, "~/projects/" + name, "x");
      EXPECT_FALSE(decision.allowed) << name;
      EXPECT_NE(decision.reason.find("blocked pattern \"" + std::string(pattern) + "\""),
                std::string::npos)
          << decision.reason;
    }
  }
}

TEST_F(MountAllowlistTest, BlocksSecretsNamedLikeTheTask) {
  const auto allowlist = standard();
  write_file(home_ / "projects/app/.env.local", "KEY=1\n");
  write_file(home_ / "projects/aws-credentials.json", "{}\n");
  EXPECT_FALSE(check(allowlist, "~/projects/app/.env.local", "env").allowed);
  EXPECT_FALSE(check(allowlist, "~/projects/aws-credentials.json", "c.json").allowed);
}

TEST_F(MountAllowlistTest, BlocksAPathBelowABlockedDirectory) {
  fs::create_directories(home_ / "projects/.ssh/keys");
  const auto decision = check(standard(), "~/projects/.ssh/keys");
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("\".ssh\""), std::string::npos) << decision.reason;
}

TEST_F(MountAllowlistTest, BlocksBySymlinkTargetNotByTheLinksName) {
  fs::create_directories(home_ / "projects/.aws");
  fs::create_directory_symlink(home_ / "projects/.aws", home_ / "projects/harmless");
  EXPECT_FALSE(check(standard(), "~/projects/harmless").allowed);
}

TEST_F(MountAllowlistTest, BlocksTheFilesOwnPatterns) {
  fs::create_directories(home_ / "projects/my-secret-stuff");
  const auto allowlist =
      load(R"({"allowedRoots": [{"path": "~/projects"}], "blockedPatterns": ["secret-stuff"]})");
  const auto decision = check(allowlist, "~/projects/my-secret-stuff");
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("\"secret-stuff\""), std::string::npos) << decision.reason;
  EXPECT_TRUE(check(allowlist, "~/projects/app").allowed);
}

// --- protected paths ---

TEST_F(MountAllowlistTest, RefusesTheDataDirectoryAndAnythingInsideOrAroundIt) {
  const auto allowlist = load(R"({"allowedRoots": [{"path": ")" + root_.string() + R"("}]})");
  for (const fs::path& host : {data_dir_, data_dir_ / "groups/main"}) {
    const auto decision = check(allowlist, host.string(), "x");
    EXPECT_FALSE(decision.allowed) << host;
    EXPECT_NE(decision.reason.find("would expose \"" + data_dir_.string() + "\""),
              std::string::npos)
        << decision.reason;
  }
  const ProtectedPaths data_dir_only{{}, data_dir_};
  const auto around = check_mount(allowlist, {root_.string(), "x", false}, true, data_dir_only);
  EXPECT_FALSE(around.allowed);
  EXPECT_NE(around.reason.find("would expose \"" + data_dir_.string() + "\""), std::string::npos)
      << around.reason;
  EXPECT_TRUE(check(allowlist, (root_ / "outside").string()).allowed);
}

TEST_F(MountAllowlistTest, RefusesTheAllowlistFileAndTheDirectoriesHoldingIt) {
  const auto allowlist = load(R"({"allowedRoots": [{"path": "~", "allowReadWrite": true}]})");
  for (const std::string host :
       {"~/.config/switchboard/mount-allowlist.json", "~/.config/switchboard", "~/.config", "~"}) {
    const auto decision = check(allowlist, host, "x");
    EXPECT_FALSE(decision.allowed) << host;
    EXPECT_NE(decision.reason.find("would expose \"" + allowlist_file_.string() + "\""),
              std::string::npos)
        << decision.reason;
  }
  EXPECT_TRUE(check(allowlist, "~/projects").allowed);
}

TEST_F(MountAllowlistTest, RefusesTheDataDirectoryReachedThroughASymlinkEitherWay) {
  const auto allowlist = load(R"({"allowedRoots": [{"path": ")" + root_.string() + R"("}]})");
  fs::create_directory_symlink(data_dir_, root_ / "outside/data-link");
  EXPECT_FALSE(check(allowlist, (root_ / "outside/data-link").string(), "x").allowed);

  // The daemon was configured with a link to its data directory; the real one stays hidden.
  const ProtectedPaths via_link{allowlist_file_, root_ / "outside/data-link"};
  EXPECT_FALSE(check_mount(allowlist, {data_dir_.string(), "x", false}, true, via_link).allowed);
}

TEST_F(MountAllowlistTest, ProtectsADataDirectoryThatDoesNotExistYet) {
  const auto allowlist = load(R"({"allowedRoots": [{"path": ")" + root_.string() + R"("}]})");
  const ProtectedPaths future{allowlist_file_, root_ / "outside/loot/new-data"};
  EXPECT_FALSE(
      check_mount(allowlist, {(root_ / "outside").string(), "", false}, true, future).allowed);
}

// --- container paths ---

TEST_F(MountAllowlistTest, DefaultsTheContainerPathToTheHostPathsLastName) {
  const auto allowlist = standard();
  EXPECT_EQ(check(allowlist, "~/projects/app").container_path, "/workspace/extra/app");
  EXPECT_EQ(check(allowlist, "~/projects/app/").container_path, "/workspace/extra/app");
  EXPECT_EQ(check(allowlist, "~/projects/app/.").container_path, "/workspace/extra/app");
}

TEST_F(MountAllowlistTest, AcceptsANestedRelativeContainerPath) {
  const auto decision = check(standard(), "~/projects/app", "code/my_app-1.0");
  ASSERT_TRUE(decision.allowed) << decision.reason;
  EXPECT_EQ(decision.container_path, "/workspace/extra/code/my_app-1.0");
}

TEST_F(MountAllowlistTest, RefusesBadContainerPaths) {
  const auto allowlist = standard();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/etc", "is absolute"},
      {"..", "has a \"..\" component"},
      {"a/../../b", "has a \"..\" component"},
      {"./a", "has a \".\" component"},
      {"a//b", "empty component"},
      {"a/", "empty component"},
      {"my app", "may only contain"},
      {"app\n", "may only contain"},
      {"app$(id)", "may only contain"},
      {std::string(256, 'a'), "longer than 255 bytes"},
  };
  for (const auto& [container, expected] : cases) {
    const auto decision = check(allowlist, "~/projects/app", container);
    EXPECT_FALSE(decision.allowed) << container;
    EXPECT_NE(decision.reason.find(expected), std::string::npos)
        << container << " gave: " << decision.reason;
  }
  EXPECT_TRUE(check(allowlist, "~/projects/app", std::string(255, 'a')).allowed);
}

TEST_F(MountAllowlistTest, RefusesADefaultedContainerPathItCannotUseAndSaysWhatToDo) {
  fs::create_directories(home_ / "projects/my app");
  const auto decision = check(standard(), "~/projects/my app");
  EXPECT_FALSE(decision.allowed);
  EXPECT_NE(decision.reason.find("set container_path explicitly"), std::string::npos)
      << decision.reason;
  EXPECT_TRUE(check(standard(), "~/projects/my app", "my-app").allowed);
}

// --- read-write ---

TEST_F(MountAllowlistTest, GivesMainReadWriteWhenAskedAndTheRootAllowsIt) {
  const auto decision = check(standard(), "~/projects/app", "", true, /*is_main=*/true);
  ASSERT_TRUE(decision.allowed);
  EXPECT_FALSE(decision.read_only);
}

TEST_F(MountAllowlistTest, MountsReadOnlyWhenReadWriteIsNotAsked) {
  const auto decision = check(standard(), "~/projects/app", "", false, true);
  ASSERT_TRUE(decision.allowed);
  EXPECT_TRUE(decision.read_only);
  EXPECT_EQ(decision.reason.find("read-only"), std::string::npos) << decision.reason;
}

TEST_F(MountAllowlistTest, DowngradesNonMainGroupsToReadOnlyWhenTheAllowlistSaysSo) {
  const auto decision = check(standard(), "~/projects/app", "", true, /*is_main=*/false);
  ASSERT_TRUE(decision.allowed) << decision.reason;
  EXPECT_TRUE(decision.read_only);
  EXPECT_NE(decision.reason.find("nonMainReadOnly"), std::string::npos) << decision.reason;

  const auto relaxed = check(standard(false), "~/projects/app", "", true, false);
  ASSERT_TRUE(relaxed.allowed);
  EXPECT_FALSE(relaxed.read_only);
}

TEST_F(MountAllowlistTest, DowngradesToReadOnlyUnderARootWithoutReadWrite) {
  const auto decision = check(standard(false), "~/docs", "", true, /*is_main=*/true);
  ASSERT_TRUE(decision.allowed) << decision.reason;
  EXPECT_TRUE(decision.read_only);
  EXPECT_NE(decision.reason.find("the root does not allow read-write"), std::string::npos)
      << decision.reason;
}

TEST_F(MountAllowlistTest, NonMainReadOnlyDefaultsToTrue) {
  const auto allowlist =
      load(R"({"allowedRoots": [{"path": "~/projects", "allowReadWrite": true}]})");
  EXPECT_TRUE(check(allowlist, "~/projects/app", "", true, false).read_only);
}

// --- validate_mounts ---

TEST_F(MountAllowlistTest, ValidateMountsKeepsTheAllowedOnesInOrderAndLogsTheRest) {
  CapturedLog log;
  const std::vector<MountRequest> requests = {
      {"~/projects/app", "", true},
      {"~/projects2/x", "", false},
      {"~/docs", "documents", true},
      {"~/projects", "app", false},  // the mount point is taken
  };
  const auto mounts =
      validate_mounts(standard(), requests, /*is_main=*/true, protected_paths(), "family-chat");
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].host_path, home_ / "projects/app");
  EXPECT_EQ(mounts[0].container_path, "/workspace/extra/app");
  EXPECT_FALSE(mounts[0].read_only);
  EXPECT_EQ(mounts[1].host_path, home_ / "docs");
  EXPECT_EQ(mounts[1].container_path, "/workspace/extra/documents");
  EXPECT_TRUE(mounts[1].read_only);

  const std::string text = log.text();
  EXPECT_NE(
      text.find("warning group family-chat: extra mount \"~/projects2/x\" refused: host path"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("extra mount \"~/projects\" refused: /workspace/extra/app is already"),
            std::string::npos)
      << text;
}

TEST_F(MountAllowlistTest, ValidateMountsWithoutAnAllowlistReturnsNothing) {
  CapturedLog log;
  const std::vector<MountRequest> requests = {{"~/projects/app", "", false}};
  EXPECT_TRUE(validate_mounts(std::nullopt, requests, true, protected_paths(), "main").empty());
  EXPECT_NE(log.text().find("no mount allowlist"), std::string::npos) << log.text();
}

}  // namespace
}  // namespace sb::sandbox

#include "sandbox/sandbox_command.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "sandbox/process.h"
#include "support/temp_dir.h"

namespace sb::sandbox {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;

SandboxSpec basic_spec() {
  SandboxSpec spec;
  spec.argv = {"/usr/bin/env", "-0"};
  spec.mounts = {{"/srv/groups/family", "/workspace/group", false},
                 {"/srv/global", "/workspace/global", true}};
  spec.env = {{"HOME", "/workspace/group"}, {"SWITCHBOARD_IPC_DIR", "/workspace/ipc"}};
  spec.workdir = "/workspace/group";
  spec.name = "switchboard-family-1";
  spec.image = "switchboard-agent:latest";
  spec.instance_label = "test-instance";
  return spec;
}

bool contains(const Args& argv, const Args& sequence) {
  return std::search(argv.begin(), argv.end(), sequence.begin(), sequence.end()) != argv.end();
}

std::ptrdiff_t index_of(const Args& argv, const Args& sequence) {
  const auto it = std::search(argv.begin(), argv.end(), sequence.begin(), sequence.end());
  return it == argv.end() ? -1 : it - argv.begin();
}

// The part of a bwrap command line before "--" (the sandbox set-up).
Args setup_of(const Args& argv) {
  return Args(argv.begin(), std::find(argv.begin(), argv.end(), "--"));
}

Args command_of(const Args& argv) {
  auto dashes = std::find(argv.begin(), argv.end(), "--");
  return dashes == argv.end() ? Args{} : Args(dashes + 1, argv.end());
}

TEST(Runtime, RoundTripsItsNames) {
  for (const auto runtime : {Runtime::bwrap, Runtime::docker, Runtime::podman, Runtime::none}) {
    const auto parsed = parse_runtime(to_string(runtime));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed.value(), runtime);
  }
}

TEST(Runtime, RejectsAnUnknownNameListingTheValidOnes) {
  const auto parsed = parse_runtime("lxc");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().message.find("lxc"), std::string::npos);
  EXPECT_NE(parsed.error().message.find("bwrap, docker, podman or none"), std::string::npos);
}

TEST(BwrapArgv, UnsharesEverythingIncludingTheNetworkByDefault) {
  const auto argv = sandbox_argv(Runtime::bwrap, basic_spec());
  ASSERT_FALSE(argv.empty());
  EXPECT_EQ(argv[0], "bwrap");
  const auto setup = setup_of(argv);
  for (const char* flag : {"--unshare-all", "--die-with-parent", "--new-session", "--clearenv"}) {
    EXPECT_TRUE(contains(setup, {flag})) << flag;
  }
  EXPECT_FALSE(contains(setup, {"--share-net"}));
  EXPECT_FALSE(contains(setup, {"--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"}));
}

TEST(BwrapArgv, SharesTheNetworkAndResolverFilesOnlyWhenAsked) {
  auto spec = basic_spec();
  spec.network = true;
  const auto setup = setup_of(sandbox_argv(Runtime::bwrap, spec));
  EXPECT_TRUE(contains(setup, {"--share-net"}));
  if (fs::exists("/etc/resolv.conf")) {
    EXPECT_TRUE(contains(setup, {"--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"}));
  }
  if (fs::exists("/etc/ssl")) {
    EXPECT_TRUE(contains(setup, {"--ro-bind", "/etc/ssl", "/etc/ssl"}));
  }
}

TEST(BwrapArgv, SetsExactlyTheSpecEnvironment) {
  ::setenv("SB_TEST_SECRET", "hunter2", 1);
  const auto setup = setup_of(sandbox_argv(Runtime::bwrap, basic_spec()));
  ::unsetenv("SB_TEST_SECRET");
  EXPECT_TRUE(contains(setup, {"--setenv", "HOME", "/workspace/group"}));
  EXPECT_TRUE(contains(setup, {"--setenv", "SWITCHBOARD_IPC_DIR", "/workspace/ipc"}));
  EXPECT_EQ(std::count(setup.begin(), setup.end(), "--setenv"), 2);
  EXPECT_EQ(std::count(setup.begin(), setup.end(), "hunter2"), 0);
  EXPECT_LT(index_of(setup, {"--clearenv"}), index_of(setup, {"--setenv"}));
}

TEST(BwrapArgv, MountsReadOnlyAndWritableAsSpecified) {
  const auto setup = setup_of(sandbox_argv(Runtime::bwrap, basic_spec()));
  EXPECT_TRUE(contains(setup, {"--bind", "/srv/groups/family", "/workspace/group"}));
  EXPECT_TRUE(contains(setup, {"--ro-bind", "/srv/global", "/workspace/global"}));
  EXPECT_FALSE(contains(setup, {"--bind", "/srv/global", "/workspace/global"}));
}

TEST(BwrapArgv, MountsParentsBeforeTheMountsInsideThem) {
  SandboxSpec spec = basic_spec();
  spec.mounts = {{"/srv/group/secret-ro", "/workspace/group/docs", true},
                 {"/srv/group", "/workspace/group/", false}};
  const auto setup = setup_of(sandbox_argv(Runtime::bwrap, spec));
  const auto parent = index_of(setup, {"--bind", "/srv/group", "/workspace/group"});
  const auto child =
      index_of(setup, {"--ro-bind", "/srv/group/secret-ro", "/workspace/group/docs"});
  ASSERT_GE(parent, 0);
  ASSERT_GE(child, 0);
  EXPECT_LT(parent, child);
  // After the tmpfs /tmp, or a mount below /tmp would be hidden by it.
  EXPECT_LT(index_of(setup, {"--tmpfs", "/tmp"}), parent);
}

TEST(BwrapArgv, BuildsAMinimalReadOnlySystemLikeTheHosts) {
  const auto setup = setup_of(sandbox_argv(Runtime::bwrap, basic_spec()));
  EXPECT_TRUE(contains(setup, {"--ro-bind", "/usr", "/usr"}));
  for (const char* dir : {"/bin", "/lib", "/lib64", "/sbin"}) {
    if (fs::is_symlink(dir)) {
      EXPECT_TRUE(contains(setup, {"--symlink", fs::read_symlink(dir).string(), dir})) << dir;
    } else if (fs::exists(dir)) {
      EXPECT_TRUE(contains(setup, {"--ro-bind", dir, dir})) << dir;
    }
  }
  EXPECT_TRUE(contains(setup, {"--proc", "/proc"}));
  EXPECT_TRUE(contains(setup, {"--dev", "/dev"}));
  EXPECT_TRUE(contains(setup, {"--tmpfs", "/tmp"}));
}

TEST(BwrapArgv, ShowsNoHostPathButTheSystemTheMountsAndTheProgram) {
  sb::test::TempDir dir;
  const fs::path program = dir.path() / "agent";
  std::ofstream(program) << "#!/bin/sh\n";
  fs::permissions(program, fs::perms::owner_all);
  auto spec = basic_spec();
  spec.argv = {program.string(), "--flag"};
  const auto argv = sandbox_argv(Runtime::bwrap, spec);
  std::set<std::string> allowed{"/usr",
                                "/bin",
                                "/lib",
                                "/lib64",
                                "/sbin",
                                "/",
                                "/proc",
                                "/proc/sys",
                                "/dev",
                                "/dev/shm",
                                "/tmp",
                                "/srv/groups/family",
                                "/workspace/group",
                                "/srv/global",
                                "/workspace/global",
                                "/workspace/ipc",
                                program.string()};
  for (const auto& arg : setup_of(argv)) {
    if (!arg.empty() && arg.front() == '/') {
      EXPECT_TRUE(allowed.count(arg)) << arg;
    }
  }
  EXPECT_TRUE(contains(setup_of(argv), {"--ro-bind", program.string(), program.string()}));
  EXPECT_EQ(command_of(argv), (Args{program.string(), "--flag"}));
}

TEST(BwrapArgv, LeavesNoWayToTheHostsSysctlsNestedNamespacesOrAWritableRoot) {
  auto spec = basic_spec();
  const auto setup = setup_of(sandbox_argv(Runtime::bwrap, spec));
  EXPECT_TRUE(contains(setup, {"--unshare-user"}));
  EXPECT_TRUE(contains(setup, {"--disable-userns"}));
  // /proc/sys read-only after the fresh /proc; the root read-only after every mount point.
  const auto proc = index_of(setup, {"--proc", "/proc"});
  const auto sys = index_of(setup, {"--ro-bind", "/proc/sys", "/proc/sys"});
  ASSERT_GE(proc, 0);
  EXPECT_GT(sys, proc);
  const auto root = index_of(setup, {"--remount-ro", "/"});
  EXPECT_EQ(root, static_cast<std::ptrdiff_t>(setup.size()) - 4)
      << "after the mounts, before --chdir";
  EXPECT_FALSE(contains(setup, {"--seccomp"}));
  spec.seccomp = true;
  EXPECT_TRUE(contains(setup_of(sandbox_argv(Runtime::bwrap, spec)),
                       {"--seccomp", std::to_string(kSeccompFd)}));
}

TEST(BwrapArgv, SizesTmpAndShmByTheMemoryLimit) {
  auto spec = basic_spec();
  EXPECT_TRUE(contains(setup_of(sandbox_argv(Runtime::bwrap, spec)), {"--tmpfs", "/tmp"}));
  EXPECT_FALSE(contains(setup_of(sandbox_argv(Runtime::bwrap, spec)), {"--size"}));
  spec.limits.memory = 1 << 28;
  const auto setup = setup_of(sandbox_argv(Runtime::bwrap, spec));
  EXPECT_TRUE(contains(setup, {"--size", "268435456", "--tmpfs", "/tmp"}));
  EXPECT_TRUE(contains(setup, {"--size", "268435456", "--tmpfs", "/dev/shm"}));
}

TEST(LaunchCommand, StagesEveryHostSourceAndDropsToTheAgentUserWhenRunAsIsSet) {
  sb::test::TempDir dir;
  const fs::path program = dir.path() / "agent";
  std::ofstream(program) << "#!/bin/sh\n";
  fs::permissions(program, fs::perms::owner_all);
  auto spec = basic_spec();
  spec.argv = {program.string()};
  spec.run_as = Identity{65534, 65534};
  spec.limits.processes = 64;
  const auto launch = launch_command(Runtime::bwrap, spec);
  ASSERT_EQ(launch.setup.staged.size(), 3u);  // two mounts and the program
  EXPECT_EQ(launch.setup.staged[0], "/srv/groups/family");
  EXPECT_EQ(launch.setup.staged[1], "/srv/global");
  EXPECT_EQ(launch.setup.staged[2], program);
  const auto setup = setup_of(launch.argv);
  EXPECT_TRUE(contains(setup, {"--bind", staged_path(0), "/workspace/group"}));
  EXPECT_TRUE(contains(setup, {"--ro-bind", staged_path(1), "/workspace/global"}));
  EXPECT_TRUE(contains(setup, {"--ro-bind", staged_path(2), program.string()}));
  EXPECT_FALSE(contains(setup, {"/srv/groups/family"}));
  ASSERT_TRUE(launch.setup.run_as);
  EXPECT_EQ(launch.setup.run_as->uid, 65534u);
  EXPECT_TRUE(launch.args_on_fd);
  // Without run_as nothing is staged and the daemon's user runs the sandbox.
  spec.run_as.reset();
  const auto plain = launch_command(Runtime::bwrap, spec);
  EXPECT_TRUE(plain.setup.staged.empty());
  EXPECT_FALSE(plain.setup.run_as);
  EXPECT_TRUE(contains(setup_of(plain.argv), {"--bind", "/srv/groups/family", "/workspace/group"}));
}

TEST(ResourceLimits, MapEachLimitToItsRlimitAndAlwaysForbidCoreFiles) {
  SandboxLimits limits;
  auto rlimits = resource_limits(limits);
  ASSERT_EQ(rlimits.size(), 1u);
  EXPECT_EQ(rlimits[0].resource, RLIMIT_CORE);
  EXPECT_EQ(rlimits[0].hard, 0u);
  limits = {.processes = 64,
            .memory = 1 << 28,
            .cpu_time = std::chrono::seconds(60),
            .file_size = 1 << 24,
            .open_files = 256};
  rlimits = resource_limits(limits);
  auto find = [&](int resource) {
    for (const auto& limit : rlimits) {
      if (limit.resource == resource) return limit;
    }
    ADD_FAILURE() << "no rlimit " << resource;
    return ResourceLimit{};
  };
  EXPECT_EQ(find(RLIMIT_NPROC).soft, 64u);
  EXPECT_EQ(find(RLIMIT_DATA).hard, 1u << 28);
  EXPECT_EQ(find(RLIMIT_CPU).soft, 60u);
  EXPECT_EQ(find(RLIMIT_CPU).hard, 65u) << "SIGXCPU first, SIGKILL 5 s later";
  EXPECT_EQ(find(RLIMIT_FSIZE).soft, 1u << 24);
  EXPECT_EQ(find(RLIMIT_NOFILE).soft, 256u);
}

TEST(ContainerArgv, RunsAsTheAgentUserWithTheLimits) {
  auto spec = basic_spec();
  spec.run_as = Identity{65534, 65534};
  spec.limits = {.processes = 64, .memory = 1 << 28, .file_size = 1 << 24, .open_files = 256};
  const auto argv = sandbox_argv(Runtime::docker, spec);
  EXPECT_TRUE(contains(argv, {"--user", "65534:65534"}));
  EXPECT_TRUE(contains(argv, {"--pids-limit", "64"}));
  EXPECT_TRUE(contains(argv, {"--memory", "268435456"}));
  EXPECT_TRUE(contains(argv, {"--ulimit", "fsize=16777216"}));
  EXPECT_TRUE(contains(argv, {"--ulimit", "nofile=256"}));
}

TEST(BwrapArgv, ResolvesTheProgramOnPathWithoutBindingWhatIsInUsr) {
  auto spec = basic_spec();
  spec.argv = {"sh", "-c", "true"};
  const auto argv = sandbox_argv(Runtime::bwrap, spec);
  const auto command = command_of(argv);
  ASSERT_EQ(command.size(), 3u);
  EXPECT_TRUE(fs::path(command[0]).is_absolute()) << command[0];
  EXPECT_EQ(fs::path(command[0]).filename(), "sh");
  const auto setup = setup_of(argv);
  EXPECT_EQ(std::count(setup.begin(), setup.end(), command[0]), 0);
}

TEST(BwrapArgv, EntersTheWorkdirAndEndsWithTheCommand) {
  const auto argv = sandbox_argv(Runtime::bwrap, basic_spec());
  EXPECT_TRUE(contains(setup_of(argv), {"--chdir", "/workspace/group"}));
  EXPECT_EQ(command_of(argv), (Args{"/usr/bin/env", "-0"}));
}

TEST(ContainerArgv, RunsTheImageIsolatedWithLabelMountsEnvAndWorkdir) {
  const auto argv = sandbox_argv(Runtime::docker, basic_spec());
  const std::string user = std::to_string(::getuid()) + ":" + std::to_string(::getgid());
  const Args expected{"docker",
                      "run",
                      "--rm",
                      "-i",
                      "--name",
                      "switchboard-family-1",
                      "--label",
                      "switchboard.instance=test-instance",
                      "--network",
                      "none",
                      "--read-only",
                      "--tmpfs",
                      "/tmp",
                      "--cap-drop",
                      "ALL",
                      "--security-opt",
                      "no-new-privileges",
                      "--user",
                      user,
                      "-v",
                      "/srv/groups/family:/workspace/group",
                      "-v",
                      "/srv/global:/workspace/global:ro",
                      "-e",
                      "HOME=/workspace/group",
                      "-e",
                      "SWITCHBOARD_IPC_DIR=/workspace/ipc",
                      "-w",
                      "/workspace/group",
                      "switchboard-agent:latest",
                      "/usr/bin/env",
                      "-0"};
  EXPECT_EQ(argv, expected);
}

TEST(ContainerArgv, PodmanTakesTheSameArgumentsAndNetworkCanBeOn) {
  auto spec = basic_spec();
  spec.network = true;
  const auto docker = sandbox_argv(Runtime::docker, spec);
  const auto podman = sandbox_argv(Runtime::podman, spec);
  EXPECT_EQ(podman[0], "podman");
  EXPECT_EQ(Args(podman.begin() + 1, podman.end()), Args(docker.begin() + 1, docker.end()));
  EXPECT_FALSE(contains(podman, {"--network", "none"}));
}

TEST(ContainerArgv, ListsAndRemovesThisInstancesContainers) {
  EXPECT_EQ(container_list_argv(Runtime::podman, "prod"),
            (Args{"podman", "ps", "-aq", "--filter", "label=switchboard.instance=prod"}));
  EXPECT_EQ(container_remove_argv(Runtime::docker, "c1"), (Args{"docker", "rm", "-f", "c1"}));
  EXPECT_TRUE(container_list_argv(Runtime::bwrap, "prod").empty());
  EXPECT_TRUE(container_remove_argv(Runtime::none, "c1").empty());
}

TEST(NoSandbox, RunsTheCommandUnchanged) {
  EXPECT_EQ(sandbox_argv(Runtime::none, basic_spec()), (Args{"/usr/bin/env", "-0"}));
}

TEST(NoSandbox, TranslatesSandboxPathsInEnvAndWorkdirToHostPaths) {
  auto spec = basic_spec();
  spec.env.emplace_back("LANG", "C.UTF-8");
  spec.env.emplace_back("NOTES", "/workspace/group/notes/today.md");
  const auto launch = launch_command(Runtime::none, spec);
  EXPECT_EQ(launch.argv, spec.argv);
  EXPECT_EQ(launch.cwd, fs::path("/srv/groups/family"));
  const EnvList expected{{"HOME", "/srv/groups/family"},
                         {"SWITCHBOARD_IPC_DIR", "/workspace/ipc"},  // not mounted
                         {"LANG", "C.UTF-8"},
                         {"NOTES", "/srv/groups/family/notes/today.md"}};
  EXPECT_EQ(launch.env, expected);
}

TEST(LaunchCommand, GivesBwrapAnEmptyEnvironmentAndContainersTheHosts) {
  ::setenv("SB_TEST_HOST_VAR", "present", 1);
  const auto bwrap = launch_command(Runtime::bwrap, basic_spec());
  const auto docker = launch_command(Runtime::docker, basic_spec());
  ::unsetenv("SB_TEST_HOST_VAR");
  EXPECT_TRUE(bwrap.env.empty());
  EXPECT_TRUE(bwrap.cwd.empty());
  EXPECT_NE(std::find(docker.env.begin(), docker.env.end(),
                      std::pair<std::string, std::string>{"SB_TEST_HOST_VAR", "present"}),
            docker.env.end());
}

TEST(HostPathFor, PicksTheDeepestMountAndMatchesWholeComponents) {
  const std::vector<Mount> mounts{{"/a", "/workspace", false}, {"/b", "/workspace/group", false}};
  EXPECT_EQ(host_path_for(mounts, "/workspace/group/x/y"), fs::path("/b/x/y"));
  EXPECT_EQ(host_path_for(mounts, "/workspace/group"), fs::path("/b"));
  EXPECT_EQ(host_path_for(mounts, "/workspace/groupies"), fs::path("/a/groupies"));
  EXPECT_EQ(host_path_for(mounts, "/etc/passwd"), std::nullopt);
  EXPECT_EQ(host_path_for(mounts, "relative/path"), std::nullopt);
}

TEST(RedactEnvValues, HidesValuesButKeepsNames) {
  const auto bwrap = redact_env_values(Runtime::bwrap, sandbox_argv(Runtime::bwrap, basic_spec()));
  EXPECT_TRUE(contains(bwrap, {"--setenv", "HOME", "…"}));
  EXPECT_FALSE(contains(bwrap, {"--setenv", "HOME", "/workspace/group"}));
  EXPECT_TRUE(contains(bwrap, {"--chdir", "/workspace/group"}));
  const auto docker =
      redact_env_values(Runtime::docker, sandbox_argv(Runtime::docker, basic_spec()));
  EXPECT_TRUE(contains(docker, {"-e", "HOME=…"}));
  EXPECT_FALSE(contains(docker, {"-e", "HOME=/workspace/group"}));
}

TEST(FindExecutable, SearchesTheGivenPathForAnExecutableFile) {
  sb::test::TempDir dir;
  fs::create_directories(dir.path() / "a");
  fs::create_directories(dir.path() / "b");
  std::ofstream(dir.path() / "a" / "tool") << "not executable";
  std::ofstream(dir.path() / "b" / "tool") << "#!/bin/sh\n";
  fs::permissions(dir.path() / "b" / "tool", fs::perms::owner_all);
  const std::string path = (dir.path() / "a").string() + "::" + (dir.path() / "b").string();
  EXPECT_EQ(find_executable("tool", path), dir.path() / "b" / "tool");
  EXPECT_EQ(find_executable("missing", path), std::nullopt);
  EXPECT_EQ(find_executable("./relative/tool", path), fs::path("./relative/tool"));
}

}  // namespace
}  // namespace sb::sandbox

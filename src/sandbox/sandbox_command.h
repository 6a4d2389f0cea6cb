#pragma once
// The command line that runs an agent inside a sandbox: bubblewrap (the default), docker,
// podman, or none (the agent runs directly on the host, for development and trusted agents).
// Pure functions of their arguments and the host's PATH and root directory layout, except
// detect_runtime (a trial run of bwrap). Safe to call from any thread.
//
// What the agent sees under bwrap: a read-only /usr (and /bin, /lib, /lib64, /sbin as on the
// host), a fresh /proc with /proc/sys read-only, a minimal /dev, an empty tmpfs /tmp, the
// spec's mounts, and the agent program itself when it lives outside /usr, on a read-only
// root. No other host file,
// no host environment variable, no network unless `network` is set (then also
// /etc/resolv.conf, /etc/hosts and /etc/ssl, read-only), its own PID/IPC/UTS/cgroup/user
// namespaces (no further user namespaces inside: --disable-userns) and its own session (no
// terminal to inject into). With run_as the sandbox's processes are that host user, never
// root; the sandbox's /proc/1/cmdline is "bwrap --args 3", not the host paths.
//
// Environment values appear on the sandbox tool's command line (bwrap --setenv, docker -e),
// which other users of the host can read in /proc: the environment must never carry secrets
// (the model API key stays with the host's model proxy). redact_env_values() gives the
// command line for logs.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "sandbox/process.h"

namespace sb::sandbox {

enum class Runtime { bwrap, docker, podman, none };

// "bwrap", "docker", "podman" or "none".
std::string_view to_string(Runtime runtime);

// The inverse of to_string (exact, lower case); the error lists the valid names.
Result<Runtime> parse_runtime(std::string_view text);

// The first usable runtime: bwrap if it is on PATH and a trial sandbox starts, else podman,
// else docker if found on PATH (they are not tried: starting a container can take seconds).
// nullopt if none is found; `none` is never chosen automatically. Blocks for the trial run
// (a few milliseconds): call at start-up, not on the event loop.
// With `run_as`, the trial sandbox runs as that user (as agents will).
std::optional<Runtime> detect_runtime(const std::optional<Identity>& run_as = std::nullopt);

struct Mount {
  std::filesystem::path host;  // must exist; the caller validates it against the allowlist
  std::string sandbox_path;    // absolute
  bool read_only = true;
};

using EnvList = std::vector<std::pair<std::string, std::string>>;

// Resource limits of every process in a sandbox; 0 means no limit. bwrap and none: set with
// setrlimit on the sandbox's first process and inherited by all it starts (per process,
// except `processes`, which counts every process of the agent's host user).
// docker/podman: --pids-limit, --memory and --ulimit.
struct SandboxLimits {
  std::uint64_t processes = 0;       // RLIMIT_NPROC
  std::uint64_t memory = 0;          // RLIMIT_DATA, bytes (heap and private mappings)
  std::chrono::seconds cpu_time{0};  // RLIMIT_CPU: SIGXCPU at the limit, SIGKILL 5 s later
  std::uint64_t file_size = 0;       // RLIMIT_FSIZE, bytes (larger writes fail: EFBIG)
  std::uint64_t open_files = 0;      // RLIMIT_NOFILE
};

struct SandboxSpec {
  std::vector<std::string> argv;  // the agent command; argv[0] a path or a name on PATH
  std::vector<Mount> mounts;
  bool network = false;
  EnvList env;                 // exactly the agent's environment
  std::string workdir;         // sandbox path; empty: the runtime's default
  std::string name;            // container name (docker/podman), unique per run
  std::string image;           // container image (docker/podman)
  std::string instance_label;  // value of the switchboard.instance label (docker/podman)
  // The host user the sandbox runs as; nullopt: the daemon's own user. Set when the daemon
  // runs as root, so that no process of an agent is ever the host's root.
  std::optional<Identity> run_as;
  SandboxLimits limits;
  // bwrap: apply the seccomp filter read from descriptor kSeccompFd (sandbox/seccomp_filter.h).
  bool seccomp = false;
};

// Descriptors a bwrap sandbox process gets: its NUL-separated arguments (bwrap --args), so
// that the sandbox's /proc/1/cmdline shows no host path, and the seccomp program.
inline constexpr int kArgsFd = 3;
inline constexpr int kSeccompFd = 4;

// The argv that runs spec.argv in the sandbox (argv[0] is the runtime tool, e.g. "bwrap").
// bwrap: mounts are applied parents first (fewer path components first, otherwise in spec
// order) so a read-only mount inside a writable one stays read-only. If spec.argv[0] is not
// absolute it is resolved on the host's PATH; when it lives outside /usr it is bound
// read-only at the same path. An unresolvable argv[0] is passed on as is (the sandbox then
// fails to exec it and says so on stderr).
// docker/podman: runs spec.image with a read-only root, a tmpfs /tmp, no capabilities, no
// new privileges, the host's uid:gid, `--network none` unless network is set.
// none: spec.argv unchanged (see launch_command for env and working directory).
std::vector<std::string> sandbox_argv(Runtime runtime, const SandboxSpec& spec);

// Everything needed to start the sandbox process on the host.
struct LaunchCommand {
  std::vector<std::string> argv;
  EnvList env;                // the environment of the process started on the host
  std::filesystem::path cwd;  // its working directory; empty: the daemon's
  // bwrap: the host paths staged for a sandbox that runs as another user (argv refers to
  // them as staged_path(i)), its resource limits and user. Descriptors are not in it: the
  // caller passes argv[1..] on kArgsFd (bwrap --args) and the seccomp program on kSeccompFd.
  ChildSetup setup;
  bool args_on_fd = false;  // bwrap: argv[1..] go on kArgsFd, the command line is "bwrap --args 3"
  bool seccomp = false;     // bwrap: kSeccompFd must hold the seccomp program
};

// The rlimits for `limits` (RLIMIT_CORE 0 always: no core files in agent folders).
std::vector<ResourceLimit> resource_limits(const SandboxLimits& limits);

// sandbox_argv plus the host process's environment and working directory:
// bwrap: an empty environment (the agent's comes from --setenv);
// docker/podman: the host's environment (the CLI may need DOCKER_HOST, XDG_RUNTIME_DIR…; the
// container gets only the -e variables);
// none: spec.env and spec.workdir, where each of them that is a mount's sandbox_path or lies
// below one is translated to the mount's host path (so SWITCHBOARD_WORKSPACE points at the
// real group folder). Mounts are not otherwise enforced: nothing is hidden from the agent.
LaunchCommand launch_command(Runtime runtime, const SandboxSpec& spec);

// The host path that `sandbox_path` maps to through the mounts (the deepest mount that
// contains it), or nullopt if no mount contains it.
std::optional<std::filesystem::path> host_path_for(const std::vector<Mount>& mounts,
                                                   std::string_view sandbox_path);

// `<runtime> rm -f <name>` for docker/podman: removes a container whose CLI process was
// killed (SIGKILL cannot be proxied to the container, so it would keep running). Empty for
// bwrap and none, whose sandboxes die with their process.
std::vector<std::string> container_remove_argv(Runtime runtime, std::string_view name);

// `<runtime> ps -aq --filter label=switchboard.instance=<label>` for docker/podman: the ids of
// this instance's containers, running or not, one per line. Empty for bwrap and none.
std::vector<std::string> container_list_argv(Runtime runtime, std::string_view instance_label);

// argv with environment values replaced by "…", for logs: bwrap `--setenv NAME VALUE`,
// docker/podman `-e NAME=VALUE`.
std::vector<std::string> redact_env_values(Runtime runtime, std::vector<std::string> argv);

// The host process's environment (environ) as a list.
EnvList host_environment();

}  // namespace sb::sandbox

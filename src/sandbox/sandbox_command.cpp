#include "sandbox/sandbox_command.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <system_error>

#include "sandbox/process.h"

extern char** environ;

namespace sb::sandbox {
namespace {

namespace fs = std::filesystem;

bool exists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// "/usr/bin" for a host path "/bin" that is a symlink into /usr (merged /usr), else nullopt.
std::optional<std::string> merged_usr_target(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_symlink(path, ec)) return std::nullopt;
  const auto target = fs::read_symlink(path, ec);
  if (ec) return std::nullopt;
  const auto absolute =
      (target.is_absolute() ? target : path.parent_path() / target).lexically_normal();
  const std::string text = absolute.string();
  if (text.rfind("/usr/", 0) != 0) return std::nullopt;
  return target.string();
}

std::size_t depth(std::string_view sandbox_path) {
  return static_cast<std::size_t>(std::count(sandbox_path.begin(), sandbox_path.end(), '/'));
}

std::string normalized(std::string_view sandbox_path) {
  std::string text = fs::path(sandbox_path).lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

// /tmp and /dev/shm are memory: with a memory limit, each is a tmpfs of at most that size.
void append_bwrap_system(std::vector<std::string>& argv, std::uint64_t tmpfs_size) {
  argv.insert(argv.end(), {"--ro-bind", "/usr", "/usr"});
  for (const char* dir : {"/bin", "/lib", "/lib64", "/sbin"}) {
    if (const auto target = merged_usr_target(dir)) {
      argv.insert(argv.end(), {"--symlink", *target, dir});
    } else if (exists(dir)) {
      argv.insert(argv.end(), {"--ro-bind", dir, dir});
    }
  }
  argv.insert(argv.end(), {"--proc", "/proc", "--dev", "/dev"});
  for (const char* dir : {"/tmp", "/dev/shm"}) {
    if (tmpfs_size > 0) argv.insert(argv.end(), {"--size", std::to_string(tmpfs_size)});
    argv.insert(argv.end(), {"--tmpfs", dir});
  }
}

// The host path bwrap binds for `host`: the path itself, or its staged place when the
// sandbox runs as another user (who may not be able to traverse the host path).
class Sources {
 public:
  explicit Sources(bool stage) : stage_(stage) {}
  std::string operator()(const fs::path& host) {
    if (!stage_) return host.string();
    staged_.push_back(host);
    return staged_path(staged_.size() - 1);
  }
  std::vector<fs::path> take() { return std::move(staged_); }

 private:
  bool stage_;
  std::vector<fs::path> staged_;
};

std::vector<std::string> bwrap_argv(const SandboxSpec& spec, Sources& source) {
  std::vector<std::string> argv{"bwrap", "--unshare-all", "--unshare-user", "--disable-userns"};
  if (spec.network) argv.push_back("--share-net");
  argv.insert(argv.end(), {"--die-with-parent", "--new-session", "--clearenv"});
  for (const auto& [name, value] : spec.env) argv.insert(argv.end(), {"--setenv", name, value});
  append_bwrap_system(argv, spec.limits.memory);
  // Sysctls are the host's: an agent must not write them (kernel.core_pattern runs a program
  // as the host's root).
  argv.insert(argv.end(), {"--ro-bind", "/proc/sys", "/proc/sys"});
  if (spec.network) {
    for (const char* file : {"/etc/resolv.conf", "/etc/hosts", "/etc/ssl"}) {
      if (exists(file)) argv.insert(argv.end(), {"--ro-bind", file, file});
    }
  }
  std::vector<const Mount*> mounts;
  for (const auto& mount : spec.mounts) mounts.push_back(&mount);
  std::stable_sort(mounts.begin(), mounts.end(), [](const Mount* a, const Mount* b) {
    return depth(normalized(a->sandbox_path)) < depth(normalized(b->sandbox_path));
  });
  for (const Mount* mount : mounts) {
    argv.insert(argv.end(), {mount->read_only ? "--ro-bind" : "--bind", source(mount->host),
                             normalized(mount->sandbox_path)});
  }
  std::vector<std::string> command = spec.argv;
  if (!command.empty()) {
    if (const auto program = find_executable(command[0])) {
      std::error_code ec;
      auto resolved = fs::absolute(*program, ec).lexically_normal();
      if (!ec) {
        if (resolved.string().rfind("/usr/", 0) != 0) {
          argv.insert(argv.end(), {"--ro-bind", source(resolved), resolved.string()});
        }
        command[0] = resolved.string();
      }
    }
  }
  // The sandbox's root is bwrap's tmpfs, memory the agent could fill: read-only once every
  // mount point is made.
  argv.insert(argv.end(), {"--remount-ro", "/"});
  if (spec.seccomp) argv.insert(argv.end(), {"--seccomp", std::to_string(kSeccompFd)});
  if (!spec.workdir.empty()) argv.insert(argv.end(), {"--chdir", spec.workdir});
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

std::vector<std::string> bwrap_argv(const SandboxSpec& spec) {
  Sources plain(false);
  return bwrap_argv(spec, plain);
}

std::vector<std::string> container_argv(Runtime runtime, const SandboxSpec& spec) {
  std::vector<std::string> argv{std::string(to_string(runtime)), "run", "--rm", "-i"};
  if (!spec.name.empty()) argv.insert(argv.end(), {"--name", spec.name});
  if (!spec.instance_label.empty()) {
    argv.insert(argv.end(), {"--label", "switchboard.instance=" + spec.instance_label});
  }
  if (!spec.network) argv.insert(argv.end(), {"--network", "none"});
  argv.insert(argv.end(), {"--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt",
                           "no-new-privileges"});
  const Identity user = spec.run_as.value_or(Identity{::getuid(), ::getgid()});
  argv.insert(argv.end(), {"--user", std::to_string(user.uid) + ":" + std::to_string(user.gid)});
  const SandboxLimits& limits = spec.limits;
  if (limits.processes > 0) {
    argv.insert(argv.end(), {"--pids-limit", std::to_string(limits.processes)});
  }
  if (limits.memory > 0) argv.insert(argv.end(), {"--memory", std::to_string(limits.memory)});
  if (limits.cpu_time.count() > 0) {
    argv.insert(argv.end(), {"--ulimit", "cpu=" + std::to_string(limits.cpu_time.count())});
  }
  if (limits.file_size > 0) {
    argv.insert(argv.end(), {"--ulimit", "fsize=" + std::to_string(limits.file_size)});
  }
  if (limits.open_files > 0) {
    argv.insert(argv.end(), {"--ulimit", "nofile=" + std::to_string(limits.open_files)});
  }
  for (const auto& mount : spec.mounts) {
    argv.insert(argv.end(), {"-v", mount.host.string() + ":" + normalized(mount.sandbox_path) +
                                       (mount.read_only ? ":ro" : "")});
  }
  for (const auto& [name, value] : spec.env) argv.insert(argv.end(), {"-e", name + "=" + value});
  if (!spec.workdir.empty()) argv.insert(argv.end(), {"-w", spec.workdir});
  argv.push_back(spec.image);
  argv.insert(argv.end(), spec.argv.begin(), spec.argv.end());
  return argv;
}

}  // namespace

std::string_view to_string(Runtime runtime) {
  switch (runtime) {
    case Runtime::bwrap:
      return "bwrap";
    case Runtime::docker:
      return "docker";
    case Runtime::podman:
      return "podman";
    case Runtime::none:
      return "none";
  }
  return "none";
}

Result<Runtime> parse_runtime(std::string_view text) {
  for (const auto runtime : {Runtime::bwrap, Runtime::docker, Runtime::podman, Runtime::none}) {
    if (text == to_string(runtime)) return runtime;
  }
  return make_error("unknown sandbox runtime \"" + std::string(text) +
                    "\": use bwrap, docker, podman or none");
}

std::optional<Runtime> detect_runtime(const std::optional<Identity>& run_as) {
  if (find_executable("bwrap")) {
    SandboxSpec probe;
    probe.argv = {"true"};
    probe.run_as = run_as;
    const LaunchCommand launch = launch_command(Runtime::bwrap, probe);
    const auto trial = run_captured(launch.argv, {}, 4096, std::chrono::seconds(10), launch.setup);
    if (trial && trial->status.exit_code == 0) return Runtime::bwrap;
  }
  if (find_executable("podman")) return Runtime::podman;
  if (find_executable("docker")) return Runtime::docker;
  return std::nullopt;
}

std::vector<std::string> sandbox_argv(Runtime runtime, const SandboxSpec& spec) {
  switch (runtime) {
    case Runtime::bwrap:
      return bwrap_argv(spec);
    case Runtime::docker:
    case Runtime::podman:
      return container_argv(runtime, spec);
    case Runtime::none:
      break;
  }
  return spec.argv;
}

std::optional<fs::path> host_path_for(const std::vector<Mount>& mounts,
                                      std::string_view sandbox_path) {
  if (sandbox_path.empty() || sandbox_path.front() != '/') return std::nullopt;
  const std::string wanted = normalized(sandbox_path);
  const Mount* best = nullptr;
  std::string best_point;
  for (const auto& mount : mounts) {
    const std::string point = normalized(mount.sandbox_path);
    const bool contains = wanted == point || point == "/" ||
                          (wanted.size() > point.size() && wanted.rfind(point, 0) == 0 &&
                           wanted[point.size()] == '/');
    if (contains && (best == nullptr || point.size() > best_point.size())) {
      best = &mount;
      best_point = point;
    }
  }
  if (best == nullptr) return std::nullopt;
  if (wanted == best_point) return best->host;
  const std::string_view rest =
      std::string_view(wanted).substr(best_point == "/" ? 1 : best_point.size() + 1);
  return best->host / rest;
}

std::vector<ResourceLimit> resource_limits(const SandboxLimits& limits) {
  std::vector<ResourceLimit> out{{RLIMIT_CORE, 0, 0}};
  auto add = [&out](int resource, std::uint64_t soft, std::uint64_t hard) {
    if (soft > 0) out.push_back({resource, soft, hard});
  };
  add(RLIMIT_NPROC, limits.processes, limits.processes);
  add(RLIMIT_DATA, limits.memory, limits.memory);
  const auto cpu = static_cast<std::uint64_t>(limits.cpu_time.count());
  add(RLIMIT_CPU, cpu, cpu + 5);
  add(RLIMIT_FSIZE, limits.file_size, limits.file_size);
  add(RLIMIT_NOFILE, limits.open_files, limits.open_files);
  return out;
}

LaunchCommand launch_command(Runtime runtime, const SandboxSpec& spec) {
  LaunchCommand launch;
  if (runtime == Runtime::bwrap) {
    Sources sources(spec.run_as.has_value());
    launch.argv = bwrap_argv(spec, sources);
    launch.setup.staged = sources.take();
  } else {
    launch.argv = sandbox_argv(runtime, spec);
  }
  switch (runtime) {
    case Runtime::bwrap:
      launch.setup.limits = resource_limits(spec.limits);
      launch.setup.run_as = spec.run_as;
      launch.args_on_fd = true;
      launch.seccomp = spec.seccomp;
      break;
    case Runtime::docker:
    case Runtime::podman:
      launch.env = host_environment();
      break;
    case Runtime::none:
      launch.setup.limits = resource_limits(spec.limits);
      launch.setup.run_as = spec.run_as;
      launch.env = spec.env;
      for (auto& [name, value] : launch.env) {
        if (const auto host = host_path_for(spec.mounts, value)) value = host->string();
      }
      if (const auto host = host_path_for(spec.mounts, spec.workdir)) {
        launch.cwd = *host;
      } else {
        launch.cwd = spec.workdir;
      }
      break;
  }
  return launch;
}

std::vector<std::string> container_remove_argv(Runtime runtime, std::string_view name) {
  if (runtime != Runtime::docker && runtime != Runtime::podman) return {};
  return {std::string(to_string(runtime)), "rm", "-f", std::string(name)};
}

std::vector<std::string> container_list_argv(Runtime runtime, std::string_view instance_label) {
  if (runtime != Runtime::docker && runtime != Runtime::podman) return {};
  return {std::string(to_string(runtime)), "ps", "-aq", "--filter",
          "label=switchboard.instance=" + std::string(instance_label)};
}

std::vector<std::string> redact_env_values(Runtime runtime, std::vector<std::string> argv) {
  for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "--") break;
    if (runtime == Runtime::bwrap && argv[i] == "--setenv" && i + 2 < argv.size()) {
      argv[i + 2] = "…";
      i += 2;
    } else if ((runtime == Runtime::docker || runtime == Runtime::podman) && argv[i] == "-e") {
      auto& assignment = argv[i + 1];
      const auto equals = assignment.find('=');
      if (equals != std::string::npos) assignment = assignment.substr(0, equals + 1) + "…";
      ++i;
    }
  }
  return argv;
}

EnvList host_environment() {
  EnvList env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const auto equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    env.emplace_back(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
  }
  return env;
}

}  // namespace sb::sandbox

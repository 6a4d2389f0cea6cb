#include "sandbox/sandbox_command.h"

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

void append_bwrap_system(std::vector<std::string>& argv) {
  argv.insert(argv.end(), {"--ro-bind", "/usr", "/usr"});
  for (const char* dir : {"/bin", "/lib", "/lib64", "/sbin"}) {
    if (const auto target = merged_usr_target(dir)) {
      argv.insert(argv.end(), {"--symlink", *target, dir});
    } else if (exists(dir)) {
      argv.insert(argv.end(), {"--ro-bind", dir, dir});
    }
  }
  argv.insert(argv.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"});
}

std::vector<std::string> bwrap_argv(const SandboxSpec& spec) {
  std::vector<std::string> argv{"bwrap", "--unshare-all"};
  if (spec.network) argv.push_back("--share-net");
  argv.insert(argv.end(), {"--die-with-parent", "--new-session", "--clearenv"});
  for (const auto& [name, value] : spec.env) argv.insert(argv.end(), {"--setenv", name, value});
  append_bwrap_system(argv);
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
    argv.insert(argv.end(), {mount->read_only ? "--ro-bind" : "--bind", mount->host.string(),
                             normalized(mount->sandbox_path)});
  }
  std::vector<std::string> command = spec.argv;
  if (!command.empty()) {
    if (const auto program = find_executable(command[0])) {
      std::error_code ec;
      auto resolved = fs::absolute(*program, ec).lexically_normal();
      if (!ec) {
        if (resolved.string().rfind("/usr/", 0) != 0) {
          argv.insert(argv.end(), {"--ro-bind", resolved.string(), resolved.string()});
        }
        command[0] = resolved.string();
      }
    }
  }
  if (!spec.workdir.empty()) argv.insert(argv.end(), {"--chdir", spec.workdir});
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
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
  argv.insert(argv.end(),
              {"--user", std::to_string(::getuid()) + ":" + std::to_string(::getgid())});
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

std::optional<Runtime> detect_runtime() {
  if (find_executable("bwrap")) {
    SandboxSpec probe;
    probe.argv = {"true"};
    const auto trial =
        run_captured(sandbox_argv(Runtime::bwrap, probe), {}, 4096, std::chrono::seconds(10));
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

LaunchCommand launch_command(Runtime runtime, const SandboxSpec& spec) {
  LaunchCommand launch;
  launch.argv = sandbox_argv(runtime, spec);
  switch (runtime) {
    case Runtime::bwrap:
      break;
    case Runtime::docker:
    case Runtime::podman:
      launch.env = host_environment();
      break;
    case Runtime::none:
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

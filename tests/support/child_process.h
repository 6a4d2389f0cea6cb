#pragma once
// Starting the tests' peers (the Python scripts, the mail servers) as child processes: the
// spawn with its output in a log file, the wait for the port a peer picked itself, the end.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sb::test {

// The file's bytes; "" when it cannot be read.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Starts `args` (args[0] an absolute path) with stdin from /dev/null and stdout and stderr
// appended to `log`; in a process group of its own when `own_group` (so that everything it
// starts can be signalled together). -1 when it cannot be started.
inline pid_t spawn_logged(std::vector<std::string> args, const std::filesystem::path& log,
                          bool own_group = false) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string log_path = log.string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  if (own_group) {
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
  }
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ) != 0) pid = -1;
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// Waits until child `pid` has written the port it listens on, a line, into `port_file`.
// The port; 0 when the child exited first (then `pid` becomes -1) or `limit` passed.
inline std::uint16_t wait_for_port_file(
    pid_t& pid, const std::filesystem::path& port_file,
    std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (pid > 0 && std::chrono::steady_clock::now() < deadline) {
    const std::string text = read_file(port_file);
    if (!text.empty() && text.back() == '\n') return static_cast<std::uint16_t>(std::stoi(text));
    if (::waitpid(pid, nullptr, WNOHANG) == pid) {
      pid = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the peer starting up
  }
  return 0;
}

// SIGKILL and reap; `pid` becomes -1. Nothing when it is not running.
inline void kill_child(pid_t& pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  pid = -1;
}

}  // namespace sb::test

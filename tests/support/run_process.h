#pragma once
// Runs a helper program (saslpasswd2, tests/support/mail_tool.py) to completion for a test
// fixture: stdin from a string, stdout and stderr captured through files under a directory
// the caller owns, killed when it outlives its deadline.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.h"

extern char** environ;

namespace sb::test {

struct ProcessResult {
  int exit_code = -1;  // -1: could not start, killed by a signal, or timed out
  std::string out, err;
};

// Runs `args` (args[0] an absolute path) with `input` on stdin, its files under `scratch`
// (which must exist). Never throws for what the program does.
inline ProcessResult run_process(const std::vector<std::string>& args, const std::string& input,
                                 const std::filesystem::path& scratch,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  static std::atomic<unsigned> counter{0};
  const auto base =
      scratch / ("run-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
  const std::string in_file = base.string() + ".in", out_file = base.string() + ".out",
                    err_file = base.string() + ".err";
  std::ofstream(in_file, std::ios::binary) << input;
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in_file.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = -1;
  ProcessResult result;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  if (pid > 0) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (true) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the program running
    }
  }
  result.out = read_file(out_file);
  result.err = pid > 0 ? read_file(err_file) : "cannot start " + args.front();
  std::error_code ec;
  for (const auto& f : {in_file, out_file, err_file}) std::filesystem::remove(f, ec);
  return result;
}

}  // namespace sb::test

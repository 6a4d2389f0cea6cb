#include "common/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>

#include <string>
#include <system_error>

namespace sb {

Result<pid_t> spawn_in_own_group(const char* program, char* const argv[], char* const envp[],
                                 int in, int out, int err, const std::filesystem::path& cwd) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  if (in < 0) {
    ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  } else {
    ::posix_spawn_file_actions_adddup2(&actions, in, 0);
  }
  ::posix_spawn_file_actions_adddup2(&actions, out, 1);
  ::posix_spawn_file_actions_adddup2(&actions, err, 2);
  if (!cwd.empty()) ::posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  // Not every library opens its descriptors close-on-exec.
  ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  sigset_t mask;
  sigemptyset(&mask);
  sigset_t defaults;
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  ::posix_spawnattr_setsigmask(&attr, &mask);
  ::posix_spawnattr_setsigdefault(&attr, &defaults);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(
      &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program, &actions, &attr, argv, envp);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return make_error("cannot start " + std::string(program) + ": " +
                      std::generic_category().message(rc));
  }
  return pid;
}

}  // namespace sb

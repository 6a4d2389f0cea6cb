#pragma once
// Starting a child process the way switchboard always does: in its own process group (so a
// timeout can signal everything it started), with every signal unblocked and at its default,
// and with no file descriptor above 2 (the parent's sockets and database must not leak in).

#include <sys/types.h>

#include <filesystem>

#include "common/result.h"

namespace sb {

// Starts `program` (a path; no PATH search) with the null-terminated `argv` and `envp`.
// stdin, stdout and stderr are `in`, `out` and `err` (`in` < 0: /dev/null); the working
// directory is `cwd` unless it is empty. Returns the child's pid, which is also its process
// group's id. Error: the program could not be started, with the system's reason.
Result<pid_t> spawn_in_own_group(const char* program, char* const argv[], char* const envp[],
                                 int in, int out, int err, const std::filesystem::path& cwd);

}  // namespace sb

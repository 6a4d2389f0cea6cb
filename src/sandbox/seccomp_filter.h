#pragma once
// The seccomp filter of an agent sandbox, for bubblewrap's `--seccomp FD`.
//
// Policy: every system call is allowed except those an agent has no business with and that
// bwrap leaves open: loading kernels or modules, rebooting, swap, mounting and the new mount
// API, chroot/pivot_root, new or foreign namespaces (setns, unshare, clone with a CLONE_NEW*
// flag, clone3), the kernel keyring, bpf, perf, userfaultfd, io_uring, tracing or reading
// other processes, file handles, setting the clock, the kernel log, raw I/O ports, typing
// into the terminal (TIOCSTI, TIOCLINUX), sockets other than AF_UNIX, AF_INET, AF_INET6 and
// NETLINK_ROUTE, and personality flags that weaken the address space. A refused call fails
// with the errno blocked_syscalls() lists; the process keeps running. A system call of
// another architecture (i386 through int 0x80, x32) kills the process, so the 32-bit entry
// points cannot go around the filter. The reason for each entry is in seccomp_filter.cpp.
//
// Threading: libseccomp keeps unsynchronised global state and the cache is not locked:
// calls to seccomp_program() must not overlap (call it on the event-loop thread).

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sb::sandbox {

struct BlockedSyscall {
  std::string_view name;  // as in syscalls(2), e.g. "keyctl"
  int error;              // the errno the call fails with
  std::string_view when;  // empty: every call; otherwise which calls are refused
};

// The policy, one entry per refused system call (socket has two, with different errnos).
// Entries the machine's architecture lacks (e.g. "umount" on x86_64) are in the list but
// not in the program.
std::vector<BlockedSyscall> blocked_syscalls();

// The filter as a classic BPF program (an array of struct sock_filter, as
// seccomp_export_bpf writes it), for bwrap's --seccomp FD: put it in a memory_file()
// (sandbox/process.h) per sandbox. Built on the first call and kept. Error: libseccomp
// failed, with the reason.
Result<std::string> seccomp_program();

}  // namespace sb::sandbox

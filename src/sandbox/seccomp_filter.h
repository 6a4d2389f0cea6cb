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
// Threading: the program is built once and kept (libseccomp keeps unsynchronised global
// state, and the cache is not locked), so calls to
// seccomp_program_fd() must not overlap (call it on the event-loop thread).

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

// Builds the filter and returns a new memfd holding it as a classic BPF program (an array
// of struct sock_filter, as seccomp_export_bpf writes it), sealed against changes,
// positioned at offset 0, with FD_CLOEXEC set. The caller owns the fd and closes it; dup
// it without FD_CLOEXEC into the bwrap child. One fd serves one sandbox: reading it moves
// the offset it shares with its dups. Error: libseccomp or memfd creation failed, with
// the reason.
Result<int> seccomp_program_fd();

}  // namespace sb::sandbox

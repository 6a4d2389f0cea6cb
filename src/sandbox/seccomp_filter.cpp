#include "sandbox/seccomp_filter.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sb::sandbox {
namespace {

// Which calls of a system call the filter refuses.
enum class Refuse {
  kAlways,
  kNewNamespace,     // clone with any CLONE_NEW* flag
  kTerminalInput,    // ioctl TIOCSTI or TIOCLINUX
  kOtherFamily,      // socket of a family not in kAllowedSocketFamilies
  kOtherNetlink,     // socket(AF_NETLINK) of a protocol other than NETLINK_ROUTE
  kOtherPersonality  // personality other than kHarmlessPersonalityBits or the query
};

struct Rule {
  const char* name;
  int error;
  Refuse refuse;
};

// The policy. Default allow; bwrap's namespaces already hide the host's files, processes
// and (without `network`) network, so this list closes what namespaces do not: the kernel's
// global state and its most exploited interfaces. The errno is EPERM (what an unprivileged
// caller gets anyway) unless said otherwise; ENOSYS goes to calls that programs probe and
// fall back from ("this kernel does not have it"), so they keep working.
constexpr Rule kRules[] = {
    // The kernel itself and the machine: never an agent's business, and harmful as root.
    {"kexec_load", EPERM, Refuse::kAlways},
    {"kexec_file_load", EPERM, Refuse::kAlways},
    {"init_module", EPERM, Refuse::kAlways},
    {"finit_module", EPERM, Refuse::kAlways},
    {"delete_module", EPERM, Refuse::kAlways},
    {"reboot", EPERM, Refuse::kAlways},
    {"swapon", EPERM, Refuse::kAlways},
    {"swapoff", EPERM, Refuse::kAlways},
    {"acct", EPERM, Refuse::kAlways},          // writes a host file for every exiting process
    {"quotactl", EPERM, Refuse::kAlways},      // quotas are the host's
    {"quotactl_fd", ENOSYS, Refuse::kAlways},  // new in 5.14: probed
    {"syslog", EPERM, Refuse::kAlways},        // the kernel log shows the host and addresses
    {"vhangup", EPERM, Refuse::kAlways},
    {"ioperm", EPERM, Refuse::kAlways},  // raw hardware I/O ports
    {"iopl", EPERM, Refuse::kAlways},
    // Rarely built in and a source of kernel bugs (CVE-2015-5157, CVE-2017-17053);
    // kernels without it answer ENOSYS, so callers (Wine, old runtimes) expect that.
    {"modify_ldt", ENOSYS, Refuse::kAlways},
    {"uselib", EPERM, Refuse::kAlways},  // a.out loader: obsolete attack surface
    // Gone from current kernels (3.1, 5.5, 6.10), so ENOSYS is what callers know.
    {"nfsservctl", ENOSYS, Refuse::kAlways},
    {"_sysctl", ENOSYS, Refuse::kAlways},
    {"lookup_dcookie", ENOSYS, Refuse::kAlways},
    // The clock is not namespaced: setting it changes the host's time (cron, TLS, logs).
    {"settimeofday", EPERM, Refuse::kAlways},
    {"clock_settime", EPERM, Refuse::kAlways},
    {"clock_adjtime", EPERM, Refuse::kAlways},
    {"adjtimex", EPERM, Refuse::kAlways},

    // The file system view bwrap built: no remounting, no way out of the root.
    {"mount", EPERM, Refuse::kAlways},
    {"umount2", EPERM, Refuse::kAlways},
    {"umount", EPERM, Refuse::kAlways},  // only on architectures that still have it
    {"pivot_root", EPERM, Refuse::kAlways},
    {"chroot", EPERM, Refuse::kAlways},
    // The new mount API, or refusing mount(2) would mean nothing. ENOSYS as in Flatpak:
    // libmount then falls back to mount(2), which fails with a plain EPERM.
    {"fsopen", ENOSYS, Refuse::kAlways},
    {"fsconfig", ENOSYS, Refuse::kAlways},
    {"fsmount", ENOSYS, Refuse::kAlways},
    {"fspick", ENOSYS, Refuse::kAlways},
    {"move_mount", ENOSYS, Refuse::kAlways},
    {"open_tree", ENOSYS, Refuse::kAlways},
    {"mount_setattr", ENOSYS, Refuse::kAlways},
    // File handles open files by inode number, past every mount ("shocker" escape).
    {"open_by_handle_at", EPERM, Refuse::kAlways},
    // Its other half: ENOSYS is a kernel without handles, which callers (systemd,
    // util-linux, looking for mount ids) fall back from.
    {"name_to_handle_at", ENOSYS, Refuse::kAlways},

    // Namespaces: bwrap made the sandbox's before the filter is in place. A new user
    // namespace hands the agent capabilities over fresh kernel code (netfilter, mounts),
    // the path of most recent container escapes; setns joins someone else's.
    {"setns", EPERM, Refuse::kAlways},
    {"unshare", EPERM, Refuse::kAlways},  // no flag of it is needed by an agent
    {"clone", EPERM, Refuse::kNewNamespace},
    // clone3 keeps its flags in memory, where seccomp cannot look. ENOSYS makes glibc (2.34
    // and later) fall back to clone, whose flags the rule above checks.
    {"clone3", ENOSYS, Refuse::kAlways},

    // The kernel keyring is not per sandbox (a uid's keys are shared with the host).
    // ENOSYS, a kernel without CONFIG_KEYS: Kerberos and others fall back to files.
    {"keyctl", ENOSYS, Refuse::kAlways},
    {"add_key", ENOSYS, Refuse::kAlways},
    {"request_key", ENOSYS, Refuse::kAlways},

    // Other processes: tracing, reading or moving their memory, stealing their fds.
    {"ptrace", EPERM, Refuse::kAlways},
    {"process_vm_readv", EPERM, Refuse::kAlways},
    {"process_vm_writev", EPERM, Refuse::kAlways},
    {"process_madvise", EPERM, Refuse::kAlways},
    {"pidfd_getfd", EPERM, Refuse::kAlways},
    // Compares kernel objects of two processes: no use inside a sandbox (Docker refuses
    // it too); its callers (Mesa, CRIU) treat failure as "unknown".
    {"kcmp", EPERM, Refuse::kAlways},
    // Move another process's pages between NUMA nodes. mbind, set_mempolicy and
    // get_mempolicy stay: they touch the caller's own memory and allocators use them.
    {"migrate_pages", EPERM, Refuse::kAlways},
    {"move_pages", EPERM, Refuse::kAlways},

    // Large kernel attack surfaces with no use to an agent.
    {"bpf", EPERM, Refuse::kAlways},
    {"perf_event_open", EPERM, Refuse::kAlways},
    {"userfaultfd", EPERM, Refuse::kAlways},  // stretches race windows in kernel exploits
    {"fanotify_init", EPERM, Refuse::kAlways},
    // io_uring: a frequent source of kernel bugs. ENOSYS: libuv, liburing and runtimes
    // probe it and fall back to epoll and threads.
    {"io_uring_setup", ENOSYS, Refuse::kAlways},
    {"io_uring_enter", ENOSYS, Refuse::kAlways},
    {"io_uring_register", ENOSYS, Refuse::kAlways},

    // Typing into the terminal the sandbox may share with whoever started it (CVE-2017-5226).
    {"ioctl", EPERM, Refuse::kTerminalInput},
    // Sockets: AF_UNIX, AF_INET, AF_INET6, and AF_NETLINK for NETLINK_ROUTE only (glibc's
    // getaddrinfo with AI_ADDRCONFIG and `ip` use it; inside the sandbox's own network
    // namespace it shows only that). Packet, vsock, AF_ALG, Bluetooth, CAN, the other
    // netlink protocols (netfilter, audit, uevents) are kernel code an agent does not need.
    // The errnos are the kernel's own for a family or protocol it does not have.
    {"socket", EAFNOSUPPORT, Refuse::kOtherFamily},
    {"socket", EPROTONOSUPPORT, Refuse::kOtherNetlink},
    // Execution domains and flags that switch off ASLR or make data executable.
    {"personality", EPERM, Refuse::kOtherPersonality},
};

constexpr int kAllowedSocketFamilies[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};  // sorted
// personality(2) accepts any combination of these (Docker's list: PER_LINUX, PER_LINUX32,
// UNAME26) and the query 0xffffffff, which changes nothing.
constexpr std::uint64_t kHarmlessPersonalityBits = std::uint64_t{PER_LINUX32} | UNAME26;
constexpr std::uint64_t kPersonalityQuery = 0xffffffff;

constexpr std::uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
                                             CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
                                             CLONE_NEWNET};
// clone's flags are its first argument everywhere but on s390.
#if defined(__s390__)
constexpr unsigned kCloneFlagsArg = 1;
#else
constexpr unsigned kCloneFlagsArg = 0;
#endif
// The kernel reads ioctl's request as a 32-bit int: compare only the low half, or a caller
// could set the high bits to slip past an equality test.
constexpr std::uint64_t kLow32 = 0xffffffff;

std::string_view describe(Refuse refuse) {
  switch (refuse) {
    case Refuse::kAlways:
      return "";
    case Refuse::kNewNamespace:
      return "with any CLONE_NEW* flag";
    case Refuse::kTerminalInput:
      return "TIOCSTI and TIOCLINUX";
    case Refuse::kOtherFamily:
      return "families other than AF_UNIX, AF_INET, AF_INET6, AF_NETLINK";
    case Refuse::kOtherNetlink:
      return "AF_NETLINK with a protocol other than NETLINK_ROUTE";
    case Refuse::kOtherPersonality:
      return "anything but PER_LINUX, PER_LINUX32, UNAME26 and the query 0xffffffff";
  }
  return "";
}

scmp_arg_cmp compare(unsigned arg, scmp_compare op, std::uint64_t a, std::uint64_t b = 0) {
  return scmp_arg_cmp{arg, op, a, b};
}

struct ReleaseFilter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Filter = std::unique_ptr<void, ReleaseFilter>;

class Builder {
 public:
  explicit Builder(scmp_filter_ctx ctx) : ctx_(ctx) {}

  Result<void> add(const Rule& rule) {
    int nr = seccomp_syscall_resolve_name(rule.name);
    if (nr == __NR_SCMP_ERROR) {
      const scmp_version* version = seccomp_version();
      return make_error("seccomp filter: libseccomp " + std::to_string(version->major) + "." +
                        std::to_string(version->minor) + "." + std::to_string(version->micro) +
                        " does not know " + rule.name + "; build with libseccomp 2.5.4 or later");
    }
    if (nr < 0) return {};  // a pseudo number: this architecture has no such call
    name_ = rule.name;
    nr_ = nr;
    action_ = SCMP_ACT_ERRNO(static_cast<std::uint32_t>(rule.error));
    switch (rule.refuse) {
      case Refuse::kAlways:
        return refuse_if({});
      case Refuse::kNewNamespace:
        for (std::uint64_t flag : kNamespaceFlags) {
          if (auto r = refuse_if({compare(kCloneFlagsArg, SCMP_CMP_MASKED_EQ, flag, flag)}); !r) {
            return r;
          }
        }
        return {};
      case Refuse::kTerminalInput:
        for (std::uint64_t request : {TIOCSTI, TIOCLINUX}) {
          if (auto r = refuse_if({compare(1, SCMP_CMP_MASKED_EQ, kLow32, request)}); !r) return r;
        }
        return {};
      case Refuse::kOtherFamily:
        return refuse_other_families();
      case Refuse::kOtherNetlink:
        return refuse_if(
            {compare(0, SCMP_CMP_EQ, AF_NETLINK), compare(2, SCMP_CMP_NE, NETLINK_ROUTE)});
      case Refuse::kOtherPersonality:
        return refuse_other_personalities();
    }
    return {};
  }

 private:
  // A rule's comparisons all hold (libseccomp allows one per argument); a call matching any
  // of a system call's rules is refused.
  Result<void> refuse_if(std::initializer_list<scmp_arg_cmp> all) {
    int rc = seccomp_rule_add_array(ctx_, action_, nr_, static_cast<unsigned>(all.size()),
                                    all.size() == 0 ? nullptr : all.begin());
    if (rc < 0) {
      return make_error("seccomp filter: adding the rule for " + std::string(name_) +
                        " failed: " + std::strerror(-rc));
    }
    return {};
  }

  // Every family below, between and above the allowed ones (Flatpak's construction). A
  // family with high bits set falls in the last range and is refused.
  Result<void> refuse_other_families() {
    std::uint64_t next = 0;
    for (int allowed : kAllowedSocketFamilies) {
      for (; next < static_cast<std::uint64_t>(allowed); ++next) {
        if (auto r = refuse_if({compare(0, SCMP_CMP_EQ, next)}); !r) return r;
      }
      next = static_cast<std::uint64_t>(allowed) + 1;
    }
    return refuse_if({compare(0, SCMP_CMP_GE, next)});
  }

  // "Not a subset of the harmless bits and not the query", written with one comparison
  // per rule: with bit 31 clear, any bit outside the harmless ones; with bit 31 set (only
  // the query may), any clear bit; and anything beyond 32 bits.
  Result<void> refuse_other_personalities() {
    constexpr std::uint64_t kBit31 = std::uint64_t{1} << 31;
    for (unsigned i = 0; i < 31; ++i) {
      std::uint64_t bit = std::uint64_t{1} << i;
      if ((bit & kHarmlessPersonalityBits) == 0) {
        if (auto r = refuse_if({compare(0, SCMP_CMP_MASKED_EQ, kBit31 | bit, bit)}); !r) return r;
      }
      if (auto r = refuse_if({compare(0, SCMP_CMP_MASKED_EQ, kBit31 | bit, kBit31)}); !r) {
        return r;
      }
    }
    return refuse_if({compare(0, SCMP_CMP_GT, kPersonalityQuery)});
  }

  scmp_filter_ctx ctx_;
  const char* name_ = "";
  int nr_ = 0;
  std::uint32_t action_ = 0;
};

Result<Filter> build_filter() {
  Filter filter(seccomp_init(SCMP_ACT_ALLOW));
  if (!filter) return make_error("seccomp filter: seccomp_init failed (out of memory?)");
  // Only the native architecture is in the filter; i386 (int 0x80) and x32 calls on
  // x86_64 would go around its rules, so they kill the process.
  if (int rc = seccomp_attr_set(filter.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
      rc < 0) {
    return make_error(std::string("seccomp filter: setting the bad-architecture action failed: ") +
                      std::strerror(-rc) + " (the kernel needs SECCOMP_RET_KILL_PROCESS, 4.14)");
  }
  // A binary search over the syscall numbers instead of a list: every call an agent makes
  // runs the program, and almost all of them are allowed.
  if (int rc = seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0) {
    return make_error(std::string("seccomp filter: choosing the binary-tree layout failed: ") +
                      std::strerror(-rc));
  }
  Builder builder(filter.get());
  for (const Rule& rule : kRules) {
    if (auto r = builder.add(rule); !r) return r.error();
  }
  return filter;
}

std::string errno_text(std::string_view what) {
  return "seccomp filter: " + std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

std::vector<BlockedSyscall> blocked_syscalls() {
  std::vector<BlockedSyscall> list;
  list.reserve(std::size(kRules));
  for (const Rule& rule : kRules) list.push_back({rule.name, rule.error, describe(rule.refuse)});
  return list;
}

Result<std::string> seccomp_program() {
  // Built once: libseccomp takes milliseconds to generate it, and it is the same for every
  // sandbox.
  static std::optional<std::string> cached;
  if (cached) return *cached;
  auto filter = build_filter();
  if (!filter) return filter.error();
  const int fd = memfd_create("switchboard-seccomp-build", MFD_CLOEXEC);
  if (fd < 0) return make_error(errno_text("memfd_create"));
  std::string bytes;
  if (int rc = seccomp_export_bpf(filter->get(), fd); rc < 0) {
    close(fd);
    return make_error(std::string("seccomp filter: seccomp_export_bpf failed: ") +
                      std::strerror(-rc));
  }
  lseek(fd, 0, SEEK_SET);
  char buffer[4096];
  ssize_t n = 0;
  while ((n = read(fd, buffer, sizeof buffer)) > 0) {
    bytes.append(buffer, static_cast<std::size_t>(n));
  }
  const bool failed = n < 0 || bytes.empty();
  close(fd);
  if (failed) return make_error("seccomp filter: reading the exported program failed");
  cached = std::move(bytes);
  return *cached;
}

}  // namespace sb::sandbox

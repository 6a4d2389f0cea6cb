#include "sandbox/seccomp_filter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "sandbox/process.h"

namespace sb::sandbox {
namespace {

// What a probe did in a child under the filter: its return value and errno, or the signal
// that killed the child.
struct Outcome {
  long ret = 0;
  int error = 0;
  int signal = 0;
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Outcome& o) {
  if (o.signal != 0)
    return out << "killed by signal " << o.signal << " (" << strsignal(o.signal) << ")";
  if (o.ret == -1) return out << "failed with " << strerrorname_np(o.error);
  return out << "returned " << o.ret;
}

Outcome refused(int error) { return {-1, error, 0}; }
Outcome killed_by_sigsys() { return {0, 0, SIGSYS}; }

// Probes run in the forked child of a sanitized process: raw system calls only.
using Probe = long (*)();

constexpr int kInstallFailed = 100;

// A fresh sealed memfd holding the program, as the runner makes one per sandbox.
Result<int> seccomp_program_fd() {
  auto program = seccomp_program();
  if (!program) return program.error();
  auto fd = memory_file("switchboard-seccomp", *program);
  if (!fd) return fd.error();
  return std::move(fd).value().release();
}

class SeccompFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fd = seccomp_program_fd();
    ASSERT_TRUE(fd.ok()) << fd.error().message;
    fd_ = *fd;
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
  }

  // Forks a child that reads the program from the fd (from where the fd stands), installs
  // it the way bwrap does and runs `probe`. Each call needs a fresh fd: the child's read
  // moves the offset.
  Outcome run_filtered(Probe probe) {
    struct stat st {};
    EXPECT_EQ(fstat(fd_, &st), 0);
    std::vector<sock_filter> program(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
    int report[2];
    EXPECT_EQ(pipe2(report, O_CLOEXEC), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(report[0]);
      auto* bytes = reinterpret_cast<char*>(program.data());
      size_t want = program.size() * sizeof(sock_filter), got = 0;
      while (got < want) {
        ssize_t n = read(fd_, bytes + got, want - got);
        if (n <= 0) _exit(kInstallFailed);
        got += static_cast<size_t>(n);
      }
      sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
      if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
          syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
        _exit(kInstallFailed);
      }
      errno = 0;
      Outcome outcome;
      outcome.ret = probe();
      outcome.error = outcome.ret == -1 ? errno : 0;
      (void)!write(report[1], &outcome, sizeof outcome);
      _exit(0);
    }
    close(report[1]);
    Outcome outcome;
    ssize_t n = read(report[0], &outcome, sizeof outcome);
    close(report[0]);
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) return {0, 0, WTERMSIG(status)};
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "the child could not install the filter (status " << status << ")";
    EXPECT_EQ(n, static_cast<ssize_t>(sizeof outcome));
    return outcome;
  }

  // Runs each probe with a fresh program fd.
  Outcome run(Probe probe) {
    close(fd_);
    fd_ = -1;
    auto fd = seccomp_program_fd();
    if (!fd) {
      ADD_FAILURE() << fd.error().message;
      return {};
    }
    fd_ = *fd;
    return run_filtered(probe);
  }

  int fd_ = -1;
};

// clone as fork, with extra flags. A child it makes (the filter let the call through) exits
// at once; the caller reports the pid.
long fork_with(unsigned long flags) {
  long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  return pid;
}

long open_dev_null() { return syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY); }

TEST_F(SeccompFilterTest, ProgramFdIsSealedCloseOnExecAndAtOffsetZero) {
  EXPECT_EQ(lseek(fd_, 0, SEEK_CUR), 0);
  EXPECT_NE(fcntl(fd_, F_GETFD) & FD_CLOEXEC, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd_, &st), 0);
  EXPECT_GT(st.st_size, 0);
  EXPECT_EQ(st.st_size % static_cast<off_t>(sizeof(sock_filter)), 0);
  EXPECT_LE(st.st_size / static_cast<off_t>(sizeof(sock_filter)), BPF_MAXINSNS);
  char byte = 0;
  EXPECT_EQ(pwrite(fd_, &byte, 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(ftruncate(fd_, 0), -1);
}

TEST_F(SeccompFilterTest, BlockedListGivesEachRefusedCallItsErrno) {
  auto list = blocked_syscalls();
  auto find = [&](std::string_view name, int error) {
    return std::find_if(list.begin(), list.end(), [&](const BlockedSyscall& b) {
             return b.name == name && b.error == error;
           }) != list.end();
  };
  EXPECT_TRUE(find("keyctl", ENOSYS));
  EXPECT_TRUE(find("clone3", ENOSYS));
  EXPECT_TRUE(find("mount", EPERM));
  EXPECT_TRUE(find("socket", EAFNOSUPPORT));
  EXPECT_TRUE(find("socket", EPROTONOSUPPORT));
  EXPECT_FALSE(find("getpid", EPERM));
  for (const auto& b : list) {
    if (b.name == "clone" || b.name == "ioctl" || b.name == "socket" || b.name == "personality") {
      EXPECT_FALSE(b.when.empty()) << b.name << " is refused only for some arguments";
    }
  }
}

TEST_F(SeccompFilterTest, RefusesNewAndForeignNamespaces) {
  EXPECT_EQ(run([] { return syscall(SYS_unshare, CLONE_NEWUSER); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_unshare, CLONE_NEWNS); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_setns, 0, CLONE_NEWNET); }), refused(EPERM));
  EXPECT_EQ(run([] { return fork_with(CLONE_NEWUSER); }), refused(EPERM));
  EXPECT_EQ(run([] { return fork_with(CLONE_NEWNET | CLONE_NEWPID); }), refused(EPERM));
  // The kernel ignores clone's high 32 bits; they must not hide the flag from the filter.
  EXPECT_EQ(run([] { return fork_with((1UL << 40) | CLONE_NEWNS); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_clone3, nullptr, 0); }), refused(ENOSYS));
}

TEST_F(SeccompFilterTest, AllowsForkAndThreadsWithoutNamespaceFlags) {
  Outcome fork = run([]() -> long {
    long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(7);
    if (pid < 0) return pid;
    int status = 0;
    if (waitpid(static_cast<pid_t>(pid), &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
  });
  EXPECT_EQ(fork, (Outcome{7, 0, 0}));
  // glibc's pthread_create tries clone3 first; its ENOSYS must make it fall back to clone.
  Outcome thread = run([]() -> long {
    pthread_t thread;
    auto body = [](void*) -> void* { return reinterpret_cast<void*>(42); };
    if (int rc = pthread_create(&thread, nullptr, body, nullptr); rc != 0) {
      errno = rc;
      return -1;
    }
    void* result = nullptr;
    pthread_join(thread, &result);
    return reinterpret_cast<long>(result);
  });
  EXPECT_EQ(thread, (Outcome{42, 0, 0}));
}

TEST_F(SeccompFilterTest, RefusesSocketFamiliesOtherThanUnixInetAndRouteNetlink) {
  EXPECT_EQ(run([] { return syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0); }), refused(EAFNOSUPPORT));
  EXPECT_EQ(run([] { return syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0); }),
            refused(EAFNOSUPPORT));
  EXPECT_EQ(run([] { return syscall(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0); }),
            refused(EAFNOSUPPORT));
  EXPECT_EQ(run([] { return syscall(SYS_socket, AF_UNSPEC, SOCK_STREAM, 0); }),
            refused(EAFNOSUPPORT));
  // The kernel reads the family as an int: high bits must not turn AF_INET into a bypass.
  EXPECT_EQ(run([] { return syscall(SYS_socket, (1L << 32) | AF_PACKET, SOCK_RAW, 0); }),
            refused(EAFNOSUPPORT));
  EXPECT_EQ(run([] { return syscall(SYS_socket, AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT); }),
            refused(EPROTONOSUPPORT));
  EXPECT_EQ(run([] { return syscall(SYS_socket, AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER); }),
            refused(EPROTONOSUPPORT));
}

TEST_F(SeccompFilterTest, AllowsUnixInetAndRouteNetlinkSockets) {
  EXPECT_GE(run([] { return syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0); }).ret, 0);
  EXPECT_GE(run([] { return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0); }).ret, 0);
  EXPECT_GE(run([] { return syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0); }).ret, 0);
  EXPECT_GE(run([] { return syscall(SYS_socket, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE); }).ret, 0);
}

TEST_F(SeccompFilterTest, RefusesTerminalInputIoctlsWhateverTheHighBits) {
  EXPECT_EQ(run([] {
              char c = 'x';
              return syscall(SYS_ioctl, open_dev_null(), TIOCSTI, &c);
            }),
            refused(EPERM));
  EXPECT_EQ(run([] {
              char c = 'x';
              return syscall(SYS_ioctl, open_dev_null(), (1UL << 32) | TIOCSTI, &c);
            }),
            refused(EPERM));
  EXPECT_EQ(run([] {
              char c = 0;
              return syscall(SYS_ioctl, open_dev_null(), TIOCLINUX, &c);
            }),
            refused(EPERM));
}

TEST_F(SeccompFilterTest, AllowsOtherIoctls) {
  Outcome fionread = run([]() -> long {
    int fds[2];
    if (pipe2(fds, 0) != 0) return -1;
    if (write(fds[1], "abc", 3) != 3) return -1;
    int available = 0;
    if (syscall(SYS_ioctl, fds[0], FIONREAD, &available) != 0) return -1;
    return available;
  });
  EXPECT_EQ(fionread, (Outcome{3, 0, 0}));
  // Not a terminal: the kernel's own answer, not the filter's.
  EXPECT_EQ(run([] {
              int winsize[2];
              return syscall(SYS_ioctl, open_dev_null(), TIOCGWINSZ, winsize);
            }),
            refused(ENOTTY));
}

TEST_F(SeccompFilterTest, RefusesKernelInterfacesAnAgentHasNoUseFor) {
  EXPECT_EQ(
      run([] { return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0); }),
      refused(ENOSYS));
  EXPECT_EQ(run([] { return syscall(SYS_add_key, "user", "k", "v", 1, KEY_SPEC_SESSION_KEYRING); }),
            refused(ENOSYS));
  EXPECT_EQ(run([] { return syscall(SYS_bpf, 0, nullptr, 0); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }),
            refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_userfaultfd, 0); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_io_uring_setup, 1, nullptr); }), refused(ENOSYS));
  EXPECT_EQ(run([] { return syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0); }),
            refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_process_vm_readv, 1, nullptr, 0, nullptr, 0, 0); }),
            refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_kcmp, 1, 1, 0, 0, 0); }), refused(EPERM));
  // A target that does not exist: were the filter to let it through, nothing is mounted.
  EXPECT_EQ(run([] { return syscall(SYS_mount, "none", "/nonexistent-sb", "tmpfs", 0, nullptr); }),
            refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_fsopen, "tmpfs", 0); }), refused(ENOSYS));
  EXPECT_EQ(run([] { return syscall(SYS_open_tree, AT_FDCWD, "/", 0); }), refused(ENOSYS));
  EXPECT_EQ(run([] { return syscall(SYS_chroot, "/"); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_open_by_handle_at, AT_FDCWD, nullptr, 0); }),
            refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_name_to_handle_at, AT_FDCWD, "/", nullptr, nullptr, 0); }),
            refused(ENOSYS));
  EXPECT_EQ(run([] { return syscall(SYS_init_module, nullptr, 0, ""); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_kexec_load, 0, 0, nullptr, 0); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, nullptr, 0); }),
            refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_clock_settime, CLOCK_REALTIME, nullptr); }),
            refused(EPERM));
}

TEST_F(SeccompFilterTest, AllowsOnlyHarmlessPersonalities) {
  EXPECT_EQ(run([] { return syscall(SYS_personality, 0xffffffffUL); }), (Outcome{PER_LINUX, 0, 0}));
  EXPECT_EQ(run([] { return syscall(SYS_personality, PER_LINUX32); }), (Outcome{PER_LINUX, 0, 0}));
  EXPECT_EQ(run([] { return syscall(SYS_personality, unsigned{PER_LINUX32} | UNAME26); }),
            (Outcome{PER_LINUX, 0, 0}));
  EXPECT_EQ(run([] { return syscall(SYS_personality, ADDR_NO_RANDOMIZE); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_personality, READ_IMPLIES_EXEC); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_personality, PER_BSD); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_personality, 0xfffffffeUL); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_personality, 0x80000000UL); }), refused(EPERM));
  EXPECT_EQ(run([] { return syscall(SYS_personality, 1UL << 32); }), refused(EPERM));
}

TEST_F(SeccompFilterTest, AllowsOrdinaryCalls) {
  EXPECT_GT(run([] { return syscall(SYS_getpid); }).ret, 0);
  EXPECT_GE(run(open_dev_null).ret, 0);
  EXPECT_EQ(run([]() -> long {
              char buffer[16];
              long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/comm", O_RDONLY);
              return fd < 0 ? fd : syscall(SYS_read, fd, buffer, sizeof buffer) > 0;
            }),
            (Outcome{1, 0, 0}));
  EXPECT_EQ(run([] { return syscall(SYS_get_mempolicy, nullptr, nullptr, 0, nullptr, 0); }),
            (Outcome{0, 0, 0}));
}

#if defined(__x86_64__)
// A classic-BPF interpreter for the instructions libseccomp emits, so the program's answer to
// a call of another architecture can be checked on a kernel that has no i386 entry (where
// `int $0x80` faults before seccomp sees it).
std::uint32_t evaluate(const std::vector<sock_filter>& program, const seccomp_data& data) {
  std::uint32_t a = 0, x = 0, memory[BPF_MEMWORDS] = {};
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& f = program[pc];
    switch (f.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (f.k + 4 > sizeof data) return 0;
        std::memcpy(&a, reinterpret_cast<const char*>(&data) + f.k, 4);
        break;
      case BPF_LD | BPF_MEM:
        a = memory[f.k % BPF_MEMWORDS];
        break;
      case BPF_LDX | BPF_MEM:
        x = memory[f.k % BPF_MEMWORDS];
        break;
      case BPF_ST:
        memory[f.k % BPF_MEMWORDS] = a;
        break;
      case BPF_STX:
        memory[f.k % BPF_MEMWORDS] = x;
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        a &= f.k;
        break;
      case BPF_MISC | BPF_TAX:
        x = a;
        break;
      case BPF_MISC | BPF_TXA:
        a = x;
        break;
      case BPF_JMP | BPF_JA:
        pc += f.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += a == f.k ? f.jt : f.jf;
        break;
      case BPF_JMP | BPF_JGT | BPF_K:
        pc += a > f.k ? f.jt : f.jf;
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        pc += a >= f.k ? f.jt : f.jf;
        break;
      case BPF_JMP | BPF_JSET | BPF_K:
        pc += (a & f.k) != 0 ? f.jt : f.jf;
        break;
      case BPF_RET | BPF_K:
        return f.k;
      default:
        ADD_FAILURE() << "instruction " << pc
                      << " has an opcode the test does not know: " << f.code;
        return 0;
    }
  }
  ADD_FAILURE() << "the program ran off its end";
  return 0;
}

TEST_F(SeccompFilterTest, ProgramKillsTheCallsOfOtherArchitectures) {
  struct stat st {};
  ASSERT_EQ(fstat(fd_, &st), 0);
  std::vector<sock_filter> program(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
  ASSERT_EQ(pread(fd_, program.data(), program.size() * sizeof(sock_filter), 0), st.st_size);
  auto answer = [&](std::uint32_t arch, int nr) {
    seccomp_data data{};
    data.arch = arch;
    data.nr = nr;
    return evaluate(program, data);
  };
  // The interpreter reads the program as the kernel does: native calls get their rules.
  EXPECT_EQ(answer(AUDIT_ARCH_X86_64, SYS_getpid), SECCOMP_RET_ALLOW);
  EXPECT_EQ(answer(AUDIT_ARCH_X86_64, SYS_keyctl), SECCOMP_RET_ERRNO | ENOSYS);
  EXPECT_EQ(answer(AUDIT_ARCH_I386, 20 /* getpid */), SECCOMP_RET_KILL_PROCESS);
  EXPECT_EQ(answer(AUDIT_ARCH_I386, 288 /* keyctl */), SECCOMP_RET_KILL_PROCESS);
  EXPECT_EQ(answer(AUDIT_ARCH_X86_64, 0x40000000 | 250 /* keyctl on x32 */),
            SECCOMP_RET_KILL_PROCESS);
}

// Live, on any x86_64 kernel: one without x32 would answer ENOSYS, the filter kills first.
TEST_F(SeccompFilterTest, KillsX32SystemCalls) {
  EXPECT_EQ(run([] { return syscall(0x40000000L | SYS_getpid); }), killed_by_sigsys());
}
#endif

// Runs the sandbox as switchboard does, with and without the program, and returns what the
// script printed and how bwrap exited.
struct BwrapRun {
  std::string output;
  int status = -1;
};

BwrapRun run_bwrap(int program_fd, const std::string& script) {
  std::vector<std::string> args = {
      "/usr/bin/bwrap", "--unshare-all", "--unshare-user", "--die-with-parent",
      "--ro-bind",      "/usr",          "/usr",           "--symlink",
      "usr/lib",        "/lib",          "--symlink",      "usr/lib64",
      "/lib64",         "--symlink",     "usr/bin",        "/bin",
      "--proc",         "/proc",         "--dev",          "/dev"};
  int inheritable = -1;
  if (program_fd >= 0) {
    inheritable = fcntl(program_fd, F_DUPFD, 10);  // without FD_CLOEXEC
    EXPECT_GE(inheritable, 0);
    args.insert(args.end(), {"--seccomp", std::to_string(inheritable)});
  }
  args.insert(args.end(), {"--", "/bin/sh", "-c", script});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char path[] = "PATH=/usr/bin:/bin";
  char* envp[] = {path, nullptr};

  int out[2];
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (inheritable >= 0) close(inheritable);
  BwrapRun result;
  EXPECT_EQ(rc, 0) << "cannot start bwrap: " << std::strerror(rc);
  if (rc == 0) {
    char buffer[4096];
    ssize_t n;
    while ((n = read(out[0], buffer, sizeof buffer)) > 0) result.output.append(buffer, n);
    EXPECT_EQ(waitpid(pid, &result.status, 0), pid);
  }
  close(out[0]);
  return result;
}

TEST_F(SeccompFilterTest, BwrapWithTheProgramRefusesUnshareAndStillRunsPrograms) {
  const std::string script =
      "if unshare -U true 2>/dev/null; then echo unshare-ran; else echo unshare-refused; fi; "
      "/bin/true && echo true-ran";
  // Without the filter, the sandbox can make user namespaces: the refusal below is the
  // filter's doing.
  BwrapRun open = run_bwrap(-1, script);
  EXPECT_EQ(open.output, "unshare-ran\ntrue-ran\n");
  BwrapRun filtered = run_bwrap(fd_, script);
  EXPECT_EQ(filtered.output, "unshare-refused\ntrue-ran\n");
  EXPECT_TRUE(WIFEXITED(filtered.status) && WEXITSTATUS(filtered.status) == 0)
      << "status " << filtered.status;
}

}  // namespace
}  // namespace sb::sandbox

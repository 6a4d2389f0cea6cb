// startup_probe: measures the time from exec to listening of a server program.
//
//   startup_probe --port PORT [--host 127.0.0.1] [--runs N] [--timeout-ms MS]
//                 [--settle-ms MS] [--log FILE] -- PROGRAM [ARGS...]
//
// For each run: take the time, fork, exec PROGRAM with ARGS (stdout and stderr to FILE, or to
// /dev/null), and try a TCP connect() to HOST:PORT every ~100 µs until one succeeds; the time
// between fork and that first accepted connection is the run's start-up time. With
// --settle-ms, the probe then waits that long and reads VmRSS and VmHWM of the child from
// /proc/PID/status. Then it sends SIGTERM and reaps the child (SIGKILL after 10 s).
//
// Output, one line per run and a summary, as key=value pairs for scripts:
//   run=1 ready_us=12345 [rss_kb=... hwm_kb=...] exit=0
//   summary runs=20 min_us=... median_us=... p90_us=... max_us=... [median_rss_kb=...]
// Exit status: 0 if every run became ready, 1 otherwise (a run that did not become ready is
// reported with ready_us=-1 and the reason), 2 for a usage error.
//
// Needs nothing from switchboard: it is a plain POSIX program.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int runs = 1;
  long timeout_ms = 30000;
  long settle_ms = -1;  // < 0: do not read RSS
  std::string log = "/dev/null";
  std::vector<char*> argv;  // program and its arguments, null-terminated
};

long long now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void sleep_us(long us) {
  timespec ts{us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "startup_probe: %s\n"
               "usage: startup_probe --port PORT [--host ADDR] [--runs N] [--timeout-ms MS]\n"
               "                     [--settle-ms MS] [--log FILE] -- PROGRAM [ARGS...]\n",
               msg);
  std::exit(2);
}

long parse_long(const char* s, const char* what) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0) {
    std::string m = std::string("bad value for ") + what + ": '" + s + "'";
    usage(m.c_str());
  }
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) usage(("missing value after " + a).c_str());
    const char* v = argv[++i];
    if (a == "--host") {
      o.host = v;
    } else if (a == "--port") {
      o.port = static_cast<int>(parse_long(v, "--port"));
    } else if (a == "--runs") {
      o.runs = static_cast<int>(parse_long(v, "--runs"));
    } else if (a == "--timeout-ms") {
      o.timeout_ms = parse_long(v, "--timeout-ms");
    } else if (a == "--settle-ms") {
      o.settle_ms = parse_long(v, "--settle-ms");
    } else if (a == "--log") {
      o.log = v;
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is required (1-65535)");
  if (o.runs <= 0) usage("--runs must be at least 1");
  if (i >= argc) usage("no program given after --");
  for (; i < argc; ++i) o.argv.push_back(argv[i]);
  o.argv.push_back(nullptr);
  return o;
}

// True if a TCP connection to addr is accepted (the connection is closed at once).
bool try_connect(const sockaddr_in& addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// VmRSS and VmHWM of pid in kB, from /proc/PID/status.
std::optional<std::pair<long, long>> read_rss(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  long rss = -1;
  long hwm = -1;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::atol(line.c_str() + 6);
  }
  if (rss < 0 || hwm < 0) return std::nullopt;
  return std::make_pair(rss, hwm);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal-") + std::to_string(WTERMSIG(status));
  return "?";
}

// Sends SIGTERM, waits up to 10 s, then SIGKILL. Returns the wait status.
int stop_child(pid_t pid) {
  kill(pid, SIGTERM);
  int status = 0;
  long long deadline = now_ns() + 10'000'000'000LL;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return 0;
    if (now_ns() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return status;
    }
    sleep_us(1000);
  }
}

long percentile(std::vector<long> sorted, double p) {
  if (sorted.empty()) return -1;
  std::sort(sorted.begin(), sorted.end());
  // Nearest rank.
  std::size_t rank =
      static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > sorted.size()) rank = sorted.size();
  return sorted[rank - 1];
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(o.port));
  if (inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1)
    usage("--host must be an IPv4 address");

  if (try_connect(addr)) {
    std::fprintf(stderr, "startup_probe: something already listens on %s:%d\n", o.host.c_str(),
                 o.port);
    return 1;
  }

  std::vector<long> times;
  std::vector<long> rss_values;
  bool all_ok = true;
  for (int run = 1; run <= o.runs; ++run) {
    long long start = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("startup_probe: fork");
      return 1;
    }
    if (pid == 0) {
      int fd = open(o.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
      }
      execvp(o.argv[0], o.argv.data());
      std::fprintf(stderr, "startup_probe: exec %s: %s\n", o.argv[0], std::strerror(errno));
      _exit(127);
    }

    long long deadline = start + o.timeout_ms * 1'000'000LL;
    long ready_us = -1;
    std::string failure;
    for (;;) {
      if (try_connect(addr)) {
        ready_us = static_cast<long>((now_ns() - start) / 1000);
        break;
      }
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        failure = "exited-before-listening:" + describe_status(status);
        pid = -1;
        break;
      }
      if (now_ns() > deadline) {
        failure = "timeout";
        break;
      }
      sleep_us(100);
    }

    std::string rss_text;
    if (ready_us >= 0 && o.settle_ms >= 0) {
      sleep_us(o.settle_ms * 1000);
      if (auto r = read_rss(pid)) {
        rss_values.push_back(r->first);
        rss_text = " rss_kb=" + std::to_string(r->first) + " hwm_kb=" + std::to_string(r->second);
      }
    }
    std::string exit_text = "-";
    if (pid > 0) exit_text = describe_status(stop_child(pid));

    if (ready_us >= 0) {
      times.push_back(ready_us);
      std::printf("run=%d ready_us=%ld%s exit=%s\n", run, ready_us, rss_text.c_str(),
                  exit_text.c_str());
    } else {
      all_ok = false;
      std::printf("run=%d ready_us=-1 failure=%s exit=%s\n", run, failure.c_str(),
                  exit_text.c_str());
    }
    std::fflush(stdout);

    // The next run must not find the previous child's socket still open.
    long long free_deadline = now_ns() + 5'000'000'000LL;
    while (try_connect(addr) && now_ns() < free_deadline) sleep_us(1000);
  }

  std::printf("summary runs=%zu failed=%d min_us=%ld median_us=%ld p90_us=%ld max_us=%ld",
              times.size(), o.runs - static_cast<int>(times.size()),
              times.empty() ? -1 : *std::min_element(times.begin(), times.end()),
              percentile(times, 50), percentile(times, 90), percentile(times, 100));
  if (!rss_values.empty()) std::printf(" median_rss_kb=%ld", percentile(rss_values, 50));
  std::printf("\n");
  return all_ok ? 0 : 1;
}

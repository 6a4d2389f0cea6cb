#include "daemon_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace sb::test {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Spawns the binary with stdio redirected to files; returns the pid.
pid_t spawn(const std::vector<std::string>& args, const fs::path& in, const fs::path& out,
            const fs::path& err, const std::vector<std::string>& env,
            const std::vector<std::string>& launcher = {},
            const std::string& binary = SWITCHBOARD_BINARY) {
  std::vector<std::string> argv_store = launcher;
  argv_store.push_back(binary);
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  env_store.insert(env_store.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = -1;
  int rc =
      posix_spawnp(&pid, argv_store.front().c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Completed run_cli(const std::vector<std::string>& args, const std::string& input,
                  const std::vector<std::string>& env) {
  TempDir io;
  auto in = io.path() / "in", out = io.path() / "out", err = io.path() / "err";
  std::ofstream(in, std::ios::binary) << input;
  pid_t pid = spawn(args, in, out, err, env);
  Completed result;
  if (pid < 0) return result;
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = decode_status(status);
  result.out = slurp(out);
  result.err = slurp(err);
  return result;
}

Daemon::Daemon(const fs::path& dir, std::string api_extra_toml, std::string extra_toml)
    : dir_(dir), config_file_(dir / "switchboard.toml"), port_(free_port()) {
  std::ofstream(config_file_) << "data_dir = \"" << (dir / "data").string() << "\"\n"
                              << extra_toml << "\n[api]\nlisten = \"127.0.0.1:" << port_ << "\"\n"
                              << api_extra_toml << "\n";
}

Daemon::~Daemon() {
  if (pid_ > 0) kill9();
}

bool Daemon::start(const std::vector<std::string>& env) {
  auto devnull = fs::path("/dev/null");
  pid_ = spawn({"run", "--config", config_file_.string()}, devnull, dir_ / "daemon.out",
               dir_ / "daemon.log", env, launcher_,
               binary_.empty() ? std::string(SWITCHBOARD_BINARY) : binary_.string());
  if (pid_ < 0) return false;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    HttpCall probe;
    probe.port = port_;
    probe.target = "/health";
    probe.timeout = 1s;
    if (auto reply = http_call(probe); reply && reply->status == 200) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::optional<int> Daemon::wait_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return decode_status(status);
    }
    std::this_thread::sleep_for(10ms);
  }
  return std::nullopt;
}

int Daemon::terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  if (auto code = wait_exit(30s)) return *code;
  kill9();
  return -1;
}

void Daemon::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

Result<HttpReply> Daemon::call(const std::string& method, const std::string& target,
                               const std::string& body, const std::string& token) const {
  HttpCall c;
  c.port = port_;
  c.method = method;
  c.target = target;
  c.body = body;
  c.token = token;
  return http_call(c);
}

boost::json::value Daemon::json(const std::string& method, const std::string& target,
                                int expected_status, const std::string& body,
                                const std::string& token) const {
  auto reply = call(method, target, body, token);
  if (!reply) {
    ADD_FAILURE() << method << " " << target << ": " << reply.error().message;
    return nullptr;
  }
  EXPECT_EQ(reply->status, expected_status) << method << " " << target << ": " << reply->body;
  boost::system::error_code ec;
  auto v = boost::json::parse(reply->body, ec);
  EXPECT_FALSE(ec) << "not JSON: " << reply->body;
  return v;
}

std::string Daemon::log() const { return slurp(dir_ / "daemon.log"); }

int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

RawConnection::RawConnection(std::uint16_t port) : fd_(connect_loopback(port)) {}

RawConnection::~RawConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawConnection::send(const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::string RawConnection::read_response(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto header_end = pending_.find("\r\n\r\n");
    if (header_end != std::string::npos) {
      std::size_t length = 0;
      auto lower = pending_.substr(0, header_end);
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (auto p = lower.find("content-length:"); p != std::string::npos)
        length = std::stoul(lower.substr(p + 15));
      if (pending_.size() >= header_end + 4 + length) {
        auto response = pending_.substr(0, header_end + 4 + length);
        pending_.erase(0, header_end + 4 + length);
        return response;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {};
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return {};
    char buf[65536];
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return {};
    pending_.append(buf, static_cast<std::size_t>(n));
  }
}

bool RawConnection::closed_by_peer(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[4096];
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return true;
    pending_.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace sb::test

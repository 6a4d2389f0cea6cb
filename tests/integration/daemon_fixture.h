#pragma once
// Test harness: runs the real build/switchboard binary in a temporary directory with a
// config that listens on a free loopback port, and talks to it over HTTP.

#include <sys/types.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "support/temp_dir.h"

namespace sb::test {

// A free TCP port on 127.0.0.1 (bound once, then released).
std::uint16_t free_port();

struct Completed {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the switchboard binary with `args` to completion (stdin from `input`).
Completed run_cli(const std::vector<std::string>& args, const std::string& input = "",
                  const std::vector<std::string>& env = {});

class Daemon {
 public:
  // Writes `extra_toml` after the generated data_dir and [api] listen lines.
  explicit Daemon(const std::filesystem::path& dir, std::string api_extra_toml = "",
                  std::string extra_toml = "");
  ~Daemon();  // kills the process if still running

  // Starts the daemon as `launcher... binary run --config …` (e.g. setpriv to run it as
  // another user, a copy of the binary that user can reach) instead of the test build.
  void launch_with(std::vector<std::string> launcher, std::filesystem::path binary) {
    launcher_ = std::move(launcher);
    binary_ = std::move(binary);
  }

  // Starts the process and waits until /health answers. False if it exited or timed out.
  bool start(const std::vector<std::string>& env = {});
  // SIGTERM and wait; the exit code (or 128+signal).
  int terminate();
  // SIGKILL and wait.
  void kill9();
  // Waits for the process to exit by itself; the exit code or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  Result<HttpReply> call(const std::string& method, const std::string& target,
                         const std::string& body = "", const std::string& token = "") const;
  // The same, failing the test if the call fails; parses the JSON body.
  boost::json::value json(const std::string& method, const std::string& target, int expected_status,
                          const std::string& body = "", const std::string& token = "") const;

  std::uint16_t port() const { return port_; }
  const std::filesystem::path& config_file() const { return config_file_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::string log() const;  // what the daemon wrote to stderr so far
  pid_t pid() const { return pid_; }

 private:
  std::filesystem::path dir_;
  std::filesystem::path config_file_;
  std::uint16_t port_;
  pid_t pid_ = -1;
  std::vector<std::string> launcher_;
  std::filesystem::path binary_;
};

// A TCP connection to 127.0.0.1:`port` with TCP_NODELAY; the fd, or -1 if it failed.
int connect_loopback(std::uint16_t port);

// A plain TCP connection for tests of the HTTP layer itself (keep-alive, timeouts).
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port);
  ~RawConnection();
  bool connected() const { return fd_ >= 0; }
  bool send(const std::string& bytes);
  // Reads one HTTP response (headers and Content-Length body). Empty on close or timeout.
  std::string read_response(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // True if the server closes the connection within `timeout`.
  bool closed_by_peer(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::string pending_;
};

}  // namespace sb::test

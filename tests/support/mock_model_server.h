#pragma once
// The scripted mock model server (tests/support/mock_model_server.py) as a child process of
// a test, on a loopback port it picks itself, killed when the object goes away.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sb::test {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The mock model server as a child process, killed when the object goes away.
class MockServer {
 public:
  // `extra_args`: more command-line options, e.g. {"--require-key", key}.
  MockServer(const std::filesystem::path& dir, const std::string& script_json,
             const std::vector<std::string>& extra_args = {})
      : dir_(dir) {
    const std::filesystem::path script = dir / "script.json";
    if (!script_json.empty()) std::ofstream(script) << script_json;
    std::vector<std::string> args{
        "python3",     SWITCHBOARD_TEST_DATA "/../support/mock_model_server.py",
        "--port",      "0",
        "--port-file", (dir / "port").string(),
        "--log",       log_path().string()};
    if (!script_json.empty()) args.insert(args.end(), {"--script", script.string()});
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "python3", nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string text = slurp(dir / "port");
      if (!text.empty() && text.back() == '\n') {
        port_ = static_cast<std::uint16_t>(std::stoi(text));
        break;
      }
      std::this_thread::sleep_for(
          std::chrono::milliseconds(10));  // waiting for the child's handshake file
    }
  }
  ~MockServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::filesystem::path log_path() const { return dir_ / "mock.jsonl"; }

  // The log lines of the given kind ("request" or "hold").
  std::vector<boost::json::object> log(std::string_view kind = "request") const {
    std::vector<boost::json::object> out;
    std::istringstream lines(slurp(log_path()));
    for (std::string line; std::getline(lines, line);) {
      auto v = boost::json::parse(line).as_object();
      if (v["kind"].as_string() == kind) out.push_back(v);
    }
    return out;
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace sb::test

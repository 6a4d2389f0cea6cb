#pragma once
// The aiosmtpd test sink (tests/support/smtp_sink.py) as a child process of a test, on a
// loopback port it picks itself, killed when the object goes away. Each message it accepted
// is one JSON object (see the script's header for the fields).

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/child_process.h"

namespace sb::test {

struct SmtpSinkOptions {
  std::filesystem::path tls_cert, tls_key;  // set: STARTTLS (required), or implicit TLS
  bool implicit_tls = false;
  std::string auth;              // "user:password": AUTH offered and required
  std::string auth_mechanisms;   // "PLAIN,LOGIN" when empty
  std::string script;            // answers to the end of DATA, "451,250"
  std::string rcpt_script;       // answers to RCPT TO, "250,550"
  std::uint64_t size_limit = 0;  // 0: the sink's default
};

class SmtpSink {
 public:
  // Starts the sink with its files under `dir` (which must outlive it); throws
  // std::runtime_error with the sink's log when it does not come up within 20 s.
  SmtpSink(const std::filesystem::path& dir, const SmtpSinkOptions& options = {})
      : out_(dir / "sink-out"), log_(dir / "sink.log") {
    const auto port_file = dir / "sink-port";
    std::vector<std::string> args{"/usr/bin/python3",
                                  SWITCHBOARD_TEST_DATA "/../support/smtp_sink.py",
                                  "--port",
                                  "0",
                                  "--port-file",
                                  port_file.string(),
                                  "--out",
                                  out_.string()};
    if (!options.tls_cert.empty()) {
      args.insert(args.end(),
                  {"--tls-cert", options.tls_cert.string(), "--tls-key", options.tls_key.string()});
    }
    if (options.implicit_tls) args.push_back("--implicit-tls");
    if (!options.auth.empty()) args.insert(args.end(), {"--auth", options.auth});
    if (!options.auth_mechanisms.empty()) {
      args.insert(args.end(), {"--auth-mechanisms", options.auth_mechanisms});
    }
    if (!options.script.empty()) args.insert(args.end(), {"--script", options.script});
    if (!options.rcpt_script.empty()) {
      args.insert(args.end(), {"--rcpt-script", options.rcpt_script});
    }
    if (options.size_limit > 0) {
      args.insert(args.end(), {"--size-limit", std::to_string(options.size_limit)});
    }
    pid_ = spawn_logged(std::move(args), log_);
    port_ = wait_for_port_file(pid_, port_file);
    if (port_ != 0) return;
    stop();
    throw std::runtime_error("the SMTP sink did not start: " + read_file(log_));
  }
  ~SmtpSink() { stop(); }
  SmtpSink(const SmtpSink&) = delete;
  SmtpSink& operator=(const SmtpSink&) = delete;

  std::uint16_t port() const { return port_; }
  std::string log() const { return read_file(log_); }

  // The messages accepted so far, in order of arrival.
  std::vector<boost::json::object> messages() const {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(out_, ec)) {
      if (entry.path().extension() == ".json") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    std::vector<boost::json::object> out;
    for (const auto& file : files) out.push_back(boost::json::parse(read_file(file)).as_object());
    return out;
  }

 private:
  void stop() { kill_child(pid_); }

  std::filesystem::path out_, log_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace sb::test

#pragma once
// The scripted JMAP server with event-source push (tests/support/jmap_push_server.py) as a
// child process of a test, on a loopback port it picks itself, killed when the object goes
// away. It stands in for a JMAP provider with push, which Debian's Cyrus is not; the test
// drives it through its control interface (deliver a message, cut the streams, forget the
// change history) and reads back which requests came in.
//
// Errors throw std::runtime_error: a test cannot go on without its peer.

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "support/child_process.h"

namespace sb::test {

class JmapPushServer {
 public:
  // Starts the server with its files under `dir` (which must outlive it); it requires Basic
  // authentication as `account`:`password`. Throws with the server's log when it does not
  // come up within 20 s.
  JmapPushServer(const std::filesystem::path& dir, std::string account = "bot@example.org",
                 std::string password = "push-secret")
      : account_(std::move(account)), password_(std::move(password)), log_(dir / "push.log") {
    const auto port_file = dir / "push-port";
    std::vector<std::string> args{
        "/usr/bin/python3", SWITCHBOARD_TEST_DATA "/../support/jmap_push_server.py",
        "--port",           "0",
        "--port-file",      port_file.string(),
        "--account",        account_,
        "--user",           account_,
        "--password",       password_};
    pid_ = spawn_logged(std::move(args), log_);
    port_ = wait_for_port_file(pid_, port_file);
    if (port_ != 0) return;
    stop();
    throw std::runtime_error("the JMAP push server did not start: " + read_file(log_));
  }
  ~JmapPushServer() { stop(); }
  JmapPushServer(const JmapPushServer&) = delete;
  JmapPushServer& operator=(const JmapPushServer&) = delete;

  std::uint16_t port() const { return port_; }
  const std::string& account() const { return account_; }
  const std::string& password() const { return password_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The session resource; base_url() alone makes a client use /.well-known/jmap (a 301 here).
  std::string session_url() const { return base_url() + "/jmap/session"; }
  std::string log() const { return read_file(log_); }

  // Adds `raw` to the mailbox with `role` ("inbox", "sent", "drafts"), advances the Email
  // state and pushes it to the open streams. The new email's id.
  std::string deliver(const std::string& raw, const std::string& role = "inbox",
                      bool seen = false) {
    const auto answer =
        control("POST", "/_control/deliver?mailbox=" + role + (seen ? "&seen=1" : ""), raw);
    return std::string(answer.at("id").as_string());
  }
  // Cuts every open event stream; how many there were.
  std::int64_t drop_streams() {
    return control("POST", "/_control/drop-streams").at("dropped").as_int64();
  }
  // From now on, Email/changes from any earlier state answers cannotCalculateChanges.
  void forget_changes() { control("POST", "/_control/forget-changes"); }
  // While paused, changes are not pushed (the streams stay open and keep pinging).
  void pause_push(bool on) {
    control("POST", std::string("/_control/pause-push?on=") + (on ? "1" : "0"));
  }
  // Every request so far, in order: {"kind": "session"|"api"|"download"|"stream"|
  // "stream-end"|"auth-failed", "path", "calls" (api), "last_event_id" (stream), "t"}.
  std::vector<boost::json::object> requests() {
    std::vector<boost::json::object> out;
    const boost::json::object answer = control("GET", "/_control/log");
    for (const auto& e : answer.at("entries").as_array()) {
      out.push_back(e.as_object());
    }
    return out;
  }
  // Every email: {"id", "mailboxes": [roles], "keywords": {…}, "messageId": [ids]}.
  std::vector<boost::json::object> emails() {
    std::vector<boost::json::object> out;
    const boost::json::object answer = control("GET", "/_control/emails");
    for (const auto& e : answer.at("emails").as_array()) {
      out.push_back(e.as_object());
    }
    return out;
  }

 private:
  boost::json::object control(const std::string& method, const std::string& target,
                              const std::string& body = "") {
    HttpCall call;
    call.port = port_;
    call.method = method;
    call.target = target;
    call.body = body;
    const auto reply = http_call(call);
    if (!reply || reply->status != 200) {
      throw std::runtime_error(
          "push server control " + target + " failed: " +
          (reply ? std::to_string(reply->status) + " " + reply->body : reply.error().message));
    }
    return boost::json::parse(reply->body).as_object();
  }
  void stop() { kill_child(pid_); }

  std::string account_, password_;
  std::filesystem::path log_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace sb::test

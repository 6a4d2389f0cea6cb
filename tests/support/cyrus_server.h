#pragma once
// A throwaway Cyrus IMAP 3.6 instance serving JMAP (Debian cyrus-common + cyrus-caldav), for
// the JMAP tests: its configuration, mail spool and SASL users under a directory of the
// test, HTTP (JMAP) and LMTP on loopback ports picked at start, its SMTP relay an aiosmtpd
// sink (tests/support/smtp_sink.h) started first, as Cyrus needs it up before it answers
// Identity/get. /work/shared/TESTING-PEERS.md "Cyrus" explains each setting.
//
// Each user's account exists from the start: one message ("Welcome", marked $seen) is
// delivered to it by LMTP, which creates Inbox, Drafts, Sent and Trash with their roles.
// Users log in as their full address (virtdomains: userid), so Identity/get returns it.
//
// Checks of what the server holds go through tests/support/mail_tool.py (Python urllib
// speaking JMAP itself), never through the code under test.
//
// As root, Cyrus runs as the `cyrus` user: the instance is chowned to cyrus:mail and `dir`
// gets o+x so that it can reach it. Cyrus logs only to syslog; without a listener on
// /dev/log there are no server logs (the master's own stderr is in <dir>/cyrus/master.log).
//
// Errors throw std::runtime_error with what is known: a test cannot go on without its peer.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_client.h"
#include "support/child_process.h"
#include "support/run_process.h"
#include "support/smtp_sink.h"

namespace sb::test {

inline constexpr const char* kMailTool = SWITCHBOARD_TEST_DATA "/../support/mail_tool.py";

// A free TCP port on 127.0.0.1 (bound once, then released for the server to take).
inline std::uint16_t pick_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot pick a loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct CyrusUser {
  std::string address;  // the login and the account id, "bot@example.org"
  std::string password;
};

struct CyrusOptions {
  std::vector<CyrusUser> users{{"bot@example.org", "bot-secret"},
                               {"alice@example.com", "alice-secret"}};
  SmtpSinkOptions relay;  // e.g. rcpt_script "550" to make every submission fail
};

// Two Cyrus instances running at once on this machine break each other (requests to one
// are refused or cut while the other runs; one at a time they are fine): the test
// processes CTest runs in parallel take turns through an exclusive lock on a file.
class CyrusTurn {
 public:
  CyrusTurn()
      : fd_(::open("/tmp/switchboard-test-cyrus.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666)) {
    if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) {
      throw std::runtime_error("cannot lock /tmp/switchboard-test-cyrus.lock");
    }
  }
  ~CyrusTurn() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  CyrusTurn(const CyrusTurn&) = delete;
  CyrusTurn& operator=(const CyrusTurn&) = delete;

 private:
  int fd_;
};

class CyrusServer {
 public:
  // Starts the relay, then Cyrus, under `dir` (which must outlive the object), and creates
  // the users' accounts. Throws std::runtime_error (with the master's output) when Cyrus
  // does not answer HTTP within 20 s or a step fails.
  explicit CyrusServer(const std::filesystem::path& dir, CyrusOptions options = {})
      : options_(std::move(options)), root_(dir / "cyrus") {
    const auto began = std::chrono::steady_clock::now();
    std::filesystem::create_directories(dir / "relay");
    relay_ = std::make_unique<SmtpSink>(dir / "relay", options_.relay);
    for (const char* sub : {"lib/db", "lib/socket", "lib/log", "lib/msg", "lib/proc", "lib/quota",
                            "lib/sieve", "lib/user", "lib/ptclient", "lib/sync", "lib/lock",
                            "lib/md5", "run", "spool", "scratch"}) {
      std::filesystem::create_directories(root_ / sub);
    }
    http_port_ = pick_loopback_port();
    lmtp_port_ = pick_loopback_port();
    write_config();
    for (const auto& user : options_.users) {
      const auto r = run_process({"/usr/sbin/saslpasswd2", "-f", (root_ / "sasldb2").string(), "-u",
                                  "localhost", "-c", "-p", user.address},
                                 user.password, scratch());
      if (r.exit_code != 0) throw std::runtime_error("saslpasswd2 " + user.address + ": " + r.err);
    }
    if (::geteuid() == 0) {
      // Cyrus drops to the cyrus user: it must own its instance and be able to reach it.
      std::filesystem::permissions(dir, std::filesystem::perms::others_exec,
                                   std::filesystem::perm_options::add);
      const auto r = run_process({"/bin/chown", "-R", "cyrus:mail", root_.string()}, "", dir);
      if (r.exit_code != 0) throw std::runtime_error("chown cyrus:mail: " + r.err);
    }
    start_master();
    started_in_ = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - began);
    try {
      create_accounts();
    } catch (...) {
      stop();  // the destructor does not run for a throwing constructor
      throw;
    }
    ready_in_ = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - began);
  }
  ~CyrusServer() { stop(); }
  CyrusServer(const CyrusServer&) = delete;
  CyrusServer& operator=(const CyrusServer&) = delete;

  // Ends the master (which ends its services) and waits for it; SIGKILL to the master after
  // 5 s. Idempotent.
  void stop() {
    if (watchdog_ <= 0) return;
    ::kill(watchdog_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (::waitpid(watchdog_, nullptr, WNOHANG) != watchdog_) {
      if (std::chrono::steady_clock::now() > deadline) {
        const std::string pid = read_file(root_ / "run" / "master.pid");
        if (const long master = std::strtol(pid.c_str(), nullptr, 10); master > 1) {
          ::kill(static_cast<pid_t>(master), SIGKILL);
        }
        ::kill(watchdog_, SIGKILL);
        ::waitpid(watchdog_, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the master shutting down
    }
    watchdog_ = -1;
  }

  std::uint16_t http_port() const { return http_port_; }
  std::uint16_t lmtp_port() const { return lmtp_port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  // The session resource itself; base_url() alone makes a client use /.well-known/jmap,
  // which Cyrus answers with a 301 to this.
  std::string session_url() const { return base_url() + "/jmap"; }
  const std::vector<CyrusUser>& users() const { return options_.users; }
  const std::string& password(const std::string& address) const {
    for (const auto& user : options_.users) {
      if (user.address == address) return user.password;
    }
    throw std::runtime_error("no Cyrus user " + address);
  }
  SmtpSink& relay() { return *relay_; }
  // Until HTTP answered / until the accounts were set up too (relay start included).
  std::chrono::milliseconds started_in() const { return started_in_; }
  std::chrono::milliseconds ready_in() const { return ready_in_; }
  std::string watchdog_log() const { return read_file(root_ / "master.log"); }

  // Delivers `raw` (CRLF line ends) to `to` by LMTP. Throws when Cyrus refuses it.
  void deliver(const std::string& to, const std::string& raw,
               const std::string& from = "sender@example.net") {
    const auto r = run_process({"/usr/bin/python3", kMailTool, "lmtp", "--port",
                                std::to_string(lmtp_port_), "--from", from, "--to", to},
                               raw, scratch());
    if (r.exit_code != 0) throw std::runtime_error("LMTP delivery to " + to + ": " + r.err);
  }

  // The emails in `user`'s mailbox with `role` ("inbox", "sent", "drafts", "trash"), by
  // receivedAt, as mail_tool.py jmap-emails describes them.
  std::vector<boost::json::object> emails(const std::string& user, const std::string& role) {
    const auto r = tool({"jmap-emails", "--role", role}, user, "");
    std::vector<boost::json::object> out;
    const boost::json::value parsed = boost::json::parse(r);
    for (const auto& item : parsed.as_array()) out.push_back(item.as_object());
    return out;
  }

  // The email with Message-ID `message_id` (without <>) in that mailbox, or nothing. Find
  // emails this way, not by position: receivedAt has whole seconds, so the order of mail
  // delivered within one second is not defined.
  std::optional<boost::json::object> email(const std::string& user, const std::string& role,
                                           const std::string& message_id) {
    for (auto& item : emails(user, role)) {
      const auto* ids = item.if_contains("messageId");
      if (ids && ids->is_array() && !ids->as_array().empty() &&
          ids->as_array().front().is_string() &&
          ids->as_array().front().get_string() == message_id) {
        return std::move(item);
      }
    }
    return std::nullopt;
  }

  void set_keyword(const std::string& user, const std::string& email_id, const std::string& keyword,
                   bool value) {
    tool({"jmap-keyword", "--id", email_id, "--keyword", keyword, "--value",
          value ? "true" : "false"},
         user, "");
  }

  // Any JMAP calls as `user` (accountId filled in); the whole response.
  boost::json::object jmap(const std::string& user, const boost::json::array& calls) {
    boost::json::object request{{"methodCalls", calls}};
    return boost::json::parse(tool({"jmap-call"}, user, boost::json::serialize(request)))
        .as_object();
  }

 private:
  CyrusTurn turn_;  // first: taken before anything starts, released after everything stopped
  std::filesystem::path scratch() const { return root_ / "scratch"; }

  void create_accounts() {
    std::vector<std::string> args{
        "/usr/bin/python3", kMailTool,          "lmtp", "--port", std::to_string(lmtp_port_),
        "--from",           "setup@example.net"};
    for (const auto& user : options_.users) args.insert(args.end(), {"--to", user.address});
    const auto r = run_process(args,
                               "From: setup@example.net\r\nTo: undisclosed-recipients:;\r\n"
                               "Subject: Welcome\r\nMessage-ID: <welcome." +
                                   std::to_string(http_port_) +
                                   "@example.net>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                                   "\r\nThis message creates the account.\r\n",
                               scratch());
    if (r.exit_code != 0) throw std::runtime_error("LMTP delivery of the welcome: " + r.err);
    for (const auto& user : options_.users) {
      tool({"jmap-keyword", "--role", "inbox", "--keyword", "$seen", "--value", "true"},
           user.address, "");
    }
  }

  std::string tool(std::vector<std::string> args, const std::string& user,
                   const std::string& input) {
    std::vector<std::string> full{"/usr/bin/python3", kMailTool, args.front(), "--session",
                                  session_url(),      "--user",  user,         "--password",
                                  password(user)};
    full.insert(full.end(), args.begin() + 1, args.end());
    const auto r = run_process(full, input, scratch());
    if (r.exit_code != 0) throw std::runtime_error(args.front() + " as " + user + ": " + r.err);
    return r.out;
  }

  void write_config() {
    const std::string d = root_.string();
    std::string cyrus_user = "cyrus";
    if (::geteuid() != 0) {
      const passwd* me = ::getpwuid(::geteuid());
      if (me == nullptr) throw std::runtime_error("cannot name the current user for Cyrus");
      cyrus_user = me->pw_name;
    }
    std::ofstream conf(root_ / "imapd.conf");
    conf << "configdirectory: " << d << "/lib\n"
         << "partition-default: " << d << "/spool\n"
         << "defaultpartition: default\n"
         << "proc_path: " << d << "/lib/proc\n"
         << "mboxname_lockpath: " << d << "/lib/lock\n"
         << "lmtpsocket: " << d << "/lib/socket/lmtp\n"
         << "idlesocket: " << d << "/lib/socket/idle\n"
         << "notifysocket: " << d << "/lib/socket/notify\n"
         << "cyrus_user: " << cyrus_user << "\n"
         << "servername: localhost\n"
         << "admins: admin\n"
         << "altnamespace: yes\n"
         << "unixhierarchysep: yes\n"
         << "virtdomains: userid\n"
         << "allowplaintext: yes\n"
         << "sasl_pwcheck_method: auxprop\n"
         << "sasl_auxprop_plugin: sasldb\n"
         << "sasl_sasldb_path: " << d << "/sasldb2\n"
         << "sasl_mech_list: PLAIN LOGIN\n"
         << "httpmodules: jmap\n"
         << "conversations: yes\n"
         << "conversations_db: twoskip\n"
         << "autocreate_post: yes\n"
         << "autocreate_quota: 0\n"
         << "autocreate_inbox_folders: Drafts | Sent | Trash\n"
         << "xlist-drafts: Drafts\n"
         << "xlist-sent: Sent\n"
         << "xlist-trash: Trash\n"
         << "smtp_backend: host\n"
         << "smtp_host: 127.0.0.1:" << relay_->port() << "/noauth\n";
    std::ofstream services(root_ / "cyrus.conf");
    services << "START {\n  recover cmd=\"/usr/lib/cyrus/bin/ctl_cyrusdb -C " << d
             << "/imapd.conf -r\"\n}\nSERVICES {\n"
             << "  http cmd=\"/usr/lib/cyrus/bin/httpd -C " << d
             << "/imapd.conf -U 30\" listen=\"127.0.0.1:" << http_port_ << "\" prefork=0\n"
             << "  lmtp cmd=\"/usr/lib/cyrus/bin/lmtpd -C " << d
             << "/imapd.conf -a\" listen=\"127.0.0.1:" << lmtp_port_ << "\" prefork=0\n}\n";
  }

  void start_master() {
    const std::string d = root_.string();
    // The master runs in the foreground (no -d) under a watchdog shell, our child: stop()
    // sends the shell SIGTERM, which ends the master and waits for it; and when the test
    // process dies without stopping it (a crash, an abort by a sanitizer), the shell notices
    // within a second and ends the master, instead of leaving it running on its ports.
    static constexpr const char* kWatchdog =
        "parent=$1; shift; \"$@\" & child=$!; "
        "trap 'kill -TERM $child 2>/dev/null; wait $child; exit 0' TERM; "
        "while kill -0 \"$parent\" 2>/dev/null && kill -0 $child 2>/dev/null; do "
        "sleep 1 & wait $!; done; kill -TERM $child 2>/dev/null; wait $child";
    std::vector<std::string> args{"/bin/sh",
                                  "-c",
                                  kWatchdog,
                                  "cyrus-watchdog",
                                  std::to_string(::getpid()),
                                  "/usr/lib/cyrus/bin/master",
                                  "-C",
                                  d + "/imapd.conf",
                                  "-M",
                                  d + "/cyrus.conf",
                                  "-p",
                                  d + "/run/master.pid"};
    watchdog_ = spawn_logged(std::move(args), root_ / "master.log");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (watchdog_ > 0 && std::chrono::steady_clock::now() < deadline) {
      HttpCall probe;
      probe.port = http_port_;
      probe.target = "/jmap";
      probe.timeout = std::chrono::milliseconds(2000);
      const auto reply = http_call(probe);
      if (reply && reply->status > 0) return;  // 401 without credentials: httpd answers
      if (::waitpid(watchdog_, nullptr, WNOHANG) == watchdog_) {
        watchdog_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the master starting
    }
    stop();
    throw std::runtime_error(
        "Cyrus did not answer HTTP on 127.0.0.1:" + std::to_string(http_port_) +
        " within 20 s; master output: " + watchdog_log() + " (the rest is in syslog)");
  }

  CyrusOptions options_;
  std::filesystem::path root_;
  std::unique_ptr<SmtpSink> relay_;
  std::uint16_t http_port_ = 0, lmtp_port_ = 0;
  pid_t watchdog_ = -1;  // the watchdog shell around the master
  std::chrono::milliseconds started_in_{0}, ready_in_{0};
};

}  // namespace sb::test

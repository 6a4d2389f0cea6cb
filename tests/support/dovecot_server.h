#pragma once
// A throwaway Dovecot 2.3 (IMAP with IDLE, LMTP for delivery) as a child process of a test:
// its config, users, sockets, log and Maildirs live in a temporary directory of its own,
// its ports are picked on the loopback at start-up, and everything is torn down when the
// object goes away (also when the test fails). Starting takes tens of milliseconds,
// stopping up to a second.
//
// Usage:
//   TestCertificates certs(dir.path());
//   DovecotServer dovecot({.tls_cert = certs.server_cert(), .tls_key = certs.server_key(),
//                          .users = {{"alice@example.com", "secret"}}});
//   dovecot.deliver("alice@example.com", "From: ...\r\n\r\nHi\r\n");   // LMTP
//   dovecot.messages("alice@example.com")[0].seen()                     // reads the Maildir
//   dovecot.restart();                                                  // same ports, same mail
//
// Ports: imap_port() speaks plain IMAP and offers STARTTLS when ssl is on; imaps_port() is
// implicit TLS (ssl on only); lmtp_port() takes deliveries. Plain-text LOGIN is allowed
// everywhere (disable_plaintext_auth = no) so tests can choose.
//
// Differences from a stock server, each for the tests' sake: no failure delay on a refused
// login beyond Dovecot's 0.5 s batch, and no auth penalty (Dovecot otherwise answers each
// further failed login from the same IP seconds later, up to 15 s, which would hide a client
// that retries in a tight loop).
//
// As root (CI), mail is owned by `nobody` (Dovecot refuses uid 0 for mail); otherwise every
// process runs as the current user, without chroot.
//
// Errors throw std::runtime_error with Dovecot's log: a test cannot go on without its peer.
// Threading: use from one thread (the test's).

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "support/child_process.h"

namespace sb::test {

struct DovecotOptions {
  // TLS: STARTTLS on imap_port() and implicit TLS on imaps_port(). Off: plain IMAP only.
  bool ssl = true;
  std::filesystem::path tls_cert, tls_key;  // PEM; required when ssl is on
  // Off: IDLE is left out of CAPABILITY (before and after login), as on a server without it.
  bool idle = true;
  std::vector<std::pair<std::string, std::string>> users;  // address, password
};

// One message file of a Maildir INBOX as Dovecot left it.
struct MaildirMessage {
  std::filesystem::path path;
  std::uint32_t uid = 0;  // from Dovecot's UID list; 0 before Dovecot has seen the file
  std::string flags;      // the Maildir info letters after ":2," ('S' is \Seen); "" in new/
  std::string data;       // the bytes as stored (Dovecot keeps them with LF line ends)

  bool seen() const { return flags.find('S') != std::string::npos; }
  // The Message-ID header's value with its angle brackets, or "".
  std::string message_id() const {
    std::istringstream in(data);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) break;  // the end of the header
      if (line.size() < 11) continue;
      std::string name = line.substr(0, 11);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name != "message-id:") continue;
      const auto first = line.find_first_not_of(" \t", 11);
      const auto last = line.find_last_not_of(" \t");
      return first == std::string::npos ? "" : line.substr(first, last - first + 1);
    }
    return "";
  }
};

// A blocking, line-oriented TCP client for the loopback with a deadline on every step, used
// to talk LMTP to Dovecot (and by tests for a raw IMAP exchange). Throws std::runtime_error.
class LineClient {
 public:
  LineClient(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : timeout_(timeout) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
    }
  }
  ~LineClient() { ::close(fd_); }
  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed: the peer closed the connection");
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // The next line without its CRLF. Throws on timeout or when the peer closes first.
  std::string read_line() {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      const auto end = buffer_.find("\r\n");
      if (end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        throw std::runtime_error("no answer within the timeout; got so far: " + buffer_);
      }
      char chunk[4096];
      const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) throw std::runtime_error("the peer closed the connection; got: " + buffer_);
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // An SMTP/LMTP reply (all its lines joined by '\n'); throws unless its code starts with
  // `expect`.
  std::string smtp_reply(char expect) {
    std::string reply;
    for (;;) {
      std::string line = read_line();
      reply += (reply.empty() ? "" : "\n") + line;
      if (line.size() < 4 || line[3] != '-') break;
    }
    if (reply.empty() || reply[0] != expect) throw std::runtime_error("LMTP: " + reply);
    return reply;
  }

  // An IMAP command's untagged lines and its tagged answer (last). No literals.
  std::vector<std::string> imap(const std::string& tag, const std::string& command) {
    send(tag + " " + command + "\r\n");
    std::vector<std::string> lines;
    for (;;) {
      lines.push_back(read_line());
      if (lines.back().rfind(tag + " ", 0) == 0) return lines;
    }
  }

 private:
  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
};

class DovecotServer {
 public:
  // Writes the configuration and starts Dovecot; throws with its log when it is not
  // accepting connections within 20 s.
  explicit DovecotServer(DovecotOptions options) : options_(std::move(options)) {
    if (options_.ssl && (options_.tls_cert.empty() || options_.tls_key.empty())) {
      throw std::invalid_argument("DovecotOptions: ssl needs tls_cert and tls_key");
    }
    std::string pattern =
        (std::filesystem::temp_directory_path() / "switchboard-dovecot-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    // The mail processes run as the mail user and must reach their home below here.
    std::filesystem::permissions(dir_, std::filesystem::perms(0711));
    mail_owner();
    std::filesystem::create_directories(dir_ / "mail");
    chown_mail(dir_ / "mail");
    for (const auto& [user, password] : options_.users) users_[user] = password;
    write_users();
    // Another process may take a picked port before Dovecot binds it: pick again.
    for (int attempt = 1;; ++attempt) {
      pick_ports();
      write_config();
      try {
        start();
        return;
      } catch (const std::runtime_error&) {
        if (attempt == 3 || log().find("Address already in use") == std::string::npos) {
          remove_dir();
          throw;
        }
      }
    }
  }

  ~DovecotServer() {
    stop();
    remove_dir();
  }
  DovecotServer(const DovecotServer&) = delete;
  DovecotServer& operator=(const DovecotServer&) = delete;

  std::uint16_t imap_port() const { return imap_port_; }
  std::uint16_t imaps_port() const { return imaps_port_; }  // 0 without ssl
  std::uint16_t lmtp_port() const { return lmtp_port_; }
  const std::filesystem::path& dir() const { return dir_; }
  // How long the last start took until every port accepted connections.
  std::chrono::milliseconds start_duration() const { return start_duration_; }
  bool running() const { return pid_ > 0; }

  // Adds (or changes the password of) a user. While running, waits 1.1 s: Dovecot looks at
  // its users file at most once a second and may have done so this second already.
  void add_user(const std::string& user, const std::string& password) {
    users_[user] = password;
    write_users();
    if (running()) std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  }

  // Delivers `data` (RFC 5322 bytes, CRLF line ends) to `user`'s INBOX over LMTP; returns
  // once Dovecot has saved it. Throws with the server's answer on refusal.
  void deliver(const std::string& user, std::string_view data) {
    LineClient lmtp(lmtp_port_);
    lmtp.smtp_reply('2');
    lmtp.send("LHLO localhost\r\n");
    lmtp.smtp_reply('2');
    lmtp.send("MAIL FROM:<sender@example.org>\r\n");
    lmtp.smtp_reply('2');
    lmtp.send("RCPT TO:<" + user + ">\r\n");
    lmtp.smtp_reply('2');
    lmtp.send("DATA\r\n");
    lmtp.smtp_reply('3');
    std::string stuffed;
    stuffed.reserve(data.size() + data.size() / 64 + 8);
    bool line_start = true;
    for (char c : data) {
      if (line_start && c == '.') stuffed += '.';
      stuffed += c;
      line_start = c == '\n';
    }
    if (!line_start) stuffed += "\r\n";
    stuffed += ".\r\n";
    lmtp.send(stuffed);
    lmtp.smtp_reply('2');
    lmtp.send("QUIT\r\n");
  }

  // Drops `data` into `user`'s Maildir INBOX directly, with Maildir `flags` ("S": \Seen;
  // empty: a new message). Dovecot picks it up at its next look (IDLE sessions at once).
  void append(const std::string& user, std::string_view data, std::string flags = "") {
    const auto maildir = make_maildir(user);
    static std::atomic<unsigned> counter{0};
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
    const std::string base = std::to_string(micros / 1'000'000) + ".M" +
                             std::to_string(micros % 1'000'000) + "P" + std::to_string(::getpid()) +
                             "Q" + std::to_string(++counter) + ".switchboard-test";
    const auto temp = maildir / "tmp" / base;
    std::ofstream(temp, std::ios::binary).write(data.data(), std::streamsize(data.size()));
    chown_mail(temp);
    std::sort(flags.begin(), flags.end());
    std::filesystem::rename(
        temp, flags.empty() ? maildir / "new" / base : maildir / "cur" / (base + ":2," + flags));
  }

  // The messages in `user`'s INBOX (new/ and cur/), ordered by file name (about the order
  // of delivery).
  std::vector<MaildirMessage> messages(const std::string& user) const {
    // Dovecot renames files (new/ to cur/, flag changes) while we list: list again then.
    for (int attempt = 0;; ++attempt) {
      try {
        return list_messages(user);
      } catch (const std::exception&) {
        if (attempt == 20) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }

  // Sets the Maildir flags of the message with this Message-ID (see append()); false when
  // there is none. Best done while stopped, as another client would do it.
  bool set_flags(const std::string& user, const std::string& message_id, std::string flags) {
    std::sort(flags.begin(), flags.end());
    for (const auto& message : messages(user)) {
      if (message.message_id() != message_id) continue;
      std::string base = message.path.filename().string();
      base = base.substr(0, base.find(":2,"));
      std::filesystem::rename(message.path, message.path.parent_path().parent_path() / "cur" /
                                                (flags.empty() ? base : base + ":2," + flags));
      return true;
    }
    return false;
  }

  // Has Dovecot look at `user`'s INBOX (LOGIN, SELECT, LOGOUT), which gives every message
  // there a UID, in file name order for files dropped in by append().
  void sync(const std::string& user) {
    LineClient imap(imap_port_);
    imap.read_line();
    for (const auto& [tag, command] :
         {std::pair<std::string, std::string>{"a",
                                              "LOGIN \"" + user + "\" \"" + users_.at(user) + "\""},
          {"b", "SELECT INBOX"},
          {"c", "LOGOUT"}}) {
      const auto answer = imap.imap(tag, command).back();
      if (answer.rfind(tag + " OK", 0) != 0)
        throw std::runtime_error("IMAP " + command + ": " + answer);
    }
  }

  // The INBOX's UIDVALIDITY as Dovecot recorded it, 0 before its first look at the box.
  std::uint32_t uidvalidity(const std::string& user) const {
    std::ifstream in(maildir_path(user) / "dovecot-uidlist");
    std::string version, field;
    in >> version;
    while (in >> field) {
      if (field.size() > 1 && field[0] == 'V')
        return static_cast<std::uint32_t>(std::stoul(field.substr(1)));
    }
    return 0;
  }

  // Makes Dovecot give `user`'s INBOX a new UIDVALIDITY (and new UIDs), as after a server
  // rebuild: stops the server, forgets its UID list and indexes, starts it again.
  void reset_uidvalidity(const std::string& user) {
    stop();
    const auto maildir = maildir_path(user);
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(maildir, ec)) {
      const auto name = entry.path().filename().string();
      if (name == "dovecot-uidlist" || name.rfind("dovecot.index", 0) == 0) {
        std::filesystem::remove(entry.path(), ec);
      }
    }
    start();
  }

  // Starts Dovecot (after stop()) on the same ports with the same mail.
  void start() {
    if (pid_ > 0) return;
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::string> args{"/usr/sbin/dovecot", "-F", "-c",
                                  (dir_ / "dovecot.conf").string()};
    // A process group of its own: stop() ends the sessions with the master (Dovecot's own
    // imap processes outlive a stopped master here, shutdown_clients notwithstanding).
    pid_ = spawn_logged(std::move(args), dir_ / "dovecot.out", true);
    if (pid_ <= 0)
      throw std::runtime_error("cannot run /usr/sbin/dovecot (is dovecot-imapd installed?)");
    const auto deadline = started + std::chrono::seconds(20);
    std::vector<std::uint16_t> waiting{imap_port_, lmtp_port_};
    if (imaps_port_ != 0) waiting.push_back(imaps_port_);
    while (!waiting.empty()) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("dovecot exited at start-up:\n" + log());
      }
      if (std::chrono::steady_clock::now() > deadline) {
        stop();
        throw std::runtime_error("dovecot did not accept connections within 20 s:\n" + log());
      }
      if (accepts(waiting.back())) {
        waiting.pop_back();
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // Dovecot starting up
      }
    }
    start_duration_ = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
  }

  // Stops Dovecot and every process it started (SIGTERM to the process group, so open
  // sessions drop as when a server goes down) and waits for the master; SIGKILL for what is
  // left after 10 s. Idempotent.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::waitpid(pid_, nullptr, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(-pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(-pid_, SIGKILL);  // stragglers, reparented to init and reaped there
    pid_ = -1;
  }

  void restart() {
    stop();
    start();
  }

  // Dovecot's log file and whatever it wrote to stdout/stderr.
  std::string log() const {
    return read_file(dir_ / "dovecot.log") + read_file(dir_ / "dovecot.out");
  }

  // How many lines of the log contain `needle`.
  std::size_t count_in_log(std::string_view needle) const {
    std::istringstream in(read_file(dir_ / "dovecot.log"));
    std::size_t count = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.find(needle) != std::string::npos) ++count;
    }
    return count;
  }

 private:
  static bool accepts(std::uint16_t port) {
    try {
      LineClient probe(port);
      return true;
    } catch (const std::runtime_error&) {
      return false;
    }
  }

  void mail_owner() {
    if (::geteuid() != 0) {
      uid_ = ::geteuid();
      gid_ = ::getegid();
      const passwd* me = ::getpwuid(uid_);
      const group* my_group = ::getgrgid(gid_);
      if (me == nullptr || my_group == nullptr) throw std::runtime_error("no name for my uid/gid");
      user_name_ = me->pw_name;
      group_name_ = my_group->gr_name;
      return;
    }
    const passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr) throw std::runtime_error("no user nobody for Dovecot's mail");
    uid_ = nobody->pw_uid;
    gid_ = nobody->pw_gid;
    user_name_ = "nobody";
    const group* group = ::getgrgid(gid_);
    group_name_ = group != nullptr ? group->gr_name : "nogroup";
  }

  void chown_mail(const std::filesystem::path& path) const {
    if (::geteuid() == 0 && ::chown(path.c_str(), uid_, gid_) != 0) {
      throw std::runtime_error("cannot chown " + path.string());
    }
  }

  std::filesystem::path maildir_path(const std::string& user) const {
    return dir_ / "mail" / user / "Maildir";
  }

  std::filesystem::path make_maildir(const std::string& user) const {
    const auto home = dir_ / "mail" / user;
    const auto maildir = home / "Maildir";
    for (const auto& d : {home, maildir, maildir / "cur", maildir / "new", maildir / "tmp"}) {
      if (std::filesystem::create_directory(d)) chown_mail(d);
    }
    return maildir;
  }

  // Message file name (without the flags) to UID, from Dovecot's dovecot-uidlist: a header
  // line, then "<uid> [<extension fields>] :<file name>" per message.
  std::map<std::string, std::uint32_t> uid_list(const std::string& user) const {
    std::map<std::string, std::uint32_t> uids;
    std::ifstream in(maildir_path(user) / "dovecot-uidlist");
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      const auto name = line.find(" :");
      if (name == std::string::npos || line.empty() ||
          !std::isdigit(static_cast<unsigned char>(line[0])))
        continue;
      uids[line.substr(name + 2)] = static_cast<std::uint32_t>(std::stoul(line));
    }
    return uids;
  }

  std::vector<MaildirMessage> list_messages(const std::string& user) const {
    const auto uids = uid_list(user);
    std::vector<MaildirMessage> out;
    for (const char* sub : {"new", "cur"}) {
      const auto folder = maildir_path(user) / sub;
      if (!std::filesystem::exists(folder)) continue;
      for (const auto& entry : std::filesystem::directory_iterator(folder)) {
        MaildirMessage message;
        message.path = entry.path();
        const auto name = entry.path().filename().string();
        const auto info = name.find(":2,");
        if (info != std::string::npos) message.flags = name.substr(info + 3);
        if (const auto uid = uids.find(name.substr(0, info)); uid != uids.end()) {
          message.uid = uid->second;
        }
        std::ifstream in(entry.path(), std::ios::binary);
        if (!in) throw std::runtime_error("renamed while listing: " + name);
        std::stringstream text;
        text << in.rdbuf();
        message.data = text.str();
        out.push_back(std::move(message));
      }
    }
    std::sort(out.begin(), out.end(), [](const MaildirMessage& a, const MaildirMessage& b) {
      return a.path.filename() < b.path.filename();
    });
    return out;
  }

  void pick_ports() {
    // Bound together so that the three differ; Dovecot binds them after we let go.
    std::vector<int> sockets;
    std::vector<std::uint16_t> ports;
    for (int i = 0; i < 3; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t length = sizeof address;
      if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
          ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        for (int s : sockets) ::close(s);
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("cannot pick a free port");
      }
      sockets.push_back(fd);
      ports.push_back(ntohs(address.sin_port));
    }
    for (int s : sockets) ::close(s);
    imap_port_ = ports[0];
    lmtp_port_ = ports[1];
    imaps_port_ = options_.ssl ? ports[2] : 0;
  }

  void write_users() const {
    std::string text;
    for (const auto& [user, password] : users_) {
      if (user.find_first_of(":\r\n") != std::string::npos ||
          password.find_first_of(":\r\n") != std::string::npos) {
        throw std::invalid_argument("a Dovecot test user or password with ':' or a line break");
      }
      text += user + ":{PLAIN}" + password + "\n";
    }
    // Replaced in one step: Dovecot never reads half a file.
    const auto temp = dir_ / "users.tmp";
    std::ofstream(temp) << text;
    std::filesystem::rename(temp, dir_ / "users");
  }

  void write_config() const {
    const auto d = dir_.string();
    std::ostringstream c;
    c << "base_dir = " << d << "/run\n"
      << "state_dir = " << d << "/state\n"
      << "log_path = " << d << "/dovecot.log\n"
      << "protocols = imap lmtp\n"
      << "listen = 127.0.0.1\n"
      << "disable_plaintext_auth = no\n"
      << "auth_mechanisms = plain login\n"
      << "auth_verbose = yes\n"
      << "auth_failure_delay = 0\n"
      << "mail_location = maildir:~/Maildir\n"
      << "mail_uid = " << user_name_ << "\n"
      << "mail_gid = " << group_name_ << "\n"
      << "first_valid_uid = 1\n";
    if (::geteuid() != 0) {
      c << "default_internal_user = " << user_name_ << "\n"
        << "default_internal_group = " << group_name_ << "\n"
        << "default_login_user = " << user_name_ << "\n";
    }
    if (options_.ssl) {
      c << "ssl = yes\n"
        << "ssl_cert = <" << options_.tls_cert.string() << "\n"
        << "ssl_key = <" << options_.tls_key.string() << "\n";
    } else {
      c << "ssl = no\n";
    }
    if (!options_.idle) {
      // Dovecot's default list less IDLE; it is what CAPABILITY shows before and after login.
      c << "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS "
           "UNSELECT CHILDREN NAMESPACE\n";
    }
    c << "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u " << d
      << "/users\n}\n"
      << "userdb {\n  driver = static\n  args = home=" << d << "/mail/%u\n}\n"
      << "service imap-login {\n"
      << "  inet_listener imap {\n    port = " << imap_port_ << "\n  }\n";
    if (options_.ssl) {
      c << "  inet_listener imaps {\n    port = " << imaps_port_ << "\n    ssl = yes\n  }\n";
    }
    if (::geteuid() != 0) c << "  chroot =\n";
    c << "}\n"
      << "service lmtp {\n  inet_listener lmtp {\n    port = " << lmtp_port_
      << "\n  }\n}\n"
      // Without this socket the auth process finds no penalty table and applies none.
      << "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n";
    if (::geteuid() != 0) c << "  chroot =\n";
    c << "}\n";
    std::ofstream(dir_ / "dovecot.conf") << c.str();
  }

  void remove_dir() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  DovecotOptions options_;
  std::filesystem::path dir_;
  std::map<std::string, std::string> users_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::string user_name_, group_name_;
  std::uint16_t imap_port_ = 0, imaps_port_ = 0, lmtp_port_ = 0;
  pid_t pid_ = -1;
  std::chrono::milliseconds start_duration_{0};
};

}  // namespace sb::test

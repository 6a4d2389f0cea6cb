// The SMTP receiver in-process on its own event-loop thread, with a sink that records what
// it is handed. Real mail comes from swaks (plain, multipart, HTML, attachment, 8-bit,
// pipelined, STARTTLS); the attacks and limits are driven over a raw socket, with OpenSSL
// for the STARTTLS cases.

#include "channels/email/smtp_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/base64.h"
#include "daemon_fixture.h"
#include "support/run_on_loop.h"
#include "support/temp_dir.h"

extern char** environ;

namespace sb::email {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kWait = 20s;  // a safety net against hangs, never a pass condition
const std::string kRecipient = "muse@example.org";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// No LF without its CR, no CR without its LF.
bool only_crlf_line_ends(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return false;
  }
  return true;
}

struct Ran {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs a program to completion (killed after `timeout`), stdin from /dev/null.
Ran run(const std::vector<std::string>& args, const fs::path& dir,
        std::chrono::seconds timeout = 60s) {
  static std::atomic<int> counter{0};
  const fs::path out = dir / ("run-" + std::to_string(counter++) + ".out");
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  Ran ran;
  if (rc != 0) {
    ran.output = "cannot start " + args[0];
    return ran;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ran.output = read_file(out) + "\n[killed after the timeout]";
      return ran;
    }
    std::this_thread::sleep_for(10ms);
  }
  ran.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  ran.output = read_file(out);
  return ran;
}

struct Delivered {
  SmtpEnvelope envelope;
  std::string data;
};

// An SmtpServer on its own event-loop thread, delivering into a recording sink.
class Harness {
 public:
  explicit Harness(SmtpServerOptions options) : work_(io_.get_executor()) {
    thread_ = std::thread([this] { io_.run(); });
    start_result_ = on_loop([&]() -> Result<void> {
      SmtpDeliver deliver = [this](SmtpEnvelope envelope, std::string data) {
        return sink(std::move(envelope), std::move(data));
      };
      server_.emplace(io_.get_executor(), std::move(options), std::move(deliver), metrics_);
      return server_->start();
    });
  }
  ~Harness() {
    on_loop([this] {
      held_ = false;
      gate_.cancel();
      server_.reset();
    });
    work_.reset();
    thread_.join();
  }

  template <class F>
  auto on_loop(F f) -> decltype(f()) {
    return test::run_on_loop(io_, std::move(f));
  }

  const Result<void>& start_result() const { return start_result_; }
  std::uint16_t port() {
    return on_loop([this] { return server_->port(); });
  }
  void stop() {
    on_loop([this] { server_->stop(); });
  }
  std::size_t connection_count() {
    return on_loop([this] { return server_->connection_count(); });
  }
  std::string metrics() { return metrics_.render(); }

  // The sink's behaviour for the next messages.
  void fail_with(std::string error) {
    std::lock_guard lock(mutex_);
    fail_with_ = std::move(error);
  }
  void delay_by(std::chrono::milliseconds d) {
    std::lock_guard lock(mutex_);
    delay_ = d;
  }
  // The next message makes the sink throw: a std::runtime_error, or an int (no
  // std::exception at all).
  void throw_next(bool standard) {
    std::lock_guard lock(mutex_);
    throw_next_ = standard ? 1 : 2;
  }

  std::vector<Delivered> delivered() {
    std::lock_guard lock(mutex_);
    return delivered_;
  }
  // Waits until `count` messages were delivered (or kWait passed); all of them.
  std::vector<Delivered> wait_delivered(std::size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, kWait, [&] { return delivered_.size() >= count; });
    return delivered_;
  }
  // How many sink calls have returned.
  int returned() const { return returned_.load(); }

  // While held, the sink waits (the message stays "being stored") until release().
  void hold() {
    on_loop([this] { held_ = true; });
  }
  void release() {
    on_loop([this] {
      held_ = false;
      gate_.cancel();
    });
  }
  // Waits until the sink was entered `count` times (or kWait passed).
  bool wait_entered(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] { return entered_ >= count; });
  }

 private:
  asio::awaitable<Result<void>> sink(SmtpEnvelope envelope, std::string data) {
    std::optional<std::string> failure;
    std::chrono::milliseconds delay{0};
    int throw_now = 0;
    {
      std::lock_guard lock(mutex_);
      failure = fail_with_;
      delay = delay_;
      throw_now = std::exchange(throw_next_, 0);
      ++entered_;
      changed_.notify_all();
    }
    if (throw_now == 1) throw std::runtime_error("the sink broke");
    if (throw_now == 2) throw 42;
    while (held_) {
      gate_.expires_at(asio::steady_timer::time_point::max());
      co_await gate_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (delay.count() > 0) {
      asio::steady_timer timer(io_, delay);
      co_await timer.async_wait(asio::use_awaitable);
    }
    if (failure) {
      ++returned_;
      co_return make_error(*failure);
    }
    {
      std::lock_guard lock(mutex_);
      delivered_.push_back({std::move(envelope), std::move(data)});
      changed_.notify_all();
    }
    ++returned_;
    co_return Result<void>{};
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  asio::steady_timer gate_{io_};
  bool held_ = false;  // on the loop thread only
  MetricsRegistry metrics_;
  std::optional<SmtpServer> server_;
  Result<void> start_result_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Delivered> delivered_;
  std::optional<std::string> fail_with_;
  std::chrono::milliseconds delay_{0};
  int throw_next_ = 0;  // under mutex_
  std::atomic<int> returned_{0};
  int entered_ = 0;  // under mutex_
};

// An SMTP client over a plain socket, optionally upgraded with OpenSSL. Every read is
// bounded by kWait (SO_RCVTIMEO).
class Client {
 public:
  explicit Client(std::uint16_t port) : fd_(test::connect_loopback(port)) {
    if (fd_ < 0) return;
    timeval tv{static_cast<time_t>(std::chrono::seconds(kWait).count()), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  ~Client() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_ >= 0; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const long n = ssl_ ? SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
                          : ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next complete reply, all its lines; "" when the server closed or nothing came.
  std::string reply() {
    while (true) {
      std::size_t start = 0;
      while (true) {
        const auto end = buffer_.find("\r\n", start);
        if (end == std::string::npos) break;
        if (end - start >= 4 && buffer_[start + 3] == ' ') {
          std::string r = buffer_.substr(0, end + 2);
          buffer_.erase(0, end + 2);
          return r;
        }
        if (end - start < 4 || buffer_[start + 3] != '-') {  // not a reply line
          std::string r = buffer_.substr(0, end + 2);
          buffer_.erase(0, end + 2);
          return r;
        }
        start = end + 2;
      }
      if (!receive()) return "";
    }
  }

  // Sends one command line and returns its reply.
  std::string command(const std::string& line) {
    if (!send(line + "\r\n")) return "";
    return reply();
  }

  // The TLS handshake (after the server's 220 to STARTTLS). False on failure.
  bool start_tls() {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);  // the test's self-signed certificate
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    return SSL_connect(ssl_) == 1;
  }

  // True if the server closes the connection (after any replies still unread).
  bool closed_by_peer() {
    while (receive()) {
    }
    return last_receive_closed_;
  }

 private:
  bool receive() {
    char chunk[4096];
    const long n = ssl_ ? SSL_read(ssl_, chunk, sizeof chunk) : ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      // EOF or a reset is a close; a timeout (EAGAIN) is not.
      last_receive_closed_ =
          n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) ||
          (ssl_ && SSL_get_error(ssl_, static_cast<int>(n)) == SSL_ERROR_ZERO_RETURN);
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;
  bool last_receive_closed_ = false;
};

int code(const std::string& reply) {
  return reply.size() >= 3 ? std::atoi(reply.substr(0, 3).c_str()) : 0;
}

class SmtpServerTest : public ::testing::Test {
 protected:
  static SmtpServerOptions defaults() {
    SmtpServerOptions o;
    o.port = 0;
    o.hostname = "mx.test";
    o.recipients = {kRecipient, "ops@example.org"};
    return o;
  }

  Harness& start(SmtpServerOptions options = defaults()) {
    harness_ = std::make_unique<Harness>(std::move(options));
    EXPECT_TRUE(harness_->start_result().ok()) << harness_->start_result().error().message;
    return *harness_;
  }

  // A self-signed certificate and key for localhost, made with the openssl CLI.
  std::pair<fs::path, fs::path> make_certificate() {
    const auto cert = dir_.path() / "cert.pem";
    const auto key = dir_.path() / "key.pem";
    auto made =
        run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout",
             key.string(), "-out", cert.string()},
            dir_.path());
    EXPECT_EQ(made.exit_code, 0) << made.output;
    return {cert, key};
  }

  // swaks against the server with `extra` arguments; asserts it succeeded.
  Ran swaks(const std::vector<std::string>& extra, int expected_exit = 0) {
    std::vector<std::string> args = {"swaks",
                                     "--server",
                                     "127.0.0.1",
                                     "--port",
                                     std::to_string(harness_->port()),
                                     "--helo",
                                     "client.test",
                                     "--from",
                                     "alice@example.net",
                                     "--to",
                                     kRecipient,
                                     "--timeout",
                                     "20"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto ran = run(args, dir_.path());
    EXPECT_EQ(ran.exit_code, expected_exit) << ran.output;
    return ran;
  }

  // A client past the greeting and EHLO.
  std::unique_ptr<Client> session() {
    auto c = std::make_unique<Client>(harness_->port());
    EXPECT_TRUE(c->connected());
    EXPECT_EQ(code(c->reply()), 220);
    EXPECT_EQ(code(c->command("EHLO client.test")), 250);
    return c;
  }

  // MAIL, RCPT and DATA on `c`, up to the 354.
  static void begin_message(Client& c) {
    ASSERT_EQ(code(c.command("MAIL FROM:<alice@example.net>")), 250);
    ASSERT_EQ(code(c.command("RCPT TO:<" + kRecipient + ">")), 250);
    ASSERT_EQ(code(c.command("DATA")), 354);
  }

  test::TempDir dir_;
  std::unique_ptr<Harness> harness_;
};

// --- real mail from swaks ---

TEST_F(SmtpServerTest, SwaksDeliversAPlainMessageWithOurReceivedHeader) {
  auto& h = start();
  swaks({"--header", "Subject: plain test", "--body", "Hello from swaks.\n.leading dot"});
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  const auto& m = got[0];
  EXPECT_EQ(m.envelope.mail_from, "alice@example.net");
  EXPECT_EQ(m.envelope.recipients, std::vector<std::string>{kRecipient});
  EXPECT_EQ(m.envelope.client_address, "127.0.0.1");
  EXPECT_EQ(m.envelope.helo, "client.test");
  EXPECT_FALSE(m.envelope.tls);
  EXPECT_EQ(m.data.rfind("Received: from client.test ([127.0.0.1])\r\n\tby mx.test (switchboard) "
                         "with ESMTP id " +
                             m.envelope.id + "\r\n\tfor <" + kRecipient + ">; ",
                         0),
            0u)
      << m.data;
  EXPECT_TRUE(contains(m.data, "\r\nSubject: plain test\r\n"));
  EXPECT_TRUE(contains(m.data, "\r\nHello from swaks.\r\n.leading dot\r\n")) << m.data;
  EXPECT_TRUE(only_crlf_line_ends(m.data));
  EXPECT_TRUE(contains(h.metrics(), "switchboard_smtp_messages_accepted_total 1"));
}

TEST_F(SmtpServerTest, SwaksDeliversAMultipartAlternativeMessage) {
  auto& h = start();
  swaks({"--attach-type", "text/plain", "--attach-body", "the plain part", "--attach-type",
         "text/html", "--attach-body", "<p>the <b>html</b> part</p>"});
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  const auto& data = got[0].data;
  EXPECT_TRUE(contains(data, "multipart/alternative")) << data;
  EXPECT_TRUE(contains(data, "Content-Type: text/plain")) << data;
  EXPECT_TRUE(contains(data, "Content-Type: text/html")) << data;
  EXPECT_TRUE(contains(data, "the plain part"));
  // swaks sends the HTML part base64-encoded.
  EXPECT_TRUE(contains(data, base64_encode("<p>the <b>html</b> part</p>"))) << data;
  EXPECT_TRUE(only_crlf_line_ends(data));
}

TEST_F(SmtpServerTest, SwaksDeliversAnHtmlOnlyMessage) {
  auto& h = start();
  swaks({"--add-header", "MIME-Version: 1.0", "--add-header",
         "Content-Type: text/html; charset=utf-8", "--body",
         "<html><body><h1>Title</h1><p>Only HTML here.</p></body></html>"});
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0].data, "\r\nContent-Type: text/html; charset=utf-8\r\n"));
  EXPECT_TRUE(contains(got[0].data, "<p>Only HTML here.</p>"));
}

TEST_F(SmtpServerTest, SwaksDeliversAnAttachmentIntact) {
  auto& h = start();
  std::string bytes;
  for (int i = 0; i < 5000; ++i) bytes += static_cast<char>((i * 7919) % 256);
  const auto file = dir_.path() / "report.bin";
  write_file(file, bytes);
  swaks({"--body", "see attached", "--attach", "@" + file.string()});
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  const auto& data = got[0].data;
  EXPECT_TRUE(contains(data, "multipart/mixed")) << data.substr(0, 2000);
  EXPECT_TRUE(contains(data, "report.bin"));
  // The first 48 bytes are the first 64 characters of the base64 text, whatever its line
  // length.
  const auto encoded = base64_encode(std::string_view(bytes).substr(0, 48));
  EXPECT_TRUE(contains(data, encoded)) << encoded;
  EXPECT_GT(data.size(), bytes.size() * 4 / 3);
}

TEST_F(SmtpServerTest, SwaksDeliversEightBitTextUnchanged) {
  auto& h = start();
  const std::string text =
      "Gr\xc3\xbc\xc3\x9f"
      "e aus K\xc3\xb6ln, 5 \xe2\x82\xac";
  swaks({"--add-header", "MIME-Version: 1.0", "--add-header",
         "Content-Type: text/plain; charset=utf-8", "--add-header",
         "Content-Transfer-Encoding: 8bit", "--body", text});
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0].data, "\r\n" + text + "\r\n")) << got[0].data;
}

TEST_F(SmtpServerTest, SwaksPipelinesTheTransaction) {
  auto& h = start();
  auto ran = swaks({"--pipeline", "--to", kRecipient + ",ops+alerts@example.org"});
  EXPECT_TRUE(contains(ran.output, "PIPELINING")) << ran.output;
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].envelope.recipients,
            (std::vector<std::string>{kRecipient, "ops+alerts@example.org"}));
  // Several recipients are not named in the Received: header.
  EXPECT_FALSE(contains(got[0].data.substr(0, got[0].data.find("\r\n\r\n")), "for <"));
}

TEST_F(SmtpServerTest, SwaksSendsOverStartTls) {
  auto [cert, key] = make_certificate();
  auto options = defaults();
  options.tls_cert = cert;
  options.tls_key = key;
  auto& h = start(options);
  auto ran = swaks({"--tls", "--header", "Subject: secret"});
  EXPECT_TRUE(contains(ran.output, "TLS started")) << ran.output;
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].envelope.tls);
  EXPECT_TRUE(contains(got[0].data, " with ESMTPS id ")) << got[0].data;
  EXPECT_TRUE(contains(got[0].data, "Subject: secret"));
}

TEST_F(SmtpServerTest, SwaksIsToldNoForAnUnknownRecipient) {
  auto& h = start();
  auto ran = swaks({"--to", "stranger@example.org"}, 24);  // swaks: "RCPT TO" refused
  EXPECT_TRUE(contains(ran.output, "550 5.1.1")) << ran.output;
  EXPECT_TRUE(h.delivered().empty());
}

// --- protocol over a raw socket ---

TEST_F(SmtpServerTest, EhloAdvertisesTheExtensionsAndStartTlsOnlyWithACertificate) {
  start();
  Client c(harness_->port());
  EXPECT_EQ(c.reply(), "220 mx.test ESMTP switchboard\r\n");
  EXPECT_EQ(c.command("EHLO client.test"),
            "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n"
            "250 ENHANCEDSTATUSCODES\r\n");
  EXPECT_EQ(c.command("STARTTLS"), "502 5.5.1 STARTTLS not available\r\n");
  EXPECT_EQ(c.command("HELO old.client"), "250 mx.test\r\n");
  EXPECT_EQ(c.command("QUIT"), "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(SmtpServerTest, CommandsOutOfOrderAreRefusedWith503) {
  start();
  Client c(harness_->port());
  ASSERT_EQ(code(c.reply()), 220);
  EXPECT_EQ(c.command("MAIL FROM:<alice@example.net>"), "503 5.5.1 Send HELO or EHLO first\r\n");
  ASSERT_EQ(code(c.command("EHLO client.test")), 250);
  EXPECT_EQ(c.command("RCPT TO:<muse@example.org>"), "503 5.5.1 Need MAIL command\r\n");
  EXPECT_EQ(c.command("DATA"), "503 5.5.1 Need MAIL command\r\n");
  ASSERT_EQ(code(c.command("MAIL FROM:<>")), 250);
  EXPECT_EQ(c.command("MAIL FROM:<alice@example.net>"), "503 5.5.1 Nested MAIL command\r\n");
  EXPECT_EQ(c.command("DATA"), "503 5.5.1 Need RCPT command\r\n");
  EXPECT_EQ(c.command("RSET"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(c.command("RCPT TO:<muse@example.org>"), "503 5.5.1 Need MAIL command\r\n");
  EXPECT_EQ(c.command("FROB"), "502 5.5.2 Command not recognized\r\n");
  EXPECT_EQ(c.command("NOOP"), "250 2.0.0 Ok\r\n");
}

TEST_F(SmtpServerTest, VrfyDisclosesNothing) {
  start();
  auto c = session();
  const auto known = c->command("VRFY muse@example.org");
  EXPECT_EQ(code(known), 252);
  EXPECT_EQ(c->command("VRFY nobody@example.org"), known);
  EXPECT_EQ(code(c->command("EXPN staff")), 502);
}

TEST_F(SmtpServerTest, UnknownRecipientGets550AndATaggedOneIsAccepted) {
  auto& h = start();
  auto c = session();
  ASSERT_EQ(code(c->command("MAIL FROM:<alice@example.net>")), 250);
  EXPECT_EQ(c->command("RCPT TO:<stranger@example.org>"),
            "550 5.1.1 <stranger@example.org>: Recipient address rejected: no such mailbox "
            "here\r\n");
  EXPECT_EQ(c->command("RCPT TO:<Muse+Lists@Example.ORG>"), "250 2.1.5 Ok\r\n");
  ASSERT_EQ(code(c->command("DATA")), 354);
  EXPECT_EQ(code(c->command("Subject: tagged\r\n\r\nhi\r\n.")), 250);
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].envelope.recipients, std::vector<std::string>{"Muse+Lists@Example.ORG"});
  EXPECT_TRUE(contains(h.metrics(), "switchboard_smtp_recipients_rejected_total 1"));
}

TEST_F(SmtpServerTest, TooManyRecipientsGet452) {
  auto options = defaults();
  options.max_recipients = 2;
  start(options);
  auto c = session();
  ASSERT_EQ(code(c->command("MAIL FROM:<alice@example.net>")), 250);
  EXPECT_EQ(code(c->command("RCPT TO:<muse@example.org>")), 250);
  EXPECT_EQ(code(c->command("RCPT TO:<ops@example.org>")), 250);
  EXPECT_EQ(code(c->command("RCPT TO:<MUSE@example.org>")), 250);  // the same one again
  EXPECT_EQ(c->command("RCPT TO:<muse+x@example.org>"), "452 4.5.3 Too many recipients\r\n");
}

TEST_F(SmtpServerTest, RepliesToAPipelinedBatchInOrder) {
  auto& h = start();
  Client c(harness_->port());
  ASSERT_EQ(code(c.reply()), 220);
  // Everything up to DATA in one write, then the text followed by a second transaction.
  ASSERT_TRUE(
      c.send("EHLO client.test\r\nMAIL FROM:<alice@example.net>\r\n"
             "RCPT TO:<nobody@example.org>\r\nRCPT TO:<muse@example.org>\r\nDATA\r\n"));
  EXPECT_EQ(code(c.reply()), 250);
  EXPECT_EQ(c.reply(), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(code(c.reply()), 550);
  EXPECT_EQ(c.reply(), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(code(c.reply()), 354);
  ASSERT_TRUE(
      c.send("Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<bob@example.net>\r\n"
             "RCPT TO:<ops@example.org>\r\nDATA\r\n"));
  EXPECT_EQ(code(c.reply()), 250);
  EXPECT_EQ(c.reply(), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(c.reply(), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(code(c.reply()), 354);
  ASSERT_TRUE(c.send("Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n"));
  EXPECT_EQ(code(c.reply()), 250);
  EXPECT_EQ(c.reply(), "221 2.0.0 Bye\r\n");
  auto got = h.wait_delivered(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].envelope.mail_from, "alice@example.net");
  EXPECT_TRUE(contains(got[0].data, "\r\nfirst\r\n"));
  EXPECT_EQ(got[1].envelope.mail_from, "bob@example.net");
  EXPECT_EQ(got[1].envelope.recipients, std::vector<std::string>{"ops@example.org"});
  EXPECT_TRUE(contains(got[1].data, "\r\nsecond\r\n"));
}

// The SMTP smuggling vectors: a fake end of data, then a second message. The second message
// must never be accepted as a message; the first is refused at its real end.
TEST_F(SmtpServerTest, SmugglingVectorsNeverDeliverASecondMessage) {
  auto& h = start();
  const std::vector<std::string> fake_ends = {"\n.\n",   "\n.\r\n", "\r\n.\n", "\r.\r",
                                              "\r\n.\r", "\r.\r\n", "\r.\n",   "\n.\r"};
  for (const auto& fake : fake_ends) {
    SCOPED_TRACE(::testing::PrintToString(fake));
    auto c = session();
    begin_message(*c);
    ASSERT_TRUE(c->send("From: alice@example.net\r\nSubject: first\r\n\r\nhello" + fake +
                        "MAIL FROM:<admin@example.org>\r\nRCPT TO:<muse@example.org>\r\nDATA\r\n"
                        "From: admin@example.org\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n"));
    const auto refusal = c->reply();
    EXPECT_EQ(refusal.substr(0, 10), "550 5.6.11") << refusal;
    // The next reply is the NOOP's: nothing of the smuggled text ran as a command.
    EXPECT_EQ(c->command("NOOP"), "250 2.0.0 Ok\r\n");
    EXPECT_EQ(code(c->command("QUIT")), 221);
  }
  EXPECT_TRUE(h.delivered().empty());
  EXPECT_EQ(h.returned(), 0);
  EXPECT_TRUE(
      contains(h.metrics(), "switchboard_smtp_messages_rejected_total{reason=\"bare_newline\"} 8"));
}

TEST_F(SmtpServerTest, SwaksSmugglingAttemptIsRefusedAndNothingIsDelivered) {
  auto& h = start();
  const auto file = dir_.path() / "smuggle.eml";
  write_file(file,
             "From: alice@example.net\r\nSubject: first\r\n\r\nhello\n.\n"
             "MAIL FROM:<admin@example.org>\r\nRCPT TO:<muse@example.org>\r\nDATA\r\n"
             "From: admin@example.org\r\nSubject: smuggled\r\n\r\nevil\r\n.");
  auto ran = swaks({"--data", "@" + file.string(), "-ndf"}, 26);  // 26: refused after DATA
  EXPECT_TRUE(contains(ran.output, "550 5.6.11")) << ran.output;
  EXPECT_TRUE(h.delivered().empty());
  EXPECT_EQ(h.returned(), 0);
}

TEST_F(SmtpServerTest, DotStuffedLinesAndTheRealEndAreHandled) {
  auto& h = start();
  auto c = session();
  begin_message(*c);
  EXPECT_EQ(code(c->command("Subject: dots\r\n\r\n..\r\n...x\r\n.")), 250);
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0].data, "\r\n\r\n.\r\n..x\r\n")) << got[0].data;
  EXPECT_FALSE(contains(got[0].data, "..x\r\n.\r\n"));
}

TEST_F(SmtpServerTest, OversizeCommandLineGets500AndTheSessionGoesOn) {
  start();
  auto c = session();
  EXPECT_EQ(c->command("NOOP " + std::string(600, 'x')),
            "500 5.5.2 Line too long (limit 512 bytes)\r\n");
  // Far beyond the limit: skipped to its end without being buffered.
  EXPECT_EQ(code(c->command("NOOP " + std::string(100000, 'y'))), 500);
  EXPECT_EQ(c->command("NOOP"), "250 2.0.0 Ok\r\n");
  // The longest valid MAIL FROM (a 256-byte path) with both parameters fits.
  const std::string domain = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                             std::string(63, 'c') + "." + std::string(60, 'd');
  const std::string mail = "MAIL FROM:<" + std::string(254 - domain.size() - 1, 'l') + "@" +
                           domain + "> SIZE=99999999999999999999 BODY=8BITMIME";
  EXPECT_EQ(c->command(mail), "552 5.3.4 Message size exceeds the limit of 26214400 bytes\r\n");
}

TEST_F(SmtpServerTest, OversizeTextLineIsRefusedWith552) {
  auto& h = start();
  auto c = session();
  begin_message(*c);
  EXPECT_EQ(c->command("Subject: long\r\n\r\n" + std::string(1200, 'z') + "\r\n."),
            "552 5.3.4 Message has a line longer than 1000 bytes\r\n");
  EXPECT_EQ(c->command("NOOP"), "250 2.0.0 Ok\r\n");
  EXPECT_TRUE(h.delivered().empty());
}

TEST_F(SmtpServerTest, ANulByteIsRefusedInDataWith550AndInACommandWith500) {
  auto& h = start();
  auto c = session();
  begin_message(*c);
  EXPECT_EQ(c->command(std::string("Subject: nul\r\n\r\nbefore\0after\r\n.", 31)),
            "550 5.6.0 NUL byte in message data; RFC 5321 does not allow it\r\n");
  EXPECT_EQ(c->command(std::string("NOOP\0", 5)), "500 5.5.2 NUL byte in command\r\n");
  EXPECT_EQ(c->command("NOOP"), "250 2.0.0 Ok\r\n");
  EXPECT_TRUE(h.delivered().empty());
  EXPECT_TRUE(
      contains(h.metrics(), "switchboard_smtp_messages_rejected_total{reason=\"nul_byte\"} 1"));
}

TEST_F(SmtpServerTest, OversizeMessageIsRefusedAtMailFromWhenSizeIsDeclared) {
  auto options = defaults();
  options.max_message_bytes = 10000;
  auto& h = start(options);
  auto c = session();
  EXPECT_EQ(c->command("MAIL FROM:<alice@example.net> SIZE=10001"),
            "552 5.3.4 Message size exceeds the limit of 10000 bytes\r\n");
  EXPECT_EQ(c->command("MAIL FROM:<alice@example.net> SIZE=10000"), "250 2.1.0 Ok\r\n");
  EXPECT_TRUE(h.delivered().empty());
}

TEST_F(SmtpServerTest, OversizeMessageIsRefusedAfterItsDataWithoutSize) {
  auto options = defaults();
  options.max_message_bytes = 10000;
  auto& h = start(options);
  auto c = session();
  begin_message(*c);
  std::string text = "Subject: big\r\n\r\n";
  while (text.size() < 12000) text += std::string(70, 'b') + "\r\n";
  EXPECT_EQ(c->command(text + "."), "552 5.3.4 Message exceeds the size limit of 10000 bytes\r\n");
  // The session is still in step: a small message goes through.
  begin_message(*c);
  EXPECT_EQ(code(c->command("Subject: small\r\n\r\nok\r\n.")), 250);
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(contains(got[0].data, "Subject: small"));
  EXPECT_TRUE(contains(h.metrics(), "switchboard_smtp_messages_rejected_total{reason=\"size\"} 1"));
}

TEST_F(SmtpServerTest, MessagesBeyondTheMemoryBudgetGet452) {
  auto options = defaults();
  options.max_message_bytes = 4000;
  options.max_buffered_bytes = 6000;
  auto& h = start(options);
  auto text = [](int lines) {
    std::string t;
    for (int i = 0; i < lines; ++i) t += std::string(98, 't') + "\r\n";
    return t;
  };
  h.hold();
  auto a = session();
  begin_message(*a);
  ASSERT_TRUE(a->send(text(30) + ".\r\n"));  // 3000 bytes, held while being stored
  ASSERT_TRUE(h.wait_entered(1));
  auto b = session();
  begin_message(*b);
  EXPECT_EQ(b->command(text(35) + "."),  // 3500 more would pass 6000
            "452 4.3.1 Insufficient system storage, try again later\r\n");
  h.release();
  EXPECT_EQ(code(a->reply()), 250);
  begin_message(*b);
  EXPECT_EQ(code(b->command(text(35) + ".")), 250);
  EXPECT_EQ(h.wait_delivered(2).size(), 2u);
  EXPECT_TRUE(
      contains(h.metrics(), "switchboard_smtp_messages_rejected_total{reason=\"no_storage\"} 1"));
}

TEST_F(SmtpServerTest, SinkErrorGets451AndTheSessionGoesOn) {
  auto& h = start();
  h.fail_with("disk full");
  auto c = session();
  begin_message(*c);
  EXPECT_EQ(c->command("Subject: x\r\n\r\ny\r\n."),
            "451 4.3.0 Temporary failure storing the message, try again later\r\n");
  EXPECT_EQ(c->command("NOOP"), "250 2.0.0 Ok\r\n");
  EXPECT_TRUE(h.delivered().empty());
  EXPECT_TRUE(
      contains(h.metrics(), "switchboard_smtp_messages_rejected_total{reason=\"store_failed\"} 1"));
}

// Issue 16: an exception out of the store ends at most its own session, never the loop.
TEST_F(SmtpServerTest, ASinkThatThrowsEndsAtMostItsOwnSession) {
  auto& h = start();
  auto other = session();
  ASSERT_EQ(other->command("NOOP"), "250 2.0.0 Ok\r\n");
  h.throw_next(true);
  auto c = session();
  begin_message(*c);
  EXPECT_EQ(c->command("Subject: x\r\n\r\ny\r\n."),
            "451 4.3.0 Temporary failure storing the message, try again later\r\n");
  EXPECT_EQ(c->command("NOOP"), "250 2.0.0 Ok\r\n");
  h.throw_next(false);
  begin_message(*c);
  EXPECT_EQ(c->command("Subject: x\r\n\r\ny\r\n."), "") << "this session ended";
  EXPECT_EQ(other->command("NOOP"), "250 2.0.0 Ok\r\n");
  auto next = session();
  begin_message(*next);
  EXPECT_EQ(code(next->command("Subject: after\r\n\r\nok\r\n.")), 250);
  EXPECT_EQ(h.wait_delivered(1).size(), 1u);
}

TEST_F(SmtpServerTest, The250ComesOnlyAfterTheSinkReturned) {
  auto& h = start();
  h.delay_by(300ms);
  auto c = session();
  begin_message(*c);
  ASSERT_TRUE(c->send("Subject: x\r\n\r\ny\r\n.\r\n"));
  const auto reply = c->reply();
  // Read right after the 250 arrived: a server that answered before its sink finished
  // would be caught here, 300 ms before the sink returns.
  const int returned = h.returned();
  EXPECT_EQ(code(reply), 250) << reply;
  EXPECT_EQ(returned, 1);
}

TEST_F(SmtpServerTest, TooManyConnectionsGet421) {
  auto options = defaults();
  options.max_connections = 1;
  auto& h = start(options);
  auto first = session();
  Client second(h.port());
  const auto refusal = second.reply();
  EXPECT_EQ(refusal.substr(0, 9), "421 4.7.0") << refusal;
  EXPECT_TRUE(second.closed_by_peer());
  EXPECT_EQ(code(first->command("QUIT")), 221);
  EXPECT_TRUE(first->closed_by_peer());
  first.reset();
  // Once the first session is gone, a new client is served.
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (h.connection_count() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  Client third(h.port());
  EXPECT_EQ(code(third.reply()), 220);
  EXPECT_TRUE(
      contains(h.metrics(), "switchboard_smtp_connections_refused_total{reason=\"limit\"} 1"));
}

TEST_F(SmtpServerTest, TooManyConnectionsFromOneClientGet421) {
  auto options = defaults();
  options.max_connections_per_client = 2;
  auto& h = start(options);
  auto a = session();
  auto b = session();
  Client c(h.port());
  const auto refusal = c.reply();
  EXPECT_EQ(refusal.substr(0, 9), "421 4.7.0") << refusal;
  EXPECT_TRUE(contains(refusal, "from 127.0.0.1")) << refusal;
  EXPECT_TRUE(
      contains(h.metrics(), "switchboard_smtp_connections_refused_total{reason=\"per_client\"} 1"));
}

TEST_F(SmtpServerTest, IdleClientIsTimedOutWith421) {
  auto options = defaults();
  options.command_timeout = 300ms;
  auto& h = start(options);
  auto c = session();
  const auto notice = c->reply();  // sent nothing more
  EXPECT_EQ(notice.substr(0, 9), "421 4.4.2") << notice;
  EXPECT_TRUE(c->closed_by_peer());
  EXPECT_TRUE(contains(h.metrics(), "switchboard_smtp_disconnects_total{reason=\"timeout\"} 1"));
}

TEST_F(SmtpServerTest, SlowDripOfACommandIsTimedOut) {
  auto options = defaults();
  options.command_timeout = 500ms;
  start(options);
  auto c = session();
  // A byte now and then, until the server gives up: the command never completes. A server
  // that restarted its clock on every byte would never answer, and reply() would time out.
  std::atomic<bool> answered{false};
  std::thread dripper([&] {
    while (!answered && c->send("N")) std::this_thread::sleep_for(50ms);
  });
  const auto notice = c->reply();
  answered = true;
  dripper.join();
  EXPECT_EQ(notice.substr(0, 9), "421 4.4.2") << notice;
}

TEST_F(SmtpServerTest, StalledMessageTextIsTimedOut) {
  auto options = defaults();
  options.data_timeout = 500ms;
  auto& h = start(options);
  auto c = session();
  begin_message(*c);
  ASSERT_TRUE(c->send("Subject: never ends\r\n\r\nsome text\r\n"));
  const auto notice = c->reply();
  EXPECT_EQ(notice.substr(0, 9), "421 4.4.2") << notice;
  EXPECT_TRUE(c->closed_by_peer());
  EXPECT_TRUE(h.delivered().empty());
}

TEST_F(SmtpServerTest, TooManyErrorsDisconnect) {
  auto options = defaults();
  options.max_errors = 3;
  start(options);
  auto c = session();
  EXPECT_EQ(code(c->command("FROB")), 502);
  EXPECT_EQ(code(c->command("RCPT TO:<muse@example.org>")), 503);
  EXPECT_EQ(code(c->command("MAIL FROM:bad")), 501);
  EXPECT_EQ(c->reply(), "421 4.7.0 mx.test Too many errors, closing the connection\r\n");
  EXPECT_TRUE(c->closed_by_peer());
}

TEST_F(SmtpServerTest, AnotherProtocolIsDisconnected) {
  start();
  Client c(harness_->port());
  ASSERT_EQ(code(c.reply()), 220);
  EXPECT_EQ(code(c.command("GET / HTTP/1.1")), 421);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(SmtpServerTest, StartTlsDiscardsPlaintextSentAfterItAndResetsTheSession) {
  auto [cert, key] = make_certificate();
  auto options = defaults();
  options.tls_cert = cert;
  options.tls_key = key;
  auto& h = start(options);
  Client c(h.port());
  ASSERT_EQ(code(c.reply()), 220);
  const auto ehlo = c.command("EHLO client.test");
  EXPECT_TRUE(contains(ehlo, "250-STARTTLS\r\n") || contains(ehlo, "250 STARTTLS\r\n")) << ehlo;
  ASSERT_EQ(code(c.command("MAIL FROM:<alice@example.net>")), 250);
  // A man in the middle appends a command to the STARTTLS packet.
  ASSERT_TRUE(c.send("STARTTLS\r\nRCPT TO:<muse@example.org>\r\n"));
  ASSERT_EQ(c.reply(), "220 2.0.0 Ready to start TLS\r\n");
  ASSERT_TRUE(c.start_tls());
  // The injected RCPT got no reply; the earlier MAIL and EHLO are forgotten.
  EXPECT_EQ(c.command("MAIL FROM:<alice@example.net>"), "503 5.5.1 Send HELO or EHLO first\r\n");
  const auto again = c.command("EHLO client.test");
  EXPECT_EQ(code(again), 250);
  EXPECT_FALSE(contains(again, "STARTTLS")) << again;
  EXPECT_EQ(c.command("STARTTLS"), "503 5.5.1 TLS already active\r\n");
  ASSERT_EQ(code(c.command("MAIL FROM:<alice@example.net>")), 250);
  ASSERT_EQ(code(c.command("RCPT TO:<muse@example.org>")), 250);
  ASSERT_EQ(code(c.command("DATA")), 354);
  EXPECT_EQ(code(c.command("Subject: over tls\r\n\r\nhi\r\n.")), 250);
  auto got = h.wait_delivered(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].envelope.tls);
}

TEST_F(SmtpServerTest, StopTellsIdleSessionsAndRefusesNewOnes) {
  auto& h = start();
  auto c = session();
  const auto port = h.port();
  h.stop();
  EXPECT_EQ(c->reply(), "421 4.3.2 mx.test Service shutting down, try again later\r\n");
  EXPECT_TRUE(c->closed_by_peer());
  Client late(port);
  EXPECT_FALSE(late.connected());
}

TEST_F(SmtpServerTest, StartReportsBadOptions) {
  auto no_recipients = defaults();
  no_recipients.recipients.clear();
  Harness a(no_recipients);
  ASSERT_FALSE(a.start_result().ok());
  EXPECT_TRUE(contains(a.start_result().error().message, "recipients"));

  auto bad_recipient = defaults();
  bad_recipient.recipients = {"not-an-address"};
  Harness b(bad_recipient);
  ASSERT_FALSE(b.start_result().ok());
  EXPECT_TRUE(contains(b.start_result().error().message, "not-an-address"));

  auto missing_cert = defaults();
  missing_cert.tls_cert = dir_.path() / "missing.pem";
  Harness c(missing_cert);
  ASSERT_FALSE(c.start_result().ok());
  EXPECT_TRUE(contains(c.start_result().error().message, "missing.pem"));

  auto bad_listen = defaults();
  bad_listen.listen = "mail.example.org";
  Harness d(bad_listen);
  ASSERT_FALSE(d.start_result().ok());
  EXPECT_TRUE(contains(d.start_result().error().message, "mail.example.org:0"));
}

}  // namespace
}  // namespace sb::email

#include "agent/web_fetch_tool.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "support/temp_dir.h"

extern char** environ;

namespace sb::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

// A small HTTP server with the cases web_fetch must handle, plus the same behind TLS with a
// self-signed certificate. Prints "<http port> <https port>" once listening.
constexpr std::string_view kServer = R"PY(
import http.server, ssl, sys, threading, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="text/plain; charset=utf-8", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path
        if path == "/hello":
            self.reply(200, b"hello from the test server\n")
        elif path == "/page.html":
            self.reply(200, b"<html><body><p>Hi</p></body></html>", "text/html")
        elif path == "/redirect":
            self.reply(302, b"", headers=[("Location", "/hello")])
        elif path.startswith("/chain/"):
            step = int(path[len("/chain/"):])
            self.reply(302, b"", headers=[("Location", "/chain/%d" % (step + 1))])
        elif path == "/to-file":
            self.reply(301, b"", headers=[("Location", "file:///etc/passwd")])
        elif path == "/big":
            self.reply(200, b"x" * 100000)
        elif path == "/image":
            self.reply(200, b"\x89PNG\r\n\x1a\n\x00\x00\x00", "image/png")
        elif path == "/echo-host":
            self.reply(200, self.headers["Host"].encode())
        elif path == "/silent":
            time.sleep(60)
        else:
            self.reply(404, b"no such page")

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass

plain = Server(("127.0.0.1", 0), Handler)
tls = Server(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
tls.socket = context.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
print(plain.server_address[1], tls.server_address[1], flush=True)
plain.serve_forever()
)PY";

// A self-signed certificate for "localhost", which no system trusts.
void write_self_signed_certificate(const fs::path& cert_file, const fs::path& key_file) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  ASSERT_TRUE(key && cert);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  ASSERT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
  FILE* out = std::fopen(key_file.c_str(), "w");
  ASSERT_NE(out, nullptr);
  PEM_write_PrivateKey(out, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(out);
  out = std::fopen(cert_file.c_str(), "w");
  ASSERT_NE(out, nullptr);
  PEM_write_X509(out, cert.get());
  std::fclose(out);
}

class WebFetch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const fs::path script = dir_->path() / "server.py";
    std::ofstream(script) << kServer;
    write_self_signed_certificate(dir_->path() / "cert.pem", dir_->path() / "key.pem");

    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    ::posix_spawn_file_actions_addclose(&actions, fds[0]);
    const std::string cert = (dir_->path() / "cert.pem").string();
    const std::string key = (dir_->path() / "key.pem").string();
    std::string python = "python3", script_arg = script.string();
    std::string cert_arg = cert, key_arg = key;
    char* argv[] = {python.data(), script_arg.data(), cert_arg.data(), key_arg.data(), nullptr};
    ASSERT_EQ(::posix_spawnp(&server_pid_, "python3", &actions, nullptr, argv, environ), 0);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);

    std::string line;
    pollfd p{fds[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&p, 1, 30'000) > 0) {
      char buffer[64];
      const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
      if (n <= 0) break;
      line.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    ASSERT_EQ(std::sscanf(line.c_str(), "%d %d", &http_port_, &https_port_), 2)
        << "the test server did not start: '" << line << "'";
  }

  static void TearDownTestSuite() {
    if (server_pid_ > 0) {
      ::kill(server_pid_, SIGKILL);
      ::waitpid(server_pid_, nullptr, 0);
    }
    delete dir_;
  }

  ToolOutput fetch(const std::string& url, std::optional<int> max_bytes = std::nullopt) {
    json::object input{{"url", url}};
    if (max_bytes) input["max_bytes"] = *max_bytes;
    return tool_.run(input, context_);
  }

  static std::string url(std::string_view path) {
    return "http://127.0.0.1:" + std::to_string(http_port_) + std::string(path);
  }

  static bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
  }

  static inline test::TempDir* dir_ = nullptr;
  static inline pid_t server_pid_ = -1;
  static inline int http_port_ = 0;
  static inline int https_port_ = 0;
  WebFetchTool tool_;
  ToolContext context_;
};

TEST_F(WebFetch, ReturnsStatusContentTypeAndBody) {
  auto out = fetch(url("/hello"));
  EXPECT_FALSE(out.is_error) << out.text;
  EXPECT_EQ(out.text, "URL: " + url("/hello") +
                          "\nStatus: 200 OK\nContent-Type: text/plain; charset=utf-8\n\n"
                          "hello from the test server\n");
}

TEST_F(WebFetch, ConvertsHtmlToReadableText) {
  auto out = fetch(url("/page.html"));
  EXPECT_FALSE(out.is_error);
  EXPECT_TRUE(contains(out.text, "Content-Type: text/html\n\nHi")) << out.text;
  EXPECT_FALSE(contains(out.text, "<p>")) << out.text;
}

TEST_F(WebFetch, SendsTheHostAndPortAsTheHostHeader) {
  auto out = fetch(url("/echo-host"));
  EXPECT_TRUE(out.text.ends_with("\n\n127.0.0.1:" + std::to_string(http_port_))) << out.text;
}

TEST_F(WebFetch, FollowsARelativeRedirect) {
  auto out = fetch(url("/redirect"));
  EXPECT_FALSE(out.is_error) << out.text;
  EXPECT_TRUE(out.text.starts_with("URL: " + url("/hello") +
                                   "\nRedirected from: " + url("/redirect") + "\nStatus: 200 OK\n"))
      << out.text;
  EXPECT_TRUE(out.text.ends_with("hello from the test server\n"));
}

TEST_F(WebFetch, GivesUpAfterFiveRedirects) {
  auto out = fetch(url("/chain/0"));
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "more than 5 redirects (the last to /chain/6)")) << out.text;
}

TEST_F(WebFetch, RefusesARedirectToAnotherScheme) {
  auto out = fetch(url("/to-file"));
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "only http and https")) << out.text;
}

TEST_F(WebFetch, CutsTheBodyAtMaxBytesAndSaysSo) {
  auto out = fetch(url("/big"), 1000);
  EXPECT_FALSE(out.is_error) << out.text;
  EXPECT_TRUE(contains(out.text, "\n\n" + std::string(1000, 'x') + "\n[body cut")) << out.text;
  EXPECT_TRUE(contains(out.text, "[body cut after 1000 bytes; pass a larger max_bytes"));
}

TEST_F(WebFetch, CapsWhatItHandsTheModel) {
  context_.max_output_bytes = 2000;
  auto out = fetch(url("/big"));
  EXPECT_LE(out.text.size(), 2000u);
  EXPECT_TRUE(contains(out.text, "bytes of output omitted"));
}

TEST_F(WebFetch, DescribesBinaryContentInsteadOfShowingIt) {
  auto out = fetch(url("/image"));
  EXPECT_FALSE(out.is_error);
  EXPECT_TRUE(
      contains(out.text, "Content-Type: image/png\n\n[binary content, 11 bytes; not shown]"))
      << out.text;
}

TEST_F(WebFetch, AnErrorStatusIsAnErrorResultWithTheBody) {
  auto out = fetch(url("/nothing-here"));
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "Status: 404 Not Found\n"));
  EXPECT_TRUE(contains(out.text, "no such page"));
}

TEST_F(WebFetch, RefusesUrlsThatAreNotHttp) {
  for (const char* bad : {"file:///etc/passwd", "ftp://example.org/", "example.org",
                          "http://user:pw@127.0.0.1/", "http://127.0.0.1:99999/"}) {
    auto out = fetch(bad);
    EXPECT_TRUE(out.is_error) << bad;
  }
  EXPECT_TRUE(contains(fetch("file:///etc/passwd").text, "only http and https"));
}

TEST_F(WebFetch, TimesOutOnASilentServer) {
  context_.timeout = 1s;
  auto out = fetch(url("/silent"));
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "timed out after 1 s")) << out.text;
}

TEST_F(WebFetch, RefusesAnUntrustedCertificate) {
  auto out = fetch("https://127.0.0.1:" + std::to_string(https_port_) + "/hello");
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "TLS handshake")) << out.text;
  EXPECT_TRUE(contains(out.text, "certificate verify failed")) << out.text;
}

TEST_F(WebFetch, ReportsARefusedConnection) {
  // A socket bound but not listening holds the port and refuses connections.
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(sock, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string port = std::to_string(ntohs(address.sin_port));
  auto out = fetch("http://127.0.0.1:" + port + "/");
  ::close(sock);
  EXPECT_TRUE(out.is_error);
  EXPECT_TRUE(contains(out.text, "cannot connect to 127.0.0.1 port " + port)) << out.text;
}

}  // namespace
}  // namespace sb::agent

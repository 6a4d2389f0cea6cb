// The JMAP test peers themselves (tests/support/cyrus_server.h, jmap_push_server.h): what
// the JMAP client and receiver tests take for granted about them. If these fail, the JMAP
// tests say nothing about the code under test.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "cli/http_client.h"
#include "support/cyrus_server.h"
#include "support/jmap_push_server.h"
#include "support/temp_dir.h"

namespace sb::test {
namespace {

std::string basic_auth(const std::string& user, const std::string& password) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string in = user + ":" + password;
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    unsigned n = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<unsigned char>(in[i + 1]) << 8;
    if (i + 2 < in.size()) n |= static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[n & 63] : '=';
  }
  return "Basic " + out;
}

Result<HttpReply> get(std::uint16_t port, const std::string& target, const std::string& user,
                      const std::string& password) {
  HttpCall call;
  call.port = port;
  call.target = target;
  call.headers = {{"Authorization", basic_auth(user, password)}};
  return http_call(call);
}

std::string raw_mail(const std::string& to, const std::string& message_id,
                     const std::string& subject) {
  return "From: Carol <carol@example.net>\r\nTo: " + to + "\r\nSubject: " + subject +
         "\r\nMessage-ID: <" + message_id +
         ">\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n\r\n"
         "Hello there.\r\n";
}

// Reads from an open event stream until `needle` shows up or `timeout` passes.
std::string read_stream_until(int fd, const std::string& needle,
                              std::chrono::milliseconds timeout) {
  std::string seen;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (seen.find(needle) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buffer[4096];
    const auto n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    seen.append(buffer, static_cast<std::size_t>(n));
  }
  return seen;
}

int open_stream(std::uint16_t port, const std::string& target, const std::string& auth,
                const std::string& last_event_id = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + auth +
                        "\r\nAccept: text/event-stream\r\n";
  if (!last_event_id.empty()) request += "Last-Event-ID: " + last_event_id + "\r\n";
  request += "\r\n";
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(JmapPeers, CyrusServesTheSessionAndShowsLmtpDeliveriesOverJmap) {
  TempDir dir;
  CyrusServer cyrus(dir.path());
  std::printf("Cyrus answered HTTP after %lld ms, accounts ready after %lld ms\n",
              static_cast<long long>(cyrus.started_in().count()),
              static_cast<long long>(cyrus.ready_in().count()));
  const std::string user = "bot@example.org";

  const auto well_known = get(cyrus.http_port(), "/.well-known/jmap", user, cyrus.password(user));
  ASSERT_TRUE(well_known) << well_known.error().message;
  EXPECT_EQ(well_known->status, 301);
  EXPECT_TRUE(well_known->header("Location").ends_with("/jmap")) << well_known->header("Location");

  const auto session = get(cyrus.http_port(), "/jmap", user, cyrus.password(user));
  ASSERT_TRUE(session) << session.error().message;
  ASSERT_EQ(session->status, 200) << session->body;
  const auto doc = boost::json::parse(session->body).as_object();
  EXPECT_EQ(doc.at("apiUrl").as_string(), "/jmap/");
  EXPECT_EQ(doc.at("primaryAccounts").at("urn:ietf:params:jmap:mail").as_string(), user);
  EXPECT_TRUE(doc.at("eventSourceUrl").as_string().starts_with("/jmap/eventsource/"));

  // The account-creating message is there, already read.
  const auto before = cyrus.emails(user, "inbox");
  ASSERT_EQ(before.size(), 1u);
  EXPECT_TRUE(before[0].at("keywords").as_object().contains("$seen"));

  cyrus.deliver(user, raw_mail(user, "peer-1@example.net", "Peer check"));
  EXPECT_EQ(cyrus.emails(user, "inbox").size(), 2u);
  const auto delivered = cyrus.email(user, "inbox", "peer-1@example.net");
  ASSERT_TRUE(delivered.has_value());
  EXPECT_EQ(delivered->at("subject").as_string(), "Peer check");
  EXPECT_FALSE(delivered->at("keywords").as_object().contains("$seen"));
  cyrus.set_keyword(user, std::string(delivered->at("id").as_string()), "$seen", true);
  EXPECT_TRUE(cyrus.email(user, "inbox", "peer-1@example.net")
                  ->at("keywords")
                  .as_object()
                  .contains("$seen"));

  // The other account sees none of it.
  EXPECT_EQ(cyrus.emails("alice@example.com", "inbox").size(), 1u);
  const auto identities = cyrus.jmap(
      user, boost::json::array{boost::json::array{"Identity/get", boost::json::object{}, "i"}});
  EXPECT_EQ(identities.at("methodResponses").at(0).at(1).at("list").at(0).at("email").as_string(),
            user);
}

// The premise of the receiver's polling test: this Cyrus has no push.
TEST(JmapPeers, CyrusEventSourceAnswersNoContent) {
  TempDir dir;
  CyrusServer cyrus(dir.path(), CyrusOptions{.users = {{"bot@example.org", "pw"}}});
  const auto reply = get(cyrus.http_port(), "/jmap/eventsource/?types=*&closeafter=no&ping=5",
                         "bot@example.org", "pw");
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->status, 204);
}

TEST(JmapPeers, PushServerStreamsStateChangesAndHonoursLastEventId) {
  TempDir dir;
  JmapPushServer push(dir.path());
  const std::string auth = basic_auth(push.account(), push.password());

  const auto unauthorized = get(push.port(), "/jmap/session", push.account(), "wrong");
  ASSERT_TRUE(unauthorized);
  EXPECT_EQ(unauthorized->status, 401);

  const int fd = open_stream(push.port(), "/jmap/eventsource/?types=*&closeafter=no&ping=1", auth);
  ASSERT_GE(fd, 0);
  const auto opening = read_stream_until(fd, "id: e0", std::chrono::seconds(5));
  EXPECT_NE(opening.find("text/event-stream"), std::string::npos) << opening;
  const auto id = push.deliver(raw_mail(push.account(), "push-1@example.net", "Pushed"));
  const auto event = read_stream_until(fd, "\"Email\": \"s1\"", std::chrono::seconds(5));
  EXPECT_NE(event.find("event: state"), std::string::npos) << event;
  EXPECT_NE(event.find("id: e1"), std::string::npos) << event;
  EXPECT_NE(read_stream_until(fd, "event: ping", std::chrono::seconds(3)).find("event: ping"),
            std::string::npos);
  EXPECT_EQ(push.drop_streams(), 1);
  EXPECT_EQ(read_stream_until(fd, "never", std::chrono::seconds(3)).find("never"),
            std::string::npos);
  ::close(fd);

  const int again =
      open_stream(push.port(), "/jmap/eventsource/?types=*&closeafter=no&ping=0", auth, "e1");
  ASSERT_GE(again, 0);
  const auto quiet = read_stream_until(again, "event: state", std::chrono::milliseconds(500));
  EXPECT_EQ(quiet.find("event: state"), std::string::npos) << "nothing new since e1: " << quiet;
  ::close(again);

  bool saw_reconnect = false;
  for (const auto& entry : push.requests()) {
    if (entry.at("kind") == "stream" && entry.at("last_event_id") == "e1") saw_reconnect = true;
  }
  EXPECT_TRUE(saw_reconnect);
  const auto emails = push.emails();
  ASSERT_EQ(emails.size(), 1u);
  EXPECT_EQ(emails[0].at("id").as_string(), id);

  const auto download =
      get(push.port(), "/jmap/download/" + push.account() + "/B" + id + "/m.eml?accept=x",
          push.account(), push.password());
  ASSERT_TRUE(download);
  EXPECT_NE(download->body.find("push-1@example.net"), std::string::npos);
}

}  // namespace
}  // namespace sb::test

// The SMTP submission client against aiosmtpd (tests/support/smtp_sink.py): what arrived is
// read back from the sink's files. A scripted fake server in this file covers what aiosmtpd
// cannot be made to do (answers injected before TLS, unreadable or endless answers).

#include "channels/email/smtp_client.h"

#include <gmime/gmime.h>
#include <gtest/gtest.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <memory>
#include <optional>
#include <tuple>

#include "support/smtp_sink.h"
#include "support/temp_dir.h"
#include "support/test_certs.h"

namespace sb::email {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using channels::SendOutcome;
using Kind = SendOutcome::Kind;
using Security = SmtpClientOptions::Security;
using test::SmtpSink;
using test::SmtpSinkOptions;
using test::TempDir;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

const char* kind_name(Kind kind) {
  return kind == Kind::sent ? "sent" : kind == Kind::retry ? "retry" : "failed";
}

// Runs smtp_send on `io` (where a fake server may run too) until it has an outcome; the
// minute is a hang guard only.
SendOutcome send_on(asio::io_context& io, const SmtpClientOptions& options,
                    const SmtpMessage& message) {
  std::optional<SendOutcome> outcome;
  std::exception_ptr failure;
  asio::co_spawn(io, smtp_send(io.get_executor(), options, message),
                 [&](std::exception_ptr e, SendOutcome result) {
                   failure = e;
                   outcome = std::move(result);
                 });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!outcome && std::chrono::steady_clock::now() < deadline) {
    io.run_one_for(std::chrono::milliseconds(100));
  }
  if (failure) std::rethrow_exception(failure);
  if (!outcome) throw std::runtime_error("smtp_send did not finish within a minute");
  return *outcome;
}

SendOutcome deliver(const SmtpClientOptions& options, const SmtpMessage& message) {
  asio::io_context io;
  return send_on(io, options, message);
}

SmtpMessage simple_message() {
  return {"bot@example.org",
          {"alice@example.com"},
          "From: bot@example.org\r\nTo: alice@example.com\r\nSubject: Hello\r\n"
          "Message-ID: <m1@example.org>\r\n\r\nHi Alice.\r\n"};
}

SmtpClientOptions plain_options(std::uint16_t port) {
  SmtpClientOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.security = Security::plain;
  o.connect_timeout = std::chrono::seconds(20);
  o.command_timeout = std::chrono::seconds(20);
  return o;
}

std::string field(const boost::json::object& message, std::string_view name) {
  const auto* value = message.if_contains(name);
  return value && value->is_string() ? std::string(value->as_string()) : "";
}

class SmtpClientTest : public ::testing::Test {
 protected:
  // One CA and server certificate for all the tests: openssl takes a moment per key.
  static void SetUpTestSuite() {
    cert_dir_ = new TempDir();
    certs_ = new test::TestCertificates(cert_dir_->path());
  }
  static void TearDownTestSuite() {
    delete certs_;
    delete cert_dir_;
  }

  SmtpSinkOptions tls_sink(bool implicit = false) const {
    SmtpSinkOptions s;
    s.tls_cert = certs_->server_cert();
    s.tls_key = certs_->server_key();
    s.implicit_tls = implicit;
    return s;
  }
  SmtpClientOptions tls_options(std::uint16_t port, Security security = Security::starttls) const {
    SmtpClientOptions o = plain_options(port);
    o.security = security;
    o.ca_file = certs_->ca_cert();
    return o;
  }

  static TempDir* cert_dir_;
  static test::TestCertificates* certs_;
  TempDir dir_;
};

TempDir* SmtpClientTest::cert_dir_ = nullptr;
test::TestCertificates* SmtpClientTest::certs_ = nullptr;

// --- Delivery --------------------------------------------------------------------------

TEST_F(SmtpClientTest, PlainSendDeliversHeadersAndBodyIntact) {
  SmtpSink sink(dir_.path());
  SmtpMessage message = simple_message();
  message.recipients.push_back("bob@example.com");
  // Lines starting with a dot are dot-stuffed on the wire and must arrive as written; a
  // lone dot in the body must not end the message.
  message.data += ".hidden line\r\n..two dots\r\n.\r\nafter the lone dot\r\n";

  const SendOutcome outcome = deliver(plain_options(sink.port()), message);

  ASSERT_EQ(outcome.kind, Kind::sent) << outcome.error;
  EXPECT_EQ(outcome.error, "");
  const auto arrived = sink.messages();
  ASSERT_EQ(arrived.size(), 1u) << sink.log();
  EXPECT_EQ(field(arrived[0], "mail_from"), "bot@example.org");
  EXPECT_EQ(boost::json::serialize(arrived[0].at("rcpt_tos")),
            R"(["alice@example.com","bob@example.com"])");
  EXPECT_EQ(field(arrived[0], "data"), message.data);
  EXPECT_FALSE(arrived[0].at("tls").as_bool());
  EXPECT_TRUE(arrived[0].at("auth_user").is_null());
}

TEST_F(SmtpClientTest, AnnouncesTheMessageSizeWhenTheServerTakesSize) {
  SmtpSink sink(dir_.path());
  const SmtpMessage message = simple_message();

  ASSERT_EQ(deliver(plain_options(sink.port()), message).kind, Kind::sent);

  const auto arrived = sink.messages();
  ASSERT_EQ(arrived.size(), 1u);
  // The size on the wire: the message plus the terminating ".\r\n".
  EXPECT_EQ(boost::json::serialize(arrived[0].at("mail_options")),
            "[\"SIZE=" + std::to_string(message.data.size() + 3) + "\"]");
}

TEST_F(SmtpClientTest, BareLineFeedsBecomeCrlfSoNoDotCanEndTheDataEarly) {
  SmtpSink sink(dir_.path());
  SmtpMessage message = simple_message();
  message.data = "Subject: smuggling\r\n\r\nbefore\n.\nMAIL FROM:<evil@example.net>\r\nafter";

  ASSERT_EQ(deliver(plain_options(sink.port()), message).kind, Kind::sent);

  const auto arrived = sink.messages();
  ASSERT_EQ(arrived.size(), 1u);
  EXPECT_EQ(field(arrived[0], "data"),
            "Subject: smuggling\r\n\r\nbefore\r\n.\r\nMAIL FROM:<evil@example.net>\r\nafter\r\n");
}

TEST_F(SmtpClientTest, MultipartAlternativeArrivesWithItsMimeStructure) {
  SmtpSink sink(dir_.path());
  SmtpMessage message = simple_message();
  message.data =
      "From: Bot <bot@example.org>\r\n"
      "To: alice@example.com\r\n"
      "Subject: Re: Plans\r\n"
      "Message-ID: <m2@example.org>\r\n"
      "In-Reply-To: <q1@example.com>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/alternative; boundary=\"=_b1\"\r\n"
      "\r\n"
      "--=_b1\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n"
      "Caf\xc3\xa9 at *noon*.\r\n"
      ".\r\n"
      "--=_b1\r\n"
      "Content-Type: text/html; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n"
      "<p>Caf\xc3\xa9 at <em>noon</em>.</p>\r\n"
      "--=_b1--\r\n";

  ASSERT_EQ(deliver(plain_options(sink.port()), message).kind, Kind::sent);

  const auto arrived = sink.messages();
  ASSERT_EQ(arrived.size(), 1u);
  EXPECT_EQ(boost::json::serialize(arrived[0].at("mail_options")),
            "[\"SIZE=" + std::to_string(message.data.size() + 4) + "\",\"BODY=8BITMIME\"]");
  const std::string data = field(arrived[0], "data");
  g_mime_init();
  GMimeStream* stream = g_mime_stream_mem_new_with_buffer(data.data(), data.size());
  GMimeParser* parser = g_mime_parser_new_with_stream(stream);
  GMimeMessage* parsed = g_mime_parser_construct_message(parser, nullptr);
  ASSERT_NE(parsed, nullptr);
  EXPECT_STREQ(g_mime_message_get_subject(parsed), "Re: Plans");
  EXPECT_STREQ(g_mime_message_get_message_id(parsed), "m2@example.org");
  GMimeObject* body = g_mime_message_get_mime_part(parsed);
  ASSERT_TRUE(GMIME_IS_MULTIPART(body));
  EXPECT_TRUE(g_mime_content_type_is_type(g_mime_object_get_content_type(body), "multipart",
                                          "alternative"));
  GMimeMultipart* alternative = GMIME_MULTIPART(body);
  EXPECT_STREQ(g_mime_multipart_get_boundary(alternative), "=_b1");
  ASSERT_EQ(g_mime_multipart_get_count(alternative), 2);
  // The line end before a boundary belongs to the boundary (RFC 2046 5.1.1).
  const std::pair<const char*, const char*> expected[] = {
      {"plain", "Caf\xc3\xa9 at *noon*.\r\n."}, {"html", "<p>Caf\xc3\xa9 at <em>noon</em>.</p>"}};
  for (int i = 0; i < 2; ++i) {
    GMimeObject* part = g_mime_multipart_get_part(alternative, i);
    ASSERT_TRUE(GMIME_IS_TEXT_PART(part)) << i;
    EXPECT_TRUE(g_mime_content_type_is_type(g_mime_object_get_content_type(part), "text",
                                            expected[i].first))
        << i;
    char* text = g_mime_text_part_get_text(GMIME_TEXT_PART(part));
    EXPECT_EQ(std::string(text), expected[i].second) << i;
    g_free(text);
  }
  g_object_unref(parsed);
  g_object_unref(parser);
  g_object_unref(stream);
}

// --- TLS and AUTH ----------------------------------------------------------------------

TEST_F(SmtpClientTest, StartTlsWithAuthPlainTrustsTheGivenCa) {
  SmtpSinkOptions s = tls_sink();
  s.auth = "bot:s3cret";
  SmtpSink sink(dir_.path(), s);
  SmtpClientOptions o = tls_options(sink.port());
  o.username = "bot";
  o.password = "s3cret";

  const SendOutcome outcome = deliver(o, simple_message());

  ASSERT_EQ(outcome.kind, Kind::sent) << outcome.error << "\n" << sink.log();
  const auto arrived = sink.messages();
  ASSERT_EQ(arrived.size(), 1u);
  EXPECT_TRUE(arrived[0].at("tls").as_bool());
  EXPECT_EQ(field(arrived[0], "auth_user"), "bot");
  EXPECT_EQ(field(arrived[0], "auth_mechanism"), "PLAIN");
}

TEST_F(SmtpClientTest, StartTlsWithAuthLoginWhenOnlyLoginIsOffered) {
  SmtpSinkOptions s = tls_sink();
  s.auth = "bot:s3cret";
  s.auth_mechanisms = "LOGIN";
  SmtpSink sink(dir_.path(), s);
  SmtpClientOptions o = tls_options(sink.port());
  o.username = "bot";
  o.password = "s3cret";

  const SendOutcome outcome = deliver(o, simple_message());

  ASSERT_EQ(outcome.kind, Kind::sent) << outcome.error << "\n" << sink.log();
  const auto arrived = sink.messages();
  ASSERT_EQ(arrived.size(), 1u);
  EXPECT_EQ(field(arrived[0], "auth_user"), "bot");
  EXPECT_EQ(field(arrived[0], "auth_mechanism"), "LOGIN");
}

TEST_F(SmtpClientTest, ImplicitTlsWithAuth) {
  SmtpSinkOptions s = tls_sink(/*implicit=*/true);
  s.auth = "bot:s3cret";
  SmtpSink sink(dir_.path(), s);
  SmtpClientOptions o = tls_options(sink.port(), Security::tls);
  o.username = "bot";
  o.password = "s3cret";

  const SendOutcome outcome = deliver(o, simple_message());

  ASSERT_EQ(outcome.kind, Kind::sent) << outcome.error << "\n" << sink.log();
  const auto arrived = sink.messages();
  ASSERT_EQ(arrived.size(), 1u);
  EXPECT_TRUE(arrived[0].at("tls").as_bool());
  EXPECT_EQ(field(arrived[0], "auth_user"), "bot");
}

TEST_F(SmtpClientTest, UntrustedCertificateIsRetriedAndNothingIsSent) {
  SmtpSink sink(dir_.path(), tls_sink());
  SmtpClientOptions o = tls_options(sink.port());
  o.ca_file.clear();  // the system's store, which does not know the test CA

  const SendOutcome outcome = deliver(o, simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("TLS handshake"), std::string::npos) << outcome.error;
  EXPECT_NE(outcome.error.find("certificate"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
}

TEST_F(SmtpClientTest, ImplicitTlsWithUntrustedCertificateIsRetried) {
  SmtpSink sink(dir_.path(), tls_sink(/*implicit=*/true));
  SmtpClientOptions o = tls_options(sink.port(), Security::tls);
  o.ca_file.clear();

  const SendOutcome outcome = deliver(o, simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("certificate"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
}

TEST_F(SmtpClientTest, CertificateForAnotherHostIsRetried) {
  const auto other = certs_->issue("other-host", {"DNS:mail.example.org"});
  SmtpSinkOptions s;
  s.tls_cert = other.cert;
  s.tls_key = other.key;
  SmtpSink sink(dir_.path(), s);

  const SendOutcome outcome = deliver(tls_options(sink.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("mismatch"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
}

TEST_F(SmtpClientTest, VerificationOffAcceptsAnUntrustedCertificateAndWarns) {
  SmtpSink sink(dir_.path(), tls_sink());
  SmtpClientOptions o = tls_options(sink.port());
  o.ca_file.clear();
  o.verify_certificate = false;

  const SendOutcome outcome = deliver(o, simple_message());

  EXPECT_EQ(outcome.kind, Kind::sent) << outcome.error;
  const auto warnings = smtp_client_warnings(o);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("verification is off"), std::string::npos) << warnings[0];
}

TEST_F(SmtpClientTest, StartTlsNotOfferedIsRetriedWithoutSendingInClearText) {
  SmtpSink sink(dir_.path());  // plain: offers no STARTTLS
  SmtpClientOptions o = tls_options(sink.port());

  const SendOutcome outcome = deliver(o, simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("does not offer STARTTLS"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
}

TEST_F(SmtpClientTest, WrongPasswordFailsWithTheServersAnswer) {
  SmtpSinkOptions s = tls_sink();
  s.auth = "bot:s3cret";
  SmtpSink sink(dir_.path(), s);
  SmtpClientOptions o = tls_options(sink.port());
  o.username = "bot";
  o.password = "wrong";

  const SendOutcome outcome = deliver(o, simple_message());

  EXPECT_EQ(outcome.kind, Kind::failed) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("AUTH PLAIN: 535 5.7.8 Authentication credentials invalid"),
            std::string::npos)
      << outcome.error;
  EXPECT_EQ(outcome.error.find("wrong"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
}

// --- Answers: retry, fail, partial ------------------------------------------------------

TEST_F(SmtpClientTest, TemporaryFailureIsRetriedThenSent) {
  SmtpSinkOptions s;
  s.script = "451,250";
  SmtpSink sink(dir_.path(), s);
  const SmtpClientOptions o = plain_options(sink.port());

  const SendOutcome first = deliver(o, simple_message());
  EXPECT_EQ(first.kind, Kind::retry) << kind_name(first.kind);
  EXPECT_NE(first.error.find("451 4.3.0 Temporary failure, try again later"), std::string::npos)
      << first.error;
  EXPECT_TRUE(sink.messages().empty());

  const SendOutcome second = deliver(o, simple_message());
  EXPECT_EQ(second.kind, Kind::sent) << second.error;
  EXPECT_EQ(sink.messages().size(), 1u);
}

TEST_F(SmtpClientTest, PermanentFailureFailsWithTheServersAnswer) {
  SmtpSinkOptions s;
  s.script = "550";
  SmtpSink sink(dir_.path(), s);

  const SendOutcome outcome = deliver(plain_options(sink.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::failed) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("550 5.7.1 Message rejected"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
}

TEST_F(SmtpClientTest, UnknownRecipientFailsWithTheServersAnswer) {
  SmtpSinkOptions s;
  s.rcpt_script = "550";
  SmtpSink sink(dir_.path(), s);

  const SendOutcome outcome = deliver(plain_options(sink.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::failed) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("550 5.1.1 <alice@example.com>: user unknown"), std::string::npos)
      << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
}

TEST_F(SmtpClientTest, SomeRecipientsRefusedIsSentWithTheRefusalsInTheError) {
  SmtpSinkOptions s;
  s.rcpt_script = "250,550";
  SmtpSink sink(dir_.path(), s);
  SmtpMessage message = simple_message();
  message.recipients.push_back("nobody@example.com");

  const SendOutcome outcome = deliver(plain_options(sink.port()), message);

  EXPECT_EQ(outcome.kind, Kind::sent) << outcome.error;
  EXPECT_NE(outcome.error.find("550 5.1.1 <nobody@example.com>: user unknown"), std::string::npos)
      << outcome.error;
  const auto arrived = sink.messages();
  ASSERT_EQ(arrived.size(), 1u);
  EXPECT_EQ(boost::json::serialize(arrived[0].at("rcpt_tos")), R"(["alice@example.com"])");
}

TEST_F(SmtpClientTest, TemporaryRecipientFailureRetriesTheWholeMessageBeforeData) {
  SmtpSinkOptions s;
  s.rcpt_script = "250,452";
  SmtpSink sink(dir_.path(), s);
  SmtpMessage message = simple_message();
  message.recipients.push_back("full@example.com");

  const SendOutcome outcome = deliver(plain_options(sink.port()), message);

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("452 4.2.2 Mailbox full"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
}

TEST_F(SmtpClientTest, MultiLineRefusalIsReadWhole) {
  SmtpSinkOptions s;
  s.script = "554 5.7.1 Rejected for policy reasons|5.7.1 see https://example.org/policy";
  SmtpSink sink(dir_.path(), s);

  const SendOutcome outcome = deliver(plain_options(sink.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::failed) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find(
                "554 5.7.1 Rejected for policy reasons 5.7.1 see https://example.org/policy"),
            std::string::npos)
      << outcome.error;
}

TEST_F(SmtpClientTest, MessageOverTheServersSizeIsRefusedBeforeSending) {
  SmtpSinkOptions s;
  s.size_limit = 100;
  SmtpSink sink(dir_.path(), s);
  SmtpMessage message = simple_message();
  message.data += std::string(200, 'x') + "\r\n";

  const SendOutcome outcome = deliver(plain_options(sink.port()), message);

  EXPECT_EQ(outcome.kind, Kind::failed) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("at most 100"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
  EXPECT_EQ(sink.log().find("MAIL FROM"), std::string::npos) << sink.log();
}

TEST_F(SmtpClientTest, AddressThatWouldInjectACommandFailsWithoutConnecting) {
  SmtpMessage message = simple_message();
  message.recipients = {"alice@example.com>\r\nRCPT TO:<mallory@example.net"};

  const SendOutcome outcome = deliver(plain_options(1), message);

  EXPECT_EQ(outcome.kind, Kind::failed) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("recipient address"), std::string::npos) << outcome.error;
}

TEST_F(SmtpClientTest, NonAsciiAddressFailsWhenTheServerLacksSmtpUtf8) {
  SmtpSink sink(dir_.path());  // aiosmtpd offers SMTPUTF8 only when told to
  SmtpMessage message = simple_message();
  message.recipients = {"j\xc3\xbcrgen@example.de"};

  const SendOutcome outcome = deliver(plain_options(sink.port()), message);

  EXPECT_EQ(outcome.kind, Kind::failed) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("SMTPUTF8"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.messages().empty());
}

// --- Connections that go wrong ----------------------------------------------------------

TEST_F(SmtpClientTest, ServerThatNeverAnswersTimesOutAndIsRetried) {
  asio::io_context io;
  // Listening but never accepting: the kernel completes the connection, nobody speaks.
  tcp::acceptor silent(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  SmtpClientOptions o = plain_options(silent.local_endpoint().port());
  o.command_timeout = std::chrono::milliseconds(300);

  const SendOutcome outcome = send_on(io, o, simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("did not answer"), std::string::npos) << outcome.error;
}

TEST_F(SmtpClientTest, RefusedConnectionIsRetried) {
  std::uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor closed(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = closed.local_endpoint().port();
  }

  const SendOutcome outcome = deliver(plain_options(port), simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("cannot connect to 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << outcome.error;
}

// A scripted server for what aiosmtpd cannot be made to do. It accepts one connection,
// writes steps[0] as the greeting, then for each further step reads one command (or, after
// a 354, the message up to its end) and writes the step's bytes as they are.
struct FakeStep {
  std::string reply;
  bool start_tls = false;  // handshake as the server after writing the reply
  bool close = false;      // close the connection instead of answering
};

class FakeServer {
 public:
  FakeServer(asio::io_context& io, std::vector<FakeStep> steps, ssl::context* tls = nullptr)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        received_(std::make_shared<std::vector<std::string>>()) {
    asio::co_spawn(io, serve(acceptor_, std::move(steps), tls, received_), asio::detached);
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  // The commands read, in order; a message read after 354 shows as "<data>".
  const std::vector<std::string>& received() const { return *received_; }

 private:
  static asio::awaitable<void> serve(tcp::acceptor& acceptor, std::vector<FakeStep> steps,
                                     ssl::context* tls,
                                     std::shared_ptr<std::vector<std::string>> received) {
    auto [aec, socket] = co_await acceptor.async_accept(kAsTuple);
    if (aec) co_return;
    ssl::context unused(ssl::context::tls_server);
    ssl::stream<tcp::socket> stream(std::move(socket), tls ? *tls : unused);
    bool secure = false;
    std::string buffer;
    bool in_data = false;
    for (std::size_t i = 0; i < steps.size(); ++i) {
      if (i > 0) {
        const std::string end = in_data ? "\r\n.\r\n" : "\r\n";
        while (buffer.find(end) == std::string::npos) {
          std::array<char, 4096> chunk;
          boost::system::error_code ec;
          std::size_t n = 0;
          if (secure) {
            std::tie(ec, n) = co_await stream.async_read_some(asio::buffer(chunk), kAsTuple);
          } else {
            std::tie(ec, n) =
                co_await stream.next_layer().async_read_some(asio::buffer(chunk), kAsTuple);
          }
          if (ec) co_return;
          buffer.append(chunk.data(), n);
        }
        const auto at = buffer.find(end);
        received->push_back(in_data ? "<data>" : buffer.substr(0, at));
        buffer.erase(0, at + end.size());
        in_data = false;
      }
      if (steps[i].close) co_return;
      boost::system::error_code wec;
      if (secure) {
        std::tie(wec, std::ignore) =
            co_await asio::async_write(stream, asio::buffer(steps[i].reply), kAsTuple);
      } else {
        std::tie(wec, std::ignore) =
            co_await asio::async_write(stream.next_layer(), asio::buffer(steps[i].reply), kAsTuple);
      }
      if (wec) co_return;
      in_data = steps[i].reply.starts_with("354");
      if (steps[i].start_tls) {
        auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, kAsTuple);
        if (hec) co_return;
        secure = true;
      }
    }
    // Hold the connection until the client closes it.
    std::array<char, 256> rest;
    for (;;) {
      boost::system::error_code ec;
      if (secure) {
        std::tie(ec, std::ignore) = co_await stream.async_read_some(asio::buffer(rest), kAsTuple);
      } else {
        std::tie(ec, std::ignore) =
            co_await stream.next_layer().async_read_some(asio::buffer(rest), kAsTuple);
      }
      if (ec) co_return;
    }
  }

  tcp::acceptor acceptor_;
  std::shared_ptr<std::vector<std::string>> received_;
};

TEST_F(SmtpClientTest, AnswersInjectedBeforeTheTlsHandshakeAreDiscarded) {
  asio::io_context io;
  ssl::context server_tls(ssl::context::tls_server);
  server_tls.use_certificate_chain_file(certs_->server_cert().string());
  server_tls.use_private_key_file(certs_->server_key().string(), ssl::context::pem);
  FakeServer fake(io,
                  {{"220 fake ESMTP\r\n"},
                   {"250-fake\r\n250 STARTTLS\r\n"},
                   // A man in the middle appends answers to the plaintext 220, hoping the
                   // client takes them as the answers to its first commands under TLS.
                   {"220 go ahead\r\n550 5.7.1 injected\r\n550 5.7.1 injected\r\n",
                    /*start_tls=*/true},
                   {"250-fake\r\n250 8BITMIME\r\n"},
                   {"250 sender ok\r\n"},
                   {"250 recipient ok\r\n"},
                   {"354 go on\r\n"},
                   {"250 queued\r\n"},
                   {"221 bye\r\n"}},
                  &server_tls);

  const SendOutcome outcome = send_on(io, tls_options(fake.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::sent) << outcome.error;
  const std::vector<std::string> expected{"EHLO localhost",
                                          "STARTTLS",
                                          "EHLO localhost",
                                          "MAIL FROM:<bot@example.org>",
                                          "RCPT TO:<alice@example.com>",
                                          "DATA",
                                          "<data>"};
  EXPECT_EQ(std::vector<std::string>(
                fake.received().begin(),
                fake.received().begin() + std::min(fake.received().size(), expected.size())),
            expected);
}

TEST_F(SmtpClientTest, ServerWithoutEhloGetsHelo) {
  asio::io_context io;
  FakeServer fake(io, {{"220 old server\r\n"},
                       {"502 5.5.1 command not recognized\r\n"},
                       {"250 old server\r\n"},
                       {"250 ok\r\n"},
                       {"250 ok\r\n"},
                       {"354 go on\r\n"},
                       {"250 queued\r\n"},
                       {"221 bye\r\n"}});

  const SendOutcome outcome = send_on(io, plain_options(fake.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::sent) << outcome.error;
  ASSERT_GE(fake.received().size(), 3u);
  EXPECT_EQ(fake.received()[1], "HELO localhost");
  EXPECT_EQ(fake.received()[2], "MAIL FROM:<bot@example.org>");
}

TEST_F(SmtpClientTest, UnreadableAnswerIsRetried) {
  asio::io_context io;
  FakeServer fake(io, {{"220 fake\r\n"}, {"hello there\r\n"}});

  const SendOutcome outcome = send_on(io, plain_options(fake.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("unreadable answer to EHLO"), std::string::npos) << outcome.error;
}

TEST_F(SmtpClientTest, EndlessAnswerLineIsRetried) {
  asio::io_context io;
  FakeServer fake(io, {{"220 " + std::string(100'000, 'x')}});

  const SendOutcome outcome = send_on(io, plain_options(fake.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("longer than"), std::string::npos) << outcome.error;
}

TEST_F(SmtpClientTest, EndlessMultiLineAnswerIsRetried) {
  std::string endless;
  for (int i = 0; i < 1000; ++i) endless += "250-X" + std::to_string(i) + "\r\n";
  asio::io_context io;
  FakeServer fake(io, {{"220 fake\r\n"}, {endless}});

  const SendOutcome outcome = send_on(io, plain_options(fake.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("lines"), std::string::npos) << outcome.error;
}

TEST_F(SmtpClientTest, ConnectionLostAfterTheMessageIsRetried) {
  asio::io_context io;
  FakeServer fake(io, {{"220 fake\r\n"},
                       {"250 fake\r\n"},
                       {"250 ok\r\n"},
                       {"250 ok\r\n"},
                       {"354 go on\r\n"},
                       {"", false, /*close=*/true}});

  const SendOutcome outcome = send_on(io, plain_options(fake.port()), simple_message());

  EXPECT_EQ(outcome.kind, Kind::retry) << kind_name(outcome.kind);
  EXPECT_NE(outcome.error.find("closed the connection"), std::string::npos) << outcome.error;
}

// --- Start-up warnings ------------------------------------------------------------------

TEST(SmtpClientWarnings, SafeSetupHasNone) {
  SmtpClientOptions o;
  o.host = "smtp.example.org";
  EXPECT_TRUE(smtp_client_warnings(o).empty());
  o.security = Security::tls;
  o.port = 465;
  EXPECT_TRUE(smtp_client_warnings(o).empty());
}

TEST(SmtpClientWarnings, PlainTextIsWarnedAbout) {
  SmtpClientOptions o;
  o.host = "127.0.0.1";
  o.port = 2525;
  o.security = Security::plain;
  o.username = "bot";
  o.password = "hunter2";
  const auto warnings = smtp_client_warnings(o);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("TLS is off"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("127.0.0.1:2525"), std::string::npos) << warnings[0];
  EXPECT_EQ(warnings[0].find("hunter2"), std::string::npos) << warnings[0];
}

}  // namespace
}  // namespace sb::email

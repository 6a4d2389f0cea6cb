#include "channels/email/imap_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <utility>

#include "channels/email/mail_connection.h"
#include "common/base64.h"
#include "common/tls_client.h"

namespace sb::email {

namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using Security = ImapOptions::Security;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
// UIDs per UID FETCH of sizes: keeps the command line and the answer small.
constexpr std::size_t kSizeBatch = 200;

const char* status_name(ImapStatus status) {
  switch (status) {
    case ImapStatus::ok:
      return "OK";
    case ImapStatus::no:
      return "NO";
    case ImapStatus::bad:
      return "BAD";
    case ImapStatus::bye:
      return "BYE";
    case ImapStatus::preauth:
      return "PREAUTH";
    case ImapStatus::none:
      break;
  }
  return "?";
}

// "NO [AUTHENTICATIONFAILED] Authentication failed."
std::string describe(const ImapResponse& answer) {
  std::string out = status_name(answer.status);
  if (!answer.code.empty()) {
    out += " [" + answer.code + (answer.code_args.empty() ? "" : " " + answer.code_args) + "]";
  }
  if (!answer.text.empty()) out += " " + answer.text;
  return out;
}

}  // namespace

// The connection and what must outlive it while a DONE is being written: the write runs on
// its own and holds the link, not the session.
struct ImapSession::Link {
  Link(asio::any_io_executor executor, const ImapOptions& options)
      : tls(ssl::context::tls_client),
        configured(configure(tls, options)),
        conn(executor, tls, options.host, options.port, options.verify_certificate, "imap"),
        done_written(executor) {}
  // Before the connection exists: its SSL object takes the verify mode at creation.
  static Result<void> configure(ssl::context& tls, const ImapOptions& options) {
    if (options.security == Security::plain) return {};
    return configure_tls_client(tls, options.verify_certificate, options.ca_file);
  }
  ssl::context tls;
  Result<void> configured;  // an error: the CA file cannot be loaded
  MailConnection conn;
  bool done_pending = false;
  asio::steady_timer done_written;  // cancelled when the DONE write has completed
};

namespace {

// DONE while IDLE's read is waiting: the one write in flight beside that read.
asio::awaitable<void> write_done(std::shared_ptr<ImapSession::Link> link,
                                 std::chrono::milliseconds timeout) {
  link->conn.expires_after(timeout);
  auto written = co_await link->conn.write("DONE\r\n", "DONE");
  if (!written) spdlog::debug("imap {}: {}", link->conn.server(), written.error().message);
  link->done_pending = false;
  link->done_written.cancel();
}

}  // namespace

ImapSession::ImapSession(asio::any_io_executor executor, const ImapOptions& options)
    : executor_(executor),
      options_(options),
      link_(std::make_shared<Link>(executor, options)),
      renew_timer_(executor) {
  // A message travels as one literal; RFC822.SIZE and the literal can differ a little (line
  // ends), and the response around it has a few more lines.
  limits_.max_literal = options.max_message_bytes + options.max_message_bytes / 16 + 64 * 1024;
  limits_.max_response = limits_.max_literal + 1024 * 1024;
  parser_ = ImapParser(limits_);
}

ImapSession::~ImapSession() { close(); }

const std::string& ImapSession::server() const { return link_->conn.server(); }

bool ImapSession::take_new_mail() { return std::exchange(new_mail_, false); }

ImapCommandBuilder ImapSession::command(std::string_view name) {
  return ImapCommandBuilder(tags_.next(), name, capabilities_.contains("LITERAL+"));
}

Error ImapSession::refused(std::string_view step, const ImapResponse& answer) const {
  return make_error(server() + " answered " + std::string(step) + ": " + describe(answer));
}

void ImapSession::observe(const ImapResponse& response) {
  if (auto capabilities = imap_capabilities(response)) capabilities_ = std::move(*capabilities);
  if (response.kind != ImapResponse::Kind::untagged) return;
  if (response.name == "EXISTS" && response.number) {
    if (*response.number > exists_) new_mail_ = true;
    exists_ = *response.number;
  } else if (response.name == "EXPUNGE" && exists_ > 0) {
    --exists_;
  } else if (response.status == ImapStatus::bye) {
    bye_ = response.text;
  } else if (response.code == "ALERT") {
    spdlog::warn("imap {}: {} says: {}", options_.account, server(), response.text);
  } else if (response.unknown) {
    spdlog::debug("imap {}: ignoring \"* {} {}\"", options_.account, response.name, response.text);
  }
}

asio::awaitable<Result<ImapResponse>> ImapSession::read_response(
    std::string_view step, std::chrono::milliseconds timeout) {
  for (;;) {
    if (auto response = parser_.next()) co_return std::move(*response);
    MailConnection& conn = link_->conn;
    conn.expires_after(timeout);
    Result<void> fed;
    if (const std::size_t literal = parser_.literal_remaining(); literal > 0) {
      auto bytes = co_await conn.read_exact(literal, step);
      if (!bytes) {
        co_return bye_.empty() ? bytes.error()
                               : make_error(server() + " ended the session: " + bye_);
      }
      fed = parser_.feed(*bytes);
    } else {
      // The parser bounds each line more finely; this bound only keeps one read finite.
      auto line = co_await conn.read_line(step, limits_.max_search_line);
      if (!line) {
        co_return bye_.empty() ? line.error()
                               : make_error(server() + " ended the session: " + bye_);
      }
      *line += "\r\n";
      fed = parser_.feed(*line);
    }
    if (!fed) {
      conn.mark_broken();
      co_return make_error(server() + " answered " + std::string(step) + " with an " +
                           fed.error().message);
    }
  }
}

asio::awaitable<Result<ImapResponse>> ImapSession::run(
    ImapCommand command, std::string_view step,
    const std::function<Result<void>(ImapResponse&)>& on_data) {
  MailConnection& conn = link_->conn;
  Result<void> data_error;
  for (std::size_t i = 0; i < command.pieces.size(); ++i) {
    conn.expires_after(options_.command_timeout);
    if (auto written = co_await conn.write(command.pieces[i], step); !written) {
      co_return written.error();
    }
    const bool last = i + 1 == command.pieces.size();
    for (;;) {
      auto response = co_await read_response(step, options_.command_timeout);
      if (!response) co_return response.error();
      if (response->kind == ImapResponse::Kind::continuation) {
        if (last) {
          conn.mark_broken();
          co_return make_error(server() + " asked for more than there is of " + std::string(step));
        }
        break;
      }
      if (response->kind == ImapResponse::Kind::tagged) {
        if (response->tag != command.tag) {
          conn.mark_broken();
          co_return make_error(server() + " answered a command it was not given (tag " +
                               response->tag.substr(0, 20) + ") during " + std::string(step));
        }
        if (!data_error) co_return data_error.error();
        co_return std::move(*response);
      }
      observe(*response);
      if (on_data && data_error) data_error = on_data(*response);
    }
  }
  co_return make_error(server() + ": " + std::string(step) + " has nothing to send");
}

asio::awaitable<Result<ImapResponse>> ImapSession::run_ok(
    ImapCommand command, std::string_view step,
    const std::function<Result<void>(ImapResponse&)>& on_data) {
  auto answer = co_await run(std::move(command), step, on_data);
  if (!answer) co_return answer.error();
  if (answer->status != ImapStatus::ok) co_return refused(step, *answer);
  co_return answer;
}

asio::awaitable<Result<void>> ImapSession::ask_capabilities() {
  capabilities_.clear();
  auto answer = co_await run_ok(command("CAPABILITY").finish(), "CAPABILITY");
  if (!answer) co_return answer.error();
  co_return Result<void>{};
}

asio::awaitable<Result<void>> ImapSession::open() {
  MailConnection& conn = link_->conn;
  if (!link_->configured) co_return link_->configured.error();
  if (auto connected = co_await conn.connect(options_.connect_timeout); !connected) {
    co_return connected.error();
  }
  if (options_.security == Security::tls) {
    if (auto secured = co_await conn.handshake(options_.connect_timeout); !secured) {
      co_return secured.error();
    }
  }
  auto greeting = co_await read_response("the greeting", options_.command_timeout);
  if (!greeting) co_return greeting.error();
  if (greeting->kind != ImapResponse::Kind::untagged ||
      (greeting->status != ImapStatus::ok && greeting->status != ImapStatus::preauth &&
       greeting->status != ImapStatus::bye)) {
    conn.mark_broken();
    co_return make_error(server() + " did not greet as an IMAP server does (\"" + greeting->name +
                         " " + greeting->text + "\")");
  }
  if (greeting->status == ImapStatus::bye) {
    conn.mark_broken();
    co_return make_error(server() + " refused the connection: " + greeting->text);
  }
  observe(*greeting);
  const bool preauth = greeting->status == ImapStatus::preauth;

  if (options_.security == Security::starttls) {
    if (preauth) {
      co_return make_error(server() +
                           " logged us in before STARTTLS (PREAUTH), so TLS cannot be started; "
                           "use security = tls (port 993)");
    }
    if (capabilities_.empty()) {
      if (auto asked = co_await ask_capabilities(); !asked) co_return asked.error();
    }
    if (!capabilities_.contains("STARTTLS")) {
      co_return make_error(server() +
                           " does not offer STARTTLS; not logging in in clear text "
                           "(security = starttls)");
    }
    auto go_ahead = co_await run_ok(command("STARTTLS").finish(), "STARTTLS");
    if (!go_ahead) co_return go_ahead.error();
    // RFC 9051 11.1: what came before TLS, answers and capabilities, is forgotten.
    conn.discard_buffered();
    parser_ = ImapParser(limits_);
    capabilities_.clear();
    if (auto secured = co_await conn.handshake(options_.connect_timeout); !secured) {
      co_return secured.error();
    }
    if (auto asked = co_await ask_capabilities(); !asked) co_return asked.error();
  }
  if (preauth) co_return Result<void>{};
  if (capabilities_.empty()) {
    if (auto asked = co_await ask_capabilities(); !asked) co_return asked.error();
  }
  if (auto logged_in = co_await login(); !logged_in) co_return logged_in.error();
  co_return Result<void>{};
}

asio::awaitable<Result<void>> ImapSession::login() {
  if (options_.security != Security::plain && !link_->conn.tls()) {
    co_return make_error("not sending the password for " + options_.username + " to " + server() +
                         " without TLS");
  }
  if (options_.username.empty()) co_return make_error("no IMAP user name is configured");
  if (options_.username.find('\0') != std::string::npos ||
      options_.password.find('\0') != std::string::npos) {
    co_return make_error("the IMAP user name or password contains a NUL byte");
  }
  using Auth = ImapOptions::Auth;
  const bool plain_offered = capabilities_.contains("AUTH=PLAIN");
  const bool use_plain =
      options_.auth == Auth::plain || (options_.auth == Auth::automatic && plain_offered);
  if (!use_plain && capabilities_.contains("LOGINDISABLED")) {
    co_return make_error(server() + " does not allow LOGIN (LOGINDISABLED)" +
                         (plain_offered ? std::string("; use auth = plain or automatic")
                                        : std::string(" and does not offer AUTHENTICATE PLAIN")));
  }
  std::string step;
  ImapCommand login;
  if (use_plain) {
    step = "AUTHENTICATE PLAIN";
    // RFC 4616: authorization id (empty), NUL, user name, NUL, password.
    const std::string credentials = base64_encode(std::string(1, '\0') + options_.username +
                                                  std::string(1, '\0') + options_.password);
    auto builder = command("AUTHENTICATE PLAIN");
    if (capabilities_.contains("SASL-IR")) {
      login = builder.raw(credentials).finish();
    } else {
      login = builder.finish();
      login.pieces.push_back(credentials + "\r\n");
    }
  } else {
    step = "LOGIN";
    login = command("LOGIN").string(options_.username).string(options_.password).finish();
  }
  auto answer = co_await run(std::move(login), step);
  if (!answer) co_return answer.error();
  if (answer->status != ImapStatus::ok) {
    co_return make_error(server() + " refused the login of " + options_.username + " (" + step +
                         "): " + describe(*answer));
  }
  // Servers often tell their full capabilities only after login (RFC 9051 6.2.2).
  if (answer->code != "CAPABILITY") {
    if (auto asked = co_await ask_capabilities(); !asked) co_return asked.error();
  }
  co_return Result<void>{};
}

asio::awaitable<Result<ImapSelected>> ImapSession::select(const std::string& folder) {
  ImapSelected selected;
  bool have_uidvalidity = false;
  const std::string step = "SELECT \"" + folder + "\"";
  auto answer = co_await run_ok(
      command("SELECT").string(folder).finish(), step, [&](ImapResponse& r) -> Result<void> {
        if (r.status != ImapStatus::ok) return {};
        if (r.code == "UIDVALIDITY" || r.code == "UIDNEXT") {
          std::uint32_t value = 0;
          const auto [end, ec] =
              std::from_chars(r.code_args.data(), r.code_args.data() + r.code_args.size(), value);
          if (ec != std::errc() || end == r.code_args.data()) {
            return make_error(server() + " sent an unreadable " + r.code + " for " + step);
          }
          if (r.code == "UIDVALIDITY") {
            selected.uidvalidity = value;
            have_uidvalidity = true;
          } else {
            selected.uidnext = value;
          }
        }
        return {};
      });
  if (!answer) co_return answer.error();
  if (!have_uidvalidity || selected.uidvalidity == 0) {
    co_return make_error(server() + " gave no UIDVALIDITY for " + step +
                         ", so messages cannot be tracked safely");
  }
  selected.exists = exists_;
  selected.read_only = answer->code == "READ-ONLY";
  new_mail_ = false;
  co_return selected;
}

asio::awaitable<Result<std::vector<std::uint32_t>>> ImapSession::uid_search(
    std::string_view criteria) {
  std::vector<std::uint32_t> uids;
  const std::string step = "UID SEARCH " + std::string(criteria);
  auto answer = co_await run_ok(command("UID SEARCH").raw(criteria).finish(), step,
                                [&](ImapResponse& r) -> Result<void> {
                                  if (r.name == "SEARCH" || r.name == "ESEARCH") {
                                    uids.insert(uids.end(), r.numbers.begin(), r.numbers.end());
                                  }
                                  return {};
                                });
  if (!answer) co_return answer.error();
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  co_return uids;
}

asio::awaitable<Result<std::map<std::uint32_t, std::uint64_t>>> ImapSession::uid_sizes(
    const std::vector<std::uint32_t>& uids) {
  std::map<std::uint32_t, std::uint64_t> sizes;
  for (std::size_t start = 0; start < uids.size(); start += kSizeBatch) {
    const std::vector<std::uint32_t> batch(
        uids.begin() + static_cast<std::ptrdiff_t>(start),
        uids.begin() + static_cast<std::ptrdiff_t>(std::min(uids.size(), start + kSizeBatch)));
    const std::string set = imap_sequence_set(batch);
    auto answer = co_await run_ok(command("UID FETCH").raw(set).raw("(UID RFC822.SIZE)").finish(),
                                  "UID FETCH " + set + " (RFC822.SIZE)",
                                  [&](ImapResponse& r) -> Result<void> {
                                    if (r.name != "FETCH") return {};
                                    auto fetch = imap_fetch(r);
                                    if (!fetch)
                                      return make_error(server() + ": " + fetch.error().message);
                                    if (fetch->uid && fetch->size)
                                      sizes[*fetch->uid] = *fetch->size;
                                    return {};
                                  });
    if (!answer) co_return answer.error();
  }
  co_return sizes;
}

asio::awaitable<Result<ImapBody>> ImapSession::uid_fetch_body(std::uint32_t uid) {
  ImapBody body;
  const std::string step = "UID FETCH " + std::to_string(uid) + " BODY.PEEK[]";
  auto answer =
      co_await run(command("UID FETCH").raw(std::to_string(uid)).raw("(UID BODY.PEEK[])").finish(),
                   step, [&](ImapResponse& r) -> Result<void> {
                     if (r.name != "FETCH") return {};
                     auto fetch = imap_fetch(r);
                     if (!fetch) return make_error(server() + ": " + fetch.error().message);
                     // Other sessions' flag changes arrive as FETCH too, without our UID or a body.
                     if (fetch->uid == uid && fetch->body) {
                       body.outcome = ImapBody::Outcome::fetched;
                       body.data = std::move(*fetch->body);
                     }
                     return {};
                   });
  if (!answer) co_return answer.error();
  if (answer->status == ImapStatus::bad) co_return refused(step, *answer);
  if (answer->status == ImapStatus::no) {
    body.outcome = ImapBody::Outcome::refused;
    body.data.clear();
    body.reason = describe(*answer);
  }
  co_return body;
}

asio::awaitable<Result<bool>> ImapSession::uid_mark_seen(std::uint32_t uid) {
  const std::string step = "UID STORE " + std::to_string(uid) + " +FLAGS.SILENT (\\Seen)";
  auto answer = co_await run(
      command("UID STORE").raw(std::to_string(uid)).raw("+FLAGS.SILENT (\\Seen)").finish(), step);
  if (!answer) co_return answer.error();
  if (answer->status == ImapStatus::ok) co_return true;
  spdlog::warn("imap {}: {}", options_.account, refused(step, *answer).message);
  co_return false;
}

asio::awaitable<Result<void>> ImapSession::noop() {
  auto answer = co_await run_ok(command("NOOP").finish(), "NOOP");
  if (!answer) co_return answer.error();
  co_return Result<void>{};
}

void ImapSession::send_done() {
  if (!idling_ || link_->done_pending) return;
  idling_ = false;
  link_->done_pending = true;
  asio::co_spawn(executor_, write_done(link_, options_.command_timeout), asio::detached);
}

void ImapSession::interrupt() {
  interrupted_ = true;
  send_done();
}

asio::awaitable<Result<ImapSession::IdleEnd>> ImapSession::idle(std::chrono::milliseconds renew) {
  ImapCommand command_idle = command("IDLE").finish();
  const std::string tag = command_idle.tag;
  MailConnection& conn = link_->conn;
  conn.expires_after(options_.command_timeout);
  if (auto written = co_await conn.write(command_idle.pieces.front(), "IDLE"); !written) {
    co_return written.error();
  }
  bool woken = false;
  for (bool idling = false; !idling;) {
    auto response = co_await read_response("IDLE", options_.command_timeout);
    if (!response) co_return response.error();
    if (response->kind == ImapResponse::Kind::continuation) {
      idling = true;
    } else if (response->kind == ImapResponse::Kind::tagged) {
      if (response->tag == tag && response->status != ImapStatus::ok) {
        co_return refused("IDLE", *response);
      }
      conn.mark_broken();
      co_return make_error(server() + " ended IDLE before it began: " + describe(*response));
    } else {
      observe(*response);
      woken |= response->name == "EXISTS";
    }
  }
  idling_ = true;
  if (woken || new_mail_ || interrupted_) send_done();
  // The timer's handler may run after the session is gone.
  renew_timer_.expires_after(renew);
  renew_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (auto live = weak.lock(); live && !ec) live->send_done();
  });
  Result<ImapResponse> answer = make_error("");
  for (;;) {
    answer = co_await read_response("IDLE", renew + options_.command_timeout);
    if (!answer) break;
    if (answer->kind == ImapResponse::Kind::tagged) break;
    if (answer->kind == ImapResponse::Kind::continuation) continue;
    observe(*answer);
    if (answer->name == "EXISTS") {
      woken = true;
      send_done();
    }
  }
  idling_ = false;
  renew_timer_.cancel();
  while (link_->done_pending) {
    link_->done_written.expires_after(options_.command_timeout);
    co_await link_->done_written.async_wait(kAsTuple);
  }
  if (!answer) co_return answer.error();
  if (answer->tag != tag) {
    conn.mark_broken();
    co_return make_error(server() + " answered a command it was not given (tag " +
                         answer->tag.substr(0, 20) + ") during IDLE");
  }
  if (answer->status != ImapStatus::ok) co_return refused("IDLE", *answer);
  if (woken) co_return IdleEnd::new_mail;
  co_return interrupted_ ? IdleEnd::interrupted : IdleEnd::renew;
}

asio::awaitable<void> ImapSession::logout(std::chrono::milliseconds timeout) {
  MailConnection& conn = link_->conn;
  if (conn.healthy() && !link_->done_pending) {
    auto tagged = command("LOGOUT").finish();
    conn.expires_after(timeout);
    if (auto written = co_await conn.write(tagged.pieces.front(), "LOGOUT"); written) {
      for (;;) {
        auto response = co_await read_response("LOGOUT", timeout);
        if (!response || response->kind == ImapResponse::Kind::tagged) break;
      }
    }
  }
  close();
}

void ImapSession::close() {
  idling_ = false;
  renew_timer_.cancel();
  link_->conn.close();
}

}  // namespace sb::email

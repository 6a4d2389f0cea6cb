#pragma once
// The outbound half of the email channel (docs/email.md): delivers outbox items for chats
// `email:<address>`.
//   kind "text"  — the agent's answer to a correspondent: a reply threaded on the latest mail
//                  from them (Re: subject, In-Reply-To, References), marked
//                  `Auto-Submitted: auto-replied`, limited per correspondent and hour;
//   kind "email" — a mail queued through POST /email: {"to": [...], "cc": [...],
//                  "subject", "body" (Markdown), "in_reply_to"?, "account"?,
//                  "attachments": [{"filename", "content_type", "content_base64"}]}.
// The body goes out as text and HTML (md4c); the Message-ID is derived from the outbox
// row's key, so a send repeated after a crash carries the same id. An account sends by SMTP
// submission or through its JMAP session (send = "jmap"). After an answer is sent, the
// mail it answers is marked read on the server when it came from a JMAP mailbox (its
// "jmap_id" metadata) — IMAP mail is marked \Seen when stored.
//
// Threading: send() on the event-loop thread.

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "channels/channel.h"
#include "channels/email/email_ingest.h"
#include "channels/email/jmap_client.h"
#include "channels/email/mail_policy.h"
#include "store/store.h"

namespace sb::email {

class EmailChannel final : public channels::Channel {
 public:
  // References must outlive the channel. `jmap`: the JMAP sessions by account address
  // (accounts that send or receive by jmap). `reply_limit`: answers per correspondent per
  // hour.
  EmailChannel(boost::asio::any_io_executor executor, Store& reader,
               const std::vector<EmailAccount>& accounts, std::map<std::string, JmapClient*> jmap,
               std::string assistant_name, std::string helo_name, std::size_t reply_limit);

  std::string_view name() const override { return "email"; }
  boost::asio::awaitable<channels::SendOutcome> send(const OutboxItem& item) override;

  // Start-up warnings about the accounts' submission settings (TLS or verification off, no
  // server to send with).
  std::vector<std::string> warnings() const;

  // For GET /health: when the account last sent, and its last sending error.
  boost::json::object send_status(const std::string& address) const;

 private:
  struct SendStatus {
    std::optional<std::chrono::system_clock::time_point> last_success, last_error_at;
    std::string last_error;
  };
  boost::asio::awaitable<channels::SendOutcome> deliver(const EmailAccount& account,
                                                        const OutgoingMail& mail);
  boost::asio::awaitable<void> mark_answered(const EmailAccount& account,
                                             const std::string& jmap_id);

  boost::asio::any_io_executor executor_;
  Store& reader_;
  const std::vector<EmailAccount>& accounts_;
  std::string assistant_name_;
  std::string helo_name_;
  std::map<std::string, JmapClient*> jmap_;
  std::size_t reply_limit_;
  ReplyRateLimiter limiter_;
  std::map<std::string, SendStatus> send_status_;  // by account address
};

}  // namespace sb::email

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
// row's key, so a send repeated after a crash carries the same id.
//
// Threading: send() on the event-loop thread.

#include <boost/asio/any_io_executor.hpp>
#include <vector>

#include "channels/channel.h"
#include "channels/email/email_ingest.h"
#include "channels/email/mail_policy.h"
#include "store/store.h"

namespace sb::email {

class EmailChannel final : public channels::Channel {
 public:
  // References must outlive the channel. `reply_limit`: answers per correspondent per hour.
  EmailChannel(boost::asio::any_io_executor executor, Store& reader,
               const std::vector<EmailAccount>& accounts, std::string assistant_name,
               std::string helo_name, std::size_t reply_limit);

  std::string_view name() const override { return "email"; }
  boost::asio::awaitable<channels::SendOutcome> send(const OutboxItem& item) override;

  // Start-up warnings about the accounts' submission settings (TLS or verification off, no
  // server to send with).
  std::vector<std::string> warnings() const;

 private:
  boost::asio::any_io_executor executor_;
  Store& reader_;
  const std::vector<EmailAccount>& accounts_;
  std::string assistant_name_;
  std::string helo_name_;
  std::size_t reply_limit_;
  ReplyRateLimiter limiter_;
};

}  // namespace sb::email

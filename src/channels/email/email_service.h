#pragma once
// The email channel as the daemon runs it (docs/email.md): the configured accounts, the
// ways mail comes in (the SMTP receiver; per account an IMAP or JMAP mailbox reader), all
// feeding the one ingest pipeline, and the outbound channel the outbox sends through (SMTP
// submission or JMAP per account). One object, so the daemon wires email in a few lines.
//
// Threading: everything on the event-loop thread.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "channels/email/email_channel.h"
#include "channels/email/email_ingest.h"
#include "channels/email/imap_receiver.h"
#include "channels/email/jmap_client.h"
#include "channels/email/jmap_receiver.h"
#include "channels/email/mailbox.h"
#include "channels/email/smtp_server.h"
#include "config/config.h"

namespace sb::email {

class EmailService {
 public:
  // Errors: an account's allow_from is invalid. References must outlive the service.
  static Result<std::unique_ptr<EmailService>> create(
      boost::asio::any_io_executor executor, const Config& config, Store& reader,
      WriteQueue& writer, core::GroupRegistry& groups, MetricsRegistry& metrics,
      std::function<void(const Message&)> on_stored);

  channels::Channel& channel() { return *channel_; }
  std::vector<std::string> addresses() const;

  // Binds the SMTP receiver when [email.receiver] is enabled. Error: the address cannot be
  // bound or the certificate cannot be loaded (start-up should stop).
  Result<void> listen();
  // Creates missing groups for the accounts, then starts the mailbox readers. Call once the
  // store is ready.
  boost::asio::awaitable<void> start();
  void stop();

  // For GET /health: the receiver's state and each account's receiving and sending state.
  boost::json::object health() const;

 private:
  EmailService() = default;

  // What runs for one account besides its configuration: its hooks into the pipeline, its
  // JMAP session (receive or send by jmap) and its mailbox reader (imap or jmap).
  struct AccountRuntime {
    const EmailAccount* account = nullptr;
    MailboxHooks hooks;
    std::unique_ptr<JmapClient> jmap;
    std::unique_ptr<ImapReceiver> imap_reader;
    std::unique_ptr<JmapReceiver> jmap_reader;
    const MailboxStatus* reader_status() const;
  };

  std::vector<EmailAccount> accounts_;
  std::vector<std::unique_ptr<AccountRuntime>> runtimes_;  // one per account, same order
  EmailReceiverConfig receiver_config_;
  std::unique_ptr<EmailIngest> ingest_;
  std::unique_ptr<EmailChannel> channel_;
  std::unique_ptr<SmtpServer> receiver_;
  std::optional<std::string> receiver_error_;
};

}  // namespace sb::email

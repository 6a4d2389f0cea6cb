#pragma once
// The email channel as the daemon runs it (docs/email.md): the configured accounts, the
// SMTP receiver feeding the ingest pipeline, and the outbound channel the outbox sends
// through. One object, so the daemon wires email in a few lines.
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
  // Creates missing groups for the accounts. Call once the store is ready.
  boost::asio::awaitable<void> start();
  void stop();

  // For GET /health: the receiver's state and each account.
  boost::json::object health() const;

 private:
  EmailService() = default;

  std::vector<EmailAccount> accounts_;
  EmailReceiverConfig receiver_config_;
  std::unique_ptr<EmailIngest> ingest_;
  std::unique_ptr<EmailChannel> channel_;
  std::unique_ptr<SmtpServer> receiver_;
  std::optional<std::string> receiver_error_;
};

}  // namespace sb::email

#include "channels/email/email_service.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace sb::email {

namespace {

std::string machine_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

Result<std::unique_ptr<EmailService>> EmailService::create(
    boost::asio::any_io_executor executor, const Config& config, Store& reader, WriteQueue& writer,
    core::GroupRegistry& groups, MetricsRegistry& metrics,
    std::function<void(const Message&)> on_stored) {
  auto accounts = make_accounts(config.email);
  if (!accounts) return accounts.error();
  std::unique_ptr<EmailService> service(new EmailService());
  service->accounts_ = std::move(*accounts);
  service->receiver_config_ = config.email.receiver;
  const std::string hostname =
      config.email.receiver.hostname.empty() ? machine_name() : config.email.receiver.hostname;

  MimeLimits limits;
  limits.max_attachment_bytes = config.email.max_attachment_bytes;
  limits.max_attachments = config.email.max_attachments;
  service->ingest_ = std::make_unique<EmailIngest>(executor, writer, groups, service->accounts_,
                                                   limits, metrics, std::move(on_stored));
  service->channel_ =
      std::make_unique<EmailChannel>(executor, reader, service->accounts_, config.assistant_name,
                                     hostname, config.email.reply_limit);
  for (const auto& warning : service->channel_->warnings()) spdlog::warn("{}", warning);

  if (config.email.receiver.enabled) {
    SmtpServerOptions options;
    const auto& rx = config.email.receiver;
    options.listen = rx.host;
    options.port = rx.port;
    options.hostname = hostname;
    options.tls_cert = rx.tls_cert;
    options.tls_key = rx.tls_key;
    for (const auto& account : service->accounts_) {
      if (account.config.receive == "smtp") options.recipients.push_back(account.config.address);
    }
    options.max_message_bytes = rx.max_message_bytes;
    options.max_recipients = rx.max_recipients;
    options.max_connections = rx.max_connections;
    options.max_connections_per_client = rx.max_connections_per_client;
    options.command_timeout = rx.command_timeout;
    options.data_timeout = rx.data_timeout;
    options.max_errors = rx.max_errors;
    if (options.recipients.empty()) {
      return make_error(
          "[email.receiver] is enabled but no [[email.accounts]] receives by smtp: it would "
          "refuse every recipient");
    }
    EmailIngest* ingest = service->ingest_.get();
    auto deliver = [ingest](SmtpEnvelope envelope, std::string data) {
      return ingest->deliver(std::move(envelope), std::move(data));
    };
    service->receiver_ =
        std::make_unique<SmtpServer>(executor, std::move(options), std::move(deliver), metrics);
  }
  return service;
}

std::vector<std::string> EmailService::addresses() const {
  std::vector<std::string> out;
  for (const auto& account : accounts_) out.push_back(account.config.address);
  return out;
}

Result<void> EmailService::listen() {
  if (!receiver_) return {};
  auto started = receiver_->start();
  if (!started) {
    receiver_error_ = started.error().message;
    return make_error("email receiver: " + started.error().message);
  }
  spdlog::info("email: receiving SMTP on {}:{} for {}", receiver_config_.host, receiver_->port(),
               fmt::join(addresses(), ", "));
  return {};
}

boost::asio::awaitable<void> EmailService::start() { co_await ingest_->prepare_groups(); }

void EmailService::stop() {
  if (receiver_) receiver_->stop();
}

boost::json::object EmailService::health() const {
  boost::json::array accounts;
  for (const auto& account : accounts_) {
    accounts.push_back(boost::json::object{{"address", account.config.address},
                                           {"group", account.config.group},
                                           {"receive", account.config.receive},
                                           {"send", account.config.send}});
  }
  boost::json::object receiver{{"enabled", receiver_ != nullptr}};
  if (receiver_) {
    receiver["listening"] = receiver_->port() != 0;
    receiver["port"] = receiver_->port();
    receiver["connections"] = receiver_->connection_count();
    if (receiver_error_) receiver["error"] = *receiver_error_;
  }
  return boost::json::object{{"accounts", std::move(accounts)}, {"receiver", std::move(receiver)}};
}

}  // namespace sb::email

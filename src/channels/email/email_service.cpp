#include "channels/email/email_service.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <map>

namespace sb::email {

namespace {

std::string machine_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

ImapOptions imap_options(const EmailAccountConfig& account) {
  const ImapAccountConfig& c = account.imap;
  ImapOptions o;
  o.account = account.address;
  o.host = c.host;
  o.port = c.port;
  o.security = c.security == "starttls" ? ImapOptions::Security::starttls
               : c.security == "plain"  ? ImapOptions::Security::plain
                                        : ImapOptions::Security::tls;
  o.verify_certificate = c.verify_certificate;
  o.ca_file = c.ca_file;
  o.username = c.username;
  o.password = c.password;
  o.auth = c.auth == "login"   ? ImapOptions::Auth::login
           : c.auth == "plain" ? ImapOptions::Auth::plain
                               : ImapOptions::Auth::automatic;
  o.folder = c.folder;
  o.poll_interval = c.poll_interval;
  o.idle_renew = c.idle_renew;
  return o;
}

JmapOptions jmap_options(const EmailAccountConfig& account, std::size_t max_message_bytes) {
  const JmapAccountConfig& c = account.jmap;
  JmapOptions o;
  o.account = account.address;
  o.session_url = c.session_url;
  o.bearer_token = c.token;
  if (c.token.empty()) {
    o.username = c.username;
    o.password = c.password;
  }
  o.verify_certificate = c.verify_certificate;
  o.ca_file = c.ca_file;
  o.after_send = c.after_send == "destroy" ? JmapOptions::AfterSend::destroy
                                           : JmapOptions::AfterSend::move_to_sent;
  o.push = c.push;
  o.poll_interval = c.poll_interval;
  o.max_message_bytes = max_message_bytes;
  return o;
}

// A plain coroutine function rather than a coroutine lambda: g++ 12 miscompiles moving a
// coroutine lambda's parameters into a capture inside the co_await (a double free).
boost::asio::awaitable<Result<void>> save_cursor(WriteQueue& writer, std::string key,
                                                 std::string value) {
  auto job = [key = std::move(key), value = std::move(value)](Store& store) {
    store.set_cursor(key, value);
    return true;
  };
  try {
    co_await writer.run(std::move(job));
  } catch (const std::exception& e) {
    co_return make_error(std::string("cannot save the mailbox position: ") + e.what());
  }
  co_return Result<void>{};
}

// Mailbox readers store through the ingest pipeline and keep their position as a cursor.
MailboxHooks make_hooks(EmailIngest& ingest, const EmailAccount& account, Store& reader,
                        WriteQueue& writer) {
  MailboxHooks hooks;
  hooks.store = [&ingest, &account](std::string data, std::string origin,
                                    boost::json::object extra) {
    return ingest.ingest(account, std::move(data), "", std::move(origin), std::move(extra));
  };
  hooks.load_state = [&reader](const std::string& key) { return reader.cursor(key); };
  hooks.save_state = [&writer](std::string key, std::string value) {
    return save_cursor(writer, std::move(key), std::move(value));
  };
  return hooks;
}

}  // namespace

const MailboxStatus* EmailService::AccountRuntime::reader_status() const {
  if (imap_reader) return &imap_reader->status();
  if (jmap_reader) return &jmap_reader->status();
  return nullptr;
}

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
  std::map<std::string, JmapClient*> jmap_clients;
  for (const auto& account : service->accounts_) {
    auto runtime = std::make_unique<AccountRuntime>();
    runtime->account = &account;
    runtime->hooks = make_hooks(*service->ingest_, account, reader, writer);
    const auto& c = account.config;
    if (c.receive == "jmap" || c.send == "jmap") {
      runtime->jmap = std::make_unique<JmapClient>(
          executor, jmap_options(c, config.email.receiver.max_message_bytes));
      jmap_clients[c.address] = runtime->jmap.get();
      for (const auto& w : jmap_warnings(runtime->jmap->options())) {
        spdlog::warn("email account {}: {}", c.address, w);
      }
    }
    if (c.receive == "imap") {
      auto options = imap_options(c);
      options.max_message_bytes = config.email.receiver.max_message_bytes;
      for (const auto& w : imap_warnings(options)) {
        spdlog::warn("email account {}: {}", c.address, w);
      }
      runtime->imap_reader =
          std::make_unique<ImapReceiver>(executor, std::move(options), runtime->hooks);
    } else if (c.receive == "jmap") {
      runtime->jmap_reader =
          std::make_unique<JmapReceiver>(executor, *runtime->jmap, runtime->hooks);
    }
    service->runtimes_.push_back(std::move(runtime));
  }
  service->channel_ =
      std::make_unique<EmailChannel>(executor, reader, service->accounts_, std::move(jmap_clients),
                                     config.assistant_name, hostname, config.email.reply_limit);
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

boost::asio::awaitable<void> EmailService::start() {
  co_await ingest_->prepare_groups();
  for (auto& runtime : runtimes_) {
    if (runtime->imap_reader) {
      spdlog::info("email: reading {} over IMAP from {}", runtime->account->config.address,
                   runtime->account->config.imap.host);
      runtime->imap_reader->start();
    }
    if (runtime->jmap_reader) {
      spdlog::info("email: reading {} over JMAP from {}", runtime->account->config.address,
                   runtime->account->config.jmap.session_url);
      runtime->jmap_reader->start();
    }
  }
}

void EmailService::stop() {
  if (receiver_) receiver_->stop();
  for (auto& runtime : runtimes_) {
    if (runtime->imap_reader) runtime->imap_reader->stop();
    if (runtime->jmap_reader) runtime->jmap_reader->stop();
  }
}

boost::json::object EmailService::health() const {
  boost::json::array accounts;
  for (const auto& runtime : runtimes_) {
    const auto& config = runtime->account->config;
    boost::json::object entry{{"address", config.address},
                              {"group", config.group},
                              {"receive", config.receive},
                              {"send", config.send}};
    if (const MailboxStatus* status = runtime->reader_status()) {
      entry["receiving"] = status->to_json();
    } else {
      // Mail for it arrives through the SMTP receiver below.
      entry["receiving"] = boost::json::object{
          {"state", receiver_ && receiver_->port() != 0 ? "listening" : "not listening"}};
    }
    entry["sending"] = channel_->send_status(config.address);
    accounts.push_back(std::move(entry));
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

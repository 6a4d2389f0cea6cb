#include "channels/email/email_channel.h"

#include <spdlog/spdlog.h>

#include <boost/beast/core/detail/base64.hpp>
#include <boost/json.hpp>

#include "channels/email/mailbox.h"
#include "channels/email/mime_builder.h"
#include "channels/email/smtp_client.h"
#include "common/hash.h"

namespace sb::email {

namespace asio = boost::asio;
namespace json = boost::json;
using channels::SendOutcome;

namespace {

SendOutcome failed(std::string why) { return {SendOutcome::Kind::failed, std::move(why)}; }

std::string domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : std::string(address.substr(at + 1));
}

std::string string_field(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::vector<std::string> string_list(const json::object& o, std::string_view name) {
  std::vector<std::string> out;
  const json::value* v = o.if_contains(name);
  if (v && v->is_string()) out.emplace_back(v->get_string());
  if (v && v->is_array()) {
    for (const auto& item : v->get_array()) {
      if (item.is_string()) out.emplace_back(item.get_string());
    }
  }
  return out;
}

SmtpClientOptions client_options(const SmtpSubmissionConfig& c, const std::string& helo) {
  SmtpClientOptions o;
  o.host = c.host;
  o.port = c.port;
  o.security = c.security == "tls"     ? SmtpClientOptions::Security::tls
               : c.security == "plain" ? SmtpClientOptions::Security::plain
                                       : SmtpClientOptions::Security::starttls;
  o.verify_certificate = c.verify_certificate;
  o.ca_file = c.ca_file;
  o.username = c.username;
  o.password = c.password;
  o.helo_name = c.helo.empty() ? helo : c.helo;
  return o;
}

// The latest mail the correspondent sent us: the message a reply is threaded on.
std::optional<Message> latest_from(Store& reader, const std::string& chat) {
  MessageQuery query;
  query.chat = chat;
  query.limit = 50;
  for (auto& m : reader.messages(query)) {
    if (!m.from_assistant && m.source == "email") return std::move(m);
  }
  return std::nullopt;
}

}  // namespace

EmailChannel::EmailChannel(boost::asio::any_io_executor executor, Store& reader,
                           const std::vector<EmailAccount>& accounts,
                           std::map<std::string, JmapClient*> jmap, std::string assistant_name,
                           std::string helo_name, std::size_t reply_limit)
    : executor_(std::move(executor)),
      reader_(reader),
      accounts_(accounts),
      assistant_name_(std::move(assistant_name)),
      helo_name_(std::move(helo_name)),
      jmap_(std::move(jmap)),
      reply_limit_(reply_limit),
      limiter_(reply_limit, std::chrono::hours(1)) {}

std::vector<std::string> EmailChannel::warnings() const {
  std::vector<std::string> out;
  for (const auto& account : accounts_) {
    if (account.config.send != "smtp") continue;
    const auto& smtp = account.config.smtp;
    if (smtp.host.empty()) {
      out.push_back("email account " + account.config.address +
                    " has no [email.accounts.smtp] host: its answers cannot be sent");
      continue;
    }
    for (auto& w : smtp_client_warnings(client_options(smtp, helo_name_))) {
      out.push_back("email account " + account.config.address + ": " + w);
    }
  }
  return out;
}

boost::asio::awaitable<SendOutcome> EmailChannel::send(const OutboxItem& item) {
  boost::system::error_code ec;
  json::value parsed = json::parse(item.payload_json, ec);
  if (ec || !parsed.is_object()) co_return failed("the outbox item's payload is not a JSON object");
  const json::object& payload = parsed.get_object();
  const auto chat = parse_chat_id(item.chat_jid);
  if (!chat) co_return failed("not an email chat: " + item.chat_jid);

  OutgoingMail mail;
  const EmailAccount* account = nullptr;
  std::string correspondent;     // rate-limited: replies only
  std::string answered_jmap_id;  // the answered mail, to mark read on its JMAP server
  if (item.kind == "text") {
    correspondent = chat->address;
    const auto parent = latest_from(reader_, item.chat_jid);
    std::string account_address;
    if (parent) {
      boost::system::error_code mec;
      json::value meta = json::parse(parent->metadata_json, mec);
      if (!mec && meta.is_object()) {
        const json::object& m = meta.get_object();
        account_address = string_field(m, "account");
        answered_jmap_id = string_field(m, "jmap_id");
        ParsedMail thread;
        thread.message_id = string_field(m, "message_id");
        thread.in_reply_to = string_field(m, "in_reply_to");
        thread.references = string_list(m, "references");
        mail.in_reply_to = thread.message_id;
        mail.references = reply_references(thread);
      }
      mail.subject = reply_subject(parent->subject.value_or(""));
    } else {
      mail.subject = "Message from " + assistant_name_;
    }
    account = account_address.empty() ? nullptr : account_for(accounts_, account_address);
    mail.to.push_back({chat->address, ""});
    mail.markdown_body = string_field(payload, "text");
  } else if (item.kind == "email") {
    const std::string wanted = string_field(payload, "account");
    if (!wanted.empty()) account = account_for(accounts_, wanted);
    for (auto& a : string_list(payload, "to")) mail.to.push_back({std::move(a), ""});
    for (auto& a : string_list(payload, "cc")) mail.cc.push_back({std::move(a), ""});
    mail.subject = string_field(payload, "subject");
    mail.markdown_body = string_field(payload, "body");
    mail.in_reply_to = string_field(payload, "in_reply_to");
    if (!mail.in_reply_to.empty()) mail.references.push_back(mail.in_reply_to);
    mail.auto_submitted.clear();
    if (const json::value* list = payload.if_contains("attachments"); list && list->is_array()) {
      for (const auto& a : list->get_array()) {
        if (!a.is_object()) continue;
        const std::string encoded = string_field(a.get_object(), "content_base64");
        std::string bytes(boost::beast::detail::base64::decoded_size(encoded.size()), '\0');
        const auto decoded =
            boost::beast::detail::base64::decode(bytes.data(), encoded.data(), encoded.size());
        bytes.resize(decoded.first);
        mail.attachments.push_back({string_field(a.get_object(), "filename"),
                                    string_field(a.get_object(), "content_type"),
                                    std::move(bytes)});
      }
    }
  } else {
    co_return failed("the email channel cannot send items of kind '" + item.kind + "'");
  }
  if (!account && !accounts_.empty()) account = &accounts_.front();
  if (!account) co_return failed("no email account is configured to send with");
  if (account->config.send == "smtp" && account->config.smtp.host.empty()) {
    co_return failed("the email account " + account->config.address +
                     " has no submission server ([email.accounts.smtp] host)");
  }
  // Counted per attempt, so a correspondent's answers that keep failing use it up too.
  if (!correspondent.empty() && !limiter_.try_acquire(correspondent)) {
    co_return failed("reply limit reached: at most " + std::to_string(reply_limit_) +
                     " answers an hour to " + correspondent);
  }

  mail.from = {account->config.address, account->config.display_name.empty()
                                            ? assistant_name_
                                            : account->config.display_name};
  // The same outbox row always gets the same Message-ID: a resend is recognisably one mail.
  mail.message_id = "sb." + sha256_hex(item.idempotency_key).substr(0, 32) + "@" +
                    domain_of(account->config.address);
  SendOutcome outcome = co_await deliver(*account, mail);
  SendStatus& status = send_status_[account->config.address];
  if (outcome.kind == SendOutcome::Kind::sent) {
    status.last_success = std::chrono::system_clock::now();
    spdlog::info("email: outbox item {} sent from {} by {} to {} (Message-ID <{}>)", item.id,
                 account->config.address, account->config.send, mail.to.front().address,
                 mail.message_id);
    if (!answered_jmap_id.empty()) co_await mark_answered(*account, answered_jmap_id);
  } else {
    status.last_error_at = std::chrono::system_clock::now();
    status.last_error = outcome.error;
  }
  co_return outcome;
}

asio::awaitable<SendOutcome> EmailChannel::deliver(const EmailAccount& account,
                                                   const OutgoingMail& mail) {
  if (account.config.send == "jmap") {
    const auto client = jmap_.find(account.config.address);
    if (client == jmap_.end() || client->second == nullptr) {
      co_return failed("the email account " + account.config.address + " has no JMAP session");
    }
    co_return co_await client->second->send(mail);
  }
  auto data = build_mail(mail);
  if (!data) co_return failed("cannot build the mail: " + data.error().message);
  SmtpMessage message;
  message.mail_from = account.config.address;
  for (const auto& m : mail.to) message.recipients.push_back(m.address);
  for (const auto& m : mail.cc) message.recipients.push_back(m.address);
  message.data = std::move(*data);
  const SmtpClientOptions options = client_options(account.config.smtp, helo_name_);
  co_return co_await smtp_send(executor_, options, message);
}

// The seed's defect was mail that stayed unread after it was answered ("19 unread"): the
// answered mail is marked read once the answer is out. A failure does not undo the send.
asio::awaitable<void> EmailChannel::mark_answered(const EmailAccount& account,
                                                  const std::string& jmap_id) {
  const auto client = jmap_.find(account.config.address);
  if (client == jmap_.end() || client->second == nullptr) co_return;
  auto marked = co_await client->second->mark_seen(jmap_id);
  if (!marked) {
    spdlog::warn("email {}: the answered mail {} could not be marked read: {}",
                 account.config.address, jmap_id, marked.error().message);
  }
}

json::object EmailChannel::send_status(const std::string& address) const {
  const auto it = send_status_.find(address);
  if (it == send_status_.end()) {
    return json::object{
        {"last_success", nullptr}, {"last_error", nullptr}, {"last_error_at", nullptr}};
  }
  const SendStatus& s = it->second;
  json::object out{{"last_success", json_time(s.last_success)},
                   {"last_error_at", json_time(s.last_error_at)}};
  if (s.last_error.empty()) {
    out["last_error"] = nullptr;
  } else {
    out["last_error"] = s.last_error;
  }
  return out;
}

}  // namespace sb::email

#include "channels/email/email_ingest.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "channels/email/attachments.h"
#include "common/hash.h"
#include "common/time.h"

namespace sb::email {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "alice+news@example.org" → "alice@example.org", lower case.
std::string base_address(std::string_view address) {
  std::string a = lower(address);
  const auto at = a.rfind('@');
  if (at == std::string::npos) return a;
  const auto plus = a.find('+');
  if (plus != std::string::npos && plus < at) a.erase(plus, at - plus);
  return a;
}

json::array mailbox_list(const std::vector<Mailbox>& boxes) {
  json::array out;
  for (const auto& b : boxes) out.push_back(json::string(b.address));
  return out;
}

std::string_view source_name(TextSource source) {
  switch (source) {
    case TextSource::plain:
      return "plain";
    case TextSource::html:
      return "html";
    case TextSource::none:
      break;
  }
  return "none";
}

// What the worker thread works out for one message.
struct Prepared {
  ParsedMail mail;
  std::string sender;
  std::optional<std::string> refusal;  // why it is filtered, when it is
  std::vector<SavedAttachment> attachments;
  std::optional<std::string> attachment_error;
};

// Mail up to this size is parsed on the event loop: GMime reads it in tens of microseconds,
// less than the two thread hand-offs a worker costs. Larger mail, and saving attachments
// (file writes with fsync), go to the worker (ARCHITECTURE.md rule 4).
constexpr std::size_t kInlineParseBytes = 64 * 1024;

// Parses and judges the message; attachments are saved by save_files().
Prepared judge(const EmailAccount& account, const std::vector<std::string>& own,
               const std::string& data, const std::string& envelope_from,
               const MimeLimits& limits) {
  Prepared p;
  p.mail = parse_mail(data, limits);
  p.sender = lower(p.mail.from.address.empty() ? envelope_from : p.mail.from.address);
  if (p.sender.empty()) {
    p.refusal = "the message names no sender";
  } else if (!account.allow.allows(p.sender)) {
    p.refusal = "the sender " + p.sender + " is not in allow_from";
  } else if (auto reason = no_reply_reason(p.mail, own)) {
    p.refusal = *reason;
  }
  return p;
}

// Only mail the agent will read leaves files in its folder.
bool has_files_to_save(const Prepared& p) { return !p.refusal && !p.mail.attachments.empty(); }

void save_files(Prepared& p, const std::filesystem::path& group_dir) {
  auto saved = save_attachments(group_dir, p.mail.attachments);
  if (saved) {
    p.attachments = std::move(*saved);
  } else {
    p.attachment_error = saved.error().message;
  }
}

}  // namespace

Result<std::vector<EmailAccount>> make_accounts(const EmailConfig& config) {
  std::vector<EmailAccount> out;
  for (const auto& account : config.accounts) {
    auto allow = AllowList::parse(account.allow_from);
    if (!allow) {
      return make_error("email account " + account.address +
                        ": allow_from: " + allow.error().message);
    }
    out.push_back(EmailAccount{account, std::move(*allow)});
  }
  return out;
}

const EmailAccount* account_for(const std::vector<EmailAccount>& accounts,
                                std::string_view address) {
  const std::string wanted = base_address(address);
  for (const auto& account : accounts) {
    if (base_address(account.config.address) == wanted) return &account;
  }
  return nullptr;
}

EmailIngest::EmailIngest(asio::any_io_executor executor, WriteQueue& writer,
                         core::GroupRegistry& groups, const std::vector<EmailAccount>& accounts,
                         MimeLimits limits, MetricsRegistry& metrics,
                         std::function<void(const Message&)> on_stored)
    : executor_(std::move(executor)),
      writer_(writer),
      groups_(groups),
      accounts_(accounts),
      limits_(limits),
      on_stored_(std::move(on_stored)),
      stored_(metrics.counter("switchboard_email_received_total",
                              "Mail stored for the agent (allowed senders).")),
      filtered_(metrics.counter("switchboard_email_filtered_total",
                                "Mail stored but never answered (sender not allowed, automatic "
                                "or list mail).")),
      failed_(metrics.counter("switchboard_email_ingest_failures_total",
                              "Mail that could not be stored (the sender is asked to retry).")) {
  for (const auto& account : accounts_) own_addresses_.push_back(account.config.address);
}

EmailIngest::~EmailIngest() {
  if (worker_) worker_->join();
}

asio::thread_pool& EmailIngest::worker() {
  if (!worker_) worker_ = std::make_unique<asio::thread_pool>(1);
  return *worker_;
}

asio::awaitable<void> EmailIngest::prepare_groups() {
  for (const auto& account : accounts_) {
    const std::string& folder = account.config.group;
    if (groups_.find(folder)) continue;
    core::GroupChange change;
    change.folder = folder;
    change.name = folder == "email" ? "Email" : folder;
    change.chats = std::vector<std::string>{};
    change.requires_trigger = false;
    auto created = co_await groups_.create(std::move(change));
    if (auto* failure = std::get_if<core::GroupRegistry::Failure>(&created)) {
      spdlog::error("email account {}: cannot create its group '{}': {}", account.config.address,
                    folder, failure->message);
    } else {
      spdlog::info("email account {}: created the group '{}' to answer its mail",
                   account.config.address, folder);
    }
  }
}

asio::awaitable<bool> EmailIngest::bind_chat(const std::string& folder, const std::string& chat) {
  // Two mails from a new correspondent may arrive together: the second waits for the first
  // binding, so that the cursor of the new chat is set once, before either is stored.
  asio::steady_timer pause(executor_);
  while (binding_.contains(chat)) {
    pause.expires_after(std::chrono::milliseconds(5));
    co_await pause.async_wait(asio::use_awaitable);
  }
  if (const auto* bound = groups_.for_chat(chat)) co_return bound->folder == folder;
  const auto* group = groups_.find(folder);
  if (!group) co_return false;
  binding_.insert(chat);
  core::GroupChange change;
  std::vector<std::string> chats = group->chats;
  chats.push_back(chat);
  change.chats = std::move(chats);
  auto updated = co_await groups_.update(folder, std::move(change));
  binding_.erase(chat);
  if (auto* failure = std::get_if<core::GroupRegistry::Failure>(&updated)) {
    spdlog::error("email: cannot bind {} to the group '{}': {}", chat, folder, failure->message);
    co_return false;
  }
  co_return true;
}

asio::awaitable<Result<void>> EmailIngest::deliver(SmtpEnvelope envelope, std::string data) {
  std::vector<const EmailAccount*> targets;
  for (const auto& recipient : envelope.recipients) {
    const EmailAccount* account = account_for(accounts_, recipient);
    if (account && std::ranges::find(targets, account) == targets.end()) targets.push_back(account);
  }
  if (targets.empty()) co_return make_error("no account for any recipient");
  for (const EmailAccount* account : targets) {
    try {
      auto stored = co_await ingest(*account, data, envelope.mail_from, envelope.id);
      if (!stored) {
        failed_.inc();
        co_return stored;
      }
    } catch (const std::exception& e) {
      failed_.inc();
      spdlog::error("email {}: cannot store the message for {}: {}", envelope.id,
                    account->config.address, e.what());
      co_return make_error(e.what());
    }
  }
  co_return Result<void>{};
}

asio::awaitable<Result<void>> EmailIngest::ingest(const EmailAccount& account, std::string data,
                                                  std::string envelope_from, std::string origin,
                                                  json::object extra) {
  const std::filesystem::path group_dir = groups_.paths().group_dir(account.config.group);

  bool on_worker = data.size() > kInlineParseBytes;
  if (on_worker) co_await asio::post(worker(), asio::use_awaitable);
  Prepared p = judge(account, own_addresses_, data, envelope_from, limits_);
  if (has_files_to_save(p)) {
    if (!on_worker) co_await asio::post(worker(), asio::use_awaitable);
    on_worker = true;
    save_files(p, group_dir);
  }
  if (on_worker) co_await asio::post(executor_, asio::use_awaitable);

  // A sender address that cannot name a chat (control characters, over 512 bytes) is
  // stored without one: kept and visible, never answered.
  const std::string chat = "email:" + p.sender;
  const bool has_chat = parse_chat_id(chat).has_value();
  if (!has_chat && !p.refusal) p.refusal = "the sender's address cannot name a chat";
  bool dispatch = !p.refusal;
  if (dispatch && !co_await bind_chat(account.config.group, chat)) {
    p.refusal = "the chat " + chat + " could not be bound to the group '" + account.config.group +
                "' (see the log)";
    dispatch = false;
  }

  json::object metadata{{"account", account.config.address},
                        {"envelope_from", envelope_from},
                        {"origin", origin},
                        {"message_id", p.mail.message_id},
                        {"in_reply_to", p.mail.in_reply_to},
                        {"to", mailbox_list(p.mail.to)},
                        {"cc", mailbox_list(p.mail.cc)},
                        {"text_source", source_name(p.mail.text_source)}};
  for (auto& [key, value] : extra) {
    if (!metadata.contains(key)) metadata[key] = std::move(value);
  }
  json::array references;
  for (const auto& r : p.mail.references) references.push_back(json::string(r));
  metadata["references"] = std::move(references);
  if (p.refusal) metadata["filtered_reason"] = *p.refusal;
  if (!p.mail.problems.empty()) {
    json::array problems;
    for (const auto& problem : p.mail.problems) problems.push_back(json::string(problem));
    metadata["problems"] = std::move(problems);
  }
  json::array files;
  for (const auto& a : p.attachments) {
    files.push_back(json::object{{"name", a.name},
                                 {"content_type", a.content_type},
                                 {"size", a.size},
                                 {"path", a.path},
                                 {"skipped", a.skipped}});
  }
  metadata["attachments"] = std::move(files);

  NewMessage message;
  message.source = "email";
  if (has_chat) message.chat = chat;
  message.sender = p.sender;
  if (!p.mail.from.name.empty()) message.sender_name = p.mail.from.name;
  if (!p.mail.subject.empty()) message.subject = p.mail.subject;
  message.content = p.mail.text;
  if (const std::string listing = describe_attachments(p.attachments); !listing.empty()) {
    message.content += "\n\n" + listing;
  }
  if (p.attachment_error) {
    message.content += "\n\n[The attachments could not be saved: " + *p.attachment_error + "]";
  }
  if (p.mail.date) {
    message.timestamp =
        format_iso8601(std::chrono::time_point_cast<std::chrono::milliseconds>(*p.mail.date));
  }
  message.status = dispatch ? MessageStatus::unread : MessageStatus::filtered;
  message.metadata_json = json::serialize(metadata);
  message.external_id =
      "email:" + account.config.address + ":" +
      (p.mail.message_id.empty() ? "sha256:" + sha256_hex(data) : p.mail.message_id);

  auto add = [m = std::move(message)](Store& store) { return store.add_message(m); };
  auto result = co_await writer_.run(std::move(add));
  if (!result.inserted) {
    spdlog::info("email {}: {} was stored before (same Message-ID); not stored again", origin,
                 p.mail.message_id);
    co_return Result<void>{};
  }
  if (dispatch) {
    stored_.inc();
    spdlog::info("email {}: from {} to {} stored as message {} for the group '{}'", origin,
                 p.sender, account.config.address, result.message.id, account.config.group);
  } else {
    filtered_.inc();
    spdlog::info("email {}: from {} stored as message {}, not answered: {}", origin,
                 p.sender.empty() ? "(nobody)" : p.sender, result.message.id, *p.refusal);
  }
  if (on_stored_) on_stored_(result.message);
  co_return Result<void>{};
}

}  // namespace sb::email

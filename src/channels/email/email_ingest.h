#pragma once
// The inbound half of the email channel (docs/email.md): a received message is parsed (on a
// worker thread), judged (may the sender command the agent? is it automatic mail that must
// never be answered?), its attachments saved into the answering group's folder, and stored
// — committed before the receiver says 250. Each correspondent is a chat of its own,
// `email:<address>`, bound to the account's group, so every conversation has its own
// session while the group's memory is shared.
//
// Threading: deliver() runs on the event-loop thread; only the MIME parse leaves it.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "channels/email/mail_policy.h"
#include "channels/email/mime_parser.h"
#include "channels/email/smtp_server.h"
#include "common/metrics.h"
#include "common/result.h"
#include "config/config.h"
#include "core/groups.h"
#include "store/store.h"
#include "store/write_queue.h"

namespace sb::email {

// An account as the pipeline uses it: its configuration and its parsed allow-list.
struct EmailAccount {
  EmailAccountConfig config;
  AllowList allow;
};

// The accounts of the configuration, with their allow-lists parsed. Errors name the
// account and the bad entry.
Result<std::vector<EmailAccount>> make_accounts(const EmailConfig& config);

// The account an address belongs to (case-insensitive, "+tag" ignored), or nullptr.
const EmailAccount* account_for(const std::vector<EmailAccount>& accounts,
                                std::string_view address);

class EmailIngest {
 public:
  // `on_stored` is told about each committed message (wakes the dispatcher). References
  // must outlive the object.
  EmailIngest(boost::asio::any_io_executor executor, WriteQueue& writer,
              core::GroupRegistry& groups, const std::vector<EmailAccount>& accounts,
              MimeLimits limits, MetricsRegistry& metrics,
              std::function<void(const Message&)> on_stored);
  ~EmailIngest();

  // Creates the groups the accounts answer with, where missing (no trigger needed: every
  // mail is addressed to the assistant). Call once at start-up.
  boost::asio::awaitable<void> prepare_groups();

  // Stores a message received by the SMTP receiver, once for each of our accounts among its
  // recipients. Returns after the commit; an error means nothing was stored and the sender
  // should try again (451).
  boost::asio::awaitable<Result<void>> deliver(SmtpEnvelope envelope, std::string data);

  // The same for one account, from any source (the receiver, IMAP, JMAP). `origin` names
  // the message at its source (for logs); `extra` is kept in the message's metadata (JMAP:
  // {"jmap_id": …}, so the answer can mark it read).
  boost::asio::awaitable<Result<void>> ingest(const EmailAccount& account, std::string data,
                                              std::string envelope_from, std::string origin,
                                              boost::json::object extra = {});

 private:
  boost::asio::awaitable<bool> bind_chat(const std::string& folder, const std::string& chat);

  boost::asio::any_io_executor executor_;
  WriteQueue& writer_;
  core::GroupRegistry& groups_;
  const std::vector<EmailAccount>& accounts_;
  MimeLimits limits_;
  std::function<void(const Message&)> on_stored_;
  // The worker for large mail and attachment files; started on first use, so a daemon
  // without email (or with only small mail) runs no extra thread.
  boost::asio::thread_pool& worker();
  std::unique_ptr<boost::asio::thread_pool> worker_;
  std::vector<std::string> own_addresses_;  // of every account: never answered
  std::set<std::string> binding_;           // chats whose binding is being written
  Counter& stored_;
  Counter& filtered_;
  Counter& failed_;
};

}  // namespace sb::email

#pragma once
// Receiving mail from a JMAP account (RFC 8621; push RFC 8620 7.3), one coroutine per
// account (docs/email.md "JMAP"):
//   no saved state → Email/query {inMailbox: Inbox, notKeyword: $seen} (sorted by
//   receivedAt, paged, at most the oldest 10 000) + Email/get by back-reference (#ids) for
//   blobId/mailboxIds/keywords/size → each message's raw bytes from downloadUrl →
//   hooks.store (committed) → then the Email state of that Email/get is saved (after every
//   message is stored).
//   saved state → Email/changes (maxChanges 256, hasMoreChanges followed for up to 40
//   rounds a sync) → the created and updated emails that are in the Inbox and not $seen,
//   less those this process stored already → the same store path → new state saved.
//   Emails outside the Inbox (our own copies in Sent, drafts) are ignored.
//   cannotCalculateChanges → a full resync as without state (the store's Message-ID dedupe
//   keeps anything from being stored twice). A message over max_message_bytes is skipped
//   (logged) and never downloaded.
// What wakes a sync: the event source (eventSourceUrl with types=Email,EmailDelivery,
// closeafter=no, ping=push_ping; a StateChange for the account's Email or EmailDelivery
// type; reconnect with Last-Event-ID; a server answering 204/404/405 or any non-event-stream
// body has no push → polling), and a poll every poll_interval while there is no live
// stream (and a slow safety poll — 10× poll_interval — even with one).
// Errors: state "backoff", reconnect_delay(failures), again. The status names the error.
// Marking read is not done here: the email channel marks an email $seen after answering it
// (JmapClient::mark_seen), with the "jmap_id" kept in the message's metadata.
//
// Threading: construct, start, stop and status() on the event-loop thread.

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <string>

#include "channels/email/jmap_client.h"
#include "channels/email/mailbox.h"

namespace sb::email {

class JmapReceiver {
 public:
  // `client` and `hooks` must outlive the receiver.
  JmapReceiver(boost::asio::any_io_executor executor, JmapClient& client, MailboxHooks& hooks);
  ~JmapReceiver();
  JmapReceiver(const JmapReceiver&) = delete;
  JmapReceiver& operator=(const JmapReceiver&) = delete;

  void start();
  void stop();  // idempotent; cancels waits, requests and the event stream

  const MailboxStatus& status() const;
  // "jmap:<account>:Email" — where the Email state is saved through the hooks.
  std::string state_key() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sb::email

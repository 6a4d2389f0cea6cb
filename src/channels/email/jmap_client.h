#pragma once
// One JMAP account (RFC 8620 core, RFC 8621 mail) as the email channel uses it
// (docs/email.md "JMAP"): the session (discovered from the configured URL, or from
// `/.well-known/jmap` when the URL has no path; relative apiUrl/downloadUrl/uploadUrl/
// eventSourceUrl resolved against the session URL; the mail account from
// primaryAccounts["urn:ietf:params:jmap:mail"]), the sending identity (Identity/get, the
// one whose email matches the account address, else the first) and the Drafts, Sent and
// Inbox mailboxes by role — cached, fetched again when a response's sessionState differs
// from the cached session's state, or once when a request gets 401.
//
// Sending is ONE request: Email/set creates the draft (keywords $draft and $seen, in
// Drafts; From, To, Cc, Subject, Message-ID, In-Reply-To, References, Auto-Submitted as
// header properties; textBody text/plain + htmlBody text/html rendered by
// markdown_to_html; attachments uploaded first and referenced by blobId), then
// EmailSubmission/set refers to it as "#draft" and, onSuccessUpdateEmail, moves it from
// Drafts to Sent and clears $draft (or onSuccessDestroyEmail when after_send is destroy).
// When the server cannot resolve the creation-id reference (the submission is refused with
// invalidResultReference, invalidArguments, notFound or invalidProperties on emailId, or
// has no answer), a second request submits the created email by its real id. Before a
// send that keeps a copy in Sent, Sent is searched for the mail's Message-ID: found, the
// send is reported sent without sending again (a crash between the server's acceptance and
// the outbox's commit). Outcomes for the outbox: sent; retry for connection problems,
// timeouts, HTTP 5xx, 408 and 429, method-level serverFail, serverUnavailable and
// serverPartialFail, and the per-object errors rateLimit, serverFail, serverUnavailable
// and tooManyRequests; failed for other 4xx answers (401 after one session refresh) and
// other errors — forbiddenFrom, forbiddenToSend, invalidEmail, tooManyRecipients,
// noRecipients, invalidRecipients, invalidProperties, overQuota, tooLarge, an attachment
// over the server's maxSizeUpload, accountNotFound — with the server's type and
// description.
// A draft left behind by a failed submission is destroyed (best effort).
//
// Threading: every call on the event-loop thread; calls may overlap (they share the
// cached session; one refresh at a time).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "channels/channel.h"
#include "channels/email/mime_builder.h"
#include "common/result.h"

namespace sb::email {

struct JmapOptions {
  std::string account;  // the email address: for logs, state keys, choosing the identity
  // "https://api.fastmail.com/jmap/session", or "https://mail.example.org" (then
  // /.well-known/jmap, following redirects on the same scheme).
  std::string session_url;
  std::string bearer_token;        // Authorization: Bearer … when set (never logged)
  std::string username, password;  // else Basic (never logged)
  bool verify_certificate = true;
  std::filesystem::path ca_file;  // empty: the system's trusted certificates
  enum class AfterSend { move_to_sent, destroy } after_send = AfterSend::move_to_sent;
  std::chrono::milliseconds connect_timeout{30'000};   // resolve + connect + TLS handshake
  std::chrono::milliseconds request_timeout{120'000};  // each request, whole answer
  // Receiving (JmapReceiver): push through the event source when the session offers one
  // and `push` is on; otherwise, and whenever the stream is down, poll.
  bool push = true;
  std::chrono::milliseconds poll_interval{60'000};
  std::chrono::seconds push_ping{60};  // asked of the server (ping=), the stream is
                                       // considered dead after 2× without any bytes
  std::chrono::milliseconds backoff_first{1'000}, backoff_cap{60'000};
  std::size_t max_message_bytes = 25 * 1024 * 1024;   // per downloaded message
  std::size_t max_response_bytes = 16 * 1024 * 1024;  // per API answer
};

class JmapClient {
 public:
  JmapClient(boost::asio::any_io_executor executor, JmapOptions options);
  ~JmapClient();
  JmapClient(const JmapClient&) = delete;
  JmapClient& operator=(const JmapClient&) = delete;

  // Sends `mail` (envelope: mail.from → every To and Cc) as described above. Never throws
  // for anything the network or the server does.
  boost::asio::awaitable<channels::SendOutcome> send(const OutgoingMail& mail);

  // Sets keywords/$seen on the email with JMAP id `email_id`. Error: what went wrong.
  boost::asio::awaitable<Result<void>> mark_seen(std::string email_id);

  const JmapOptions& options() const;

  // The pieces JmapReceiver builds on (jmap_session.h holds the details), shared with
  // coroutines that must keep them alive past the client's destruction.
  struct Impl;
  std::shared_ptr<Impl> shared_impl() const { return impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

// Start-up warnings: plain http to a non-loopback host, verification off, no credentials.
std::vector<std::string> jmap_warnings(const JmapOptions& options);

}  // namespace sb::email

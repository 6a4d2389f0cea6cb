#pragma once
// Reading a mailbox over IMAP (RFC 9051, RFC 3501; IDLE RFC 2177), one coroutine per
// account (docs/email.md "IMAP"):
//   connect (implicit TLS, or STARTTLS with buffered bytes discarded, or plain when
//   configured) → LOGIN or AUTHENTICATE PLAIN → SELECT the folder → read UIDVALIDITY and
//   UIDNEXT → without a saved position, save UIDNEXT-1 as one (mail from then on is new
//   to us) → UID SEARCH the unseen messages and every UID above the position → their
//   sizes (RFC822.SIZE, in batches) → for each, in UID order: UID FETCH BODY.PEEK[] →
//   hooks.store (committed) → save the position → UID STORE +FLAGS.SILENT (\Seen). Never
//   \Seen before the commit. A message over max_message_bytes is not fetched: logged,
//   passed by the position and marked \Seen. A folder opened read-only is searched for
//   unseen mail only right after its position is set.
//   Then IDLE (renewed every idle_renew, before the server's 30-minute cut-off) and sync
//   again on EXISTS; a server without IDLE is polled every poll_interval.
// A dropped connection or any error: state "backoff", wait reconnect_delay(failures)
// (1 s, 2 s, 4 s … 60 s; reset after a good sync), connect again. A refused login is an
// error like any other (clear message, backoff, no tight loop).
// The saved position is "<uidvalidity>:<uid>" under state_key(); a changed UIDVALIDITY
// forgets it (the unseen messages are read again; the store's Message-ID dedupe keeps
// them from being stored twice).
//
// Threading: construct, start, stop and status() on the event-loop thread.

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "channels/email/mailbox.h"

namespace sb::email {

struct ImapOptions {
  std::string account;  // the email address, for logs and the state key
  std::string host;
  std::uint16_t port = 993;
  // tls: TLS from the first byte (993). starttls: plain connect, STARTTLS first (143).
  // plain: no TLS at all, for a local test server only (imap_warnings says so).
  enum class Security { tls, starttls, plain } security = Security::tls;
  bool verify_certificate = true;
  std::filesystem::path ca_file;  // empty: the system's trusted certificates
  std::string username;
  std::string password;  // never logged
  // login: LOGIN; plain: AUTHENTICATE PLAIN (SASL-IR when offered); automatic: PLAIN when
  // the server offers it, else LOGIN. Refused when the server advertises LOGINDISABLED.
  enum class Auth { automatic, login, plain } auth = Auth::automatic;
  std::string folder = "INBOX";
  std::chrono::milliseconds poll_interval{60'000};     // without IDLE
  std::chrono::milliseconds idle_renew{25 * 60'000};   // DONE + IDLE again before 29 min
  std::chrono::milliseconds connect_timeout{30'000};   // resolve + connect + TLS handshake
  std::chrono::milliseconds command_timeout{120'000};  // each command's answer
  std::chrono::milliseconds backoff_first{1'000}, backoff_cap{60'000};
  std::size_t max_message_bytes = 25 * 1024 * 1024;  // larger messages: skipped, logged,
                                                     // marked \Seen (never fetched whole)
};

class ImapReceiver {
 public:
  // `hooks` must outlive the receiver.
  ImapReceiver(boost::asio::any_io_executor executor, ImapOptions options, MailboxHooks& hooks);
  ~ImapReceiver();
  ImapReceiver(const ImapReceiver&) = delete;
  ImapReceiver& operator=(const ImapReceiver&) = delete;

  // Starts the account's coroutine. Returns at once.
  void start();
  // Ends it: cancels any wait or I/O, logs out when it can within a second. Idempotent.
  void stop();

  const MailboxStatus& status() const;
  // "imap:<account>:<folder>" — where the position is saved through the hooks.
  std::string state_key() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Start-up warnings for these options: TLS off (plain) or verification off.
std::vector<std::string> imap_warnings(const ImapOptions& options);

}  // namespace sb::email

#pragma once
// One IMAP client connection with the commands the receiver needs, each a coroutine that
// returns when the server's tagged answer is in: open (connect, implicit TLS or STARTTLS,
// greeting, CAPABILITY, LOGIN or AUTHENTICATE PLAIN), SELECT, UID SEARCH, UID FETCH (sizes,
// then one body), UID STORE \Seen, NOOP, IDLE / DONE, LOGOUT.
//
// Every wait is bounded: connect_timeout for connecting and handshakes, command_timeout for
// each read and write of a command, idle_renew + command_timeout while idling. Credentials
// go only over TLS unless security is plain, and never into errors or logs. Untagged EXISTS
// seen at any time counts as new mail (take_new_mail). Errors are values with the server's
// name and the command; after one the session is not reusable (close it, open another).
//
// Ownership: create with std::make_shared (IDLE's renewal timer holds a weak pointer).
// Threading: use on the executor's thread; interrupt() and close() may be called while a
// command is in flight.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "channels/email/imap_protocol.h"
#include "channels/email/imap_receiver.h"
#include "common/result.h"

namespace sb::email {

struct ImapSelected {
  std::uint32_t uidvalidity = 0;
  std::uint32_t exists = 0;
  std::optional<std::uint32_t> uidnext;
  bool read_only = false;
};

// One message's bytes, or why there are none.
struct ImapBody {
  enum class Outcome { fetched, refused, gone } outcome = Outcome::gone;
  std::string data;    // fetched
  std::string reason;  // refused: the server's answer
};

class ImapSession : public std::enable_shared_from_this<ImapSession> {
 public:
  // `options` must outlive the session.
  ImapSession(boost::asio::any_io_executor executor, const ImapOptions& options);
  ~ImapSession();
  ImapSession(const ImapSession&) = delete;
  ImapSession& operator=(const ImapSession&) = delete;

  // "host:port".
  const std::string& server() const;
  bool has_idle() const { return capabilities_.contains("IDLE"); }
  // True when an EXISTS has told of more messages since the last call (or SELECT).
  bool take_new_mail();

  // Connects and logs in. Error: connection, TLS, greeting, a server without STARTTLS when
  // it is required, LOGINDISABLED, a refused login (with the server's words).
  boost::asio::awaitable<Result<void>> open();
  // Error: the folder cannot be selected, or the server gave no UIDVALIDITY.
  boost::asio::awaitable<Result<ImapSelected>> select(const std::string& folder);
  // UID SEARCH with `criteria` (the caller's own syntax); the UIDs in ascending order.
  boost::asio::awaitable<Result<std::vector<std::uint32_t>>> uid_search(std::string_view criteria);
  // RFC822.SIZE of each of `uids` (ascending) that still exists.
  boost::asio::awaitable<Result<std::map<std::uint32_t, std::uint64_t>>> uid_sizes(
      const std::vector<std::uint32_t>& uids);
  // BODY.PEEK[] of one message (does not set \Seen). A server's NO is not an error: the
  // outcome says refused with its reason; a message expunged meanwhile is gone.
  boost::asio::awaitable<Result<ImapBody>> uid_fetch_body(std::uint32_t uid);
  // UID STORE +FLAGS.SILENT (\Seen). False (and logged) when the server refuses.
  boost::asio::awaitable<Result<bool>> uid_mark_seen(std::uint32_t uid);
  boost::asio::awaitable<Result<void>> noop();

  enum class IdleEnd { new_mail, renew, interrupted };
  // IDLE until an EXISTS arrives, `renew` passes or interrupt() is called; then DONE and the
  // server's answer. Precondition: has_idle().
  boost::asio::awaitable<Result<IdleEnd>> idle(std::chrono::milliseconds renew);
  // Ends an IDLE in progress (or the next one at once).
  void interrupt();
  // LOGOUT within `timeout` when the connection is still healthy; then close().
  boost::asio::awaitable<void> logout(std::chrono::milliseconds timeout);
  // Ends everything now; commands in flight fail. Idempotent.
  void close();

  // The connection and what a DONE written beside IDLE's read needs (public for that writer).
  struct Link;

 private:
  boost::asio::awaitable<Result<ImapResponse>> read_response(std::string_view step,
                                                             std::chrono::milliseconds timeout);
  // Sends `command` (waiting for "+" between its pieces) and reads up to its tagged answer,
  // handing untagged responses to `on_data`. Returns the tagged answer, whatever its status.
  boost::asio::awaitable<Result<ImapResponse>> run(
      ImapCommand command, std::string_view step,
      const std::function<Result<void>(ImapResponse&)>& on_data = {});
  // run() that also wants OK. Error: NO / BAD with the server's words.
  boost::asio::awaitable<Result<ImapResponse>> run_ok(
      ImapCommand command, std::string_view step,
      const std::function<Result<void>(ImapResponse&)>& on_data = {});
  boost::asio::awaitable<Result<void>> ask_capabilities();
  boost::asio::awaitable<Result<void>> login();
  void observe(const ImapResponse& response);
  void send_done();
  Error refused(std::string_view step, const ImapResponse& answer) const;
  ImapCommandBuilder command(std::string_view name);

  boost::asio::any_io_executor executor_;
  const ImapOptions& options_;
  ImapLimits limits_;
  std::shared_ptr<Link> link_;
  ImapParser parser_;
  ImapTags tags_;
  ImapCapabilities capabilities_;
  std::uint32_t exists_ = 0;
  bool new_mail_ = false;
  std::string bye_;  // the server's BYE text, once it said goodbye
  bool idling_ = false;
  bool interrupted_ = false;
  boost::asio::steady_timer renew_timer_;
};

}  // namespace sb::email

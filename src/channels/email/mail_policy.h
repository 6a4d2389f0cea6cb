#pragma once
// Who may reach the agent by mail, and when it must not answer: mail from robots, lists,
// bounces and ourselves never gets a reply (so two auto-responders cannot loop), and each
// sender gets at most a few replies per window.

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "channels/email/mime_parser.h"
#include "common/result.h"

namespace sb::email {

// "Alice@Example.ORG " → "alice@example.org"; also removes one pair of <>.
std::string normalize_address(std::string_view address);

// "alice+news@example.org" → "alice@example.org" (input already normalised).
std::string strip_address_tag(std::string_view address);

class AllowList {
 public:
  // Entries (from configuration): "alice@example.org" allows that address, with any +tag
  // ("alice+x@example.org"), unless the entry itself has a tag, which must then match;
  // "@example.org" allows every address at exactly that domain (not its subdomains); "*"
  // allows everyone and must be written explicitly. Matching ignores case. An empty list
  // allows nobody. Errors name the first invalid entry and say what is expected.
  static Result<AllowList> parse(const std::vector<std::string>& entries);

  bool allows(std::string_view address) const;
  bool allows_everyone() const { return everyone_; }

 private:
  bool everyone_ = false;
  std::vector<std::string> addresses_;  // normalised
  std::vector<std::string> domains_;    // lower case, without '@'
};

// Why `mail` must not be answered automatically, or nullopt when a reply is fine. Refused:
// no sender; a null Return-Path (bounces); Auto-Submitted other than "no" (RFC 3834);
// Precedence bulk, list, junk or auto_reply; list mail (List-Id or any List-* header);
// X-Autoreply / X-Autorespond; X-Auto-Response-Suppress asking for no automatic replies (All,
// AutoReply); delivery and read reports (multipart/report); a sender (From or Return-Path)
// that is mailer-daemon, postmaster, owner-*, *-request or a no-reply address; a sender that
// is one of `own_addresses` (compared without case and +tag). Thread-safe (pure).
std::optional<std::string> no_reply_reason(const ParsedMail& mail,
                                           const std::vector<std::string>& own_addresses);

// At most `max_replies` replies per sender in any sliding `window`, so that a sender (or a
// robot the other rules miss) cannot make us send without end. Memory is bounded: beyond
// `max_senders` tracked senders, the ones idle longest are forgotten first. State lives in
// memory only (a restart starts afresh). Not thread-safe: call on one thread (the event
// loop).
class ReplyRateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `clock` defaults to std::chrono::steady_clock::now (tests pass their own).
  ReplyRateLimiter(std::size_t max_replies, std::chrono::steady_clock::duration window,
                   std::size_t max_senders = 10'000, Clock clock = {});

  // True when `sender` may get one more reply now; the reply is then counted. The address is
  // compared normalised and without +tag.
  bool try_acquire(std::string_view sender);

  std::size_t tracked_senders() const { return replies_.size(); }

 private:
  void make_room(std::chrono::steady_clock::time_point now);

  std::size_t max_replies_;
  std::chrono::steady_clock::duration window_;
  std::size_t max_senders_;
  Clock clock_;
  // Per sender, the times of its replies within the window, oldest first.
  std::unordered_map<std::string, std::deque<std::chrono::steady_clock::time_point>> replies_;
};

}  // namespace sb::email

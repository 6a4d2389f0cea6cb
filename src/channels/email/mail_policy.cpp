#include "channels/email/mail_policy.h"

#include <algorithm>
#include <utility>

#include "channels/email/mail_text.h"

namespace sb::email {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253 || domain.front() == '.' || domain.back() == '.' ||
      domain.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(domain.begin(), domain.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    // Letters, digits, '-', '.' and UTF-8 for internationalised names.
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || b >= 0x80;
  });
}

bool is_local_part(std::string_view local) {
  if (local.empty() || local.size() > 64) return false;
  return std::all_of(local.begin(), local.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return b > 0x20 && b != 0x7F && std::string_view("<>()[]\\,;:\"@").find(c) == std::string::npos;
  });
}

std::string_view local_part(std::string_view address) {
  return address.substr(0, address.rfind('@'));
}

std::string_view domain_part(std::string_view address) {
  const std::size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

// The first token of a header value ("auto-replied; owner=x" → "auto-replied"), lower case.
std::string first_token(std::string_view value) {
  value = trim(value);
  const std::size_t end = value.find_first_of(" \t;(");
  return ascii_lower(value.substr(0, end));
}

// Senders that are robots by name (RFC 3834 section 2 names the first four kinds).
std::optional<std::string> robot_sender(std::string_view address) {
  const std::string untagged = strip_address_tag(normalize_address(address));
  const std::string local(local_part(untagged));
  if (local == "mailer-daemon" || local == "postmaster") return "the sender is " + local;
  if (local.starts_with("owner-") || local.ends_with("-request")) {
    return "the sender is a mailing list address (" + local + ")";
  }
  static constexpr std::string_view kNoReply[] = {"noreply",    "no-reply",     "no_reply",
                                                  "donotreply", "do-not-reply", "do_not_reply",
                                                  "bounce",     "bounces"};
  if (std::find(std::begin(kNoReply), std::end(kNoReply), local) != std::end(kNoReply)) {
    return "the sender does not take replies (" + local + ")";
  }
  return std::nullopt;
}

bool same_address(std::string_view a, std::string_view b) {
  return strip_address_tag(normalize_address(a)) == strip_address_tag(normalize_address(b));
}

}  // namespace

std::string normalize_address(std::string_view address) {
  address = trim(address);
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
    address = trim(address.substr(1, address.size() - 2));
  }
  return ascii_lower(address);
}

std::string strip_address_tag(std::string_view address) {
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return std::string(address);
  const std::size_t plus = address.substr(0, at).find('+');
  // "+x@example.org" has only a tag: keep it whole rather than leave an empty local part.
  if (plus == std::string_view::npos || plus == 0) return std::string(address);
  return std::string(address.substr(0, plus)) + std::string(address.substr(at));
}

Result<AllowList> AllowList::parse(const std::vector<std::string>& entries) {
  AllowList list;
  for (const std::string& raw : entries) {
    const std::string entry = normalize_address(raw);
    if (entry == "*") {
      list.everyone_ = true;
      continue;
    }
    const std::size_t at = entry.rfind('@');
    const bool domain_entry = at == 0;
    // "*@domain" is a legal address but surely meant as a wildcard: "@domain" says that.
    const bool valid =
        at != std::string::npos && is_domain(entry.substr(at + 1)) &&
        (domain_entry || (is_local_part(entry.substr(0, at)) && entry.substr(0, at) != "*"));
    if (!valid) {
      return make_error("invalid allow_from entry \"" + single_line(raw, 100) +
                        "\": expected an address (alice@example.org), a domain "
                        "(@example.org) or \"*\" for everyone");
    }
    if (domain_entry) {
      list.domains_.push_back(entry.substr(1));
    } else {
      list.addresses_.push_back(entry);
    }
  }
  return list;
}

bool AllowList::allows(std::string_view address) const {
  if (everyone_) return true;
  const std::string normalized = normalize_address(address);
  const std::size_t at = normalized.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == normalized.size()) return false;
  const std::string untagged = strip_address_tag(normalized);
  for (const std::string& allowed : addresses_) {
    if (allowed == normalized || allowed == untagged) return true;
  }
  const std::string_view domain = domain_part(normalized);
  return std::find(domains_.begin(), domains_.end(), domain) != domains_.end();
}

std::optional<std::string> no_reply_reason(const ParsedMail& mail,
                                           const std::vector<std::string>& own_addresses) {
  if (normalize_address(mail.from.address).find('@') == std::string::npos) {
    return "the mail has no sender address";
  }
  if (mail.return_path && mail.return_path->empty()) {
    return "the Return-Path is null (a bounce or other automatic mail)";
  }
  if (!mail.auto_submitted.empty() && first_token(mail.auto_submitted) != "no") {
    return "Auto-Submitted: " + mail.auto_submitted;
  }
  const std::string precedence = first_token(mail.precedence);
  if (precedence == "bulk" || precedence == "list" || precedence == "junk" ||
      precedence == "auto_reply") {
    return "Precedence: " + mail.precedence;
  }
  if (!mail.list_id.empty()) return "mailing list mail (List-Id: " + mail.list_id + ")";
  if (mail.has_list_headers) return "mailing list mail (List-* headers)";
  if (mail.has_autoreply_headers) return "an automatic reply (X-Autoreply / X-Autorespond)";
  for (std::string_view rest = mail.auto_response_suppress; !rest.empty();) {
    const std::size_t comma = rest.find(',');
    const std::string token = ascii_lower(trim(rest.substr(0, comma)));
    if (token == "all" || token == "autoreply") {
      return "X-Auto-Response-Suppress: " + mail.auto_response_suppress;
    }
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  if (!mail.report_type.empty()) return "a report (" + mail.report_type + "), not a person's mail";
  if (auto robot = robot_sender(mail.from.address)) return robot;
  if (mail.return_path) {
    if (auto robot = robot_sender(*mail.return_path)) return robot;
  }
  for (const std::string& own : own_addresses) {
    if (same_address(mail.from.address, own)) return "the mail is from our own address " + own;
    if (mail.return_path && same_address(*mail.return_path, own)) {
      return "the mail was sent from our own address " + own;
    }
  }
  return std::nullopt;
}

ReplyRateLimiter::ReplyRateLimiter(std::size_t max_replies,
                                   std::chrono::steady_clock::duration window,
                                   std::size_t max_senders, Clock clock)
    : max_replies_(max_replies),
      window_(window),
      max_senders_(std::max<std::size_t>(max_senders, 1)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

bool ReplyRateLimiter::try_acquire(std::string_view sender) {
  const auto now = clock_();
  const std::string key = strip_address_tag(normalize_address(sender));
  auto it = replies_.find(key);
  if (it == replies_.end()) {
    if (max_replies_ == 0) return false;
    if (replies_.size() >= max_senders_) make_room(now);
    replies_[key].push_back(now);
    return true;
  }
  auto& times = it->second;
  while (!times.empty() && times.front() + window_ <= now) times.pop_front();
  if (times.size() >= max_replies_) return false;
  times.push_back(now);
  return true;
}

// Forgets senders whose replies have all left the window; if none has, the one whose last
// reply is oldest. Runs only when the table is full, so its linear cost is rare.
void ReplyRateLimiter::make_room(std::chrono::steady_clock::time_point now) {
  std::erase_if(replies_, [&](const auto& entry) {
    return entry.second.empty() || entry.second.back() + window_ <= now;
  });
  if (replies_.size() < max_senders_) return;
  auto oldest = std::min_element(
      replies_.begin(), replies_.end(),
      [](const auto& a, const auto& b) { return a.second.back() < b.second.back(); });
  replies_.erase(oldest);
}

}  // namespace sb::email

#pragma once
// The shared part of one JMAP account (JmapClient::Impl), which the sender (JmapClient) and
// the reader (JmapReceiver) both build on: the session and what it leads to (the mail
// account, the sending identity, the Drafts/Sent/Inbox mailboxes), cached; API requests
// with the credentials; upload and download of blobs.
//
// The cache is fetched on first use, again after a response carried a different
// sessionState, and once more when a request gets 401 (then the request is repeated once).
// One fetch runs at a time; callers that need it meanwhile wait for its outcome.
// Failures say whether a later attempt may help (`retryable`): connection problems,
// timeouts, an answer over the size cap, HTTP 5xx, 408 and 429, an API answer that is not
// JSON may; other answers (401 after the refresh, 403, 404) and a session resource that
// cannot be read do not.
// Messages never hold a token or password.
//
// Threading: everything on the event-loop thread. Each request goes through the
// HttpClient the caller passes (a reader brings its own, to cancel it on stop); keep the
// Impl alive (shared_ptr) while a call runs.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "channels/email/jmap_client.h"
#include "channels/email/jmap_protocol.h"
#include "common/http_client.h"

namespace sb::email {

// What the session of one account leads to.
struct JmapAccount {
  jmap::Session session;
  std::string account_id;   // primaryAccounts["urn:ietf:params:jmap:mail"]
  bool submission = false;  // the server offers urn:ietf:params:jmap:submission
  std::string identity_id;  // empty: identity_error says why
  std::string identity_error;
  std::string drafts_id, sent_id, inbox_id;  // empty when the account has no such mailbox
};

struct JmapFailure {
  bool retryable = true;
  std::string message;
  int http_status = 0;  // when the failure is an HTTP answer
};

// A value or a failure.
template <class T>
struct JmapResult {
  JmapResult(T v) : value(std::move(v)) {}
  JmapResult(JmapFailure f) : failure(std::move(f)) {}
  bool ok() const { return value.has_value(); }
  std::optional<T> value;
  JmapFailure failure;
};

using AccountPtr = std::shared_ptr<const JmapAccount>;

struct JmapClient::Impl {
  Impl(boost::asio::any_io_executor executor, JmapOptions options);

  // A new HTTP client with the account's TLS and timeout settings. Error: the CA file (or
  // the system's certificates) cannot be loaded.
  Result<std::unique_ptr<HttpClient>> make_http() const;

  // The cached account, or a fresh one (see above).
  boost::asio::awaitable<JmapResult<AccountPtr>> account(HttpClient& http);
  // The next account() fetches the session again.
  void invalidate() { stale_ = true; }

  // Sends one API request (using: core, mail and, when offered, submission) and reads the
  // answer. Method-level errors are in the Response, for the caller to read.
  boost::asio::awaitable<JmapResult<jmap::Response>> call(HttpClient& http,
                                                          const jmap::Request& request);
  // The raw bytes of a blob (an email's RFC 5322 source), at most max_bytes.
  boost::asio::awaitable<JmapResult<std::string>> download(HttpClient& http,
                                                           const std::string& blob_id,
                                                           std::size_t max_bytes);
  boost::asio::awaitable<JmapResult<jmap::UploadResult>> upload(HttpClient& http, std::string bytes,
                                                                std::string type);

  // The capabilities a request of this account declares.
  std::vector<std::string> capabilities(const JmapAccount& account) const;

  // Lets callers waiting for a session fetch look at their HttpClient again (a reader
  // stopping: its waits end at once).
  void wake_waiters();

  // Authorization for this account's requests (never to be logged).
  std::vector<std::pair<std::string, std::string>> auth_headers() const;

  // "jmap <account>" for log lines.
  const std::string& log_name() const { return log_name_; }

  boost::asio::any_io_executor executor;
  JmapOptions options;
  std::unique_ptr<HttpClient> http;  // the sender's; empty when make_http() failed
  std::string http_error;            // why it failed

 private:
  boost::asio::awaitable<JmapResult<AccountPtr>> fetch(HttpClient& http);
  boost::asio::awaitable<JmapResult<HttpResponse>> authorized(HttpClient& http,
                                                              HttpRequest request);

  std::string log_name_;
  AccountPtr cached_;
  bool stale_ = false;
  bool refreshing_ = false;
  std::uint64_t refresh_generation_ = 0;
  std::optional<JmapFailure> refresh_failure_;       // of the last fetch
  std::vector<boost::asio::steady_timer*> waiters_;  // of the callers waiting for a fetch
};

// The failure for an HTTP answer other than success: "<what>: HTTP <status> (<problem>)".
JmapFailure http_failure(const HttpResponse& response, std::string_view what);

}  // namespace sb::email

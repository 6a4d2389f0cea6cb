#include "channels/email/jmap_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <cctype>

#include "channels/email/mail_text.h"
#include "common/base64.h"

namespace sb::email {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxUploadAnswer = 64 * 1024;
constexpr int kMaxSessionRedirects = 5;

// The session URL to fetch: the configured one, or its /.well-known/jmap when it names only
// a server (RFC 8620 2.2).
std::string session_location(const std::string& configured) {
  const auto scheme_end = configured.find("://");
  if (scheme_end == std::string::npos) return configured;
  const auto path = configured.find('/', scheme_end + 3);
  if (path == std::string::npos) return configured + "/.well-known/jmap";
  if (configured.size() == path + 1) return configured + ".well-known/jmap";
  return configured;
}

JmapFailure transport_failure(const Error& error) { return {true, error.message, 0}; }

// Removes a waiter's timer from the list when its wait ends, however it ends.
class WaiterGuard {
 public:
  WaiterGuard(std::vector<asio::steady_timer*>& list, asio::steady_timer* timer)
      : list_(list), timer_(timer) {
    list_.push_back(timer_);
  }
  ~WaiterGuard() { std::erase(list_, timer_); }
  WaiterGuard(const WaiterGuard&) = delete;
  WaiterGuard& operator=(const WaiterGuard&) = delete;

 private:
  std::vector<asio::steady_timer*>& list_;
  asio::steady_timer* timer_;
};

}  // namespace

JmapFailure http_failure(const HttpResponse& response, std::string_view what) {
  const int status = response.status;
  std::string message = std::string(what) + ": HTTP " + std::to_string(status);
  if (auto problem = jmap::parse_problem(response.body)) {
    message += " (" + problem->text() + ")";
  } else if (!response.body.empty() && response.body.size() < 2000 &&
             response.header("Content-Type").starts_with("text/plain")) {
    message += " (" + jmap::printable(response.body, 200) + ")";
  }
  if (status == 401) message += "; check the token or the user name and password";
  const bool retryable = status >= 500 || status == 429 || status == 408;
  return {retryable, std::move(message), status};
}

JmapClient::Impl::Impl(asio::any_io_executor ex, JmapOptions opts)
    : executor(std::move(ex)), options(std::move(opts)), log_name_("jmap " + options.account) {
  auto made = make_http();
  if (made) {
    http = std::move(*made);
  } else {
    http_error = made.error().message;
  }
}

Result<std::unique_ptr<HttpClient>> JmapClient::Impl::make_http() const {
  HttpClientOptions http_options;
  http_options.verify_certificate = options.verify_certificate;
  http_options.ca_file = options.ca_file;
  http_options.connect_timeout = options.connect_timeout;
  http_options.request_timeout = options.request_timeout;
  http_options.max_response_bytes = options.max_response_bytes;
  return HttpClient::make(executor, std::move(http_options));
}

std::vector<std::pair<std::string, std::string>> JmapClient::Impl::auth_headers() const {
  if (!options.bearer_token.empty()) return {{"Authorization", "Bearer " + options.bearer_token}};
  if (!options.username.empty()) {
    return {{"Authorization", "Basic " + base64_encode(options.username + ":" + options.password)}};
  }
  return {};
}

std::vector<std::string> JmapClient::Impl::capabilities(const JmapAccount& account) const {
  std::vector<std::string> out{std::string(jmap::kCore), std::string(jmap::kMail)};
  if (account.submission) out.emplace_back(jmap::kSubmission);
  return out;
}

void JmapClient::Impl::wake_waiters() {
  for (asio::steady_timer* waiter : std::vector<asio::steady_timer*>(waiters_)) waiter->cancel();
}

asio::awaitable<JmapResult<AccountPtr>> JmapClient::Impl::account(HttpClient& client) {
  for (;;) {
    if (client.cancelled()) co_return JmapFailure{true, "cancelled", 0};
    if (cached_ && !stale_) co_return cached_;
    if (!refreshing_) break;
    const std::uint64_t generation = refresh_generation_;
    asio::steady_timer timer(executor, asio::steady_timer::time_point::max());
    {
      WaiterGuard guard(waiters_, &timer);
      co_await timer.async_wait(kAsTuple);
    }
    if (refresh_generation_ != generation && refresh_failure_) co_return *refresh_failure_;
  }
  refreshing_ = true;
  auto fetched = co_await fetch(client);
  refreshing_ = false;
  ++refresh_generation_;
  if (fetched.ok()) {
    cached_ = *fetched.value;
    stale_ = false;
    refresh_failure_.reset();
  } else {
    refresh_failure_ = fetched.failure;
  }
  wake_waiters();
  co_return fetched;
}

asio::awaitable<JmapResult<HttpResponse>> JmapClient::Impl::authorized(HttpClient& client,
                                                                       HttpRequest request) {
  for (const auto& header : auth_headers()) request.headers.push_back(header);
  auto answer = co_await client.request(std::move(request));
  if (!answer) co_return transport_failure(answer.error());
  co_return std::move(*answer);
}

asio::awaitable<JmapResult<AccountPtr>> JmapClient::Impl::fetch(HttpClient& client) {
  HttpRequest request;
  request.url = session_location(options.session_url);
  request.headers.emplace_back("Accept", "application/json");
  request.max_redirects = kMaxSessionRedirects;
  const std::string where = "the JMAP session at " + url_for_messages(request.url);
  auto answer = co_await authorized(client, std::move(request));
  if (!answer.ok()) co_return answer.failure;
  const HttpResponse& response = *answer.value;
  if (response.status != 200) co_return http_failure(response, where);
  auto session = jmap::parse_session(response.body, response.url);
  if (!session) co_return JmapFailure{false, session.error().message + " (" + where + ")", 0};

  JmapAccount account;
  account.session = std::move(*session);
  const auto primary = account.session.primary_accounts.find(jmap::kMail);
  if (!account.session.has_capability(jmap::kMail) ||
      primary == account.session.primary_accounts.end()) {
    co_return JmapFailure{false,
                          where + " offers no mail account (" + std::string(jmap::kMail) +
                              " in capabilities and primaryAccounts)",
                          0};
  }
  account.account_id = primary->second;
  account.submission = account.session.has_capability(jmap::kSubmission);

  jmap::Request setup(capabilities(account));
  const std::string mailboxes =
      setup.add("Mailbox/get", json::object{{"accountId", account.account_id},
                                            {"ids", nullptr},
                                            {"properties", json::array{"id", "name", "role"}}});
  std::string identities;
  if (account.submission) {
    identities = setup.add("Identity/get", json::object{{"accountId", account.account_id}});
  }
  // The request goes to this session's apiUrl: the cache is not set yet.
  HttpRequest api;
  api.method = "POST";
  api.url = account.session.api_url;
  api.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  api.body = setup.serialize();
  const std::string api_where = "the JMAP API at " + url_for_messages(api.url);
  auto api_answer = co_await authorized(client, std::move(api));
  if (!api_answer.ok()) co_return api_answer.failure;
  if (api_answer.value->status != 200) co_return http_failure(*api_answer.value, api_where);
  auto parsed = jmap::parse_response(api_answer.value->body);
  if (!parsed) co_return JmapFailure{true, parsed.error().message + " (" + api_where + ")", 0};

  auto boxes = jmap::answer_for(*parsed, mailboxes, "Mailbox/get");
  if (!boxes) co_return JmapFailure{true, boxes.error().message, 0};
  if (boxes->error) {
    co_return JmapFailure{
        boxes->error->type == "serverFail" || boxes->error->type == "serverUnavailable",
        "Mailbox/get failed: " + boxes->error->text(), 0};
  }
  auto list = jmap::read_mailboxes(*boxes->arguments);
  if (!list) co_return JmapFailure{true, list.error().message, 0};
  for (const auto& mailbox : list->list) {
    if (mailbox.role == "drafts" && account.drafts_id.empty()) account.drafts_id = mailbox.id;
    if (mailbox.role == "sent" && account.sent_id.empty()) account.sent_id = mailbox.id;
    if (mailbox.role == "inbox" && account.inbox_id.empty()) account.inbox_id = mailbox.id;
  }
  if (account.inbox_id.empty()) {
    for (const auto& mailbox : list->list) {
      if (iequals(mailbox.name, "INBOX")) account.inbox_id = mailbox.id;
    }
  }

  if (!account.submission) {
    account.identity_error =
        "the server does not offer sending (" + std::string(jmap::kSubmission) + ")";
  } else if (auto ids = jmap::answer_for(*parsed, identities, "Identity/get"); !ids) {
    account.identity_error = ids.error().message;
  } else if (ids->error) {
    account.identity_error = "Identity/get failed: " + ids->error->text();
  } else if (auto read = jmap::read_identities(*ids->arguments); !read) {
    account.identity_error = read.error().message;
  } else if (read->list.empty()) {
    account.identity_error = "the account has no sending identity";
  } else {
    account.identity_id = read->list.front().id;
    for (const auto& identity : read->list) {
      if (iequals(identity.email, options.account)) {
        account.identity_id = identity.id;
        break;
      }
    }
  }
  spdlog::debug("{}: session state {}, account {}, inbox {}, drafts {}, sent {}, identity {}",
                log_name_, jmap::printable(account.session.state, 60), account.account_id,
                account.inbox_id, account.drafts_id, account.sent_id,
                account.identity_id.empty() ? account.identity_error : account.identity_id);
  co_return std::make_shared<const JmapAccount>(std::move(account));
}

asio::awaitable<JmapResult<jmap::Response>> JmapClient::Impl::call(HttpClient& client,
                                                                   const jmap::Request& request) {
  const std::string body = request.serialize();
  for (int attempt = 0;; ++attempt) {
    auto account = co_await this->account(client);
    if (!account.ok()) co_return account.failure;
    const AccountPtr current = *account.value;
    HttpRequest api;
    api.method = "POST";
    api.url = current->session.api_url;
    api.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    api.body = body;
    const std::string where = "the JMAP API at " + url_for_messages(api.url);
    auto answer = co_await authorized(client, std::move(api));
    if (!answer.ok()) co_return answer.failure;
    if (answer.value->status == 401 && attempt == 0) {
      // Credentials or the session may have changed: fetch it again, then try once more.
      if (cached_ == current) invalidate();
      continue;
    }
    if (answer.value->status != 200) co_return http_failure(*answer.value, where);
    auto parsed = jmap::parse_response(answer.value->body);
    if (!parsed) co_return JmapFailure{true, parsed.error().message + " (" + where + ")", 0};
    if (!parsed->session_state.empty() && cached_ == current &&
        parsed->session_state != current->session.state) {
      spdlog::debug("{}: the session state changed; fetching the session again", log_name_);
      invalidate();
    }
    co_return std::move(*parsed);
  }
}

asio::awaitable<JmapResult<std::string>> JmapClient::Impl::download(HttpClient& client,
                                                                    const std::string& blob_id,
                                                                    std::size_t max_bytes) {
  for (int attempt = 0;; ++attempt) {
    auto account = co_await this->account(client);
    if (!account.ok()) co_return account.failure;
    const AccountPtr current = *account.value;
    HttpRequest request;
    request.url =
        jmap::expand_template(current->session.download_url, {{"accountId", current->account_id},
                                                              {"blobId", blob_id},
                                                              {"type", "message/rfc822"},
                                                              {"name", "message.eml"}});
    request.max_response_bytes = max_bytes;
    const std::string where = "downloading blob " + jmap::printable(blob_id, 100);
    auto answer = co_await authorized(client, std::move(request));
    if (!answer.ok()) co_return answer.failure;
    if (answer.value->status == 401 && attempt == 0) {
      if (cached_ == current) invalidate();
      continue;
    }
    if (answer.value->status != 200) co_return http_failure(*answer.value, where);
    co_return std::move(answer.value->body);
  }
}

asio::awaitable<JmapResult<jmap::UploadResult>> JmapClient::Impl::upload(HttpClient& client,
                                                                         std::string bytes,
                                                                         std::string type) {
  for (int attempt = 0;; ++attempt) {
    auto account = co_await this->account(client);
    if (!account.ok()) co_return account.failure;
    const AccountPtr current = *account.value;
    const auto limit = current->session.max_size_upload;
    if (limit > 0 && bytes.size() > limit) {
      co_return JmapFailure{false,
                            "an attachment of " + std::to_string(bytes.size()) +
                                " bytes is larger than the server's upload limit of " +
                                std::to_string(limit),
                            0};
    }
    HttpRequest request;
    request.method = "POST";
    request.url =
        jmap::expand_template(current->session.upload_url, {{"accountId", current->account_id}});
    request.headers = {{"Content-Type", type.empty() ? "application/octet-stream" : type},
                       {"Accept", "application/json"}};
    request.body = bytes;
    request.max_response_bytes = kMaxUploadAnswer;
    const std::string where = "uploading to " + url_for_messages(request.url);
    auto answer = co_await authorized(client, std::move(request));
    if (!answer.ok()) co_return answer.failure;
    if (answer.value->status == 401 && attempt == 0) {
      if (cached_ == current) invalidate();
      continue;
    }
    if (answer.value->status != 200 && answer.value->status != 201) {
      co_return http_failure(*answer.value, where);
    }
    auto read = jmap::read_upload(answer.value->body);
    if (!read) co_return JmapFailure{true, read.error().message, 0};
    co_return std::move(*read);
  }
}

}  // namespace sb::email

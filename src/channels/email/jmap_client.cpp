#include "channels/email/jmap_client.h"

#include <spdlog/spdlog.h>

#include <boost/json/object.hpp>
#include <boost/url/parse.hpp>

#include "channels/email/jmap_session.h"
#include "common/url_parts.h"
#include "config/config.h"

namespace sb::email {

namespace asio = boost::asio;
namespace json = boost::json;
using channels::SendOutcome;

namespace {

constexpr std::string_view kDraft = "draft";
constexpr std::string_view kSubmission = "sub";

SendOutcome sent(std::string note = {}) { return {SendOutcome::Kind::sent, std::move(note)}; }
SendOutcome retry(std::string error) { return {SendOutcome::Kind::retry, std::move(error)}; }
SendOutcome failed(std::string error) { return {SendOutcome::Kind::failed, std::move(error)}; }

SendOutcome outcome_of(const JmapFailure& failure) {
  return failure.retryable ? retry(failure.message) : failed(failure.message);
}

// RFC 8620 5.3 / RFC 8621 7.5: these SetErrors pass; every other one is final.
SendOutcome outcome_of(std::string_view what, const jmap::JmapError& error) {
  std::string message = std::string(what) + " failed: " + error.text();
  if (error.type == "rateLimit" || error.type == "serverFail" ||
      error.type == "serverUnavailable" || error.type == "tooManyRequests") {
    return retry(std::move(message));
  }
  return failed(std::move(message));
}

// Method-level errors (RFC 8620 3.6.2): the server's trouble passes, a bad request does not.
SendOutcome method_outcome(std::string_view method, const jmap::JmapError& error) {
  std::string message = std::string(method) + " failed: " + error.text();
  if (error.type == "serverFail" || error.type == "serverUnavailable" ||
      error.type == "serverPartialFail") {
    return retry(std::move(message));
  }
  return failed(std::move(message));
}

// Whether a refused submission means the server could not follow "#draft" (then the email
// is submitted again by its real id) rather than refusing the submission itself.
bool reference_not_resolved(const jmap::JmapError& error) {
  if (error.type == "invalidResultReference" || error.type == "notFound" ||
      error.type == "invalidArguments") {
    return true;
  }
  if (error.type != "invalidProperties") return false;
  return std::find(error.properties.begin(), error.properties.end(), "emailId") !=
         error.properties.end();
}

bool loopback_url(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  return parsed && is_loopback_host(url_host(*parsed));
}

// What became of the submission call of a send request.
struct SubmissionVerdict {
  bool resolved_reference = true;  // false: try again with the real id
  std::optional<SendOutcome> outcome;
};

SubmissionVerdict read_submission(const jmap::Response& response, const std::string& call_id,
                                  const std::string& log_name, bool first_attempt) {
  auto answer = jmap::answer_for(response, call_id, "EmailSubmission/set");
  if (!answer) {
    if (first_attempt) return {false, std::nullopt};
    return {true, retry(answer.error().message)};
  }
  if (answer->error) {
    if (first_attempt && reference_not_resolved(*answer->error)) return {false, std::nullopt};
    return {true, method_outcome("EmailSubmission/set", *answer->error)};
  }
  auto result = jmap::read_set(*answer->arguments);
  if (!result) return {true, retry(result.error().message)};
  if (auto it = result->not_created.find(std::string(kSubmission));
      it != result->not_created.end()) {
    if (first_attempt && reference_not_resolved(it->second)) return {false, std::nullopt};
    return {true, outcome_of("submitting the email", it->second)};
  }
  if (!result->created.contains(std::string(kSubmission))) {
    return {true, retry("the server neither created nor refused the submission")};
  }
  // The implicit Email/set of onSuccessUpdateEmail answers under the same call id.
  for (const auto& implicit : response.responses) {
    if (implicit.call_id != call_id || implicit.name != "Email/set") continue;
    auto moved = jmap::read_set(implicit.arguments);
    if (moved && !moved->not_updated.empty()) {
      spdlog::warn("{}: sent, but the copy was not moved to Sent: {}", log_name,
                   moved->not_updated.begin()->second.text());
    }
  }
  return {true, sent()};
}

}  // namespace

JmapClient::JmapClient(asio::any_io_executor executor, JmapOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

JmapClient::~JmapClient() {
  if (impl_->http) impl_->http->cancel();
}

const JmapOptions& JmapClient::options() const { return impl_->options; }

asio::awaitable<SendOutcome> JmapClient::send(const OutgoingMail& mail) {
  const std::shared_ptr<Impl> impl = impl_;
  const std::string& log_name = impl->log_name();
  if (!impl->http) co_return retry(impl->http_error);
  if (mail.to.empty()) co_return failed("the message has no recipients");
  if (mail.message_id.empty()) co_return failed("the message has no Message-ID");
  if (mail.from.address.empty()) co_return failed("the message has no sender address");
  HttpClient& http = *impl->http;
  const auto& options = impl->options;

  auto account_result = co_await impl->account(http);
  if (!account_result.ok()) co_return outcome_of(account_result.failure);
  const AccountPtr account = *account_result.value;
  if (!account->submission) co_return failed(log_name + ": " + account->identity_error);
  if (account->identity_id.empty()) {
    impl->invalidate();  // the identity may show up on the next fetch
    co_return retry(account->identity_error);
  }
  if (account->drafts_id.empty()) {
    co_return failed("the JMAP account has no Drafts mailbox (a mailbox with role drafts)");
  }
  bool move = options.after_send == JmapOptions::AfterSend::move_to_sent;
  if (move && account->sent_id.empty()) {
    spdlog::warn("{}: the account has no Sent mailbox (role sent); the sent email is destroyed",
                 log_name);
    move = false;
  }

  // A crash between the server's acceptance and the outbox's commit sends the item again:
  // the copy in Sent with this Message-ID says it went out already.
  if (move) {
    jmap::Request lookup(impl->capabilities(*account));
    const std::string query = lookup.add(
        "Email/query",
        json::object{{"accountId", account->account_id},
                     {"filter", json::object{{"inMailbox", account->sent_id},
                                             {"header", json::array{"Message-ID",
                                                                    "<" + mail.message_id + ">"}}}},
                     {"limit", 1}});
    auto found = co_await impl->call(http, lookup);
    if (!found.ok()) co_return outcome_of(found.failure);
    if (auto answer = jmap::answer_for(*found.value, query, "Email/query");
        answer && !answer->error) {
      if (auto ids = jmap::read_query(*answer->arguments); ids && !ids->ids.empty()) {
        spdlog::info("{}: <{}> is already in Sent; not sending it again", log_name,
                     mail.message_id);
        co_return sent("already sent (found in Sent)");
      }
    }
  }

  std::vector<jmap::DraftAttachment> attachments;
  for (const auto& attachment : mail.attachments) {
    const std::string type =
        attachment.content_type.empty() ? "application/octet-stream" : attachment.content_type;
    auto uploaded = co_await impl->upload(http, attachment.bytes, type);
    if (!uploaded.ok()) co_return outcome_of(uploaded.failure);
    attachments.push_back({uploaded.value->blob_id, type, attachment.name, uploaded.value->size});
  }

  auto submission_arguments = [&](std::string_view email_id) {
    json::object arguments{
        {"accountId", account->account_id},
        {"create", json::object{{kSubmission,
                                 jmap::email_submission(mail, account->identity_id, email_id)}}}};
    if (move) {
      arguments["onSuccessUpdateEmail"] =
          jmap::move_to_sent(kSubmission, account->drafts_id, account->sent_id);
    } else {
      arguments["onSuccessDestroyEmail"] = json::array{"#" + std::string(kSubmission)};
    }
    return arguments;
  };

  jmap::Request request(impl->capabilities(*account));
  const std::string create_call = request.add(
      "Email/set",
      json::object{{"accountId", account->account_id},
                   {"create", json::object{{kDraft, jmap::email_draft(mail, account->drafts_id,
                                                                      attachments)}}}});
  const std::string submit_call =
      request.add("EmailSubmission/set", submission_arguments("#" + std::string(kDraft)));
  auto answer = co_await impl->call(http, request);
  if (!answer.ok()) co_return outcome_of(answer.failure);

  auto created = jmap::answer_for(*answer.value, create_call, "Email/set");
  if (!created) co_return retry(created.error().message);
  if (created->error) co_return method_outcome("Email/set", *created->error);
  auto draft = jmap::read_set(*created->arguments);
  if (!draft) co_return retry(draft.error().message);
  if (auto it = draft->not_created.find(std::string(kDraft)); it != draft->not_created.end()) {
    co_return outcome_of("creating the email", it->second);
  }
  std::string email_id;
  if (auto it = draft->created.find(std::string(kDraft)); it != draft->created.end()) {
    if (const auto* id = it->second.if_contains("id"); id && id->is_string()) {
      email_id = std::string(id->get_string());
    }
  }
  if (email_id.empty()) co_return retry("the server did not say the id of the created email");

  auto verdict = read_submission(*answer.value, submit_call, log_name, true);
  if (!verdict.resolved_reference) {
    spdlog::info("{}: the server did not resolve #draft; submitting email {} by its id", log_name,
                 email_id);
    jmap::Request second(impl->capabilities(*account));
    const std::string call = second.add("EmailSubmission/set", submission_arguments(email_id));
    auto again = co_await impl->call(http, second);
    verdict = again.ok() ? read_submission(*again.value, call, log_name, false)
                         : SubmissionVerdict{true, outcome_of(again.failure)};
  }
  SendOutcome outcome = verdict.outcome.value_or(retry("no submission outcome"));
  if (outcome.kind != SendOutcome::Kind::sent) {
    // The draft would otherwise stay behind in Drafts; the outbox creates a new one if it
    // tries again.
    jmap::Request cleanup(impl->capabilities(*account));
    cleanup.add("Email/set", json::object{{"accountId", account->account_id},
                                          {"destroy", json::array{json::string(email_id)}}});
    auto cleaned = co_await impl->call(http, cleanup);
    if (!cleaned.ok()) {
      spdlog::warn("{}: could not destroy the draft {} after a failed submission: {}", log_name,
                   email_id, cleaned.failure.message);
    }
    spdlog::debug("{}: sending <{}> failed: {}", log_name, mail.message_id, outcome.error);
    co_return outcome;
  }
  spdlog::info("{}: sent <{}> (email {}) to {} recipient(s)", log_name, mail.message_id, email_id,
               mail.to.size() + mail.cc.size());
  co_return outcome;
}

asio::awaitable<Result<void>> JmapClient::mark_seen(std::string email_id) {
  const std::shared_ptr<Impl> impl = impl_;
  if (!impl->http) co_return make_error(impl->http_error);
  HttpClient& http = *impl->http;
  auto account = co_await impl->account(http);
  if (!account.ok()) co_return make_error(account.failure.message);
  jmap::Request request(impl->capabilities(**account.value));
  const std::string call = request.add(
      "Email/set",
      json::object{{"accountId", (*account.value)->account_id},
                   {"update", json::object{{email_id, json::object{{"keywords/$seen", true}}}}}});
  auto answer = co_await impl->call(http, request);
  if (!answer.ok()) co_return make_error(answer.failure.message);
  auto set = jmap::answer_for(*answer.value, call, "Email/set");
  if (!set) co_return make_error(set.error().message);
  if (set->error) co_return make_error("Email/set failed: " + set->error->text());
  auto result = jmap::read_set(*set->arguments);
  if (!result) co_return make_error(result.error().message);
  if (auto it = result->not_updated.find(email_id); it != result->not_updated.end()) {
    co_return make_error("marking email " + jmap::printable(email_id, 100) +
                         " read failed: " + it->second.text());
  }
  spdlog::debug("{}: marked email {} $seen", impl->log_name(), jmap::printable(email_id, 100));
  co_return Result<void>{};
}

std::vector<std::string> jmap_warnings(const JmapOptions& options) {
  std::vector<std::string> warnings;
  const std::string name = "email: JMAP account " + options.account;
  const bool credentials = !options.bearer_token.empty() || !options.username.empty();
  if (options.session_url.starts_with("http://") && !loopback_url(options.session_url)) {
    warnings.push_back(name + " uses plain http to " + url_for_messages(options.session_url) +
                       ": mail" + (credentials ? " and the credentials" : "") +
                       " travel unencrypted");
  }
  if (!options.verify_certificate) {
    warnings.push_back(name +
                       ": certificate verification is off; anyone on the network path can "
                       "pose as the server");
  }
  if (!credentials) {
    warnings.push_back(name + " has no token and no user name: the server will likely refuse it");
  }
  return warnings;
}

}  // namespace sb::email

#pragma once
// JMAP on the wire (RFC 8620 core, RFC 8621 mail), without I/O: the session object, URL
// templates, the request envelope and result references, reading method responses
// (method-level and per-object errors), RFC 7807 problem details, the objects the email
// channel reads (Mailbox, Identity, Email, changes, query, upload, StateChange) and the
// Email/EmailSubmission objects it creates to send an OutgoingMail.
//
// Reading is lenient where RFC 8620 asks it to be (unknown properties are ignored) and
// strict where a wrong type would mislead (a property of the wrong type is an error naming
// it, never a crash). Everything here is thread-safe (no shared state).

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "channels/email/mime_builder.h"
#include "common/result.h"

namespace sb::email::jmap {

inline constexpr std::string_view kCore = "urn:ietf:params:jmap:core";
inline constexpr std::string_view kMail = "urn:ietf:params:jmap:mail";
inline constexpr std::string_view kSubmission = "urn:ietf:params:jmap:submission";

// The session resource (RFC 8620 2), URLs made absolute against the session's own URL.
struct Session {
  std::set<std::string, std::less<>> capabilities;
  std::uint64_t max_size_upload = 0;       // core capability; 0 when not stated
  std::uint64_t max_calls_in_request = 0;  // core capability; 0 when not stated
  std::uint64_t max_objects_in_get = 0;    // core capability; 0 when not stated
  std::map<std::string, std::string, std::less<>> primary_accounts;  // capability → account id
  std::set<std::string, std::less<>> account_ids;
  std::string username;
  std::string api_url, download_url, upload_url, event_source_url;  // absolute (templates)
  std::string state;

  bool has_capability(std::string_view name) const { return capabilities.contains(name); }
};

// Reads a session document fetched from `session_url`. Errors: not JSON, not an object, a
// required property (apiUrl, downloadUrl, uploadUrl, accounts, primaryAccounts,
// capabilities, state) missing or of the wrong type.
Result<Session> parse_session(std::string_view body, std::string_view session_url);

// `reference` (absolute, "//host/…", "/path", or relative) made absolute against `base`, an
// absolute http(s) URL. Braces of URL templates are kept as they are.
std::string resolve_url(std::string_view base, std::string_view reference);

// RFC 6570 level-1 expansion: each {name} replaced by its value percent-encoded (only
// unreserved characters stay as they are); a name without a value expands to "".
std::string expand_template(std::string_view url_template,
                            const std::vector<std::pair<std::string, std::string>>& values);

// An error a JMAP server reported: a method-level error (RFC 8620 3.6.2), a SetError
// (5.3), or a problem details object (RFC 7807, for a request-level error).
struct JmapError {
  std::string type;         // "invalidArguments", "urn:ietf:params:jmap:error:limit", …
  std::string description;  // the server's words, printable, bounded; may be empty
  std::vector<std::string> properties;  // SetError invalidProperties
  std::string limit;                    // problem details of a limit error
  int status = 0;                       // problem details

  // "invalidArguments: <description>" (or the type alone).
  std::string text() const;
};

// The envelope of one API request: `using` and the method calls with their ids.
class Request {
 public:
  explicit Request(std::vector<std::string> capabilities);
  // Adds a call and returns its id ("c0", "c1", …).
  std::string add(std::string_view method, boost::json::object arguments);
  boost::json::object to_json() const;
  std::string serialize() const;

 private:
  boost::json::array using_;
  boost::json::array calls_;
};

// {"resultOf": call_id, "name": method, "path": path} — put under "#<property>".
boost::json::object result_reference(std::string_view call_id, std::string_view method,
                                     std::string_view path);

struct MethodResponse {
  std::string name;  // "Email/get", or "error"
  boost::json::object arguments;
  std::string call_id;
};

struct Response {
  std::vector<MethodResponse> responses;
  std::string session_state;
};

// Reads an API answer. Errors: not JSON, no methodResponses array, an entry that is not
// [name, object, id].
Result<Response> parse_response(std::string_view body);

// The answer to call `call_id`: its arguments when the server answered with `method`, or
// its method-level error (a value with `type` set) — never both. Several answers share a
// call id when the server adds implicit calls (onSuccessUpdateEmail): the first whose name
// is `method` or "error" counts. Error (the Result): no such answer at all.
struct MethodAnswer {
  const boost::json::object* arguments = nullptr;
  std::optional<JmapError> error;
};
Result<MethodAnswer> answer_for(const Response& response, std::string_view call_id,
                                std::string_view method);

// RFC 7807 problem details in an HTTP error answer; nullopt when the body is not one.
std::optional<JmapError> parse_problem(std::string_view body);

// The /set answer (RFC 8620 5.3).
struct SetResult {
  std::string new_state;
  std::map<std::string, boost::json::object> created;  // creation id → server's object
  std::set<std::string> updated, destroyed;
  std::map<std::string, JmapError> not_created, not_updated, not_destroyed;
};
Result<SetResult> read_set(const boost::json::object& arguments);

struct Mailbox {
  std::string id, name, role;  // role "" when none
};
struct Identity {
  std::string id, name, email;
};
// What the reader needs of an email (other properties are not asked for).
struct Email {
  std::string id, blob_id;
  std::set<std::string> mailbox_ids, keywords;
  std::uint64_t size = 0;
};
// A /get answer: its state and the objects of the list that could be read.
template <class T>
struct GetResult {
  std::string state;
  std::vector<T> list;
  std::vector<std::string> not_found;
};
Result<GetResult<Mailbox>> read_mailboxes(const boost::json::object& arguments);
Result<GetResult<Identity>> read_identities(const boost::json::object& arguments);
Result<GetResult<Email>> read_emails(const boost::json::object& arguments);

struct QueryResult {
  std::string query_state;
  std::vector<std::string> ids;
  std::uint64_t position = 0;
  std::optional<std::uint64_t> total;
};
Result<QueryResult> read_query(const boost::json::object& arguments);

struct ChangesResult {
  std::string old_state, new_state;
  bool has_more_changes = false;
  std::vector<std::string> created, updated, destroyed;
};
Result<ChangesResult> read_changes(const boost::json::object& arguments);

struct UploadResult {
  std::string blob_id, type;
  std::uint64_t size = 0;
};
Result<UploadResult> read_upload(std::string_view body);

// A push StateChange (RFC 8620 7.1): account id → (type → state). Error: not one.
using StateChanges = std::map<std::string, std::map<std::string, std::string>>;
Result<StateChanges> read_state_change(std::string_view data);

// Sending (RFC 8621 4.6, 7.5). An attachment after its upload.
struct DraftAttachment {
  std::string blob_id, type, name;
  std::uint64_t size = 0;
};
// The Email/set create object for `mail`: From/To/Cc as EmailAddress lists, subject, the
// ids (without <>), Auto-Submitted when set, keywords $draft and $seen, in `drafts_id`,
// textBody (the Markdown as written) + htmlBody (markdown_to_html) with bodyValues, and the
// attachments by blobId.
boost::json::object email_draft(const OutgoingMail& mail, std::string_view drafts_id,
                                const std::vector<DraftAttachment>& attachments);
// The EmailSubmission/set create object: identity, the email ("#draft" or a real id) and
// the envelope (mail.from → every To and Cc, without duplicates).
boost::json::object email_submission(const OutgoingMail& mail, std::string_view identity_id,
                                     std::string_view email_id);
// onSuccessUpdateEmail for submission creation id `submission`: out of Drafts, into Sent,
// $draft cleared. `sent_id` empty: only out of Drafts and $draft cleared.
boost::json::object move_to_sent(std::string_view submission, std::string_view drafts_id,
                                 std::string_view sent_id);

// Server text for logs and errors: valid UTF-8 without control characters, at most `max`
// bytes (then "..." follows).
std::string printable(std::string_view text, std::size_t max = 300);

}  // namespace sb::email::jmap

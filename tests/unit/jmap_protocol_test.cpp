#include "channels/email/jmap_protocol.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

namespace sb::email::jmap {
namespace {

namespace json = boost::json;

// The shape of Fastmail's session document (RFC 8620 2.1's example, with Fastmail's
// capabilities and absolute URLs).
constexpr std::string_view kFastmailSession = R"({
  "capabilities": {
    "urn:ietf:params:jmap:core": {"maxSizeUpload": 50000000, "maxConcurrentUpload": 4,
      "maxSizeRequest": 10000000, "maxConcurrentRequests": 4, "maxCallsInRequest": 16,
      "maxObjectsInGet": 500, "maxObjectsInSet": 500,
      "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"]},
    "urn:ietf:params:jmap:mail": {},
    "urn:ietf:params:jmap:submission": {},
    "https://www.fastmail.com/dev/maskedemail": {}
  },
  "accounts": {
    "u1234abcd": {"name": "ada@example.com", "isPersonal": true, "isReadOnly": false,
      "accountCapabilities": {"urn:ietf:params:jmap:mail": {"maxMailboxesPerEmail": 1000},
                              "urn:ietf:params:jmap:submission": {}}}
  },
  "primaryAccounts": {"urn:ietf:params:jmap:mail": "u1234abcd",
                      "urn:ietf:params:jmap:submission": "u1234abcd"},
  "username": "ada@example.com",
  "apiUrl": "https://api.fastmail.com/jmap/api/",
  "downloadUrl": "https://www.fastmailusercontent.com/jmap/download/{accountId}/{blobId}/{name}?type={type}",
  "uploadUrl": "https://api.fastmail.com/jmap/upload/{accountId}/",
  "eventSourceUrl": "https://api.fastmail.com/jmap/event/?types={types}&closeafter={closeafter}&ping={ping}",
  "state": "cyrus-0;p-5;vfs-0",
  "someFutureProperty": {"ignored": true}
})";

// Debian's Cyrus 3.6: relative URLs, no eventSourceUrl push (it still names one).
constexpr std::string_view kCyrusSession = R"({
  "username": "test@localhost",
  "accounts": {"test@localhost": {"name": "test@localhost", "isPersonal": true,
    "isReadOnly": false, "accountCapabilities": {}}},
  "primaryAccounts": {"urn:ietf:params:jmap:mail": "test@localhost"},
  "capabilities": {"urn:ietf:params:jmap:core": {"maxSizeUpload": 1073741824,
    "maxCallsInRequest": 50, "maxObjectsInGet": 4096}, "urn:ietf:params:jmap:mail": {},
    "urn:ietf:params:jmap:submission": {}},
  "apiUrl": "/jmap/",
  "downloadUrl": "/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
  "uploadUrl": "/jmap/upload/{accountId}/",
  "eventSourceUrl": "/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}",
  "state": "0"
})";

TEST(JmapProtocol, ReadsAFastmailSession) {
  auto session = parse_session(kFastmailSession, "https://api.fastmail.com/jmap/session");
  ASSERT_TRUE(session) << session.error().message;
  EXPECT_TRUE(session->has_capability(kMail));
  EXPECT_TRUE(session->has_capability(kSubmission));
  EXPECT_EQ(session->max_size_upload, 50000000u);
  EXPECT_EQ(session->max_calls_in_request, 16u);
  EXPECT_EQ(session->max_objects_in_get, 500u);
  EXPECT_EQ(session->primary_accounts.at(std::string(kMail)), "u1234abcd");
  EXPECT_TRUE(session->account_ids.contains("u1234abcd"));
  EXPECT_EQ(session->api_url, "https://api.fastmail.com/jmap/api/");
  EXPECT_EQ(session->upload_url, "https://api.fastmail.com/jmap/upload/{accountId}/");
  EXPECT_EQ(session->state, "cyrus-0;p-5;vfs-0");
}

TEST(JmapProtocol, ResolvesCyrusRelativeUrlsAgainstTheSessionUrl) {
  auto session = parse_session(kCyrusSession, "http://127.0.0.1:8008/jmap");
  ASSERT_TRUE(session) << session.error().message;
  EXPECT_EQ(session->api_url, "http://127.0.0.1:8008/jmap/");
  EXPECT_EQ(session->download_url,
            "http://127.0.0.1:8008/jmap/download/{accountId}/{blobId}/{name}?accept={type}");
  EXPECT_EQ(session->event_source_url,
            "http://127.0.0.1:8008/jmap/eventsource/"
            "?types={types}&closeafter={closeafter}&ping={ping}");
}

TEST(JmapProtocol, ResolvesEveryKindOfReference) {
  EXPECT_EQ(resolve_url("https://h.example/a/b/session", "api/"), "https://h.example/a/b/api/");
  EXPECT_EQ(resolve_url("https://h.example/a/b/session?x=1", "/api/"), "https://h.example/api/");
  EXPECT_EQ(resolve_url("https://h.example:8443/s", "//other.example/api"),
            "https://other.example/api");
  EXPECT_EQ(resolve_url("https://h.example/s", "HTTPS://x.example/api"), "HTTPS://x.example/api");
  EXPECT_EQ(resolve_url("http://[::1]:8008", "/jmap/"), "http://[::1]:8008/jmap/");
  EXPECT_EQ(resolve_url("http://h.example", "jmap/"), "http://h.example/jmap/");
}

TEST(JmapProtocol, RejectsSessionsWithMissingOrMistypedRequiredProperties) {
  EXPECT_FALSE(parse_session("not json", "https://h/"));
  EXPECT_FALSE(parse_session("[]", "https://h/"));
  auto value = json::parse(kFastmailSession).as_object();
  for (const char* key : {"apiUrl", "downloadUrl", "uploadUrl", "accounts", "primaryAccounts",
                          "capabilities", "state"}) {
    auto without = value;
    without.erase(key);
    auto missing = parse_session(json::serialize(without), "https://h/");
    ASSERT_FALSE(missing) << key;
    EXPECT_NE(missing.error().message.find(key), std::string::npos) << missing.error().message;
    auto mistyped = value;
    mistyped[key] = 42;
    auto wrong = parse_session(json::serialize(mistyped), "https://h/");
    ASSERT_FALSE(wrong) << key;
    EXPECT_NE(wrong.error().message.find(key), std::string::npos) << wrong.error().message;
  }
  auto bad_limit = value;
  bad_limit["capabilities"].as_object()[std::string(kCore)].as_object()["maxSizeUpload"] = "big";
  EXPECT_FALSE(parse_session(json::serialize(bad_limit), "https://h/"));
}

TEST(JmapProtocol, ExpandsUrlTemplatesWithPercentEncoding) {
  EXPECT_EQ(expand_template("https://h/download/{accountId}/{blobId}/{name}?type={type}",
                            {{"accountId", "u1"},
                             {"blobId", "G12/x y"},
                             {"name", "message.eml"},
                             {"type", "message/rfc822"}}),
            "https://h/download/u1/G12%2Fx%20y/message.eml?type=message%2Frfc822");
  EXPECT_EQ(
      expand_template("/e?types={types}&closeafter={closeafter}&ping={ping}&x={unknown}",
                      {{"types", "Email,EmailDelivery"}, {"closeafter", "no"}, {"ping", "60"}}),
      "/e?types=Email%2CEmailDelivery&closeafter=no&ping=60&x=");
  EXPECT_EQ(expand_template("/open{brace", {}), "/open{brace");
}

TEST(JmapProtocol, BuildsTheEnvelopeWithCallIdsAndResultReferences) {
  Request request({std::string(kCore), std::string(kMail)});
  const auto query = request.add("Email/query", json::object{{"accountId", "a"}});
  const auto get = request.add(
      "Email/get",
      json::object{{"accountId", "a"}, {"#ids", result_reference(query, "Email/query", "/ids")}});
  EXPECT_NE(query, get);
  const auto sent = json::parse(request.serialize());
  const auto expected = json::parse(R"({"using":["urn:ietf:params:jmap:core",
      "urn:ietf:params:jmap:mail"], "methodCalls":[["Email/query",{"accountId":"a"},"c0"],
      ["Email/get",{"accountId":"a","#ids":{"resultOf":"c0","name":"Email/query",
      "path":"/ids"}},"c1"]]})");
  EXPECT_EQ(sent, expected);
}

TEST(JmapProtocol, MatchesAnswersByCallIdAndReadsMethodErrors) {
  auto response = parse_response(R"({"methodResponses":[
      ["Email/query",{"accountId":"a","ids":["M1","M2"],"position":0,"total":2,
        "queryState":"q1","canCalculateChanges":true,"futureField":[1,2]},"c0"],
      ["error",{"type":"cannotCalculateChanges","description":"too old"},"c1"],
      ["Email/get",{"accountId":"a","state":"s9","list":[],"notFound":null},"c2"]],
      "sessionState":"75128aab4b1b"})");
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->session_state, "75128aab4b1b");

  auto query = answer_for(*response, "c0", "Email/query");
  ASSERT_TRUE(query);
  ASSERT_NE(query->arguments, nullptr);
  EXPECT_FALSE(query->error);
  auto ids = read_query(*query->arguments);
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(ids->ids, (std::vector<std::string>{"M1", "M2"}));
  EXPECT_EQ(ids->total, 2u);
  EXPECT_EQ(ids->query_state, "q1");

  auto changes = answer_for(*response, "c1", "Email/changes");
  ASSERT_TRUE(changes);
  EXPECT_EQ(changes->arguments, nullptr);
  ASSERT_TRUE(changes->error);
  EXPECT_EQ(changes->error->type, "cannotCalculateChanges");
  EXPECT_EQ(changes->error->text(), "cannotCalculateChanges: too old");

  // The right id with another method's name, or an id nobody answered: an error.
  EXPECT_FALSE(answer_for(*response, "c0", "Email/get"));
  EXPECT_FALSE(answer_for(*response, "c7", "Email/get"));
}

TEST(JmapProtocol, ReadsEveryMethodLevelErrorType) {
  for (const char* type :
       {"unknownMethod", "invalidArguments", "invalidResultReference", "cannotCalculateChanges",
        "stateMismatch", "serverFail", "accountNotFound", "forbidden", "requestTooLarge"}) {
    auto response = parse_response(std::string(R"({"methodResponses":[["error",{"type":")") + type +
                                   R"("},"c0"]],"sessionState":"s"})");
    ASSERT_TRUE(response);
    auto answer = answer_for(*response, "c0", "Email/set");
    ASSERT_TRUE(answer);
    ASSERT_TRUE(answer->error);
    EXPECT_EQ(answer->error->type, type);
  }
  // An error without a type is still an error.
  auto untyped = parse_response(R"({"methodResponses":[["error",{},"c0"]]})");
  ASSERT_TRUE(untyped);
  EXPECT_EQ(answer_for(*untyped, "c0", "Email/set")->error->type, "unknown");
}

TEST(JmapProtocol, RejectsMalformedAnswersWithoutCrashing) {
  for (const char* body :
       {"", "{", "[]", "{}", R"({"methodResponses":{}})", R"({"methodResponses":[1]})",
        R"({"methodResponses":[["Email/get",{}]]})",
        R"({"methodResponses":[["Email/get",[],"c0"]]})", R"({"methodResponses":[[1,{},"c0"]]})",
        R"({"methodResponses":[],"sessionState":5})"}) {
    EXPECT_FALSE(parse_response(body)) << body;
  }
}

TEST(JmapProtocol, ReadsPerObjectErrorsOfASet) {
  auto response = parse_response(R"({"methodResponses":[["Email/set",{"accountId":"a",
      "oldState":"1","newState":"2",
      "created":{"ok":{"id":"M9","blobId":"B9","threadId":"T9","size":1234}},
      "updated":{"M1":null,"M2":{"keywords":{}}},
      "destroyed":["M3"],
      "notCreated":{"draft":{"type":"invalidProperties","properties":["from","mailboxIds"],
                             "description":"bad from"}},
      "notUpdated":{"M4":{"type":"notFound"}},
      "notDestroyed":{"M5":{"type":"forbidden","description":"\u0007ding"}}},"c0"]]})");
  ASSERT_TRUE(response);
  auto set = read_set(*answer_for(*response, "c0", "Email/set")->arguments);
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->new_state, "2");
  ASSERT_TRUE(set->created.contains("ok"));
  EXPECT_EQ(set->created.at("ok").at("id").as_string(), "M9");
  EXPECT_EQ(set->updated, (std::set<std::string>{"M1", "M2"}));
  EXPECT_EQ(set->destroyed, (std::set<std::string>{"M3"}));
  const auto& not_created = set->not_created.at("draft");
  EXPECT_EQ(not_created.type, "invalidProperties");
  EXPECT_EQ(not_created.properties, (std::vector<std::string>{"from", "mailboxIds"}));
  EXPECT_EQ(not_created.text(), "invalidProperties (from, mailboxIds): bad from");
  EXPECT_EQ(set->not_updated.at("M4").type, "notFound");
  // Control characters from the server never reach a log line.
  EXPECT_EQ(set->not_destroyed.at("M5").description, " ding");
}

TEST(JmapProtocol, ASetAnswerWithWrongTypesIsAnErrorNamingTheProperty) {
  for (const char* body :
       {R"({"created":[1]})", R"({"created":{"x":1}})", R"({"notCreated":{"x":"no"}})",
        R"({"destroyed":"M1"})", R"({"newState":7})", R"({"updated":[]})"}) {
    auto set = read_set(json::parse(body).as_object());
    EXPECT_FALSE(set) << body;
  }
}

TEST(JmapProtocol, ReadsEmailsAndIgnoresUnknownProperties) {
  auto emails = read_emails(json::parse(R"({"accountId":"a","state":"s5","list":[
      {"id":"M1","blobId":"B1","messageId":["m1@x"],"mailboxIds":{"inbox":true,"other":false},
       "keywords":{"$Seen":true,"$flagged":true},"size":2048,"receivedAt":"2024-01-01T00:00:00Z",
       "x-vendor":{"deep":[1,2,3]}},
      {"id":"M2","blobId":"B2","messageId":null,"mailboxIds":{"inbox":true},"keywords":{}}],
      "notFound":["M3"]})")
                                .as_object());
  ASSERT_TRUE(emails) << emails.error().message;
  EXPECT_EQ(emails->state, "s5");
  ASSERT_EQ(emails->list.size(), 2u);
  EXPECT_EQ(emails->list[0].blob_id, "B1");
  EXPECT_EQ(emails->list[0].mailbox_ids, (std::set<std::string>{"inbox"}));
  // Keywords are case-insensitive (RFC 8621 4.1.1): read in lower case.
  EXPECT_TRUE(emails->list[0].keywords.contains("$seen"));
  EXPECT_EQ(emails->list[0].size, 2048u);
  EXPECT_EQ(emails->not_found, (std::vector<std::string>{"M3"}));
}

TEST(JmapProtocol, AnEmailWithAWrongTypeIsAnErrorNotACrash) {
  for (const char* email : {R"({"blobId":"B"})", R"({"id":5})", R"({"id":"M","size":"big"})",
                            R"({"id":"M","mailboxIds":["inbox"]})",
                            R"({"id":"M","keywords":["$seen"]})", R"({"id":"M","size":-1})"}) {
    auto body = std::string(R"({"state":"s","list":[)") + email + "]}";
    EXPECT_FALSE(read_emails(json::parse(body).as_object())) << email;
  }
  EXPECT_FALSE(read_emails(json::parse(R"({"state":"s"})").as_object()));
  EXPECT_FALSE(read_emails(json::parse(R"({"state":"s","list":[1]})").as_object()));
}

TEST(JmapProtocol, ReadsChangesMailboxesIdentitiesAndUploads) {
  auto changes = read_changes(json::parse(R"({"accountId":"a","oldState":"1","newState":"3",
      "hasMoreChanges":true,"created":["M1"],"updated":["M2"],"destroyed":[]})")
                                  .as_object());
  ASSERT_TRUE(changes);
  EXPECT_TRUE(changes->has_more_changes);
  EXPECT_EQ(changes->new_state, "3");
  EXPECT_EQ(changes->created, (std::vector<std::string>{"M1"}));
  EXPECT_FALSE(read_changes(json::parse(R"({"created":[]})").as_object()));
  EXPECT_FALSE(read_changes(json::parse(R"({"newState":"3","hasMoreChanges":"yes"})").as_object()));

  auto boxes = read_mailboxes(json::parse(R"({"state":"1","list":[
      {"id":"P1","name":"Inbox","role":"inbox","sortOrder":1},
      {"id":"P2","name":"Drafts","role":"Drafts"},{"id":"P3","name":"Lists","role":null}]})")
                                  .as_object());
  ASSERT_TRUE(boxes) << boxes.error().message;
  ASSERT_EQ(boxes->list.size(), 3u);
  EXPECT_EQ(boxes->list[1].role, "drafts");
  EXPECT_EQ(boxes->list[2].role, "");

  auto identities = read_identities(json::parse(R"({"state":"1","list":[
      {"id":"I1","name":"Ada","email":"ada@example.com","mayDelete":true}]})")
                                        .as_object());
  ASSERT_TRUE(identities);
  EXPECT_EQ(identities->list[0].email, "ada@example.com");

  auto upload = read_upload(R"({"accountId":"a","blobId":"Gabc","type":"application/pdf",
      "size":12})");
  ASSERT_TRUE(upload);
  EXPECT_EQ(upload->blob_id, "Gabc");
  EXPECT_EQ(upload->size, 12u);
  EXPECT_FALSE(read_upload(R"({"type":"x"})"));
}

TEST(JmapProtocol, ReadsProblemDetails) {
  auto limit = parse_problem(R"({"type":"urn:ietf:params:jmap:error:limit",
      "limit":"maxSizeRequest","status":400,"detail":"The request is larger than allowed."})");
  ASSERT_TRUE(limit);
  EXPECT_EQ(limit->type, "urn:ietf:params:jmap:error:limit");
  EXPECT_EQ(limit->status, 400);
  EXPECT_EQ(limit->limit, "maxSizeRequest");
  EXPECT_NE(limit->text().find("maxSizeRequest"), std::string::npos);
  EXPECT_EQ(parse_problem(R"({"type":"urn:ietf:params:jmap:error:notRequest"})")->type,
            "urn:ietf:params:jmap:error:notRequest");
  EXPECT_FALSE(parse_problem("<html>Bad gateway</html>"));
  EXPECT_FALSE(parse_problem(R"({"status":400})"));
}

TEST(JmapProtocol, ReadsStateChanges) {
  auto change = read_state_change(R"({"@type":"StateChange","changed":{
      "u1":{"Email":"d35ecb040aab","EmailDelivery":"428d565f2440","Future":5},
      "u2":{"Mailbox":"0af7a512ce70"}}})");
  ASSERT_TRUE(change) << change.error().message;
  EXPECT_EQ(change->at("u1").at("Email"), "d35ecb040aab");
  EXPECT_FALSE(change->at("u1").contains("Future"));
  EXPECT_EQ(change->at("u2").size(), 1u);
  EXPECT_FALSE(read_state_change(R"({"interval":30})"));
  EXPECT_FALSE(read_state_change(R"({"@type":"StateChange","changed":{"u1":5}})"));
  EXPECT_FALSE(read_state_change("ping"));
}

OutgoingMail sample_mail() {
  OutgoingMail mail;
  mail.from = {"assistant@example.com", "Assistant"};
  mail.to = {{"ada@example.org", "Ada"}, {"ADA@example.org", ""}};
  mail.cc = {{"bob@example.org", ""}};
  mail.subject = "Re: Lunch?";
  mail.message_id = "sb.1.abc@example.com";
  mail.in_reply_to = "orig@example.org";
  mail.references = {"first@example.org", "orig@example.org"};
  mail.markdown_body = "Yes, **noon**.";
  return mail;
}

TEST(JmapProtocol, BuildsTheDraftOfAnOutgoingMail) {
  auto mail = sample_mail();
  const auto draft = email_draft(mail, "P-drafts", {{"Gblob", "application/pdf", "menu.pdf", 5}});
  EXPECT_EQ(draft.at("mailboxIds"), json::parse(R"({"P-drafts":true})"));
  EXPECT_EQ(draft.at("keywords"), json::parse(R"({"$draft":true,"$seen":true})"));
  EXPECT_EQ(draft.at("from"),
            json::parse(R"([{"name":"Assistant","email":"assistant@example.com"}])"));
  EXPECT_EQ(draft.at("to").as_array()[1],
            json::parse(R"({"name":null,"email":"ADA@example.org"})"));
  EXPECT_EQ(draft.at("cc"), json::parse(R"([{"name":null,"email":"bob@example.org"}])"));
  EXPECT_EQ(draft.at("subject"), "Re: Lunch?");
  EXPECT_EQ(draft.at("messageId"), json::parse(R"(["sb.1.abc@example.com"])"));
  EXPECT_EQ(draft.at("inReplyTo"), json::parse(R"(["orig@example.org"])"));
  EXPECT_EQ(draft.at("references"), json::parse(R"(["first@example.org","orig@example.org"])"));
  EXPECT_EQ(draft.at("header:Auto-Submitted:asText"), "auto-replied");
  EXPECT_EQ(draft.at("textBody"), json::parse(R"([{"partId":"text","type":"text/plain"}])"));
  EXPECT_EQ(draft.at("htmlBody"), json::parse(R"([{"partId":"html","type":"text/html"}])"));
  const auto& values = draft.at("bodyValues").as_object();
  EXPECT_EQ(values.at("text").at("value"), "Yes, **noon**.");
  EXPECT_NE(std::string(values.at("html").at("value").as_string()).find("<strong>noon</strong>"),
            std::string::npos);
  EXPECT_EQ(draft.at("attachments"),
            json::parse(R"([{"blobId":"Gblob","type":"application/pdf","name":"menu.pdf",
                            "disposition":"attachment"}])"));
}

TEST(JmapProtocol, ADraftWithoutThreadingOrAutoSubmittedLeavesThemOut) {
  auto mail = sample_mail();
  mail.in_reply_to.clear();
  mail.references.clear();
  mail.cc.clear();
  mail.auto_submitted.clear();
  mail.date = std::chrono::sys_days{std::chrono::year{2024} / 5 / 6} + std::chrono::hours(7) +
              std::chrono::milliseconds(250);
  const auto draft = email_draft(mail, "d", {});
  for (const char* key :
       {"inReplyTo", "references", "cc", "header:Auto-Submitted:asText", "attachments"}) {
    EXPECT_FALSE(draft.contains(key)) << key;
  }
  EXPECT_EQ(draft.at("sentAt"), "2024-05-06T07:00:00Z");
}

TEST(JmapProtocol, BuildsTheSubmissionWithItsEnvelopeAndTheMoveToSent) {
  const auto submission = email_submission(sample_mail(), "I1", "#draft");
  EXPECT_EQ(submission, json::parse(R"({"identityId":"I1","emailId":"#draft","envelope":{
      "mailFrom":{"email":"assistant@example.com","parameters":null},
      "rcptTo":[{"email":"ada@example.org","parameters":null},
                {"email":"bob@example.org","parameters":null}]}})"));
  EXPECT_EQ(move_to_sent("sub", "P-drafts", "P-sent"),
            json::parse(R"({"#sub":{"mailboxIds/P-drafts":null,"mailboxIds/P-sent":true,
                                    "keywords/$draft":null}})"));
  // Ids go into a JSON pointer: "/" and "~" are escaped.
  EXPECT_TRUE(move_to_sent("sub", "a/b", "c~d").at("#sub").as_object().contains("mailboxIds/a~1b"));
}

}  // namespace
}  // namespace sb::email::jmap

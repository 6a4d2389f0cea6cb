#include "channels/email/jmap_protocol.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>

#include "channels/email/mail_text.h"
#include "common/time.h"
#include "common/utf8.h"

namespace sb::email::jmap {

namespace json = boost::json;

namespace {

// Bounds on what a hostile server can make us hold per answer list.
constexpr std::size_t kMaxDescription = 300;

Result<json::value> parse_json(std::string_view body, std::string_view what) {
  boost::system::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec) return make_error(std::string(what) + " is not JSON: " + ec.message());
  return value;
}

Error wrong_type(std::string_view context, std::string_view key, std::string_view expected) {
  return make_error(std::string(context) + ": \"" + std::string(key) + "\" is not " +
                    std::string(expected));
}

// Absent and null read as nothing; anything but a string is an error naming the property.
Result<std::optional<std::string>> optional_string(const json::object& object, std::string_view key,
                                                   std::string_view context) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr || value->is_null()) return std::optional<std::string>{};
  if (!value->is_string()) return wrong_type(context, key, "a string");
  return std::optional<std::string>(std::string(value->get_string()));
}

Result<std::string> required_string(const json::object& object, std::string_view key,
                                    std::string_view context) {
  auto value = optional_string(object, key, context);
  if (!value) return value.error();
  if (!*value)
    return make_error(std::string(context) + ": \"" + std::string(key) + "\" is missing");
  return std::move(**value);
}

Result<std::uint64_t> as_count(const json::value& value, std::string_view context,
                               std::string_view key) {
  if (value.is_uint64()) return value.get_uint64();
  if (value.is_int64() && value.get_int64() >= 0) {
    return static_cast<std::uint64_t>(value.get_int64());
  }
  if (value.is_double() && value.get_double() >= 0 && value.get_double() < 1.8e19) {
    return static_cast<std::uint64_t>(value.get_double());
  }
  return wrong_type(context, key, "a non-negative number");
}

Result<std::optional<std::uint64_t>> optional_count(const json::object& object,
                                                    std::string_view key,
                                                    std::string_view context) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr || value->is_null()) return std::optional<std::uint64_t>{};
  auto count = as_count(*value, context, key);
  if (!count) return count.error();
  return std::optional<std::uint64_t>(*count);
}

// Absent and null read as an empty list.
Result<std::vector<std::string>> string_list(const json::object& object, std::string_view key,
                                             std::string_view context) {
  std::vector<std::string> out;
  const json::value* value = object.if_contains(key);
  if (value == nullptr || value->is_null()) return out;
  if (!value->is_array()) return wrong_type(context, key, "a list");
  for (const auto& item : value->get_array()) {
    if (!item.is_string()) return wrong_type(context, key, "a list of strings");
    out.emplace_back(item.get_string());
  }
  return out;
}

// Absent and null read as nothing; anything but an object is an error.
Result<const json::object*> optional_object(const json::object& object, std::string_view key,
                                            std::string_view context) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr || value->is_null()) return static_cast<const json::object*>(nullptr);
  if (!value->is_object()) return wrong_type(context, key, "an object");
  return &value->get_object();
}

// The keys of a JMAP "set" ({"id": true, …}) whose value is true.
Result<std::set<std::string>> true_keys(const json::object& object, std::string_view key,
                                        std::string_view context) {
  std::set<std::string> out;
  auto map = optional_object(object, key, context);
  if (!map) return map.error();
  if (*map == nullptr) return out;
  for (const auto& [name, flag] : **map) {
    if (flag.is_bool() && flag.get_bool()) out.emplace(name);
  }
  return out;
}

JmapError read_error_object(const json::object& object) {
  JmapError error;
  if (const auto* type = object.if_contains("type"); type && type->is_string()) {
    error.type = printable(type->get_string(), 100);
  } else {
    error.type = "unknown";
  }
  if (const auto* text = object.if_contains("description"); text && text->is_string()) {
    error.description = printable(text->get_string(), kMaxDescription);
  }
  if (const auto* list = object.if_contains("properties"); list && list->is_array()) {
    for (const auto& item : list->get_array()) {
      if (item.is_string() && error.properties.size() < 20) {
        error.properties.push_back(printable(item.get_string(), 100));
      }
    }
  }
  return error;
}

Result<std::map<std::string, JmapError>> set_errors(const json::object& object,
                                                    std::string_view key) {
  std::map<std::string, JmapError> out;
  auto map = optional_object(object, key, "the /set answer");
  if (!map) return map.error();
  if (*map == nullptr) return out;
  for (const auto& [id, error] : **map) {
    if (!error.is_object()) return wrong_type("the /set answer", key, "a map of SetErrors");
    out.emplace(std::string(id), read_error_object(error.get_object()));
  }
  return out;
}

// The list of a /get answer, each element an object read by `read`.
template <class T, class Read>
Result<GetResult<T>> read_get(const json::object& arguments, std::string_view context, Read read) {
  GetResult<T> out;
  auto state = optional_string(arguments, "state", context);
  if (!state) return state.error();
  out.state = state->value_or("");
  const json::value* list = arguments.if_contains("list");
  if (list == nullptr || !list->is_array()) return wrong_type(context, "list", "a list");
  for (const auto& item : list->get_array()) {
    if (!item.is_object()) return wrong_type(context, "list", "a list of objects");
    auto object = read(item.get_object());
    if (!object) return object.error();
    out.list.push_back(std::move(*object));
  }
  auto not_found = string_list(arguments, "notFound", context);
  if (!not_found) return not_found.error();
  out.not_found = std::move(*not_found);
  return out;
}

bool unreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

// A JSON pointer segment (RFC 6901) for a patch path.
std::string pointer_segment(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

json::array addresses(const std::vector<email::Mailbox>& list) {
  json::array out;
  for (const auto& mailbox : list) {
    json::object address;
    address["name"] = mailbox.name.empty() ? json::value(nullptr) : json::value(mailbox.name);
    address["email"] = mailbox.address;
    out.push_back(std::move(address));
  }
  return out;
}

}  // namespace

std::string printable(std::string_view text, std::size_t max) {
  // Valid UTF-8 first: the text ends up in JSON (/health, /outbox).
  std::string out(utf8_prefix(to_valid_utf8(text.substr(0, max + 4)), max));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  if (text.size() > out.size()) out += "...";
  return out;
}

std::string JmapError::text() const {
  std::string out = type;
  if (!properties.empty()) {
    out += " (";
    for (std::size_t i = 0; i < properties.size(); ++i) out += (i ? ", " : "") + properties[i];
    out += ")";
  }
  if (!description.empty()) out += ": " + description;
  return out;
}

std::string resolve_url(std::string_view base, std::string_view reference) {
  const std::string ref_lower = ascii_lower(reference.substr(0, 8));
  if (ref_lower.starts_with("http://") || ref_lower.starts_with("https://")) {
    return std::string(reference);
  }
  const auto scheme_end = base.find("://");
  if (scheme_end == std::string_view::npos) return std::string(reference);
  if (reference.starts_with("//"))
    return std::string(base.substr(0, scheme_end + 1)) + std::string(reference);
  const auto authority_end = base.find_first_of("/?#", scheme_end + 3);
  const std::string_view origin = base.substr(0, authority_end);
  if (reference.starts_with("/")) return std::string(origin) + std::string(reference);
  if (reference.empty()) return std::string(base);
  std::string_view path =
      authority_end == std::string_view::npos
          ? std::string_view("/")
          : base.substr(authority_end, base.find_first_of("?#", authority_end) - authority_end);
  if (path.empty() || path.front() != '/') path = "/";
  path = path.substr(0, path.rfind('/') + 1);
  return std::string(origin) + std::string(path) + std::string(reference);
}

std::string expand_template(std::string_view url_template,
                            const std::vector<std::pair<std::string, std::string>>& values) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  std::size_t pos = 0;
  while (pos < url_template.size()) {
    const auto open = url_template.find('{', pos);
    const auto close = open == std::string_view::npos ? open : url_template.find('}', open);
    if (close == std::string_view::npos) {
      out.append(url_template.substr(pos));
      break;
    }
    out.append(url_template.substr(pos, open - pos));
    const std::string_view name = url_template.substr(open + 1, close - open - 1);
    for (const auto& [key, value] : values) {
      if (key != name) continue;
      for (char c : value) {
        if (unreserved(c)) {
          out += c;
        } else {
          const auto u = static_cast<unsigned char>(c);
          out += '%';
          out += kHex[u >> 4];
          out += kHex[u & 15];
        }
      }
      break;
    }
    pos = close + 1;
  }
  return out;
}

Result<Session> parse_session(std::string_view body, std::string_view session_url) {
  constexpr std::string_view kContext = "the JMAP session";
  auto parsed = parse_json(body, kContext);
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error("the JMAP session is not a JSON object");
  const json::object& object = parsed->get_object();
  Session session;

  auto capabilities = optional_object(object, "capabilities", kContext);
  if (!capabilities) return capabilities.error();
  if (*capabilities == nullptr) return make_error("the JMAP session has no \"capabilities\"");
  for (const auto& [name, value] : **capabilities) {
    session.capabilities.emplace(name);
    if (name != kCore || !value.is_object()) continue;
    const auto& core = value.get_object();
    constexpr std::string_view kCoreContext = "the JMAP session's core capability";
    auto upload = optional_count(core, "maxSizeUpload", kCoreContext);
    auto calls = optional_count(core, "maxCallsInRequest", kCoreContext);
    auto objects = optional_count(core, "maxObjectsInGet", kCoreContext);
    if (!upload) return upload.error();
    if (!calls) return calls.error();
    if (!objects) return objects.error();
    session.max_size_upload = upload->value_or(0);
    session.max_calls_in_request = calls->value_or(0);
    session.max_objects_in_get = objects->value_or(0);
  }

  auto accounts = optional_object(object, "accounts", kContext);
  if (!accounts) return accounts.error();
  if (*accounts == nullptr) return make_error("the JMAP session has no \"accounts\"");
  for (const auto& [id, value] : **accounts) session.account_ids.emplace(id);

  auto primary = optional_object(object, "primaryAccounts", kContext);
  if (!primary) return primary.error();
  if (*primary == nullptr) return make_error("the JMAP session has no \"primaryAccounts\"");
  for (const auto& [capability, id] : **primary) {
    if (!id.is_string()) return wrong_type(kContext, "primaryAccounts", "a map of account ids");
    session.primary_accounts.emplace(std::string(capability), std::string(id.get_string()));
  }

  auto username = optional_string(object, "username", kContext);
  if (!username) return username.error();
  session.username = username->value_or("");
  for (auto [key, target] :
       {std::pair{"apiUrl", &session.api_url}, std::pair{"downloadUrl", &session.download_url},
        std::pair{"uploadUrl", &session.upload_url}}) {
    auto url = required_string(object, key, kContext);
    if (!url) return url.error();
    *target = resolve_url(session_url, *url);
  }
  auto events = optional_string(object, "eventSourceUrl", kContext);
  if (!events) return events.error();
  if (*events && !(*events)->empty()) session.event_source_url = resolve_url(session_url, **events);
  auto state = required_string(object, "state", kContext);
  if (!state) return state.error();
  session.state = std::move(*state);
  return session;
}

Request::Request(std::vector<std::string> capabilities) {
  for (auto& capability : capabilities) using_.emplace_back(std::move(capability));
}

std::string Request::add(std::string_view method, json::object arguments) {
  std::string id = "c" + std::to_string(calls_.size());
  calls_.push_back(json::array{json::string(method), std::move(arguments), json::string(id)});
  return id;
}

json::object Request::to_json() const {
  return json::object{{"using", using_}, {"methodCalls", calls_}};
}

std::string Request::serialize() const { return json::serialize(to_json()); }

json::object result_reference(std::string_view call_id, std::string_view method,
                              std::string_view path) {
  return json::object{{"resultOf", call_id}, {"name", method}, {"path", path}};
}

Result<Response> parse_response(std::string_view body) {
  constexpr std::string_view kContext = "the JMAP answer";
  auto parsed = parse_json(body, kContext);
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error("the JMAP answer is not a JSON object");
  const json::object& object = parsed->get_object();
  const json::value* list = object.if_contains("methodResponses");
  if (list == nullptr || !list->is_array())
    return wrong_type(kContext, "methodResponses", "a list");
  Response response;
  for (const auto& item : list->get_array()) {
    const json::array* triple = item.if_array();
    if (triple == nullptr || triple->size() != 3 || !(*triple)[0].is_string() ||
        !(*triple)[1].is_object() || !(*triple)[2].is_string()) {
      return make_error("the JMAP answer has a method response that is not [name, arguments, id]");
    }
    response.responses.push_back(MethodResponse{std::string((*triple)[0].get_string()),
                                                (*triple)[1].get_object(),
                                                std::string((*triple)[2].get_string())});
  }
  auto state = optional_string(object, "sessionState", kContext);
  if (!state) return state.error();
  response.session_state = state->value_or("");
  return response;
}

Result<MethodAnswer> answer_for(const Response& response, std::string_view call_id,
                                std::string_view method) {
  for (const auto& answer : response.responses) {
    if (answer.call_id != call_id) continue;
    if (answer.name == method) return MethodAnswer{&answer.arguments, std::nullopt};
    if (answer.name == "error") return MethodAnswer{nullptr, read_error_object(answer.arguments)};
  }
  return make_error("the JMAP answer has no " + std::string(method) + " response (call " +
                    std::string(call_id) + ")");
}

std::optional<JmapError> parse_problem(std::string_view body) {
  boost::system::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec || !value.is_object()) return std::nullopt;
  const json::object& object = value.get_object();
  const json::value* type = object.if_contains("type");
  if (type == nullptr || !type->is_string()) return std::nullopt;
  JmapError error;
  error.type = printable(type->get_string(), 100);
  if (const auto* detail = object.if_contains("detail"); detail && detail->is_string()) {
    error.description = printable(detail->get_string(), kMaxDescription);
  }
  if (const auto* limit = object.if_contains("limit"); limit && limit->is_string()) {
    error.limit = printable(limit->get_string(), 100);
    error.description += (error.description.empty() ? "limit " : " (limit ") + error.limit +
                         (error.description.empty() ? "" : ")");
  }
  if (const auto* status = object.if_contains("status"); status && status->is_int64()) {
    error.status = static_cast<int>(status->get_int64());
  }
  return error;
}

Result<SetResult> read_set(const json::object& arguments) {
  constexpr std::string_view kContext = "the /set answer";
  SetResult out;
  auto state = optional_string(arguments, "newState", kContext);
  if (!state) return state.error();
  out.new_state = state->value_or("");
  auto created = optional_object(arguments, "created", kContext);
  if (!created) return created.error();
  if (*created != nullptr) {
    for (const auto& [id, object] : **created) {
      if (!object.is_object()) return wrong_type(kContext, "created", "a map of objects");
      out.created.emplace(std::string(id), object.get_object());
    }
  }
  auto updated = optional_object(arguments, "updated", kContext);
  if (!updated) return updated.error();
  if (*updated != nullptr) {
    for (const auto& [id, ignored] : **updated) out.updated.emplace(id);
  }
  auto destroyed = string_list(arguments, "destroyed", kContext);
  if (!destroyed) return destroyed.error();
  out.destroyed.insert(destroyed->begin(), destroyed->end());
  for (auto [key, target] :
       {std::pair{"notCreated", &out.not_created}, std::pair{"notUpdated", &out.not_updated},
        std::pair{"notDestroyed", &out.not_destroyed}}) {
    auto errors = set_errors(arguments, key);
    if (!errors) return errors.error();
    *target = std::move(*errors);
  }
  return out;
}

Result<GetResult<Mailbox>> read_mailboxes(const json::object& arguments) {
  return read_get<Mailbox>(
      arguments, "the Mailbox/get answer", [](const json::object& object) -> Result<Mailbox> {
        constexpr std::string_view kContext = "a Mailbox";
        auto id = required_string(object, "id", kContext);
        auto name = optional_string(object, "name", kContext);
        auto role = optional_string(object, "role", kContext);
        if (!id) return id.error();
        if (!name) return name.error();
        if (!role) return role.error();
        return Mailbox{std::move(*id), name->value_or(""), ascii_lower(role->value_or(""))};
      });
}

Result<GetResult<Identity>> read_identities(const json::object& arguments) {
  return read_get<Identity>(
      arguments, "the Identity/get answer", [](const json::object& object) -> Result<Identity> {
        constexpr std::string_view kContext = "an Identity";
        auto id = required_string(object, "id", kContext);
        auto name = optional_string(object, "name", kContext);
        auto email = optional_string(object, "email", kContext);
        if (!id) return id.error();
        if (!name) return name.error();
        if (!email) return email.error();
        return Identity{std::move(*id), name->value_or(""), email->value_or("")};
      });
}

Result<GetResult<Email>> read_emails(const json::object& arguments) {
  return read_get<Email>(arguments, "the Email/get answer",
                         [](const json::object& object) -> Result<Email> {
                           constexpr std::string_view kContext = "an Email";
                           Email email;
                           auto id = required_string(object, "id", kContext);
                           if (!id) return id.error();
                           email.id = std::move(*id);
                           auto blob = optional_string(object, "blobId", kContext);
                           if (!blob) return blob.error();
                           email.blob_id = blob->value_or("");
                           auto mailboxes = true_keys(object, "mailboxIds", kContext);
                           if (!mailboxes) return mailboxes.error();
                           email.mailbox_ids = std::move(*mailboxes);
                           auto keywords = true_keys(object, "keywords", kContext);
                           if (!keywords) return keywords.error();
                           for (const auto& keyword : *keywords)
                             email.keywords.insert(ascii_lower(keyword));
                           auto size = optional_count(object, "size", kContext);
                           if (!size) return size.error();
                           email.size = size->value_or(0);
                           return email;
                         });
}

Result<QueryResult> read_query(const json::object& arguments) {
  constexpr std::string_view kContext = "the Email/query answer";
  QueryResult out;
  auto state = optional_string(arguments, "queryState", kContext);
  if (!state) return state.error();
  out.query_state = state->value_or("");
  if (!arguments.contains("ids")) return make_error("the Email/query answer has no \"ids\"");
  auto ids = string_list(arguments, "ids", kContext);
  if (!ids) return ids.error();
  out.ids = std::move(*ids);
  auto position = optional_count(arguments, "position", kContext);
  if (!position) return position.error();
  out.position = position->value_or(0);
  auto total = optional_count(arguments, "total", kContext);
  if (!total) return total.error();
  out.total = *total;
  return out;
}

Result<ChangesResult> read_changes(const json::object& arguments) {
  constexpr std::string_view kContext = "the /changes answer";
  ChangesResult out;
  auto old_state = optional_string(arguments, "oldState", kContext);
  if (!old_state) return old_state.error();
  out.old_state = old_state->value_or("");
  auto new_state = required_string(arguments, "newState", kContext);
  if (!new_state) return new_state.error();
  out.new_state = std::move(*new_state);
  if (const auto* more = arguments.if_contains("hasMoreChanges")) {
    if (!more->is_bool()) return wrong_type(kContext, "hasMoreChanges", "true or false");
    out.has_more_changes = more->get_bool();
  }
  for (auto [key, target] : {std::pair{"created", &out.created}, std::pair{"updated", &out.updated},
                             std::pair{"destroyed", &out.destroyed}}) {
    auto ids = string_list(arguments, key, kContext);
    if (!ids) return ids.error();
    *target = std::move(*ids);
  }
  return out;
}

Result<UploadResult> read_upload(std::string_view body) {
  constexpr std::string_view kContext = "the upload answer";
  auto parsed = parse_json(body, kContext);
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error("the upload answer is not a JSON object");
  const auto& object = parsed->get_object();
  UploadResult out;
  auto blob = required_string(object, "blobId", kContext);
  if (!blob) return blob.error();
  out.blob_id = std::move(*blob);
  auto type = optional_string(object, "type", kContext);
  if (!type) return type.error();
  out.type = type->value_or("");
  auto size = optional_count(object, "size", kContext);
  if (!size) return size.error();
  out.size = size->value_or(0);
  return out;
}

Result<StateChanges> read_state_change(std::string_view data) {
  constexpr std::string_view kContext = "the push event";
  auto parsed = parse_json(data, kContext);
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error("the push event is not a JSON object");
  const auto& object = parsed->get_object();
  auto type = optional_string(object, "@type", kContext);
  if (!type) return type.error();
  if (type->value_or("") != "StateChange") {
    return make_error("the push event is not a StateChange");
  }
  auto changed = optional_object(object, "changed", kContext);
  if (!changed) return changed.error();
  StateChanges out;
  if (*changed == nullptr) return out;
  for (const auto& [account, types] : **changed) {
    if (!types.is_object()) return wrong_type(kContext, "changed", "a map of type states");
    auto& states = out[std::string(account)];
    for (const auto& [name, state] : types.get_object()) {
      if (state.is_string()) states.emplace(std::string(name), std::string(state.get_string()));
    }
  }
  return out;
}

json::object email_draft(const OutgoingMail& mail, std::string_view drafts_id,
                         const std::vector<DraftAttachment>& attachments) {
  json::object email;
  email["mailboxIds"] = json::object{{drafts_id, true}};
  email["keywords"] = json::object{{"$draft", true}, {"$seen", true}};
  email["from"] = addresses({mail.from});
  email["to"] = addresses(mail.to);
  if (!mail.cc.empty()) email["cc"] = addresses(mail.cc);
  email["subject"] = mail.subject;
  email["messageId"] = json::array{json::string(mail.message_id)};
  if (!mail.in_reply_to.empty()) email["inReplyTo"] = json::array{json::string(mail.in_reply_to)};
  if (!mail.references.empty()) {
    json::array references;
    for (const auto& id : mail.references) references.emplace_back(id);
    email["references"] = std::move(references);
  }
  if (!mail.auto_submitted.empty()) {
    email["header:Auto-Submitted:asText"] = mail.auto_submitted;
  }
  if (mail.date) {
    // RFC 8620 1.4: no fraction when it is zero; seconds are enough for a Date header.
    std::string date = format_iso8601(std::chrono::floor<std::chrono::seconds>(*mail.date));
    if (const auto dot = date.find('.'); dot != std::string::npos) {
      date.erase(dot, date.size() - dot - 1);
    }
    email["sentAt"] = date;
  }
  email["bodyValues"] =
      json::object{{"text", json::object{{"value", mail.markdown_body}}},
                   {"html", json::object{{"value", markdown_to_html(mail.markdown_body)}}}};
  email["textBody"] = json::array{json::object{{"partId", "text"}, {"type", "text/plain"}}};
  email["htmlBody"] = json::array{json::object{{"partId", "html"}, {"type", "text/html"}}};
  if (!attachments.empty()) {
    json::array parts;
    for (const auto& attachment : attachments) {
      parts.push_back(json::object{
          {"blobId", attachment.blob_id},
          {"type", attachment.type.empty() ? "application/octet-stream" : attachment.type},
          {"name", attachment.name},
          {"disposition", "attachment"}});
    }
    email["attachments"] = std::move(parts);
  }
  return email;
}

json::object email_submission(const OutgoingMail& mail, std::string_view identity_id,
                              std::string_view email_id) {
  json::array recipients;
  std::set<std::string> seen;
  for (const auto* list : {&mail.to, &mail.cc}) {
    for (const auto& mailbox : *list) {
      if (!seen.insert(ascii_lower(mailbox.address)).second) continue;
      recipients.push_back(json::object{{"email", mailbox.address}, {"parameters", nullptr}});
    }
  }
  return json::object{
      {"identityId", identity_id},
      {"emailId", email_id},
      {"envelope", json::object{{"mailFrom", json::object{{"email", mail.from.address},
                                                          {"parameters", nullptr}}},
                                {"rcptTo", std::move(recipients)}}}};
}

json::object move_to_sent(std::string_view submission, std::string_view drafts_id,
                          std::string_view sent_id) {
  json::object patch;
  patch["mailboxIds/" + pointer_segment(drafts_id)] = nullptr;
  if (!sent_id.empty()) patch["mailboxIds/" + pointer_segment(sent_id)] = true;
  patch["keywords/$draft"] = nullptr;
  return json::object{{"#" + std::string(submission), std::move(patch)}};
}

}  // namespace sb::email::jmap

// POST /email, GET /email/{id}: mail queued through the API (docs/api.md#email).

#include <boost/beast/core/detail/base64.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>

#include "api/message_json.h"
#include "api/routes.h"
#include "common/ids.h"
#include "core/outbox.h"

namespace sb::api {
namespace json = boost::json;
using boost::asio::awaitable;

namespace {

constexpr std::size_t kMaxRecipients = 50;
constexpr std::size_t kMaxHeaderText = 998;
constexpr std::size_t kMaxAttachments = 20;

// Standard base64 with padding: groups of four from the alphabet, '=' only at the end.
bool is_base64(std::string_view text) {
  if (text.size() % 4 != 0) return false;
  const std::size_t padding = text.ends_with("==") ? 2 : text.ends_with('=') ? 1 : 0;
  for (std::size_t i = 0; i + padding < text.size(); ++i) {
    const char c = text[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

bool has_line_break(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool is_address(std::string_view a) {
  const auto at = a.find('@');
  return at != std::string_view::npos && at > 0 && at + 1 < a.size() &&
         a.find('@', at + 1) == std::string_view::npos && a.size() <= 254 &&
         std::ranges::all_of(a, [](char c) { return c > ' ' && c < 0x7f && c != '<' && c != '>'; });
}

// `field` as a list of addresses: a string or an array of strings.
Result<json::array> addresses(const json::object& body, std::string_view field, bool required) {
  json::array out;
  const json::value* v = body.if_contains(field);
  if (!v || v->is_null()) {
    if (required) return make_error("'" + std::string(field) + "' is required");
    return out;
  }
  if (v->is_string()) {
    out.push_back(v->get_string());
  } else if (v->is_array()) {
    out = v->get_array();
  } else {
    return make_error("'" + std::string(field) + "' must be an address or a list of addresses");
  }
  if (required && out.empty()) return make_error("'" + std::string(field) + "' is empty");
  if (out.size() > kMaxRecipients) {
    return make_error("'" + std::string(field) + "' has more than 50 addresses");
  }
  for (const auto& a : out) {
    if (!a.is_string() || !is_address(a.get_string())) {
      return make_error("'" + std::string(field) +
                        "' holds something that is not an address: " + json::serialize(a));
    }
  }
  return out;
}

Result<std::string> text_field(const json::object& body, std::string_view field, bool required,
                               bool one_line) {
  const json::value* v = body.if_contains(field);
  if (!v || v->is_null()) {
    if (required) return make_error("'" + std::string(field) + "' is required");
    return std::string();
  }
  if (!v->is_string()) return make_error("'" + std::string(field) + "' must be a string");
  std::string text(v->get_string());
  if (one_line && (has_line_break(text) || text.size() > kMaxHeaderText)) {
    return make_error("'" + std::string(field) + "' must be one line of at most 998 bytes");
  }
  return text;
}

// The outbox payload of a POST /email body (docs/api.md#email), or what is wrong with it.
Result<json::object> email_payload(const json::object& body,
                                   const std::vector<std::string>& accounts) {
  auto to = addresses(body, "to", true);
  if (!to) return to.error();
  auto cc = addresses(body, "cc", false);
  if (!cc) return cc.error();
  auto subject = text_field(body, "subject", true, true);
  if (!subject) return subject.error();
  auto text = text_field(body, "body", true, false);
  if (!text) return text.error();
  auto in_reply_to = text_field(body, "in_reply_to", false, true);
  if (!in_reply_to) return in_reply_to.error();
  auto account = text_field(body, "account", false, true);
  if (!account) return account.error();
  if (!account->empty() && std::ranges::find(accounts, *account) == accounts.end()) {
    return make_error("'account' is not a configured email account: " + *account);
  }
  std::string parent = *in_reply_to;
  if (parent.starts_with('<') && parent.ends_with('>'))
    parent = parent.substr(1, parent.size() - 2);

  json::array attachments;
  if (const json::value* list = body.if_contains("attachments"); list && !list->is_null()) {
    if (!list->is_array() || list->get_array().size() > kMaxAttachments) {
      return make_error("'attachments' must be a list of at most 20 objects");
    }
    for (const auto& item : list->get_array()) {
      if (!item.is_object()) return make_error("each attachment must be an object");
      const json::object& a = item.get_object();
      auto name = text_field(a, "filename", true, true);
      if (!name) return make_error("attachment: " + name.error().message);
      auto type = text_field(a, "content_type", false, true);
      if (!type) return make_error("attachment: " + type.error().message);
      auto content = text_field(a, "content_base64", true, false);
      if (!content) return make_error("attachment: " + content.error().message);
      if (!is_base64(*content)) {
        return make_error("attachment '" + *name + "': 'content_base64' is not valid base64");
      }
      std::string decoded(boost::beast::detail::base64::decoded_size(content->size()), '\0');
      const auto written =
          boost::beast::detail::base64::decode(decoded.data(), content->data(), content->size())
              .first;
      attachments.push_back(
          json::object{{"filename", *name},
                       {"content_type", type->empty() ? "application/octet-stream" : *type},
                       {"content_base64", *content},
                       {"size", written}});
    }
  }
  return json::object{{"to", std::move(*to)},
                      {"cc", std::move(*cc)},
                      {"subject", *subject},
                      {"body", *text},
                      {"in_reply_to", parent},
                      {"account", *account},
                      {"attachments", std::move(attachments)}};
}

// The API's view of an email outbox row: the row without the attachments' contents.
json::object email_json(const OutboxItem& item) {
  json::object out = outbox_item_json(item);
  if (auto* payload = out["payload"].if_object()) {
    if (auto* files = payload->if_contains("attachments"); files && files->is_array()) {
      for (auto& f : files->get_array()) {
        if (f.is_object()) f.get_object().erase("content_base64");
      }
    }
  }
  return out;
}

}  // namespace

void add_email_routes(Router& router, ApiContext& ctx) {
  router.add("POST", "/email", [&ctx](Request& request) -> awaitable<Response> {
    if (!ctx.outbox || ctx.email_accounts.empty()) {
      co_return error_response(409, "no email account is configured ([[email.accounts]])");
    }
    auto body = parse_request_json(request.body);
    if (!body) co_return error_response(400, body.error().message);
    const json::value& parsed = *body;
    if (!parsed.is_object()) co_return error_response(400, "the body must be a JSON object");
    auto payload = email_payload(parsed.get_object(), ctx.email_accounts);
    if (!payload) co_return error_response(422, payload.error().message);
    std::string key = random_id("api-email");
    if (const json::value* given = parsed.get_object().if_contains("idempotency_key");
        given && given->is_string() && !given->get_string().empty()) {
      key = "api-email:" + std::string(given->get_string());
    }
    const std::string chat = "email:" + std::string(payload->at("to").at(0).get_string());
    OutboxItem item = co_await ctx.outbox->enqueue(chat, "email", json::serialize(*payload), key);
    co_return json_response(202, json::serialize(email_json(item)));
  });

  router.add("GET", "/email/{id}", [&ctx](Request& request) -> awaitable<Response> {
    std::int64_t id = 0;
    const std::string& text = request.params["id"];
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size()) {
      co_return error_response(400, "the id must be an integer");
    }
    auto item = ctx.reader.outbox_item(id);
    if (!item || item->kind != "email") co_return error_response(404, "no email " + text);
    co_return json_response(200, json::serialize(email_json(*item)));
  });
}

}  // namespace sb::api

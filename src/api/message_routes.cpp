#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>

#include "api/message_json.h"
#include "api/routes.h"
#include "config/units.h"
#include "core/message_events.h"

namespace sb::api {
namespace json = boost::json;
using boost::asio::awaitable;

namespace {

constexpr std::chrono::milliseconds kMaxWait{120'000};

Response message_response(int status, const Message& message) {
  std::string body;
  append_message_json(body, message);
  return json_response(status, std::move(body));
}

std::optional<std::int64_t> parse_int(std::string_view text) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string_view text) {
  if (text == "true" || text == "1" || text == "yes") return true;
  if (text == "false" || text == "0" || text == "no") return false;
  return std::nullopt;
}

// Builds a MessageQuery from ?limit=&unread=&chat=&since=&before=&order=; the error names
// the parameter.
Result<MessageQuery> query_from(const Request& request) {
  MessageQuery q;
  q.limit = kDefaultListLimit;
  const auto& params = request.query;
  if (auto it = params.find("limit"); it != params.end()) {
    auto v = parse_int(it->second);
    if (!v || *v < 1 || *v > kMaxListLimit)
      return make_error("'limit' must be an integer from 1 to " + std::to_string(kMaxListLimit));
    q.limit = static_cast<int>(*v);
  }
  if (auto it = params.find("unread"); it != params.end()) {
    auto v = parse_bool(it->second);
    if (!v) return make_error("'unread' must be true or false");
    q.unread_only = *v;
  }
  if (auto it = params.find("chat"); it != params.end()) q.chat = it->second;
  for (auto [name, target] : {std::pair{"since", &q.since}, std::pair{"before", &q.before}}) {
    if (auto it = params.find(name); it != params.end()) {
      auto v = parse_int(it->second);
      if (!v || *v < 0)
        return make_error(std::string("'") + name + "' must be a message id (>= 0)");
      *target = *v;
    }
  }
  if (auto it = params.find("order"); it != params.end()) {
    if (it->second != "asc" && it->second != "desc")
      return make_error("'order' must be asc or desc");
    q.ascending = it->second == "asc";
  }
  return q;
}

class MessageRoutes {
 public:
  explicit MessageRoutes(ApiContext& context)
      : ctx_(context),
        stored_(context.metrics.counter("switchboard_messages_stored_total",
                                        "Messages committed through the API.")),
        commit_seconds_(context.metrics.histogram(
            "switchboard_store_write_duration_seconds",
            "Time from queueing a write to its durable commit, as an API request sees it.")),
        read_seconds_(context.metrics.histogram("switchboard_store_read_duration_seconds",
                                                "Time of one store read (a query or lookup).")) {}

  awaitable<Response> post_message(Request& request) {
    auto parsed = parse_request_json(request.body);
    if (!parsed) co_return error_response(400, parsed.error().message);
    if (!parsed->is_object()) co_return error_response(400, "the body must be a JSON object");
    auto message = new_message_from_json(parsed->get_object());
    if (!message) co_return error_response(422, message.error().message);

    const auto started = std::chrono::steady_clock::now();
    auto add = [m = std::move(message.value())](Store& store) { return store.add_message(m); };
    auto result = co_await ctx_.writer.run(std::move(add));
    commit_seconds_.observe(std::chrono::steady_clock::now() - started);
    if (result.inserted) {
      stored_.inc();
      if (ctx_.on_stored) ctx_.on_stored(result.message);
    }
    // A repeated idempotency key returns the message stored the first time.
    co_return message_response(result.inserted ? 201 : 200, result.message);
  }

  awaitable<Response> list(Request& request, bool unread_only) {
    auto query = query_from(request);
    if (!query) co_return error_response(400, query.error().message);
    if (unread_only) query->unread_only = true;
    auto messages = timed([&] { return ctx_.reader.messages(query.value()); });
    co_return json_response(200, messages_json(messages));
  }

  // Long-poll: the messages of `chat` after `since`, oldest first; waits up to `timeout`
  // for one to arrive when there are none yet.
  awaitable<Response> wait(Request& request) {
    auto chat = request.query.find("chat");
    if (chat == request.query.end() || !parse_chat_id(chat->second))
      co_return error_response(400, "'chat' must be a chat id such as http:alice");
    Seq since = 0;
    if (auto it = request.query.find("since"); it != request.query.end()) {
      auto v = parse_int(it->second);
      if (!v || *v < 0) co_return error_response(400, "'since' must be a message id (>= 0)");
      since = *v;
    }
    auto timeout = std::chrono::milliseconds(30'000);
    if (auto it = request.query.find("timeout"); it != request.query.end()) {
      auto v = parse_duration(it->second);
      if (!v || *v > kMaxWait)
        co_return error_response(400, "'timeout' must be a duration up to 120s, such as 30s");
      timeout = *v;
    }
    MessageQuery query;
    query.chat = chat->second;
    query.since = since;
    query.ascending = true;
    query.limit = kMaxListLimit;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto messages = timed([&] { return ctx_.reader.messages(query); });
    while (messages.empty() && ctx_.events && std::chrono::steady_clock::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      // Named, not a temporary of the co_await expression (g++ 12).
      auto woken = ctx_.events->wait(chat->second, left);
      if (!co_await std::move(woken)) break;
      messages = timed([&] { return ctx_.reader.messages(query); });
    }
    co_return json_response(200, messages_json(messages));
  }

  awaitable<Response> get(Request& request) {
    auto message = find(request.params["id"]);
    if (!message) co_return not_found(request.params["id"]);
    co_return message_response(200, *message);
  }

  awaitable<Response> mark_read(Request& request) {
    auto message = find(request.params["id"]);
    if (!message) co_return not_found(request.params["id"]);
    const Seq id = message->id;
    auto mark = [id](Store& store) { return store.set_status(id, MessageStatus::read); };
    co_await ctx_.writer.run(std::move(mark));
    message->status = MessageStatus::read;
    co_return message_response(200, *message);
  }

 private:
  template <class Fn>
  std::invoke_result_t<Fn> timed(Fn fn) {
    const auto started = std::chrono::steady_clock::now();
    auto result = fn();
    read_seconds_.observe(std::chrono::steady_clock::now() - started);
    return result;
  }

  // By our id, or by the id a message had in the seed's messages.jsonl before import.
  std::optional<Message> find(const std::string& id) {
    return timed([&] {
      if (auto seq = parse_int(id)) return ctx_.reader.message(*seq);
      return ctx_.reader.message_by_external_id("telepathy-messages:" + id);
    });
  }

  static Response not_found(const std::string& id) {
    return error_response(404, "no message with id '" + id + "'");
  }

  ApiContext& ctx_;
  Counter& stored_;
  Histogram& commit_seconds_;
  Histogram& read_seconds_;
};

}  // namespace

void add_message_routes(Router& router, ApiContext& context) {
  auto routes = std::make_shared<MessageRoutes>(context);
  router.add("POST", "/messages", [routes](Request& r) { return routes->post_message(r); });
  router.add("GET", "/messages", [routes](Request& r) { return routes->list(r, false); });
  // Before /messages/{id}, which would match them too.
  router.add("GET", "/messages/unread", [routes](Request& r) { return routes->list(r, true); });
  router.add("GET", "/messages/wait", [routes](Request& r) { return routes->wait(r); });
  router.add("GET", "/messages/{id}", [routes](Request& r) { return routes->get(r); });
  router.add("POST", "/messages/{id}/read", [routes](Request& r) { return routes->mark_read(r); });
}

}  // namespace sb::api

#include "channels/http/http_channel.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace sb::channels {

HttpChannel::HttpChannel(WriteQueue& writer, core::MessageEvents& events,
                         std::string assistant_name)
    : writer_(writer), events_(events), assistant_name_(std::move(assistant_name)) {}

boost::asio::awaitable<SendOutcome> HttpChannel::send(const OutboxItem& item) {
  boost::system::error_code ec;
  const boost::json::value payload = boost::json::parse(item.payload_json, ec);
  const auto* text = !ec && payload.is_object() ? payload.as_object().if_contains("text") : nullptr;
  if (!text || !text->is_string()) {
    co_return SendOutcome{SendOutcome::Kind::failed, "outbox payload has no text"};
  }
  NewMessage reply;
  reply.source = "assistant";
  reply.chat = item.chat_jid;
  reply.sender = assistant_name_;
  reply.sender_name = assistant_name_;
  reply.content = std::string(text->as_string());
  reply.from_assistant = true;
  reply.status = MessageStatus::read;  // an answer is not something waiting to be handled
  reply.external_id = "outbox:" + item.idempotency_key;  // a resend stores nothing twice
  auto add = [reply](Store& store) { return store.add_message(reply); };
  AddResult result = co_await writer_.run(std::move(add));
  if (result.inserted) events_.publish(result.message);
  co_return SendOutcome{SendOutcome::Kind::sent, ""};
}

}  // namespace sb::channels

#pragma once
// The message model shared by the store, the API and (later) the channels and dispatcher.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sb {

// Every stored message gets a sequence number that only grows; it is the message's id and
// the type of every cursor (ARCHITECTURE.md, rule 2).
using Seq = std::int64_t;

// unread -> processing -> replied -> read, as in the seed's email layer. `filtered` is for
// mail from senders who may not command the agent: stored and visible, never dispatched.
enum class MessageStatus { unread, processing, replied, read, filtered, failed };

std::string_view to_string(MessageStatus status);
std::optional<MessageStatus> parse_message_status(std::string_view text);

// A chat id is "<channel>:<address>" ("http:alice", "email:alice@example.org"). The channel
// is 1-32 of [a-z0-9-]; the address is 1-512 bytes without control characters.
struct ChatId {
  std::string channel;
  std::string address;
  std::string str() const { return channel + ":" + address; }
};
std::optional<ChatId> parse_chat_id(std::string_view text);

// What a producer hands to the store. Empty optional fields are stored as NULL.
struct NewMessage {
  std::string source;                 // who produced it: "http", "email", "system", ...
  std::optional<std::string> chat;    // a valid chat id; absent: stored, never dispatched
  std::optional<std::string> sender;  // address or name of the author
  std::optional<std::string> sender_name;
  std::optional<std::string> subject;
  std::string content;
  std::optional<std::string> timestamp;  // ISO-8601 Z; absent: the time of storing
  MessageStatus status = MessageStatus::unread;
  bool from_assistant = false;             // the assistant's own messages are never fed back
  std::string metadata_json = "{}";        // channel metadata, a JSON object
  std::optional<std::string> external_id;  // dedupe key of imports and channels (unique)
};

struct Message {
  Seq id = 0;
  std::string source;
  std::optional<std::string> chat;
  std::optional<std::string> sender;
  std::optional<std::string> sender_name;
  std::optional<std::string> subject;
  std::string content;
  std::string timestamp;  // ISO-8601 Z, when the message was written
  std::string stored_at;  // ISO-8601 Z, when it was committed here
  MessageStatus status = MessageStatus::unread;
  bool from_assistant = false;
  std::string metadata_json = "{}";
  std::optional<std::string> external_id;

  // The seed's `read` flag.
  bool read() const { return status == MessageStatus::read; }
};

// A page of messages. Results are ordered by id, newest first unless `ascending`.
struct MessageQuery {
  int limit = 50;                   // the caller bounds it
  bool unread_only = false;         // status unread, processing or replied
  std::optional<std::string> chat;  // exact chat id
  std::optional<Seq> since;         // id > since
  std::optional<Seq> before;        // id < before
  bool ascending = false;
};

struct MessageCounts {
  std::int64_t total = 0;
  std::int64_t unread = 0;  // status unread, processing or replied
};

}  // namespace sb

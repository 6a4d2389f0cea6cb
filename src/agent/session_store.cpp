#include "agent/session_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include "host/ipc_files.h"

namespace sb::agent {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr std::uintmax_t kMaxTranscriptBytes = 64ull << 20;

std::string render_lines(const std::vector<Message>& messages) {
  std::string out;
  for (const auto& m : messages) {
    out += json::serialize(message_to_json(m));
    out += '\n';
  }
  return out;
}

const json::string* string_field(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v && v->is_string() ? &v->get_string() : nullptr;
}

}  // namespace

json::value message_to_json(const Message& message) {
  json::array content;
  for (const auto& block : message.blocks) {
    switch (block.kind) {
      case Block::Kind::text:
        content.push_back(json::object{{"type", "text"}, {"text", block.text}});
        break;
      case Block::Kind::tool_call:
        content.push_back(json::object{{"type", "tool_call"},
                                       {"id", block.call.id},
                                       {"name", block.call.name},
                                       {"input", block.call.input}});
        break;
      case Block::Kind::tool_result:
        content.push_back(json::object{{"type", "tool_result"},
                                       {"id", block.result.call_id},
                                       {"content", block.result.content},
                                       {"is_error", block.result.is_error}});
        break;
    }
  }
  return json::object{{"role", message.role == Role::user ? "user" : "assistant"},
                      {"content", std::move(content)}};
}

Result<Message> message_from_json(const json::value& value) {
  if (!value.is_object()) return make_error("a message must be an object");
  const json::object& o = value.get_object();
  Message m;
  const json::string* role = string_field(o, "role");
  if (!role || (*role != "user" && *role != "assistant")) {
    return make_error("'role' must be \"user\" or \"assistant\"");
  }
  m.role = *role == "user" ? Role::user : Role::assistant;
  const json::value* content = o.if_contains("content");
  if (!content || !content->is_array()) return make_error("'content' must be an array");
  for (const json::value& item : content->get_array()) {
    if (!item.is_object()) return make_error("a content block must be an object");
    const json::object& b = item.get_object();
    const json::string* type = string_field(b, "type");
    if (!type) return make_error("a content block has no 'type'");
    if (*type == "text") {
      const json::string* text = string_field(b, "text");
      if (!text) return make_error("a text block has no 'text'");
      m.blocks.push_back(Block::make_text(std::string(*text)));
    } else if (*type == "tool_call") {
      const json::string* id = string_field(b, "id");
      const json::string* name = string_field(b, "name");
      const json::value* input = b.if_contains("input");
      if (!id || !name || !input || !input->is_object()) {
        return make_error("a tool_call block needs 'id', 'name' and an object 'input'");
      }
      m.blocks.push_back(
          Block::make_call(ToolCall{std::string(*id), std::string(*name), input->get_object()}));
    } else if (*type == "tool_result") {
      const json::string* id = string_field(b, "id");
      const json::string* text = string_field(b, "content");
      const json::value* is_error = b.if_contains("is_error");
      if (!id || !text) return make_error("a tool_result block needs 'id' and 'content'");
      m.blocks.push_back(
          Block::make_result(ToolResult{std::string(*id), std::string(*text),
                                        is_error && is_error->is_bool() && is_error->get_bool()}));
    } else {
      return make_error("unknown content block type '" + std::string(*type) + "'");
    }
  }
  return m;
}

SessionStore::SessionStore(fs::path session_dir) : dir_(std::move(session_dir) / "sessions") {}

std::string SessionStore::new_id() {
  std::random_device rd;
  std::uniform_int_distribution<unsigned> nibble(0, 15);
  std::string id = "s-";
  for (int i = 0; i < 24; ++i) id += "0123456789abcdef"[nibble(rd)];
  return id;
}

fs::path SessionStore::file(const std::string& id) const { return dir_ / (id + ".jsonl"); }

Result<std::vector<Message>> SessionStore::load(const std::string& id,
                                                std::vector<std::string>& warnings) const {
  std::vector<Message> messages;
  const fs::path path = file(id);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return messages;
    return make_error("cannot read the session " + path.string() + ": " + ec.message());
  }
  if (size > kMaxTranscriptBytes) {
    return make_error("the session " + path.string() + " is larger than 64 MiB");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open the session " + path.string());
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    boost::system::error_code jec;
    json::value v = json::parse(line, jec);
    auto message = jec ? Result<Message>(make_error("not JSON")) : message_from_json(v);
    if (!message) {
      warnings.push_back(path.filename().string() + ":" + std::to_string(number) +
                         ": skipped: " + message.error().message);
      continue;
    }
    messages.push_back(std::move(*message));
  }
  return messages;
}

Result<void> SessionStore::append(const std::string& id,
                                  const std::vector<Message>& messages) const {
  if (messages.empty()) return {};
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return make_error("cannot create " + dir_.string() + ": " + ec.message());
  const fs::path path = file(id);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot open " + path.string() + ": " + std::strerror(errno));
  const std::string data = render_lines(messages);
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      return make_error("cannot write " + path.string() + ": " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  return {};
}

Result<void> SessionStore::rewrite(const std::string& id,
                                   const std::vector<Message>& messages) const {
  return host::write_file_atomically(file(id), render_lines(messages));
}

}  // namespace sb::agent

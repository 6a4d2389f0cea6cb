#include "store/seed_import.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>

#include "common/hash.h"
#include "common/time.h"

namespace sb {

namespace {

constexpr std::string_view kDefaultSource = "telepathy";

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(kSpace);
  return text.substr(first, last - first + 1);
}

std::string lowercase_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "Name <addr>", "\"Name\" <addr>", "<addr>" or a bare "addr@host". No address: only a name.
struct Mailbox {
  std::string address;
  std::string name;
};

Mailbox parse_mailbox(std::string_view text) {
  text = trim(text);
  Mailbox out;
  const auto open = text.rfind('<');
  const auto close = open == std::string_view::npos ? open : text.find('>', open);
  if (close != std::string_view::npos) {
    out.address = std::string(trim(text.substr(open + 1, close - open - 1)));
    std::string_view name = trim(text.substr(0, open));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
    }
    out.name = std::string(name);
  } else if (text.find('@') != std::string_view::npos &&
             text.find_first_of(" \t") == std::string_view::npos) {
    out.address = std::string(text);
  } else {
    out.name = std::string(text);
  }
  return out;
}

// Reads the fields of one record, remembering the first problem.
class Fields {
 public:
  explicit Fields(const boost::json::object& record) : record_(record) {}

  // A string field; absent or null gives nullopt (an error too if `required`).
  std::optional<std::string> string(std::string_view key, bool required = false) {
    const boost::json::value* value = record_.if_contains(key);
    if (value == nullptr || value->is_null()) {
      if (required) fail("'" + std::string(key) + "' is missing");
      return std::nullopt;
    }
    if (!value->is_string()) {
      fail("'" + std::string(key) + "' must be a string");
      return std::nullopt;
    }
    return std::string(value->get_string());
  }

  // A boolean field; absent or null is false.
  bool flag(std::string_view key) {
    const boost::json::value* value = record_.if_contains(key);
    if (value == nullptr || value->is_null()) return false;
    if (!value->is_bool()) {
      fail("'" + std::string(key) + "' must be true or false");
      return false;
    }
    return value->get_bool();
  }

  // The timestamp as ISO-8601 Z; absent gives nullopt (the store uses the time of import).
  std::optional<std::string> timestamp() {
    auto text = string("timestamp");
    if (!text) return std::nullopt;
    const auto parsed = parse_iso8601(*text);
    if (!parsed) {
      fail("'timestamp' is not an ISO-8601 date-time: \"" + *text + "\"");
      return std::nullopt;
    }
    return format_iso8601(*parsed);
  }

  void fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  const boost::json::object& record_;
  std::string error_;
};

Result<NewMessage> from_messages_record(const boost::json::object& record, std::string_view line) {
  Fields fields(record);
  NewMessage out;
  boost::json::object metadata{{"imported_from", "messages.jsonl"}};
  const boost::json::value* id = record.if_contains("id");
  std::string id_text;
  if (id == nullptr || id->is_null() || (id->is_string() && id->get_string().empty())) {
    // No id to key on: the record's own bytes are its identity.
  } else if (id->is_string()) {
    id_text = std::string(id->get_string());
  } else if (id->is_int64()) {
    id_text = std::to_string(id->get_int64());
  } else if (id->is_uint64()) {
    id_text = std::to_string(id->get_uint64());
  } else {
    fields.fail("'id' must be a string or an integer");
  }
  out.source = fields.string("source").value_or(std::string(kDefaultSource));
  out.subject = fields.string("subject");
  out.content = fields.string("content", true).value_or("");
  out.timestamp = fields.timestamp();
  out.status = fields.flag("read") ? MessageStatus::read : MessageStatus::unread;
  if (!fields.ok()) return make_error(fields.error());

  if (id_text.empty()) {
    out.external_id = "telepathy-messages-sha256:" + sha256_hex(line);
  } else {
    out.external_id = "telepathy-messages:" + id_text;
    metadata["original_id"] = *id;
  }
  out.metadata_json = boost::json::serialize(metadata);
  return out;
}

Result<NewMessage> from_inbox_record(const boost::json::object& record, std::string_view line) {
  Fields fields(record);
  NewMessage out;
  out.source = "email";
  const auto from = fields.string("from");
  out.subject = fields.string("subject");
  const auto message_id = fields.string("message_id");
  out.content = fields.string("body", true).value_or("");
  out.timestamp = fields.timestamp();
  out.status = fields.flag("processed") ? MessageStatus::read : MessageStatus::unread;
  if (!fields.ok()) return make_error(fields.error());

  if (from) {
    Mailbox mailbox = parse_mailbox(*from);
    if (!mailbox.address.empty()) {
      const std::string chat = "email:" + lowercase_ascii(mailbox.address);
      if (parse_chat_id(chat)) out.chat = chat;
      out.sender = std::move(mailbox.address);
    }
    if (!mailbox.name.empty()) out.sender_name = std::move(mailbox.name);
  }
  boost::json::object metadata{{"imported_from", "inbox.jsonl"}};
  if (const auto* to = record.if_contains("to"); to != nullptr && !to->is_null()) {
    metadata["to"] = *to;
  }
  if (message_id && !message_id->empty()) {
    metadata["message_id"] = *message_id;
    out.external_id = "telepathy-inbox:" + *message_id;
  } else {
    out.external_id = "telepathy-inbox-sha256:" + sha256_hex(line);
  }
  out.metadata_json = boost::json::serialize(metadata);
  return out;
}

Result<NewMessage> record_to_message(const boost::json::object& record, std::string_view line,
                                     SeedFormat format) {
  switch (format) {
    case SeedFormat::messages:
      return from_messages_record(record, line);
    case SeedFormat::inbox:
      return from_inbox_record(record, line);
    case SeedFormat::auto_detect:
      break;
  }
  return make_error(
      "neither a messages.jsonl record (\"content\", \"source\") nor an inbox.jsonl record "
      "(\"body\", \"from\")");
}

// Parses a line as a JSON object, or says why it is not one.
Result<boost::json::object> parse_record(std::string_view line) {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(line, ec);
  if (ec) return make_error("not valid JSON: " + ec.message());
  if (!value.is_object()) return make_error("not a JSON object");
  return std::move(value.as_object());
}

// Reads a file line by line without ever holding more than `max_bytes` of one line.
class LineReader {
 public:
  LineReader(std::FILE* file, std::size_t max_bytes) : file_(file), max_bytes_(max_bytes) {}

  // The next line without its terminator ("\n" or "\r\n") into `line`, or false at the end
  // of the file. A line longer than max_bytes comes back empty with `too_long` set.
  bool next(std::string& line, bool& too_long) {
    line.clear();
    too_long = false;
    bool any = false;
    for (;;) {
      if (pos_ == size_) {
        size_ = std::fread(buffer_, 1, sizeof buffer_, file_);
        pos_ = 0;
        if (size_ == 0) {
          if (!any) return false;
          break;
        }
      }
      any = true;
      const char* start = buffer_ + pos_;
      const auto* newline = static_cast<const char*>(std::memchr(start, '\n', size_ - pos_));
      const std::size_t length = newline ? static_cast<std::size_t>(newline - start) : size_ - pos_;
      if (!too_long) {
        if (line.size() + length > max_bytes_ + 1) {  // + 1: a '\r' before the '\n'
          too_long = true;
          line.clear();
        } else {
          line.append(start, length);
        }
      }
      pos_ += length;
      if (newline) {
        ++pos_;
        break;
      }
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() > max_bytes_) {
      too_long = true;
      line.clear();
    }
    return true;
  }

  bool failed() const { return std::ferror(file_) != 0; }

 private:
  std::FILE* file_;
  std::size_t max_bytes_;
  char buffer_[64 * 1024];
  std::size_t pos_ = 0;
  std::size_t size_ = 0;
};

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// Stores a batch of records in one commit and counts the outcome into `report`.
void store_batch(Store& store, std::vector<NewMessage>& batch, std::vector<int>& lines,
                 ImportReport& report) {
  if (batch.empty()) return;
  std::vector<std::function<void()>> ops;
  std::vector<std::exception_ptr> errors(batch.size());
  std::vector<char> inserted(batch.size(), 0);
  ops.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    ops.emplace_back([&, i] { inserted[i] = store.add_message(batch[i]).inserted; });
  }
  store.atomically(ops, errors);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (errors[i]) {
      try {
        std::rethrow_exception(errors[i]);
      } catch (const StoreError&) {
        throw;
      } catch (const std::exception& e) {
        report.errors.emplace_back(lines[i], e.what());
      }
    } else if (inserted[i]) {
      ++report.imported;
    } else {
      ++report.duplicates;
    }
  }
  batch.clear();
  lines.clear();
}

}  // namespace

std::string_view to_string(SeedFormat format) {
  switch (format) {
    case SeedFormat::messages:
      return "messages";
    case SeedFormat::inbox:
      return "inbox";
    case SeedFormat::auto_detect:
      break;
  }
  return "auto";
}

SeedFormat detect_seed_format(const boost::json::object& record) {
  if (record.contains("content") || record.contains("source")) return SeedFormat::messages;
  if (record.contains("body") || record.contains("from")) return SeedFormat::inbox;
  return SeedFormat::auto_detect;
}

Result<NewMessage> seed_record_to_message(std::string_view line, SeedFormat format) {
  auto record = parse_record(line);
  if (!record) return record.error();
  if (format == SeedFormat::auto_detect) format = detect_seed_format(*record);
  return record_to_message(*record, line, format);
}

Result<ImportReport> import_seed_file(Store& store, const std::filesystem::path& file,
                                      SeedFormat format, const SeedImportOptions& options) {
  const std::unique_ptr<std::FILE, FileCloser> handle(std::fopen(file.c_str(), "rb"));
  if (!handle) return make_error(file.string() + ": cannot open: " + std::strerror(errno));

  ImportReport report;
  report.detected = format;
  std::vector<NewMessage> batch;
  std::vector<int> batch_lines;
  LineReader reader(handle.get(), options.max_line_bytes);
  std::string line;
  bool too_long = false;
  int number = 0;
  while (reader.next(line, too_long)) {
    ++number;
    if (too_long) {
      report.errors.emplace_back(
          number, "longer than " + std::to_string(options.max_line_bytes) + " bytes");
      continue;
    }
    std::string_view text = line;
    if (number == 1 && text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM
    if (trim(text).empty()) continue;

    auto record = parse_record(text);
    if (!record) {
      report.errors.emplace_back(number, record.error().message);
      continue;
    }
    if (report.detected == SeedFormat::auto_detect) {
      report.detected = detect_seed_format(*record);  // stays undecided: reported below
    }
    auto message = record_to_message(*record, text, report.detected);
    if (!message) {
      report.errors.emplace_back(number, message.error().message);
      continue;
    }
    batch.push_back(std::move(*message));
    batch_lines.push_back(number);
    if (batch.size() >= std::max<std::size_t>(options.batch_size, 1)) {
      store_batch(store, batch, batch_lines, report);
    }
  }
  if (reader.failed()) {
    return make_error(file.string() + ": read error after line " + std::to_string(number) + ": " +
                      std::strerror(errno));
  }
  store_batch(store, batch, batch_lines, report);
  std::stable_sort(report.errors.begin(), report.errors.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  if (report.detected == SeedFormat::auto_detect && !report.errors.empty()) {
    const auto& [first_line, first_error] = report.errors.front();
    return make_error(file.string() +
                      ": cannot tell whether this is a messages.jsonl or an inbox.jsonl file: "
                      "no line is a record of either (line " +
                      std::to_string(first_line) + ": " + first_error +
                      "); name the format explicitly");
  }
  return report;
}

}  // namespace sb

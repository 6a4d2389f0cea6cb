#include "channels/email/imap_protocol.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <utility>

#include "channels/email/mail_text.h"

namespace sb::email {

namespace {

constexpr std::size_t kMaxText = 500;
// An ESEARCH answer names ranges ("1:4294967295"); expanded, they must stay bounded too.
constexpr std::size_t kMaxSearchNumbers = 4 * 1024 * 1024;

char upper_char(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = upper_char(c);
  return out;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

// Server text goes into logs and errors: printable ASCII only, bounded.
std::string printable(std::string_view text, std::size_t max = kMaxText) {
  std::string out(text.substr(0, max));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

template <class T>
std::optional<T> parse_number(std::string_view digits) {
  if (digits.empty() || digits.size() > 20) return std::nullopt;
  for (char c : digits) {
    if (!is_digit(c)) return std::nullopt;
  }
  T value{};
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

// Characters that end an atom (RFC 9051 atom-specials, less "]" and "\" which the reader
// treats separately, and "%" and "*" which servers use in flags such as \*).
bool ends_atom(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f || c == '(' || c == ')' || c == '"' || c == '{';
}

// Reads the grammar of one complete response (RFC 9051 section 9) from its joined lines and
// its literals.
class Reader {
 public:
  Reader(std::string_view text, std::vector<std::string>& literals, std::size_t max_depth)
      : s_(text), literals_(literals), max_depth_(max_depth) {}

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  std::size_t literals_used() const { return next_literal_; }
  std::string_view rest() const { return at_end() ? std::string_view() : s_.substr(pos_); }
  void skip_to_end() { pos_ = s_.size(); }

  bool consume(char c) {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }
  Result<void> expect_space(std::string_view after) {
    if (!consume(' ')) return make_error("a space is missing after " + std::string(after));
    return {};
  }

  // An atom without brackets: a tag, a response name, a number.
  std::string_view word() {
    const std::size_t start = pos_;
    while (!at_end() && !ends_atom(s_[pos_]) && s_[pos_] != '[' && s_[pos_] != ']') ++pos_;
    return s_.substr(start, pos_ - start);
  }

  Result<std::string> atom() {
    const std::size_t start = pos_;
    while (!at_end() && !ends_atom(s_[pos_]) && s_[pos_] != ']') {
      if (s_[pos_] == '[') {
        // A FETCH item's section: "BODY[HEADER.FIELDS (SUBJECT FROM)]" is one name.
        const auto close = s_.find(']', pos_);
        if (close == std::string_view::npos) return make_error("a \"[\" is never closed");
        pos_ = close;
      }
      ++pos_;
    }
    if (pos_ == start) {
      if (at_end()) return make_error("the line ends where a value was expected");
      return make_error("unexpected character '" + printable(s_.substr(pos_, 1)) + "'");
    }
    return std::string(s_.substr(start, pos_ - start));
  }

  Result<std::string> quoted() {
    ++pos_;  // the opening quote
    std::string out;
    while (!at_end()) {
      const char c = s_[pos_++];
      if (c == '"') return out;
      if (c == '\\') {
        if (at_end()) break;
        const char escaped = s_[pos_++];
        if (escaped != '"' && escaped != '\\') {
          return make_error("a quoted string has the invalid escape \"\\" +
                            printable(std::string_view(&escaped, 1)) + "\"");
        }
        out += escaped;
        continue;
      }
      out += c;
    }
    return make_error("a quoted string is never closed");
  }

  Result<std::string> literal() {
    consume('~');
    ++pos_;  // '{'
    const std::size_t start = pos_;
    while (!at_end() && is_digit(s_[pos_])) ++pos_;
    const auto size = parse_number<std::uint64_t>(s_.substr(start, pos_ - start));
    consume('+');
    if (!size || !consume('}')) return make_error("a literal's size is unreadable");
    if (next_literal_ >= literals_.size() || literals_[next_literal_].size() != *size) {
      return make_error("a literal is not where its size said");
    }
    return std::move(literals_[next_literal_++]);
  }

  Result<ImapValue> value(std::size_t depth) {
    ImapValue v;
    const char c = peek();
    if (c == '(') {
      if (depth + 1 > max_depth_) {
        return make_error("lists are nested deeper than " + std::to_string(max_depth_));
      }
      ++pos_;
      v.kind = ImapValue::Kind::list;
      auto items = list_items(depth + 1);
      if (!items) return items.error();
      v.items = std::move(*items);
      return v;
    }
    if (c == '"' || c == '{' || (c == '~' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '{')) {
      auto text = c == '"' ? quoted() : literal();
      if (!text) return text.error();
      v.kind = ImapValue::Kind::string;
      v.text = std::move(*text);
      return v;
    }
    auto text = atom();
    if (!text) return text.error();
    if (iequals(*text, "NIL")) {
      v.kind = ImapValue::Kind::nil;
    } else {
      v.text = std::move(*text);
    }
    return v;
  }

  // The items of a list after its "(", through its ")".
  Result<std::vector<ImapValue>> list_items(std::size_t depth) {
    std::vector<ImapValue> items;
    for (;;) {
      while (consume(' ')) {
      }
      if (consume(')')) return items;
      if (at_end()) return make_error("a list is never closed");
      auto item = value(depth);
      if (!item) return item.error();
      items.push_back(std::move(*item));
    }
  }

  // Values separated by spaces up to the end of the response.
  Result<std::vector<ImapValue>> values_to_end() {
    std::vector<ImapValue> values;
    for (;;) {
      while (consume(' ')) {
      }
      if (at_end()) return values;
      auto item = value(0);
      if (!item) return item.error();
      values.push_back(std::move(*item));
    }
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
  std::vector<std::string>& literals_;
  std::size_t next_literal_ = 0;
  std::size_t max_depth_;
};

// resp-text: an optional [code args] and human text.
void read_response_text(Reader& r, ImapResponse& response) {
  while (r.consume(' ')) {
  }
  std::string_view rest = r.rest();
  r.skip_to_end();
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close != std::string_view::npos) {
      std::string_view inside = rest.substr(1, close - 1);
      const auto space = inside.find(' ');
      response.code = upper(inside.substr(0, space));
      if (space != std::string_view::npos)
        response.code_args = printable(inside.substr(space + 1), inside.size());
      rest.remove_prefix(close + 1);
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    }
  }
  response.text = printable(rest);
}

std::optional<ImapStatus> status_of(std::string_view word) {
  if (iequals(word, "OK")) return ImapStatus::ok;
  if (iequals(word, "NO")) return ImapStatus::no;
  if (iequals(word, "BAD")) return ImapStatus::bad;
  if (iequals(word, "BYE")) return ImapStatus::bye;
  if (iequals(word, "PREAUTH")) return ImapStatus::preauth;
  return std::nullopt;
}

// "* SEARCH 2 5 9" (a CONDSTORE "(MODSEQ n)" at the end is left out).
Result<void> read_search(Reader& r, ImapResponse& response) {
  for (;;) {
    while (r.consume(' ')) {
    }
    if (r.at_end() || r.peek() == '(') return {};
    const std::string_view word = r.word();
    const auto n = parse_number<std::uint32_t>(word);
    if (!n) return make_error("a SEARCH result \"" + printable(word) + "\" is not a number");
    if (response.numbers.size() >= kMaxSearchNumbers) {
      return make_error("a SEARCH result has more than " + std::to_string(kMaxSearchNumbers) +
                        " numbers");
    }
    response.numbers.push_back(*n);
  }
}

// A sequence set "2,5:9" (RFC 9051 sequence-set, without "*") into its numbers.
Result<void> expand_sequence_set(std::string_view set, std::vector<std::uint32_t>& out) {
  while (!set.empty()) {
    const auto comma = set.find(',');
    std::string_view part = set.substr(0, comma);
    set = comma == std::string_view::npos ? std::string_view() : set.substr(comma + 1);
    const auto colon = part.find(':');
    const auto first = parse_number<std::uint32_t>(part.substr(0, colon));
    const auto last = colon == std::string_view::npos
                          ? first
                          : parse_number<std::uint32_t>(part.substr(colon + 1));
    if (!first || !last)
      return make_error("the sequence set \"" + printable(part) + "\" is unreadable");
    const std::uint32_t lo = std::min(*first, *last), hi = std::max(*first, *last);
    if (out.size() + (static_cast<std::uint64_t>(hi) - lo + 1) > kMaxSearchNumbers) {
      return make_error("an ESEARCH result has more than " + std::to_string(kMaxSearchNumbers) +
                        " numbers");
    }
    for (std::uint64_t n = lo; n <= hi; ++n) out.push_back(static_cast<std::uint32_t>(n));
  }
  return {};
}

// "* ESEARCH (TAG "A5") UID ALL 2,5:9": the ALL result into numbers.
Result<void> read_esearch(Reader& r, ImapResponse& response) {
  auto values = r.values_to_end();
  if (!values) return values.error();
  for (std::size_t i = 0; i + 1 < values->size(); ++i) {
    if ((*values)[i].is_atom("ALL")) {
      auto expanded = expand_sequence_set((*values)[i + 1].text, response.numbers);
      if (!expanded) return expanded;
    }
  }
  response.values = std::move(*values);
  return {};
}

Result<ImapResponse> parse_untagged(Reader& r, ImapResponse response) {
  const std::string_view first = r.word();
  if (first.empty()) return make_error("an untagged response has no name");
  if (auto number = parse_number<std::uint32_t>(first); number || is_digit(first.front())) {
    if (!number) return make_error("the number \"" + printable(first) + "\" is out of range");
    response.number = *number;
    if (auto space = r.expect_space("a message number"); !space) return space.error();
    response.name = upper(r.word());
    if (response.name == "FETCH") {
      if (auto space = r.expect_space("FETCH"); !space) return space.error();
      if (r.peek() != '(') return make_error("FETCH data is not a list");
      auto values = r.values_to_end();
      if (!values) return values.error();
      response.values = std::move(*values);
    } else if (response.name != "EXISTS" && response.name != "EXPUNGE" &&
               response.name != "RECENT") {
      response.unknown = true;
      response.text = printable(r.rest());
    }
    return response;
  }
  response.name = upper(first);
  if (auto status = status_of(first)) {
    response.status = *status;
    read_response_text(r, response);
    return response;
  }
  if (response.name == "SEARCH") {
    if (auto read = read_search(r, response); !read) return read.error();
    return response;
  }
  if (response.name == "ESEARCH") {
    if (auto read = read_esearch(r, response); !read) return read.error();
    return response;
  }
  const bool known = response.name == "CAPABILITY" || response.name == "FLAGS" ||
                     response.name == "LIST" || response.name == "LSUB" ||
                     response.name == "STATUS" || response.name == "ENABLED";
  const std::string rest(r.rest());
  auto values = r.values_to_end();
  if (!values) {
    if (known) return make_error(response.name + ": " + values.error().message);
    // Extensions answer in their own syntax; what cannot be read is only logged.
    response.unknown = true;
    response.text = printable(rest);
    return response;
  }
  response.values = std::move(*values);
  response.unknown = !known;
  if (!known) response.text = printable(rest);
  return response;
}

}  // namespace

bool ImapValue::is_atom(std::string_view name) const {
  return kind == Kind::atom && iequals(text, name);
}

std::optional<std::uint64_t> ImapValue::number() const {
  if (kind != Kind::atom) return std::nullopt;
  return parse_number<std::uint64_t>(text);
}

Result<ImapResponse> parse_imap_response(std::string_view text, std::vector<std::string> literals,
                                         std::size_t max_depth) {
  Reader r(text, literals, max_depth);
  ImapResponse response;
  if (r.consume('+')) {
    response.kind = ImapResponse::Kind::continuation;
    read_response_text(r, response);
    return response;
  }
  Result<ImapResponse> parsed = make_error("");
  if (r.consume('*')) {
    if (auto space = r.expect_space("\"*\""); !space) return space.error();
    response.kind = ImapResponse::Kind::untagged;
    parsed = parse_untagged(r, std::move(response));
  } else {
    response.kind = ImapResponse::Kind::tagged;
    response.tag = std::string(r.word());
    if (response.tag.empty() || r.peek() == '[' || r.peek() == ']') {
      return make_error("the response \"" + printable(text.substr(0, 100)) +
                        "\" has neither a tag nor \"*\" nor \"+\"");
    }
    if (auto space = r.expect_space("the tag"); !space) return space.error();
    const std::string_view word = r.word();
    auto status = status_of(word);
    if (!status || *status == ImapStatus::preauth) {
      return make_error("a tagged response is neither OK, NO nor BAD: \"" +
                        printable(text.substr(0, 100)) + "\"");
    }
    response.status = *status;
    response.name = upper(word);
    read_response_text(r, response);
    parsed = std::move(response);
  }
  if (!parsed) return parsed;
  // A literal the grammar did not place means the lines and the literals disagree.
  if (r.literals_used() != literals.size() && parsed->status == ImapStatus::none &&
      !parsed->unknown) {
    return make_error("a " + parsed->name + " response has a literal out of place");
  }
  return parsed;
}

// --- ImapParser ---

ImapParser::ImapParser(ImapLimits limits) : limits_(limits) {}

Result<void> ImapParser::fail(std::string message) {
  error_ = "unreadable IMAP response: " + std::move(message);
  return make_error(error_);
}

Result<void> ImapParser::feed(std::string_view bytes) {
  if (!error_.empty()) return make_error(error_);
  while (!bytes.empty()) {
    if (literal_remaining_ > 0) {
      const std::size_t take = std::min(literal_remaining_, bytes.size());
      literals_.back().append(bytes.data(), take);
      literal_remaining_ -= take;
      bytes.remove_prefix(take);
      continue;
    }
    const auto newline = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, newline);
    line_.append(piece);
    response_bytes_ += piece.size();
    const bool search = text_.empty() && (starts_with_nocase(line_, "* SEARCH") ||
                                          starts_with_nocase(line_, "* ESEARCH"));
    const std::size_t max_line = search ? limits_.max_search_line : limits_.max_line;
    if (line_.size() > max_line + 1) {
      return fail("a line is longer than " + std::to_string(max_line) + " bytes");
    }
    if (response_bytes_ > limits_.max_response) {
      return fail("a response is larger than " + std::to_string(limits_.max_response) + " bytes");
    }
    if (newline == std::string_view::npos) break;
    bytes.remove_prefix(newline + 1);
    if (auto ended = end_of_line(); !ended) return ended;
  }
  return {};
}

Result<void> ImapParser::end_of_line() {
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  if (line_.empty() && text_.empty()) return {};  // a stray empty line carries nothing
  // A line that ends in "{n}" (or "{n+}", "~{n}") announces n bytes of literal after it.
  std::optional<std::uint64_t> literal;
  if (!line_.empty() && line_.back() == '}') {
    const auto open = line_.rfind('{');
    if (open != std::string::npos) {
      std::string_view digits(line_.data() + open + 1, line_.size() - open - 2);
      if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
      const bool numeric = !digits.empty() && std::all_of(digits.begin(), digits.end(), is_digit);
      if (numeric) {
        literal = parse_number<std::uint64_t>(digits);
        if (!literal) return fail("the literal size " + printable(digits) + " is out of range");
      }
    }
  }
  text_ += line_;
  line_.clear();
  if (!literal) return finish_response();
  if (*literal > limits_.max_literal) {
    return fail("a literal of " + std::to_string(*literal) + " bytes is larger than the limit of " +
                std::to_string(limits_.max_literal));
  }
  response_bytes_ += *literal;
  if (response_bytes_ > limits_.max_response) {
    return fail("a response is larger than " + std::to_string(limits_.max_response) + " bytes");
  }
  literals_.emplace_back();
  literal_remaining_ = static_cast<std::size_t>(*literal);
  return {};
}

Result<void> ImapParser::finish_response() {
  auto parsed = parse_imap_response(text_, std::move(literals_), limits_.max_depth);
  text_.clear();
  literals_.clear();
  response_bytes_ = 0;
  if (!parsed) return fail(parsed.error().message);
  ready_.push_back(std::move(*parsed));
  return {};
}

std::optional<ImapResponse> ImapParser::next() {
  if (ready_.empty()) return std::nullopt;
  ImapResponse response = std::move(ready_.front());
  ready_.pop_front();
  return response;
}

// --- commands ---

ImapCommandBuilder::ImapCommandBuilder(std::string tag, std::string_view name, bool literal_plus)
    : literal_plus_(literal_plus) {
  command_.tag = std::move(tag);
  current_ = command_.tag + " " + std::string(name);
}

ImapCommandBuilder& ImapCommandBuilder::raw(std::string_view text) {
  current_ += ' ';
  current_ += text;
  return *this;
}

ImapCommandBuilder& ImapCommandBuilder::string(std::string_view value) {
  bool atom_safe = !value.empty();
  bool quotable = true;
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') quotable = false;
    if (u <= 0x20 || u >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' ||
        c == '"' || c == '\\' || c == ']') {
      atom_safe = false;
    }
  }
  current_ += ' ';
  if (atom_safe) {
    current_ += value;
  } else if (quotable) {
    current_ += '"';
    current_ += value;
    current_ += '"';
  } else if (literal_plus_) {
    current_ += "{" + std::to_string(value.size()) + "+}\r\n";
    current_ += value;
  } else {
    current_ += "{" + std::to_string(value.size()) + "}\r\n";
    command_.pieces.push_back(std::move(current_));
    current_ = std::string(value);
  }
  return *this;
}

ImapCommand ImapCommandBuilder::finish() {
  current_ += "\r\n";
  command_.pieces.push_back(std::move(current_));
  current_.clear();
  return std::move(command_);
}

// --- reading responses ---

std::optional<ImapCapabilities> imap_capabilities(const ImapResponse& response) {
  ImapCapabilities capabilities;
  if (response.kind == ImapResponse::Kind::untagged && response.name == "CAPABILITY") {
    for (const auto& value : response.values) {
      if (value.kind == ImapValue::Kind::atom) capabilities.insert(upper(value.text));
    }
    return capabilities;
  }
  if (response.code == "CAPABILITY") {
    std::string_view args = response.code_args;
    while (!args.empty()) {
      const auto space = args.find(' ');
      if (space != 0) capabilities.insert(upper(args.substr(0, space)));
      if (space == std::string_view::npos) break;
      args.remove_prefix(space + 1);
    }
    return capabilities;
  }
  return std::nullopt;
}

Result<ImapFetch> imap_fetch(ImapResponse& response) {
  if (response.name != "FETCH" || !response.number || response.values.size() != 1 ||
      response.values[0].kind != ImapValue::Kind::list) {
    return make_error("not a FETCH response");
  }
  ImapFetch fetch;
  fetch.sequence = *response.number;
  auto& items = response.values[0].items;
  if (items.size() % 2 != 0) return make_error("a FETCH response has an item without a value");
  for (std::size_t i = 0; i < items.size(); i += 2) {
    if (items[i].kind != ImapValue::Kind::atom) {
      return make_error("a FETCH item's name is not an atom");
    }
    const std::string name = upper(items[i].text);
    ImapValue& value = items[i + 1];
    if (name == "UID") {
      const auto uid = value.number();
      if (!uid || *uid == 0 || *uid > std::numeric_limits<std::uint32_t>::max()) {
        return make_error("a FETCH response has the invalid UID \"" + printable(value.text) + "\"");
      }
      fetch.uid = static_cast<std::uint32_t>(*uid);
    } else if (name == "RFC822.SIZE") {
      fetch.size = value.number();
      if (!fetch.size) return make_error("a FETCH response has an unreadable RFC822.SIZE");
    } else if (name == "FLAGS") {
      if (value.kind != ImapValue::Kind::list) return make_error("FETCH FLAGS is not a list");
      for (const auto& flag : value.items) fetch.flags.push_back(flag.text);
    } else if (name == "BODY[]" || name == "BINARY[]") {
      if (value.kind == ImapValue::Kind::string)
        fetch.body = std::move(value.text);
      else if (value.kind != ImapValue::Kind::nil)
        return make_error("FETCH BODY[] is not a string");
    }
  }
  return fetch;
}

std::string imap_sequence_set(const std::vector<std::uint32_t>& numbers) {
  std::string out;
  for (std::size_t i = 0; i < numbers.size();) {
    std::size_t j = i;
    while (j + 1 < numbers.size() && numbers[j + 1] == numbers[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(numbers[i]);
    if (j > i) out += ":" + std::to_string(numbers[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace sb::email

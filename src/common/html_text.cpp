#include "common/html_text.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sb {
namespace {

// Indentation and quote prefixes stop growing here, so that deeply nested hostile markup
// cannot multiply the output size.
constexpr std::size_t kMaxIndentLevels = 8;
constexpr int kMaxQuotePrefix = 8;
// Longer link targets (tracking redirects) are left out of the text rather than cut.
constexpr std::size_t kMaxShownUrl = 2048;
constexpr std::size_t kMaxAttributes = 64;
constexpr std::size_t kMaxNameLength = 64;

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_html_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
bool is_tag_name_char(char c) { return is_alnum(c) || c == ':' || c == '-' || c == '_'; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::size_t pos, std::string_view prefix) {
  return pos <= s.size() && s.size() - pos >= prefix.size() &&
         iequals(s.substr(pos, prefix.size()), prefix);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

struct NamedEntity {
  std::string_view name;
  char32_t code_point;
};

// Sorted by name (byte order) for binary search; the ones mail actually uses.
constexpr NamedEntity kEntities[] = {
    {"AElig", 0xC6},    {"Aacute", 0xC1},   {"Acirc", 0xC2},    {"Agrave", 0xC0},
    {"Aring", 0xC5},    {"Atilde", 0xC3},   {"Auml", 0xC4},     {"Ccedil", 0xC7},
    {"Dagger", 0x2021}, {"ETH", 0xD0},      {"Eacute", 0xC9},   {"Ecirc", 0xCA},
    {"Egrave", 0xC8},   {"Euml", 0xCB},     {"Iacute", 0xCD},   {"Icirc", 0xCE},
    {"Igrave", 0xCC},   {"Iuml", 0xCF},     {"Ntilde", 0xD1},   {"OElig", 0x152},
    {"Oacute", 0xD3},   {"Ocirc", 0xD4},    {"Ograve", 0xD2},   {"Oslash", 0xD8},
    {"Otilde", 0xD5},   {"Ouml", 0xD6},     {"Scaron", 0x160},  {"THORN", 0xDE},
    {"Uacute", 0xDA},   {"Ucirc", 0xDB},    {"Ugrave", 0xD9},   {"Uuml", 0xDC},
    {"Yacute", 0xDD},   {"Yuml", 0x178},    {"aacute", 0xE1},   {"acirc", 0xE2},
    {"acute", 0xB4},    {"aelig", 0xE6},    {"agrave", 0xE0},   {"amp", '&'},
    {"apos", '\''},     {"aring", 0xE5},    {"atilde", 0xE3},   {"auml", 0xE4},
    {"bdquo", 0x201E},  {"brvbar", 0xA6},   {"bull", 0x2022},   {"ccedil", 0xE7},
    {"cedil", 0xB8},    {"cent", 0xA2},     {"circ", 0x2C6},    {"copy", 0xA9},
    {"curren", 0xA4},   {"dagger", 0x2020}, {"darr", 0x2193},   {"deg", 0xB0},
    {"divide", 0xF7},   {"eacute", 0xE9},   {"ecirc", 0xEA},    {"egrave", 0xE8},
    {"emsp", 0x2003},   {"ensp", 0x2002},   {"eth", 0xF0},      {"euml", 0xEB},
    {"euro", 0x20AC},   {"frac12", 0xBD},   {"frac14", 0xBC},   {"frac34", 0xBE},
    {"gt", '>'},        {"harr", 0x2194},   {"hellip", 0x2026}, {"iacute", 0xED},
    {"icirc", 0xEE},    {"iexcl", 0xA1},    {"igrave", 0xEC},   {"iquest", 0xBF},
    {"iuml", 0xEF},     {"laquo", 0xAB},    {"larr", 0x2190},   {"ldquo", 0x201C},
    {"lrm", 0x200E},    {"lsaquo", 0x2039}, {"lsquo", 0x2018},  {"lt", '<'},
    {"macr", 0xAF},     {"mdash", 0x2014},  {"micro", 0xB5},    {"middot", 0xB7},
    {"minus", 0x2212},  {"nbsp", 0xA0},     {"ndash", 0x2013},  {"not", 0xAC},
    {"ntilde", 0xF1},   {"oacute", 0xF3},   {"ocirc", 0xF4},    {"oelig", 0x153},
    {"ograve", 0xF2},   {"ordf", 0xAA},     {"ordm", 0xBA},     {"oslash", 0xF8},
    {"otilde", 0xF5},   {"ouml", 0xF6},     {"para", 0xB6},     {"permil", 0x2030},
    {"plusmn", 0xB1},   {"pound", 0xA3},    {"quot", '"'},      {"raquo", 0xBB},
    {"rarr", 0x2192},   {"rdquo", 0x201D},  {"reg", 0xAE},      {"rlm", 0x200F},
    {"rsaquo", 0x203A}, {"rsquo", 0x2019},  {"sbquo", 0x201A},  {"scaron", 0x161},
    {"sect", 0xA7},     {"shy", 0xAD},      {"sup1", 0xB9},     {"sup2", 0xB2},
    {"sup3", 0xB3},     {"szlig", 0xDF},    {"thinsp", 0x2009}, {"thorn", 0xFE},
    {"tilde", 0x2DC},   {"times", 0xD7},    {"trade", 0x2122},  {"uacute", 0xFA},
    {"uarr", 0x2191},   {"ucirc", 0xFB},    {"ugrave", 0xF9},   {"uml", 0xA8},
    {"uuml", 0xFC},     {"yacute", 0xFD},   {"yen", 0xA5},      {"yuml", 0xFF},
    {"zwj", 0x200D},    {"zwnj", 0x200C},
};
static_assert(std::is_sorted(std::begin(kEntities), std::end(kEntities),
                             [](const NamedEntity& a, const NamedEntity& b) {
                               return a.name < b.name;
                             }));

// HTML maps these numeric references to Windows-1252, as the pages that use them intend.
constexpr char32_t kWindows1252[32] = {
    0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};

std::optional<char32_t> find_entity(std::string_view name) {
  const auto* it =
      std::lower_bound(std::begin(kEntities), std::end(kEntities), name,
                       [](const NamedEntity& e, std::string_view n) { return e.name < n; });
  if (it != std::end(kEntities) && it->name == name) return it->code_point;
  return std::nullopt;
}

// Decodes the reference starting at s[pos] == '&' into `out`; returns the bytes consumed,
// or 0 when it is not a reference (the caller keeps the '&').
std::size_t decode_entity(std::string_view s, std::size_t pos, std::string& out) {
  std::size_t i = pos + 1;
  if (i < s.size() && s[i] == '#') {
    ++i;
    const bool hex = i < s.size() && (s[i] == 'x' || s[i] == 'X');
    if (hex) ++i;
    const std::size_t digits_start = i;
    std::uint32_t value = 0;
    bool overflow = false;
    while (i < s.size()) {
      int digit;
      const char c = s[i];
      if (is_digit(c)) {
        digit = c - '0';
      } else if (hex && c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (hex && c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        break;
      }
      value = value * (hex ? 16 : 10) + static_cast<std::uint32_t>(digit);
      if (value > 0x10FFFF) overflow = true, value = 0x110000;
      ++i;
    }
    if (i == digits_start) return 0;
    if (i < s.size() && s[i] == ';') ++i;
    char32_t cp = value;
    if (overflow || cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      cp = 0xFFFD;
    } else if (cp >= 0x80 && cp <= 0x9F) {
      cp = kWindows1252[cp - 0x80];
    }
    append_utf8(out, cp);
    return i - pos;
  }
  while (i < s.size() && i - pos <= 32 && is_alnum(s[i])) ++i;
  const std::string_view name = s.substr(pos + 1, i - pos - 1);
  if (name.empty()) return 0;
  const auto cp = find_entity(name);
  if (!cp) return 0;
  if (i < s.size() && s[i] == ';') {
    append_utf8(out, *cp);
    return i + 1 - pos;
  }
  // Without the semicolon only the legacy references that old pages write that way.
  static constexpr std::string_view kLegacy[] = {"amp", "lt", "gt", "quot", "nbsp", "copy", "reg"};
  if (std::find(std::begin(kLegacy), std::end(kLegacy), name) == std::end(kLegacy)) return 0;
  append_utf8(out, *cp);
  return i - pos;
}

// Builds the text: collapses whitespace, turns requested breaks into newlines just before the
// next visible content (so trailing breaks and runs of empty blocks leave nothing), and
// prefixes quoted lines.
class TextWriter {
 public:
  // Collapsible text, entities already decoded.
  void text(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (is_html_space(static_cast<char>(c))) {
        pending_space_ = true;
        ++i;
      } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xA0) {
        pending_space_ = true;  // no-break space: spacing in mail markup, not content
        i += 2;
      } else if (std::size_t n = invisible_length(s, i); n > 0) {
        i += n;
      } else {
        std::size_t end = i + 1;
        while (end < s.size() && !is_html_space(s[end]) &&
               static_cast<unsigned char>(s[end]) != 0xC2 &&
               static_cast<unsigned char>(s[end]) != 0xE2 &&
               static_cast<unsigned char>(s[end]) != 0xEF) {
          ++end;
        }
        flush();
        out_.append(s.substr(i, end - i));
        i = end;
      }
    }
  }

  // Text inside <pre>: spaces kept, each newline a line break.
  void preformatted(std::string_view s) {
    for (char c : s) {
      if (c == '\r') continue;
      if (c == '\n') {
        if (!out_.empty()) pending_newlines_ = std::min(pending_newlines_ + 1, 2);
        continue;
      }
      flush();
      out_ += c;
    }
  }

  // Content emitted exactly (list markers, link targets).
  void literal(std::string_view s) {
    flush();
    out_.append(s);
  }

  void space() { pending_space_ = true; }
  void block(int newlines) {
    if (!out_.empty()) pending_newlines_ = std::max(pending_newlines_, newlines);
  }
  void line_break() {
    if (!out_.empty()) pending_newlines_ = std::min(pending_newlines_ + 1, 2);
  }
  // Between table cells on one row; dropped when the row breaks or a cell is empty.
  void cell_separator() {
    if (!at_line_start_ && pending_newlines_ == 0) pending_separator_ = true;
  }
  void enter_quote() { ++quote_depth_; }
  void leave_quote() {
    if (quote_depth_ > 0) --quote_depth_;
  }

  std::size_t size() const { return out_.size(); }
  std::string_view since(std::size_t pos) const {
    return std::string_view(out_).substr(std::min(pos, out_.size()));
  }

  std::string finish() {
    std::string result;
    result.reserve(out_.size());
    std::size_t line_start = 0;
    while (line_start <= out_.size()) {
      std::size_t end = out_.find('\n', line_start);
      if (end == std::string::npos) end = out_.size();
      std::size_t trimmed = end;
      while (trimmed > line_start && (out_[trimmed - 1] == ' ' || out_[trimmed - 1] == '\t')) {
        --trimmed;
      }
      result.append(out_, line_start, trimmed - line_start);
      if (end == out_.size()) break;
      result += '\n';
      line_start = end + 1;
    }
    while (!result.empty() && result.back() == '\n') result.pop_back();
    return result;
  }

 private:
  // Zero-width characters and soft hyphens that mail templates use as padding.
  static std::size_t invisible_length(std::string_view s, std::size_t i) {
    auto byte = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0; };
    if (byte(i) == 0xC2 && byte(i + 1) == 0xAD) return 2;  // soft hyphen
    if (byte(i) == 0xE2 && byte(i + 1) == 0x80 && byte(i + 2) >= 0x8B && byte(i + 2) <= 0x8F) {
      return 3;  // zero-width space, non-joiner, joiner, LRM, RLM
    }
    if (byte(i) == 0xEF && byte(i + 1) == 0xBB && byte(i + 2) == 0xBF) return 3;  // BOM
    return 0;
  }

  void flush() {
    if (out_.empty()) {
      pending_newlines_ = 0;
    } else if (pending_newlines_ > 0) {
      // A blank line belongs to a quote only when the lines on both sides do.
      const int blank_depth = std::min({quote_depth_, line_quote_depth_, kMaxQuotePrefix});
      for (int i = 0; i < pending_newlines_; ++i) {
        out_ += '\n';
        if (i + 1 < pending_newlines_) out_.append(blank_depth, '>');
      }
      at_line_start_ = true;
    }
    pending_newlines_ = 0;
    if (at_line_start_) {
      for (int i = 0; i < std::min(quote_depth_, kMaxQuotePrefix); ++i) out_ += "> ";
      line_quote_depth_ = quote_depth_;
      at_line_start_ = false;
    } else if (pending_separator_) {
      out_ += " | ";
    } else if (pending_space_ && !out_.empty() && out_.back() != ' ') {
      out_ += ' ';
    }
    pending_space_ = false;
    pending_separator_ = false;
  }

  std::string out_;
  int pending_newlines_ = 0;
  bool pending_space_ = false;
  bool pending_separator_ = false;
  bool at_line_start_ = true;
  int quote_depth_ = 0;
  int line_quote_depth_ = 0;  // quote depth of the line last started
};

struct Attribute {
  std::string name;  // lower case
  std::string_view raw_value;
};

struct Tag {
  std::string name;  // lower case
  std::vector<Attribute> attributes;
  bool self_closing = false;

  std::optional<std::string> attribute(std::string_view wanted) const {
    for (const Attribute& a : attributes) {
      if (a.name == wanted) return decode_html_entities(a.raw_value);
    }
    return std::nullopt;
  }
};

// Parses the start tag at html[pos] == '<' (followed by a letter). Returns the position after
// its '>', or nullopt when the input ends inside the tag.
std::optional<std::size_t> parse_start_tag(std::string_view html, std::size_t pos, Tag& tag) {
  std::size_t j = pos + 1;
  while (j < html.size() && is_tag_name_char(html[j])) {
    if (tag.name.size() < kMaxNameLength) tag.name += ascii_lower(html[j]);
    ++j;
  }
  while (true) {
    while (j < html.size() && (is_html_space(html[j]) || html[j] == '/')) {
      if (html[j] == '/' && j + 1 < html.size() && html[j + 1] == '>') tag.self_closing = true;
      ++j;
    }
    if (j >= html.size()) return std::nullopt;
    if (html[j] == '>') return j + 1;
    const std::size_t name_start = j;
    while (j < html.size() && !is_html_space(html[j]) && html[j] != '>' && html[j] != '/' &&
           (html[j] != '=' || j == name_start)) {
      ++j;
    }
    const std::string_view name = html.substr(name_start, std::min(j - name_start, kMaxNameLength));
    while (j < html.size() && is_html_space(html[j])) ++j;
    std::string_view value;
    if (j < html.size() && html[j] == '=') {
      ++j;
      while (j < html.size() && is_html_space(html[j])) ++j;
      if (j >= html.size()) return std::nullopt;
      if (html[j] == '"' || html[j] == '\'') {
        const std::size_t close = html.find(html[j], j + 1);
        if (close == std::string_view::npos) return std::nullopt;
        value = html.substr(j + 1, close - j - 1);
        j = close + 1;
      } else {
        const std::size_t value_start = j;
        while (j < html.size() && !is_html_space(html[j]) && html[j] != '>') ++j;
        value = html.substr(value_start, j - value_start);
      }
    }
    if (tag.attributes.size() < kMaxAttributes) tag.attributes.push_back({lower(name), value});
  }
}

bool is_void_element(std::string_view name) {
  static constexpr std::string_view kVoid[] = {"area",  "base",   "br",    "col",  "embed",
                                               "hr",    "img",    "input", "link", "meta",
                                               "param", "source", "track", "wbr"};
  return std::find(std::begin(kVoid), std::end(kVoid), name) != std::end(kVoid);
}

// Elements whose content is never shown.
bool is_raw_skipped(std::string_view name) {
  static constexpr std::string_view kSkipped[] = {"script", "style",  "title",  "template",
                                                  "svg",    "iframe", "object", "xml"};
  return std::find(std::begin(kSkipped), std::end(kSkipped), name) != std::end(kSkipped);
}

bool is_paragraph(std::string_view name) {
  static constexpr std::string_view kParagraphs[] = {"p",  "h1", "h2", "h3",    "h4",
                                                     "h5", "h6", "dl", "table", "figure"};
  return std::find(std::begin(kParagraphs), std::end(kParagraphs), name) != std::end(kParagraphs);
}

bool is_line_block(std::string_view name) {
  static constexpr std::string_view kBlocks[] = {
      "div",    "section", "article", "header",   "footer",     "nav",   "aside",
      "main",   "address", "form",    "fieldset", "dt",         "dd",    "tr",
      "center", "details", "summary", "caption",  "figcaption", "tbody", "thead",
      "tfoot",  "legend",  "option",  "body",     "html"};
  return std::find(std::begin(kBlocks), std::end(kBlocks), name) != std::end(kBlocks);
}

// "Example.com/" and "https://www.example.com" name the same place for a reader.
std::string comparable_url(std::string_view url) {
  std::string s = lower(url);
  for (std::string_view scheme : {"https://", "http://", "mailto:"}) {
    if (s.starts_with(scheme)) {
      s.erase(0, scheme.size());
      break;
    }
  }
  if (s.starts_with("www.")) s.erase(0, 4);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

std::string trim(std::string_view s) {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && is_html_space(s[b])) ++b;
  while (e > b && is_html_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

bool worth_showing(std::string_view url) {
  if (url.empty() || url.size() > kMaxShownUrl || url.front() == '#') return false;
  for (std::string_view scheme : {"javascript:", "vbscript:", "data:", "cid:", "about:"}) {
    if (istarts_with(url, 0, scheme)) return false;
  }
  return true;
}

bool is_hidden(const Tag& tag) {
  if (tag.attribute("hidden")) return true;
  const auto style = tag.attribute("style");
  if (!style) return false;
  std::string compact;
  for (char c : *style) {
    if (!is_html_space(c)) compact += ascii_lower(c);
  }
  return compact.find("display:none") != std::string::npos ||
         compact.find("mso-hide:all") != std::string::npos;
}

class Converter {
 public:
  explicit Converter(std::string_view html) : html_(html) {}

  std::string run() {
    std::size_t i = 0;
    const std::size_t n = html_.size();
    while (i < n) {
      const std::size_t lt = html_.find('<', i);
      if (lt == std::string_view::npos) {
        emit_text(html_.substr(i));
        break;
      }
      if (lt > i) emit_text(html_.substr(i, lt - i));
      i = lt;
      std::optional<std::size_t> next;
      if (istarts_with(html_, i, "<!--")) {
        const std::size_t end = html_.find("-->", i + 4);
        if (end != std::string_view::npos) next = end + 3;
      } else if (i + 1 < n && (html_[i + 1] == '!' || html_[i + 1] == '?')) {
        const std::size_t end = html_.find('>', i + 2);
        if (end != std::string_view::npos) next = end + 1;
      } else if (i + 2 < n && html_[i + 1] == '/' && is_alpha(html_[i + 2])) {
        next = end_tag(i);
      } else if (i + 1 < n && is_alpha(html_[i + 1])) {
        next = start_tag(i);
      } else {
        emit_text("<");
        next = i + 1;
      }
      // The input ended inside markup: what follows is not text a reader would see.
      if (!next) break;
      i = *next;
    }
    close_link();
    return writer_.finish();
  }

 private:
  struct List {
    bool ordered = false;
    long next = 1;
  };
  struct Link {
    std::string href;
    std::size_t text_start = 0;
  };

  void emit_text(std::string_view raw) {
    const std::string decoded = decode_html_entities(raw);
    if (pre_depth_ > 0) {
      writer_.preformatted(decoded);
    } else {
      writer_.text(decoded);
    }
  }

  std::optional<std::size_t> end_tag(std::size_t pos) {
    std::size_t j = pos + 2;
    std::string name;
    while (j < html_.size() && is_tag_name_char(html_[j])) {
      if (name.size() < kMaxNameLength) name += ascii_lower(html_[j]);
      ++j;
    }
    const std::size_t close = html_.find('>', j);
    if (close == std::string_view::npos) return std::nullopt;
    handle_end(name);
    return close + 1;
  }

  std::optional<std::size_t> start_tag(std::size_t pos) {
    Tag tag;
    const auto after = parse_start_tag(html_, pos, tag);
    if (!after) return std::nullopt;
    if (is_raw_skipped(tag.name)) {
      if (tag.self_closing) return after;
      return skip_raw(*after, tag.name);
    }
    if (tag.name == "head" && !tag.self_closing) {
      if (const auto end = skip_head(*after)) return end;
      return after;
    }
    if (!tag.self_closing && !is_void_element(tag.name) && is_hidden(tag)) {
      if (const auto end = skip_element(*after, tag.name)) return end;
    }
    handle_start(tag);
    return after;
  }

  // Position after "</name ...>" from `from`, or nullopt (the rest is then dropped, as a
  // browser would treat it as the element's content).
  std::optional<std::size_t> skip_raw(std::size_t from, std::string_view name) {
    for (std::size_t k = html_.find('<', from); k != std::string_view::npos;
         k = html_.find('<', k + 1)) {
      if (k + 1 < html_.size() && html_[k + 1] == '/' && closes(k + 2, name)) {
        const std::size_t close = html_.find('>', k);
        if (close == std::string_view::npos) return std::nullopt;
        return close + 1;
      }
    }
    return std::nullopt;
  }

  // True when html_[pos..] is `name` followed by something that ends a tag name.
  bool closes(std::size_t pos, std::string_view name) const {
    if (!istarts_with(html_, pos, name)) return false;
    const std::size_t after = pos + name.size();
    return after >= html_.size() || !is_tag_name_char(html_[after]);
  }

  // A head ends at </head> or where the body starts. Lookaheads that find nothing are not
  // repeated, so that many unclosed elements cost linear time, not quadratic.
  std::optional<std::size_t> skip_head(std::size_t from) {
    if (lookahead_failed_) return std::nullopt;
    for (std::size_t k = html_.find('<', from); k != std::string_view::npos;
         k = html_.find('<', k + 1)) {
      if (k + 1 < html_.size() && html_[k + 1] == '/' && closes(k + 2, "head")) {
        const std::size_t close = html_.find('>', k);
        if (close == std::string_view::npos) break;
        return close + 1;
      }
      if (closes(k + 1, "body")) return k;
    }
    lookahead_failed_ = true;
    return std::nullopt;
  }

  // Position after the end tag matching an element of `name` opened just before `from`.
  std::optional<std::size_t> skip_element(std::size_t from, std::string_view name) {
    if (lookahead_failed_) return std::nullopt;
    std::size_t depth = 1;
    for (std::size_t k = html_.find('<', from); k != std::string_view::npos;
         k = html_.find('<', k + 1)) {
      if (k + 1 < html_.size() && html_[k + 1] == '/' && closes(k + 2, name)) {
        if (--depth == 0) {
          const std::size_t close = html_.find('>', k);
          if (close == std::string_view::npos) break;
          return close + 1;
        }
      } else if (closes(k + 1, name)) {
        ++depth;
      }
    }
    lookahead_failed_ = true;
    return std::nullopt;
  }

  void handle_start(const Tag& tag) {
    const std::string& name = tag.name;
    if (name == "br") {
      writer_.line_break();
    } else if (name == "hr") {
      writer_.block(1);
      writer_.literal("---");
      writer_.block(1);
    } else if (name == "ul" || name == "ol") {
      writer_.block(lists_.empty() ? 2 : 1);
      List list{name == "ol", 1};
      if (const auto start = tag.attribute("start")) list.next = parse_number(*start);
      lists_.push_back(list);
    } else if (name == "li") {
      writer_.block(1);
      std::string marker(2 * std::min(lists_.empty() ? 0 : lists_.size() - 1, kMaxIndentLevels),
                         ' ');
      if (!lists_.empty() && lists_.back().ordered) {
        marker += std::to_string(lists_.back().next++) + ". ";
      } else {
        marker += "- ";
      }
      writer_.literal(marker);
    } else if (name == "blockquote") {
      writer_.block(2);
      writer_.enter_quote();
    } else if (name == "pre") {
      writer_.block(2);
      ++pre_depth_;
    } else if (name == "td" || name == "th") {
      writer_.cell_separator();
    } else if (name == "a") {
      close_link();
      if (const auto href = tag.attribute("href")) link_ = Link{trim(*href), writer_.size()};
    } else if (name == "img") {
      if (const auto alt = tag.attribute("alt"); alt && !trim(*alt).empty()) {
        writer_.text(" [" + trim(*alt) + "] ");
      }
    } else if (is_paragraph(name)) {
      writer_.block(2);
    } else if (is_line_block(name)) {
      writer_.block(1);
    }
  }

  void handle_end(std::string_view name) {
    if (name == "br") {
      writer_.line_break();
    } else if (name == "ul" || name == "ol") {
      if (!lists_.empty()) lists_.pop_back();
      writer_.block(lists_.empty() ? 2 : 1);
    } else if (name == "li") {
      writer_.block(1);
    } else if (name == "blockquote") {
      writer_.leave_quote();
      writer_.block(2);
    } else if (name == "pre") {
      if (pre_depth_ > 0) --pre_depth_;
      writer_.block(2);
    } else if (name == "a") {
      close_link();
    } else if (is_paragraph(name)) {
      writer_.block(2);
    } else if (is_line_block(name)) {
      writer_.block(1);
    }
  }

  void close_link() {
    if (!link_) return;
    const Link link = std::move(*link_);
    link_.reset();
    const std::string text = trim(writer_.since(link.text_start));
    if (text.empty() || !worth_showing(link.href)) return;
    if (comparable_url(text) == comparable_url(link.href)) return;
    writer_.space();
    std::string target = link.href;
    if (istarts_with(target, 0, "mailto:")) target.erase(0, 7);
    writer_.literal("(" + target + ")");
  }

  static long parse_number(std::string_view s) {
    long value = 0;
    for (char c : s) {
      if (!is_digit(c) || value > 1'000'000) break;
      value = value * 10 + (c - '0');
    }
    return value;
  }

  std::string_view html_;
  TextWriter writer_;
  std::vector<List> lists_;
  std::optional<Link> link_;
  int pre_depth_ = 0;
  bool lookahead_failed_ = false;
};

}  // namespace

std::string decode_html_entities(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t amp = text.find('&', i);
    if (amp == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, amp - i));
    const std::size_t consumed = decode_entity(text, amp, out);
    if (consumed == 0) {
      out += '&';
      i = amp + 1;
    } else {
      i = amp + consumed;
    }
  }
  return out;
}

std::string html_to_text(std::string_view html) { return Converter(html).run(); }

std::string escape_xml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace sb

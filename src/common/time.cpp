#include "common/time.h"

#include <cstddef>

namespace sb {

namespace {

using namespace std::chrono;

// Writes `value` as exactly `width` decimal digits, zero-padded; `value` must fit.
char* put_digits(char* out, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return out + width;
}

// A forward-only reader over the text being parsed.
class Reader {
 public:
  explicit Reader(std::string_view text) : text_(text) {}

  bool done() const { return pos_ == text_.size(); }
  char peek() const { return done() ? '\0' : text_[pos_]; }
  bool peek_digit() const { return !done() && is_digit(text_[pos_]); }

  bool eat(char c) {
    if (done() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  // Reads exactly `count` digits.
  bool digits(int count, int& out) {
    out = 0;
    for (int i = 0; i < count; ++i) {
      if (!peek_digit()) return false;
      out = out * 10 + (text_[pos_++] - '0');
    }
    return true;
  }

  // Reads one or more digits as milliseconds: the first three count, the rest are dropped.
  bool fraction(int& millis) {
    millis = 0;
    int count = 0;
    while (peek_digit()) {
      if (count < 3) millis = millis * 10 + (text_[pos_] - '0');
      ++count;
      ++pos_;
    }
    for (int i = count; i < 3; ++i) millis *= 10;
    return count > 0;
  }

 private:
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// The years format_iso8601 can write as four digits.
constexpr sys_days kEarliest = sys_days{year{0} / January / 1};
constexpr sys_days kPastLatest = sys_days{year{10000} / January / 1};

}  // namespace

SysTime now_utc() { return floor<milliseconds>(system_clock::now()); }

std::string format_iso8601(SysTime t) {
  const sys_days day_point = floor<days>(t);
  const year_month_day ymd{day_point};
  const hh_mm_ss<milliseconds> hms{t - day_point};
  const int y = static_cast<int>(ymd.year());

  std::string out;
  if (y < 0 || y > 9999) {
    // Not four digits; parse_iso8601 never yields such a time, now_utc() will not for ages.
    out = std::to_string(y);
  } else {
    out.resize(4);
    put_digits(out.data(), static_cast<unsigned>(y), 4);
  }
  char rest[20];  // "-MM-DDTHH:MM:SS.mmmZ"
  char* p = rest;
  *p++ = '-';
  p = put_digits(p, static_cast<unsigned>(ymd.month()), 2);
  *p++ = '-';
  p = put_digits(p, static_cast<unsigned>(ymd.day()), 2);
  *p++ = 'T';
  p = put_digits(p, static_cast<unsigned>(hms.hours().count()), 2);
  *p++ = ':';
  p = put_digits(p, static_cast<unsigned>(hms.minutes().count()), 2);
  *p++ = ':';
  p = put_digits(p, static_cast<unsigned>(hms.seconds().count()), 2);
  *p++ = '.';
  p = put_digits(p, static_cast<unsigned>(hms.subseconds().count()), 3);
  *p++ = 'Z';
  out.append(rest, p);
  return out;
}

std::optional<SysTime> parse_iso8601(std::string_view text) {
  Reader in(text);
  int y = 0, mo = 0, d = 0;
  if (!in.digits(4, y) || !in.eat('-') || !in.digits(2, mo) || !in.eat('-') || !in.digits(2, d)) {
    return std::nullopt;
  }
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                           day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  SysTime result = sys_days{ymd};
  if (in.done()) return result;

  const char separator = in.peek();
  if (separator != 'T' && separator != 't' && separator != ' ') return std::nullopt;
  in.eat(separator);
  int h = 0, mi = 0, s = 0, ms = 0;
  if (!in.digits(2, h) || !in.eat(':') || !in.digits(2, mi)) return std::nullopt;
  if (in.eat(':')) {
    if (!in.digits(2, s)) return std::nullopt;
    if ((in.eat('.') || in.eat(',')) && !in.fraction(ms)) return std::nullopt;
  }
  if (h > 23 || mi > 59 || s > 59) return std::nullopt;
  result += hours{h} + minutes{mi} + seconds{s} + milliseconds{ms};

  if (in.eat('Z') || in.eat('z')) {
    // UTC
  } else if (in.peek() == '+' || in.peek() == '-') {
    const int sign = in.peek() == '+' ? 1 : -1;
    in.eat(in.peek());
    int oh = 0, om = 0;
    if (!in.digits(2, oh)) return std::nullopt;
    if (in.eat(':')) {
      if (!in.digits(2, om)) return std::nullopt;
    } else if (in.peek_digit() && !in.digits(2, om)) {
      return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    result -= sign * (hours{oh} + minutes{om});
  }
  if (!in.done()) return std::nullopt;
  if (result < kEarliest || result >= kPastLatest) return std::nullopt;
  return result;
}

}  // namespace sb

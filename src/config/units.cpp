#include "config/units.h"

#include <limits>

namespace sb {
namespace {

constexpr std::uint64_t kSaturated = std::numeric_limits<std::uint64_t>::max();

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

// Largest first, so that format_* picks the largest exact unit.
constexpr Unit kSizeUnits[] = {
    {"GiB", 1ull << 30},
    {"GB", 1'000'000'000},
    {"MiB", 1ull << 20},
    {"MB", 1'000'000},
    {"KiB", 1ull << 10},
    {"KB", 1'000},
    {"B", 1},
};

constexpr Unit kDurationUnits[] = {{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Parses "<digits>[spaces]<unit>" against `units`, in the unit's base (bytes, milliseconds),
// saturating at kSaturated.
template <std::size_t N>
std::optional<std::uint64_t> parse_with_unit(std::string_view text, const Unit (&units)[N]) {
  std::size_t i = 0;
  std::uint64_t number = 0;
  bool saturated = false;
  for (; i < text.size() && is_digit(text[i]); ++i) {
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (number > (kSaturated - digit) / 10) {
      saturated = true;
    } else {
      number = number * 10 + digit;
    }
  }
  if (i == 0) return std::nullopt;
  while (i < text.size() && text[i] == ' ') ++i;
  const std::string_view unit_name = text.substr(i);
  for (const Unit& unit : units) {
    if (unit.name != unit_name) continue;
    if (saturated || (number != 0 && unit.factor > kSaturated / number)) return kSaturated;
    return number * unit.factor;
  }
  return std::nullopt;
}

template <std::size_t N>
std::string format_with_unit(std::uint64_t value, const Unit (&units)[N]) {
  for (const Unit& unit : units) {
    if (value != 0 && value % unit.factor == 0) {
      return std::to_string(value / unit.factor) + std::string(unit.name);
    }
  }
  return "0" + std::string(units[N - 1].name);
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
  return parse_with_unit(text, kSizeUnits);
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  using Rep = std::chrono::milliseconds::rep;
  const auto millis = parse_with_unit(text, kDurationUnits);
  if (!millis) return std::nullopt;
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<Rep>::max());
  return std::chrono::milliseconds(static_cast<Rep>(*millis > kMax ? kMax : *millis));
}

std::string format_size(std::uint64_t bytes) { return format_with_unit(bytes, kSizeUnits); }

std::string format_duration(std::chrono::milliseconds duration) {
  if (duration.count() < 0) return std::to_string(duration.count()) + "ms";
  return format_with_unit(static_cast<std::uint64_t>(duration.count()), kDurationUnits);
}

}  // namespace sb

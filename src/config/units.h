#pragma once
// Human-readable sizes and durations, as written in the config file ("512KiB", "10s").

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sb {

// Parses a byte size: a decimal integer, optional spaces, then a unit: B, KB, MB, GB (powers
// of 1000) or KiB, MiB, GiB (powers of 1024). Units are case-sensitive ("Mb" is rejected, as
// it could mean megabits). nullopt if malformed: no digits, a sign, a fraction, a missing or
// unknown unit, anything after the unit. A value beyond 64 bits saturates to UINT64_MAX, so
// a caller's upper bound reports it.
std::optional<std::uint64_t> parse_size(std::string_view text);

// Parses a duration: a decimal integer, optional spaces, then a unit: ms, s, m (minutes) or
// h. The unit is required. nullopt if malformed as for parse_size. A value beyond the range
// of milliseconds saturates to milliseconds::max().
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// The largest exact unit for messages and logs: 1073741824 -> "1GiB", 4000 -> "4KB",
// 1000 -> "1KB", 100 -> "100B". Round-trips through parse_size.
std::string format_size(std::uint64_t bytes);

// The largest exact unit: 3600000ms -> "1h", 90000ms -> "90s", 1500ms -> "1500ms".
// Round-trips through parse_duration for positive values.
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace sb

#pragma once
// Wall-clock time as the store and the API see it: UTC, millisecond precision, written as
// ISO-8601 with a trailing Z ("2026-11-21T16:21:00.123Z"). Such strings sort in time order.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sb {

using SysTime = std::chrono::sys_time<std::chrono::milliseconds>;

// The current time, truncated to milliseconds.
SysTime now_utc();

// "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string format_iso8601(SysTime t);

// Parses ISO-8601 date-times as they appear in imported data and API input:
// "2026-05-18T10:20:30Z", "…30.123456+02:00", "…30-0500", "2026-05-18 10:20:30" (a space
// instead of T), and a bare date "2026-05-18". A time without a zone is taken as UTC.
// Fractions beyond milliseconds are truncated. Returns nullopt for anything else, including
// out-of-range fields (month 13, hour 25).
std::optional<SysTime> parse_iso8601(std::string_view text);

}  // namespace sb

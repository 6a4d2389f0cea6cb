#include "core/schedule.h"

#include <cctz/civil_time.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <span>
#include <vector>

namespace sb {

namespace {

using std::chrono::floor;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::int64_t kMinIntervalMs = 1000;
constexpr std::int64_t kMaxIntervalMs = 3'155'760'000'000;  // 100 years of 365.25 days

// The Gregorian calendar, weekdays included, repeats every 400 years.
constexpr int kCalendarCycleYears = 400;

constexpr std::string_view kWhitespace = " \t\r\n";

std::string_view trim(std::string_view text) {
  const auto begin = text.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  const auto end = text.find_last_not_of(kWhitespace);
  return text.substr(begin, end - begin + 1);
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto end = text.find(separator, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::vector<std::string_view> split_whitespace(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t pos = 0;
  while ((pos = text.find_first_not_of(kWhitespace, pos)) != std::string_view::npos) {
    const auto end = text.find_first_of(kWhitespace, pos);
    words.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return words;
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// ---- cron ------------------------------------------------------------------------------

constexpr std::string_view kCronShape =
    "a cron schedule has 5 fields (minute hour day-of-month month day-of-week), e.g. "
    "'0 9 * * 1-5'";

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kWeekdayNames = {"sun", "mon", "tue", "wed",
                                                           "thu", "fri", "sat"};

struct CronField {
  int number;  // 1-based position, for messages
  std::string_view name;
  int min;
  int max;
  std::string_view valid;  // what the field accepts, for messages
  std::span<const std::string_view> names;
  int first_named;  // the value of names[0]
};

const std::array<CronField, 5> kCronFields = {{
    {1, "minute", 0, 59, "0-59", {}, 0},
    {2, "hour", 0, 23, "0-23", {}, 0},
    {3, "day-of-month", 1, 31, "1-31", {}, 0},
    {4, "month", 1, 12, "1-12 or jan-dec", kMonthNames, 1},
    {5, "day-of-week", 0, 7, "0-7 (0 and 7 are Sunday) or sun-sat", kWeekdayNames, 0},
}};

struct Macro {
  std::string_view name;
  std::string_view fields;
};

constexpr std::array<Macro, 7> kMacros = {{
    {"@hourly", "0 * * * *"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},
    {"@monthly", "0 0 1 * *"},
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
}};

std::string field_prefix(const CronField& field) {
  return "cron field " + std::to_string(field.number) + " (" + std::string(field.name) + ")";
}

std::optional<int> cron_value(const CronField& field, std::string_view token) {
  if (all_digits(token) && token.size() <= 4) {
    int value = 0;
    std::from_chars(token.data(), token.data() + token.size(), value);
    if (value >= field.min && value <= field.max) return value;
    return std::nullopt;
  }
  for (std::size_t i = 0; i < field.names.size(); ++i) {
    if (equals_ignoring_case(token, field.names[i])) return field.first_named + static_cast<int>(i);
  }
  return std::nullopt;
}

// The set of values a field allows, as a bit mask (bit n = value n).
Result<std::uint64_t> parse_cron_field(const CronField& field, std::string_view text) {
  std::uint64_t mask = 0;
  for (const std::string_view item : split(text, ',')) {
    if (item.empty()) {
      return make_error(field_prefix(field) + " has an empty item in '" + std::string(text) +
                        "'; separate numbers, ranges (1-5) and steps (*/15) with single commas");
    }
    const auto slash = item.find('/');
    const std::string_view base = item.substr(0, slash);
    const auto value = [&](std::string_view token) -> Result<int> {
      if (const auto v = cron_value(field, token)) return *v;
      return make_error(field_prefix(field) + " must be " + std::string(field.valid) + ", got '" +
                        std::string(token.empty() ? item : token) + "'");
    };

    int low = field.min;
    int high = field.max;
    if (base != "*") {
      const auto dash = base.find('-');
      const auto first = value(base.substr(0, dash));
      if (!first) return first.error();
      low = first.value();
      if (dash != std::string_view::npos) {
        const auto last = value(base.substr(dash + 1));
        if (!last) return last.error();
        high = last.value();
        if (low > high) {
          return make_error(field_prefix(field) + " has range '" + std::string(base) +
                            "' going backwards; write the smaller value first, as in '1-5'");
        }
      } else if (slash == std::string_view::npos) {
        high = low;
      }
    }

    int step = 1;
    if (slash != std::string_view::npos) {
      const std::string_view step_text = item.substr(slash + 1);
      if (all_digits(step_text) && step_text.size() <= 4) {
        std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
      } else {
        step = 0;
      }
      if (step < 1) {
        return make_error(field_prefix(field) + " has step '" + std::string(step_text) + "' in '" +
                          std::string(item) +
                          "'; a step is a positive number, as in '*/15' or '10-50/10'");
      }
    }
    for (int v = low; v <= high; v += step) mask |= std::uint64_t{1} << v;
  }
  return mask;
}

// The smallest value >= from in the mask, or -1. `from` is at most 60.
int next_bit(std::uint64_t mask, int from) {
  const std::uint64_t rest = mask & (~std::uint64_t{0} << from);
  return rest == 0 ? -1 : std::countr_zero(rest);
}

int cron_weekday(cctz::civil_day day) {
  // cctz counts from Monday = 0; cron from Sunday = 0.
  return (static_cast<int>(cctz::get_weekday(day)) + 1) % 7;
}

// The instant a civil time stands for, by the DST rules in schedule.h.
SysTime instant_of(const cctz::civil_second& civil, const cctz::time_zone& zone) {
  const auto lookup = zone.lookup(civil);
  return lookup.kind == cctz::time_zone::civil_lookup::SKIPPED ? lookup.trans : lookup.pre;
}

struct CronMasks {
  // minute, hour, day-of-month, month, day-of-week (Sunday = 0 only).
  std::array<std::uint64_t, 5> masks{};
  bool either_day_field = false;
};

// Whether some month in `months` has some day in `days` (Feb 29 counts).
bool some_date_exists(std::uint64_t months, std::uint64_t days) {
  static constexpr std::array<int, 13> kMaxDays = {0,  31, 29, 31, 30, 31, 30,
                                                   31, 31, 30, 31, 30, 31};
  for (int m = 1; m <= 12; ++m) {
    const std::uint64_t days_in_month = (std::uint64_t{2} << kMaxDays[m]) - 1;
    if ((months >> m & 1) && (days & days_in_month)) return true;
  }
  return false;
}

Result<CronMasks> parse_cron(std::string_view text) {
  std::string_view expanded = text;
  if (text.starts_with('@')) {
    const auto macro = std::find_if(kMacros.begin(), kMacros.end(), [&](const Macro& m) {
      return equals_ignoring_case(m.name, text);
    });
    if (macro == kMacros.end()) {
      return make_error("unknown cron macro '" + std::string(text) +
                        "'; use @hourly, @daily, @weekly, @monthly or @yearly, or " +
                        std::string(kCronShape));
    }
    expanded = macro->fields;
  }
  const auto fields = split_whitespace(expanded);
  if (fields.size() != kCronFields.size()) {
    return make_error(std::string(kCronShape) + "; got " + std::to_string(fields.size()));
  }
  CronMasks cron;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto mask = parse_cron_field(kCronFields[i], fields[i]);
    if (!mask) return mask.error();
    cron.masks[i] = mask.value();
  }
  std::uint64_t& weekdays = cron.masks[4];
  weekdays = (weekdays & 0x7f) | (weekdays >> 7);  // 7 is Sunday too
  cron.either_day_field = !fields[2].starts_with('*') && !fields[4].starts_with('*');
  // Every valid date falls on every weekday in some year, so only the days of the months
  // can make a calendar impossible, and only when the day-of-month field must match.
  if (!cron.either_day_field && !some_date_exists(cron.masks[3], cron.masks[2])) {
    return make_error("cron schedule '" + std::string(text) +
                      "' never runs: none of its months (field 4) has a day it allows in field 3 "
                      "(February has at most 29 days; April, June, September and November 30)");
  }
  return cron;
}

// ---- interval --------------------------------------------------------------------------

Result<milliseconds> parse_interval(std::string_view text) {
  const std::string got = "; got '" + std::string(text) + "'";
  if (!all_digits(text)) {
    return make_error(
        "an interval schedule is a whole number of milliseconds, at least 1000 (1 second), "
        "e.g. '3600000' for hourly" +
        got);
  }
  std::int64_t ms = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (ec != std::errc{} || ms > kMaxIntervalMs) {
    return make_error("an interval schedule must be at most " + std::to_string(kMaxIntervalMs) +
                      " milliseconds (100 years)" + got);
  }
  if (ms < kMinIntervalMs) {
    return make_error(
        "an interval schedule must be at least 1000 milliseconds (1 second); a shorter one "
        "would run the task non-stop" +
        got);
  }
  return milliseconds{ms};
}

// ---- once ------------------------------------------------------------------------------

constexpr std::string_view kOnceShape =
    "a once schedule is an ISO-8601 date-time such as 2026-12-24T18:00 (local time) or "
    "2026-12-24T17:00Z";

// parse_iso8601 accepts a zone only after the time, which starts after "YYYY-MM-DD".
bool has_zone(std::string_view text) {
  return text.size() > 10 && text.substr(10).find_first_of("Zz+-") != std::string_view::npos;
}

Result<SysTime> parse_once(std::string_view text, const cctz::time_zone& zone) {
  const auto parsed = parse_iso8601(text);
  if (!parsed) return make_error(std::string(kOnceShape) + "; got '" + std::string(text) + "'");
  if (has_zone(text)) return *parsed;
  // parse_iso8601 read the civil time as UTC; read it again in the zone.
  const auto whole_seconds = floor<seconds>(*parsed);
  const auto lookup = zone.lookup(cctz::convert(whole_seconds, cctz::utc_time_zone()));
  if (lookup.kind == cctz::time_zone::civil_lookup::SKIPPED) return SysTime{lookup.trans};
  return lookup.pre + (*parsed - whole_seconds);
}

}  // namespace

std::string_view to_string(ScheduleType type) {
  switch (type) {
    case ScheduleType::cron:
      return "cron";
    case ScheduleType::interval:
      return "interval";
    case ScheduleType::once:
      return "once";
  }
  return "once";
}

Result<ScheduleType> parse_schedule_type(std::string_view text) {
  for (const auto type : {ScheduleType::cron, ScheduleType::interval, ScheduleType::once}) {
    if (text == to_string(type)) return type;
  }
  return make_error("schedule type must be cron, interval or once; got '" + std::string(text) +
                    "'");
}

Result<TimeZone> load_time_zone(std::string_view name) {
  if (name.empty()) {
    const cctz::time_zone local = cctz::local_time_zone();
    return TimeZone(local.name(), local);
  }
  const auto error = [&] {
    return make_error("unknown time zone '" + std::string(name) +
                      "'; it must be an IANA name like \"Europe/Berlin\" or \"UTC\" (see "
                      "/usr/share/zoneinfo)");
  };
  const bool iana_shaped = name.front() != '/' && name.find("..") == std::string_view::npos;
  cctz::time_zone zone;
  if (!iana_shaped || !cctz::load_time_zone(std::string(name), &zone)) return error();
  return TimeZone(std::string(name), zone);
}

Result<Schedule> parse_schedule(ScheduleType type, std::string_view value, const TimeZone& zone) {
  Schedule schedule;
  schedule.type_ = type;
  schedule.text_ = std::string(trim(value));
  schedule.zone_ = zone.zone();
  const std::string_view text = schedule.text_;

  switch (type) {
    case ScheduleType::cron: {
      const auto cron = parse_cron(text);
      if (!cron) return cron.error();
      schedule.minutes_ = cron->masks[0];
      schedule.hours_ = static_cast<std::uint32_t>(cron->masks[1]);
      schedule.days_of_month_ = static_cast<std::uint32_t>(cron->masks[2]);
      schedule.months_ = static_cast<std::uint16_t>(cron->masks[3]);
      schedule.days_of_week_ = static_cast<std::uint8_t>(cron->masks[4]);
      schedule.either_day_field_ = cron->either_day_field;
      return schedule;
    }
    case ScheduleType::interval: {
      const auto interval = parse_interval(text);
      if (!interval) return interval.error();
      schedule.interval_ = interval.value();
      return schedule;
    }
    case ScheduleType::once: {
      const auto at = parse_once(text, zone.zone());
      if (!at) return at.error();
      schedule.at_ = at.value();
      return schedule;
    }
  }
  return make_error("schedule type must be cron, interval or once");
}

std::optional<SysTime> next_run(const Schedule& schedule, SysTime after) {
  switch (schedule.type_) {
    case ScheduleType::interval:
      return after + schedule.interval_;
    case ScheduleType::once:
      if (schedule.at_ > after) return schedule.at_;
      return std::nullopt;
    case ScheduleType::cron:
      break;
  }

  const cctz::time_zone& zone = schedule.zone_;
  // Civil minutes map to instants monotonically (skipped ones to the change, repeated ones
  // to their first occurrence), so the answer is the first matching minute after the civil
  // minute of `after` whose instant lies after `after`; only in the second pass of a
  // repeated hour do matching minutes fall behind it.
  const cctz::civil_minute start =
      cctz::civil_minute(cctz::convert(floor<seconds>(after), zone)) + 1;
  const cctz::year_t last_year = start.year() + kCalendarCycleYears;
  cctz::civil_day day(start);
  int first_hour = start.hour();
  int first_minute = start.minute();

  while (day.year() <= last_year) {
    if ((schedule.months_ >> day.month() & 1) == 0) {
      day = cctz::civil_day(cctz::civil_month(day) + 1);
      first_hour = first_minute = 0;
      continue;
    }
    const bool dom = schedule.days_of_month_ >> day.day() & 1;
    const bool dow = schedule.days_of_week_ >> cron_weekday(day) & 1;
    if (schedule.either_day_field_ ? (dom || dow) : (dom && dow)) {
      for (int h = next_bit(schedule.hours_, first_hour); h >= 0;
           h = next_bit(schedule.hours_, h + 1)) {
        for (int m = next_bit(schedule.minutes_, h == first_hour ? first_minute : 0); m >= 0;
             m = next_bit(schedule.minutes_, m + 1)) {
          const SysTime t =
              instant_of(cctz::civil_second(day.year(), day.month(), day.day(), h, m, 0), zone);
          if (t > after) return t;
        }
      }
    }
    ++day;
    first_hour = first_minute = 0;
  }
  return std::nullopt;
}

std::optional<SysTime> first_run(const Schedule& schedule, SysTime now) {
  if (schedule.type_ == ScheduleType::once) return schedule.at_;
  return next_run(schedule, now);
}

}  // namespace sb

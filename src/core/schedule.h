#pragma once
// Schedules of scheduled tasks and the maths of when they run next (docs/scheduling.md).
// A task is `cron` (5 fields, evaluated in a time zone's civil time), `interval` (a fixed
// number of milliseconds) or `once` (one ISO-8601 date-time). Every instant handed out is
// UTC (SysTime), ready to be stored.
//
// Everything here is a pure function of its arguments (no clock, no I/O except
// load_time_zone reading the zone database); safe to call from any thread.

#include <cctz/time_zone.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"
#include "common/time.h"

namespace sb {

enum class ScheduleType { cron, interval, once };

// "cron", "interval" or "once".
std::string_view to_string(ScheduleType type);

// The inverse of to_string (exact, lower case). The error names the three valid types.
Result<ScheduleType> parse_schedule_type(std::string_view text);

// A time zone from the IANA database and the name it was loaded by. Cheap to copy.
class TimeZone {
 public:
  // The IANA name ("Europe/Berlin"); for the system zone what cctz calls it: the value of
  // TZ, or "localtime" when it comes from /etc/localtime.
  const std::string& name() const { return name_; }
  const cctz::time_zone& zone() const { return zone_; }

 private:
  friend Result<TimeZone> load_time_zone(std::string_view name);
  TimeZone(std::string name, cctz::time_zone zone) : name_(std::move(name)), zone_(zone) {}

  std::string name_;
  cctz::time_zone zone_;
};

// Loads an IANA zone ("Europe/Berlin", "America/New_York", "UTC") from the system's zone
// database. An empty name means the system's local zone (TZ, else /etc/localtime; UTC if
// neither can be read). Fails, naming the zone, for an unknown name or one that is not
// shaped like an IANA name (an absolute path, "..").
Result<TimeZone> load_time_zone(std::string_view name);

// A validated, pre-parsed schedule. Obtain one from parse_schedule.
class Schedule {
 public:
  ScheduleType type() const { return type_; }
  // The schedule as written, without surrounding whitespace: what to store and show.
  const std::string& text() const { return text_; }

 private:
  friend Result<Schedule> parse_schedule(ScheduleType type, std::string_view value,
                                         const TimeZone& zone);
  friend std::optional<SysTime> next_run(const Schedule& schedule, SysTime after);
  friend std::optional<SysTime> first_run(const Schedule& schedule, SysTime now);
  Schedule() = default;

  ScheduleType type_ = ScheduleType::once;
  std::string text_;
  // cron: bit n set when value n is allowed; day-of-week 0 is Sunday.
  std::uint64_t minutes_ = 0;
  std::uint32_t hours_ = 0;
  std::uint32_t days_of_month_ = 0;
  std::uint16_t months_ = 0;
  std::uint8_t days_of_week_ = 0;
  // cron: both day fields are restricted (neither starts with '*'), so a day matches when
  // either does (Vixie cron); otherwise both must match.
  bool either_day_field_ = false;
  cctz::time_zone zone_;
  // interval
  std::chrono::milliseconds interval_{0};
  // once
  SysTime at_{};
};

// Validates `value` as a schedule of `type` and pre-parses it; `zone` is the civil time a
// cron schedule follows and the one a `once` time without an offset is read in.
//  - cron: "minute hour day-of-month month day-of-week" with *, lists, ranges, steps
//    (*/15, 10-50/10, 5/15 = 5-max/15), names jan-dec and sun-sat (any case), day-of-week
//    7 = Sunday; or @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually).
//    A calendar that can never match (day 30 or 31 of February only, day 31 of April
//    only...) is rejected, so next_run always finds a cron schedule's next time.
//  - interval: whole milliseconds from 1000 (1 s) to 3155760000000 (100 years).
//  - once: an ISO-8601 date-time as parse_iso8601 reads it. With Z or an offset it is
//    that instant; without, local time in `zone`: a time skipped by a DST change means the
//    instant the change happens (02:30 on a 02:00->03:00 day runs at 03:00), a repeated
//    time its first occurrence. A time in the past is accepted (it runs at once).
// The error names the field or part that is wrong and says what would be valid.
Result<Schedule> parse_schedule(ScheduleType type, std::string_view value, const TimeZone& zone);

// The first time strictly after `after` at which the schedule fires, or nullopt if it never
// fires again.
//  - cron: the first matching civil minute, in the schedule's zone, whose instant is after
//    `after`. A matching time skipped by a DST change fires once, at the instant of the
//    change; a matching time that occurs twice fires once, at its first occurrence (so an
//    hourly task does not fire in the repeated hour's second pass). Searches at most the
//    400-year cycle of the calendar, which always suffices for a parsed schedule.
//  - interval: after + the interval.
//  - once: its instant if that is after `after`, else nullopt (the task is complete).
// After a run, including a late one after downtime, pass the current time as `after`:
// that is what makes an overdue task run once rather than once per missed slot.
std::optional<SysTime> next_run(const Schedule& schedule, SysTime after);

// When a new (or resumed) task first runs: next_run(schedule, now), except that a `once`
// task keeps its instant even if that has passed, so it is overdue and runs once now.
// nullopt only where next_run would give it for a cron schedule, which parse_schedule rules
// out.
std::optional<SysTime> first_run(const Schedule& schedule, SysTime now);

}  // namespace sb

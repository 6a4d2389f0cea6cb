#include "core/schedule.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace sb {
namespace {

using namespace std::chrono;

TimeZone zone(std::string_view name) {
  auto tz = load_time_zone(name);
  if (!tz) throw std::runtime_error(tz.error().message);
  return *tz;
}

Schedule parse(ScheduleType type, std::string_view text, std::string_view zone_name = "UTC") {
  auto schedule = parse_schedule(type, text, zone(zone_name));
  if (!schedule) throw std::runtime_error(schedule.error().message);
  return std::move(schedule).value();
}

Schedule cron(std::string_view text, std::string_view zone_name = "UTC") {
  return parse(ScheduleType::cron, text, zone_name);
}

// The error parse_schedule gives, or "ok".
std::string error_of(ScheduleType type, std::string_view text) {
  const auto schedule = parse_schedule(type, text, zone("UTC"));
  return schedule ? "ok" : schedule.error().message;
}

SysTime utc(std::string_view iso) {
  const auto t = parse_iso8601(iso);
  if (!t) throw std::runtime_error("bad test time " + std::string(iso));
  return *t;
}

std::string show(std::optional<SysTime> t) { return t ? format_iso8601(*t) : "nullopt"; }

// The next `count` runs after `after`, each computed from the previous one, comma-separated.
std::string runs(const Schedule& schedule, std::string_view after, int count) {
  std::string out;
  SysTime t = utc(after);
  for (int i = 0; i < count; ++i) {
    const auto next = next_run(schedule, t);
    if (!out.empty()) out += ",";
    out += show(next);
    if (!next) break;
    t = *next;
  }
  return out;
}

TEST(ScheduleType, RoundTripsItsThreeNames) {
  for (const auto type : {ScheduleType::cron, ScheduleType::interval, ScheduleType::once}) {
    const auto parsed = parse_schedule_type(to_string(type));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed.value(), type);
  }
}

TEST(ScheduleType, RejectsOtherNamesListingTheValidOnes) {
  const auto parsed = parse_schedule_type("weekly");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().message, "schedule type must be cron, interval or once; got 'weekly'");
  EXPECT_FALSE(parse_schedule_type("Cron").ok());
}

TEST(ScheduleTimeZone, LoadsIanaZonesByName) {
  const TimeZone berlin = zone("Europe/Berlin");
  EXPECT_EQ(berlin.name(), "Europe/Berlin");
  // Winter: UTC+1.
  EXPECT_EQ(cctz::convert(cctz::civil_second(2026, 1, 15, 12, 0, 0), berlin.zone()),
            floor<seconds>(utc("2026-01-15T11:00:00Z")));
  EXPECT_EQ(zone("UTC").name(), "UTC");
}

TEST(ScheduleTimeZone, UnknownOrPathShapedNamesAreRejectedWithAnExample) {
  for (const char* name : {"Mars/Olympus_Mons", "/etc/passwd", "../zoneinfo/UTC", "CEST"}) {
    const auto tz = load_time_zone(name);
    ASSERT_FALSE(tz.ok()) << name;
    EXPECT_EQ(tz.error().message,
              "unknown time zone '" + std::string(name) +
                  "'; it must be an IANA name like \"Europe/Berlin\" or \"UTC\" (see "
                  "/usr/share/zoneinfo)");
  }
}

TEST(ScheduleTimeZone, EmptyNameIsTheSystemZoneFromTz) {
  const char* old = std::getenv("TZ");
  const std::string saved = old ? old : "";
  setenv("TZ", "Asia/Tokyo", 1);
  const auto local = load_time_zone("");
  if (old) {
    setenv("TZ", saved.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->name(), "Asia/Tokyo");
  const auto schedule = parse_schedule(ScheduleType::once, "2026-06-01T09:00", local.value());
  ASSERT_TRUE(schedule.ok());
  EXPECT_EQ(show(first_run(schedule.value(), utc("2026-01-01T00:00Z"))),
            "2026-06-01T00:00:00.000Z");
}

TEST(CronParse, AcceptsTheUsualForms) {
  for (const char* text :
       {"* * * * *", "0 9 * * 1-5", "*/15 * * * *", "10-50/10 8-18 * * *", "0 0 1,15 * *",
        "0 12 * JAN,jul MON-fri", "0 0 * * 7", "5/20 * * * *", "  0  9 * *\t1-5 ", "@hourly",
        "@DAILY", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "0 0 31 2 5",
        "0 0 29 2 *", "59 23 31 12 0"}) {
    EXPECT_EQ(error_of(ScheduleType::cron, text), "ok") << text;
  }
  EXPECT_EQ(cron("  0  9 * *\t1-5 ").text(), "0  9 * *\t1-5");
  EXPECT_EQ(cron("@weekly").text(), "@weekly");
}

TEST(CronParse, WrongFieldCountSaysWhatTheFiveFieldsAre) {
  EXPECT_EQ(error_of(ScheduleType::cron, "0 9 *"),
            "a cron schedule has 5 fields (minute hour day-of-month month day-of-week), e.g. "
            "'0 9 * * 1-5'; got 3");
  EXPECT_EQ(error_of(ScheduleType::cron, ""),
            "a cron schedule has 5 fields (minute hour day-of-month month day-of-week), e.g. "
            "'0 9 * * 1-5'; got 0");
  // Six fields (a seconds field, as some cron dialects have) are not accepted.
  EXPECT_EQ(error_of(ScheduleType::cron, "0 0 9 * * 1"),
            "a cron schedule has 5 fields (minute hour day-of-month month day-of-week), e.g. "
            "'0 9 * * 1-5'; got 6");
}

TEST(CronParse, OutOfRangeValuesNameTheFieldAndItsRange) {
  EXPECT_EQ(error_of(ScheduleType::cron, "60 * * * *"),
            "cron field 1 (minute) must be 0-59, got '60'");
  EXPECT_EQ(error_of(ScheduleType::cron, "0 24 * * *"),
            "cron field 2 (hour) must be 0-23, got '24'");
  EXPECT_EQ(error_of(ScheduleType::cron, "0 0 0 * *"),
            "cron field 3 (day-of-month) must be 1-31, got '0'");
  EXPECT_EQ(error_of(ScheduleType::cron, "0 0 * 13 *"),
            "cron field 4 (month) must be 1-12 or jan-dec, got '13'");
  EXPECT_EQ(error_of(ScheduleType::cron, "0 0 * * 8"),
            "cron field 5 (day-of-week) must be 0-7 (0 and 7 are Sunday) or sun-sat, got '8'");
  EXPECT_EQ(error_of(ScheduleType::cron, "0 0 * * monday"),
            "cron field 5 (day-of-week) must be 0-7 (0 and 7 are Sunday) or sun-sat, got "
            "'monday'");
  // Names belong to their own field only.
  EXPECT_EQ(error_of(ScheduleType::cron, "0 0 * mon *"),
            "cron field 4 (month) must be 1-12 or jan-dec, got 'mon'");
  EXPECT_EQ(error_of(ScheduleType::cron, "jan 0 * * *"),
            "cron field 1 (minute) must be 0-59, got 'jan'");
  EXPECT_EQ(error_of(ScheduleType::cron, "-5 * * * *"),
            "cron field 1 (minute) must be 0-59, got '-5'");
  EXPECT_EQ(error_of(ScheduleType::cron, "0 1-99999 * * *"),
            "cron field 2 (hour) must be 0-23, got '99999'");
}

TEST(CronParse, MalformedListsRangesAndStepsSayWhatIsValid) {
  EXPECT_EQ(error_of(ScheduleType::cron, "1,,2 * * * *"),
            "cron field 1 (minute) has an empty item in '1,,2'; separate numbers, ranges (1-5) "
            "and steps (*/15) with single commas");
  EXPECT_EQ(error_of(ScheduleType::cron, "0 17-9 * * *"),
            "cron field 2 (hour) has range '17-9' going backwards; write the smaller value first, "
            "as in '1-5'");
  EXPECT_EQ(error_of(ScheduleType::cron, "*/0 * * * *"),
            "cron field 1 (minute) has step '0' in '*/0'; a step is a positive number, as in "
            "'*/15' or '10-50/10'");
  EXPECT_EQ(error_of(ScheduleType::cron, "0 0 */x * *"),
            "cron field 3 (day-of-month) has step 'x' in '*/x'; a step is a positive number, as "
            "in '*/15' or '10-50/10'");
  EXPECT_EQ(error_of(ScheduleType::cron, "0 0 * * fri-sun"),
            "cron field 5 (day-of-week) has range 'fri-sun' going backwards; write the smaller "
            "value first, as in '1-5'");
}

TEST(CronParse, UnknownMacroListsTheKnownOnes) {
  EXPECT_EQ(error_of(ScheduleType::cron, "@reboot"),
            "unknown cron macro '@reboot'; use @hourly, @daily, @weekly, @monthly or @yearly, or "
            "a cron schedule has 5 fields (minute hour day-of-month month day-of-week), e.g. "
            "'0 9 * * 1-5'");
}

TEST(CronParse, CalendarsThatNeverMatchAreRejected) {
  for (const char* text : {"0 0 30 2 *", "0 0 31 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 feb *"}) {
    EXPECT_EQ(error_of(ScheduleType::cron, text),
              "cron schedule '" + std::string(text) +
                  "' never runs: none of its months (field 4) has a day it allows in field 3 "
                  "(February has at most 29 days; April, June, September and November 30)")
        << text;
  }
  // With a restricted day-of-week the day-of-week alone can match (Vixie rule).
  EXPECT_EQ(show(next_run(cron("0 0 31 2 5"), utc("2026-01-01T00:00Z"))),
            "2026-02-06T00:00:00.000Z");
}

TEST(CronNextRun, WeekdayMorningsSkipTheWeekend) {
  // 2026-05-15 is a Friday.
  EXPECT_EQ(runs(cron("0 9 * * 1-5"), "2026-05-15T08:59:59.999Z", 3),
            "2026-05-15T09:00:00.000Z,2026-05-18T09:00:00.000Z,2026-05-19T09:00:00.000Z");
}

TEST(CronNextRun, IsStrictlyAfterTheGivenInstant) {
  const Schedule every_minute = cron("* * * * *");
  EXPECT_EQ(show(next_run(every_minute, utc("2026-05-18T10:20:00Z"))), "2026-05-18T10:21:00.000Z");
  EXPECT_EQ(show(next_run(every_minute, utc("2026-05-18T10:20:30.5Z"))),
            "2026-05-18T10:21:00.000Z");
  EXPECT_EQ(show(next_run(every_minute, utc("2026-12-31T23:59:00Z"))), "2027-01-01T00:00:00.000Z");
}

TEST(CronNextRun, StepsListsAndRangesPickTheRightMinutes) {
  EXPECT_EQ(runs(cron("*/15 * * * *"), "2026-05-18T10:50Z", 3),
            "2026-05-18T11:00:00.000Z,2026-05-18T11:15:00.000Z,2026-05-18T11:30:00.000Z");
  EXPECT_EQ(runs(cron("10-50/20 * * * *"), "2026-05-18T10:00Z", 4),
            "2026-05-18T10:10:00.000Z,2026-05-18T10:30:00.000Z,2026-05-18T10:50:00.000Z,"
            "2026-05-18T11:10:00.000Z");
  // "5/20" is 5-59/20.
  EXPECT_EQ(runs(cron("5/20 * * * *"), "2026-05-18T10:00Z", 4),
            "2026-05-18T10:05:00.000Z,2026-05-18T10:25:00.000Z,2026-05-18T10:45:00.000Z,"
            "2026-05-18T11:05:00.000Z");
  EXPECT_EQ(runs(cron("0 8,12-13 * * *"), "2026-05-18T00:00Z", 4),
            "2026-05-18T08:00:00.000Z,2026-05-18T12:00:00.000Z,2026-05-18T13:00:00.000Z,"
            "2026-05-19T08:00:00.000Z");
}

TEST(CronNextRun, MonthAndWeekdayNamesAreCaseInsensitiveAndSevenIsSunday) {
  // Weekdays of January and July only; 2026-07-01 is a Wednesday.
  EXPECT_EQ(runs(cron("0 12 * JAN,jul Mon-FRI"), "2026-02-01T00:00Z", 3),
            "2026-07-01T12:00:00.000Z,2026-07-02T12:00:00.000Z,2026-07-03T12:00:00.000Z");
  // 2026-05-17 and 2026-05-24 are Sundays.
  EXPECT_EQ(runs(cron("0 0 * * 7"), "2026-05-15T00:00Z", 2),
            "2026-05-17T00:00:00.000Z,2026-05-24T00:00:00.000Z");
  EXPECT_EQ(runs(cron("0 0 * * sun"), "2026-05-15T00:00Z", 1), "2026-05-17T00:00:00.000Z");
  EXPECT_EQ(runs(cron("0 0 * * 5-7"), "2026-05-15T00:00Z", 4),
            "2026-05-16T00:00:00.000Z,2026-05-17T00:00:00.000Z,2026-05-22T00:00:00.000Z,"
            "2026-05-23T00:00:00.000Z");
}

TEST(CronNextRun, MacrosMeanTheirUsualFields) {
  // 2026-05-18 is a Monday.
  EXPECT_EQ(runs(cron("@hourly"), "2026-05-18T10:20Z", 1), "2026-05-18T11:00:00.000Z");
  EXPECT_EQ(runs(cron("@daily"), "2026-05-18T10:20Z", 1), "2026-05-19T00:00:00.000Z");
  EXPECT_EQ(runs(cron("@weekly"), "2026-05-18T10:20Z", 1), "2026-05-24T00:00:00.000Z");
  EXPECT_EQ(runs(cron("@monthly"), "2026-05-18T10:20Z", 1), "2026-06-01T00:00:00.000Z");
  EXPECT_EQ(runs(cron("@yearly"), "2026-05-18T10:20Z", 1), "2027-01-01T00:00:00.000Z");
}

TEST(CronNextRun, RestrictedDayOfMonthAndDayOfWeekMatchEither) {
  // The 13th, and every Friday. 2026-02-13 is a Friday; 2026-02-06, -20, -27 too.
  EXPECT_EQ(runs(cron("0 0 13 * fri"), "2026-02-01T00:00Z", 5),
            "2026-02-06T00:00:00.000Z,2026-02-13T00:00:00.000Z,2026-02-20T00:00:00.000Z,"
            "2026-02-27T00:00:00.000Z,2026-03-06T00:00:00.000Z");
  EXPECT_EQ(runs(cron("0 0 13 * fri"), "2026-04-01T00:00Z", 2),
            "2026-04-03T00:00:00.000Z,2026-04-10T00:00:00.000Z");
  EXPECT_EQ(runs(cron("0 0 13 * fri"), "2026-04-10T00:00Z", 1), "2026-04-13T00:00:00.000Z");
}

TEST(CronNextRun, ADayFieldStartingWithStarMustAlsoMatch) {
  // Days 1, 11, 21, 31 that are Mondays: 2026-06-01, then 2026-08-31.
  EXPECT_EQ(runs(cron("0 0 */10 * mon"), "2026-05-18T00:00Z", 2),
            "2026-06-01T00:00:00.000Z,2026-08-31T00:00:00.000Z");
  // Every Monday in any month.
  EXPECT_EQ(runs(cron("0 0 * * mon"), "2026-05-18T00:00Z", 1), "2026-05-25T00:00:00.000Z");
}

TEST(CronNextRun, MonthEndsSkipShortMonths) {
  EXPECT_EQ(runs(cron("0 0 31 * *"), "2026-01-31T00:00Z", 3),
            "2026-03-31T00:00:00.000Z,2026-05-31T00:00:00.000Z,2026-07-31T00:00:00.000Z");
  EXPECT_EQ(runs(cron("0 0 30 * *"), "2026-01-30T00:00Z", 2),
            "2026-03-30T00:00:00.000Z,2026-04-30T00:00:00.000Z");
}

TEST(CronNextRun, LeapDayWaitsForLeapYearsAndSkips2100) {
  EXPECT_EQ(runs(cron("0 0 29 2 *"), "2026-01-01T00:00Z", 2),
            "2028-02-29T00:00:00.000Z,2032-02-29T00:00:00.000Z");
  // 2100 is not a leap year: eight years between leap days.
  EXPECT_EQ(runs(cron("0 0 29 2 *"), "2097-01-01T00:00Z", 1), "2104-02-29T00:00:00.000Z");
}

TEST(CronNextRun, FollowsCivilTimeOfItsZone) {
  // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
  EXPECT_EQ(runs(cron("0 9 * * *", "Europe/Berlin"), "2026-01-15T12:00Z", 1),
            "2026-01-16T08:00:00.000Z");
  EXPECT_EQ(runs(cron("0 9 * * *", "Europe/Berlin"), "2026-07-15T12:00Z", 1),
            "2026-07-16T07:00:00.000Z");
  // Monday 00:30 in Berlin is still Sunday in UTC: day fields are read in the zone.
  EXPECT_EQ(runs(cron("30 0 * * mon", "Europe/Berlin"), "2026-05-18T00:00Z", 1),
            "2026-05-24T22:30:00.000Z");
}

TEST(CronDst, NewYorkSpringForwardRunsASkippedTimeOnceAtThreeOClock) {
  // 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC).
  const Schedule half_past_two = cron("30 2 * * *", "America/New_York");
  EXPECT_EQ(runs(half_past_two, "2026-03-07T12:00Z", 3),
            "2026-03-08T07:00:00.000Z,2026-03-09T06:30:00.000Z,2026-03-10T06:30:00.000Z");
  // Several times in the gap and 03:00 itself coalesce into one run.
  EXPECT_EQ(runs(cron("*/30 * * * *", "America/New_York"), "2026-03-08T06:00Z", 3),
            "2026-03-08T06:30:00.000Z,2026-03-08T07:00:00.000Z,2026-03-08T07:30:00.000Z");
}

TEST(CronDst, NewYorkFallBackRunsARepeatedTimeOnlyAtItsFirstOccurrence) {
  // 2026-11-01: 02:00 EDT becomes 01:00 EST (06:00 UTC); 01:00-01:59 happens twice.
  const Schedule half_past_one = cron("30 1 * * *", "America/New_York");
  EXPECT_EQ(runs(half_past_one, "2026-11-01T00:00Z", 2),
            "2026-11-01T05:30:00.000Z,2026-11-02T06:30:00.000Z");
  // Hourly: the repeated hour's second pass does not run again.
  EXPECT_EQ(runs(cron("30 * * * *", "America/New_York"), "2026-11-01T04:00Z", 3),
            "2026-11-01T04:30:00.000Z,2026-11-01T05:30:00.000Z,2026-11-01T07:30:00.000Z");
  // Asked from inside the second pass (01:10 EST), the next run is after it.
  EXPECT_EQ(runs(cron("30 * * * *", "America/New_York"), "2026-11-01T06:10Z", 1),
            "2026-11-01T07:30:00.000Z");
}

TEST(CronDst, BerlinSpringForwardAndFallBack) {
  const Schedule half_past_two = cron("30 2 * * *", "Europe/Berlin");
  // 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
  EXPECT_EQ(runs(half_past_two, "2026-03-28T12:00Z", 2),
            "2026-03-29T01:00:00.000Z,2026-03-30T00:30:00.000Z");
  // 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice.
  EXPECT_EQ(runs(half_past_two, "2026-10-24T12:00Z", 2),
            "2026-10-25T00:30:00.000Z,2026-10-26T01:30:00.000Z");
}

TEST(CronOverdue, AfterDowntimeTheNextRunIsAfterNowNotTheMissedSlots) {
  // Stored next run 2026-05-10T09:00Z; the daemon comes back on 2026-05-18 at 10:20.
  const Schedule daily = cron("0 9 * * *");
  const SysTime stored = utc("2026-05-10T09:00Z");
  const SysTime now = utc("2026-05-18T10:20Z");
  ASSERT_LE(stored, now);  // overdue: the scheduler runs it once, now
  EXPECT_EQ(show(next_run(daily, now)), "2026-05-19T09:00:00.000Z");
}

TEST(IntervalSchedule, NextRunIsTheIntervalAfterTheGivenTime) {
  const Schedule hourly = parse(ScheduleType::interval, "3600000");
  EXPECT_EQ(hourly.text(), "3600000");
  EXPECT_EQ(show(next_run(hourly, utc("2026-05-18T10:20:30.5Z"))), "2026-05-18T11:20:30.500Z");
  EXPECT_EQ(show(first_run(hourly, utc("2026-05-18T10:20Z"))), "2026-05-18T11:20:00.000Z");
  // Overdue by days: the next run counts from now, so it runs once.
  EXPECT_EQ(show(next_run(hourly, utc("2026-05-18T10:20Z"))), "2026-05-18T11:20:00.000Z");
  EXPECT_EQ(show(next_run(parse(ScheduleType::interval, "1000"), utc("2026-05-18T10:20Z"))),
            "2026-05-18T10:20:01.000Z");
}

TEST(IntervalSchedule, RejectsNonNumbersAndSaysWhatIsValid) {
  for (const char* text : {"", "abc", "-5000", "+5000", "1e6", "1000.0", "1 000", "60s"}) {
    EXPECT_EQ(error_of(ScheduleType::interval, text),
              "an interval schedule is a whole number of milliseconds, at least 1000 (1 second), "
              "e.g. '3600000' for hourly; got '" +
                  std::string(text) + "'")
        << text;
  }
}

TEST(IntervalSchedule, RejectsIntervalsThatWouldSpinOrOverflow) {
  EXPECT_EQ(error_of(ScheduleType::interval, "999"),
            "an interval schedule must be at least 1000 milliseconds (1 second); a shorter one "
            "would run the task non-stop; got '999'");
  EXPECT_EQ(error_of(ScheduleType::interval, "0"),
            "an interval schedule must be at least 1000 milliseconds (1 second); a shorter one "
            "would run the task non-stop; got '0'");
  EXPECT_EQ(error_of(ScheduleType::interval, "3155760000000"), "ok");
  EXPECT_EQ(error_of(ScheduleType::interval, "3155760000001"),
            "an interval schedule must be at most 3155760000000 milliseconds (100 years); got "
            "'3155760000001'");
  EXPECT_EQ(error_of(ScheduleType::interval, "99999999999999999999999"),
            "an interval schedule must be at most 3155760000000 milliseconds (100 years); got "
            "'99999999999999999999999'");
}

TEST(OnceSchedule, ATimeWithAZoneIsThatInstant) {
  EXPECT_EQ(show(first_run(parse(ScheduleType::once, "2026-12-24T17:00Z", "Europe/Berlin"),
                           utc("2026-01-01T00:00Z"))),
            "2026-12-24T17:00:00.000Z");
  EXPECT_EQ(show(first_run(parse(ScheduleType::once, "2026-12-24T18:00:00-05:00", "Europe/Berlin"),
                           utc("2026-01-01T00:00Z"))),
            "2026-12-24T23:00:00.000Z");
}

TEST(OnceSchedule, ATimeWithoutAZoneIsLocalTimeInTheZone) {
  const SysTime now = utc("2026-01-01T00:00Z");
  EXPECT_EQ(show(first_run(parse(ScheduleType::once, "2026-12-24T18:00", "Europe/Berlin"), now)),
            "2026-12-24T17:00:00.000Z");
  EXPECT_EQ(
      show(first_run(parse(ScheduleType::once, "2026-07-01 09:30:15.250", "Europe/Berlin"), now)),
      "2026-07-01T07:30:15.250Z");
  EXPECT_EQ(show(first_run(parse(ScheduleType::once, "2026-12-24", "America/New_York"), now)),
            "2026-12-24T05:00:00.000Z");
}

TEST(OnceSchedule, LocalTimesInDstChangesResolveToTheChangeOrTheFirstOccurrence) {
  const SysTime now = utc("2026-01-01T00:00Z");
  // Skipped: 02:30 on 2026-03-08 in New York means 03:00 EDT.
  EXPECT_EQ(show(first_run(parse(ScheduleType::once, "2026-03-08T02:30", "America/New_York"), now)),
            "2026-03-08T07:00:00.000Z");
  // Repeated: 02:30 on 2026-10-25 in Berlin means 02:30 CEST.
  EXPECT_EQ(show(first_run(parse(ScheduleType::once, "2026-10-25T02:30", "Europe/Berlin"), now)),
            "2026-10-25T00:30:00.000Z");
}

TEST(OnceSchedule, RunsOnceThenCompletes) {
  const Schedule once = parse(ScheduleType::once, "2026-12-24T17:00Z");
  EXPECT_EQ(show(next_run(once, utc("2026-12-24T16:59:59.999Z"))), "2026-12-24T17:00:00.000Z");
  EXPECT_EQ(show(next_run(once, utc("2026-12-24T17:00Z"))), "nullopt");
  EXPECT_EQ(show(next_run(once, utc("2026-12-24T17:05Z"))), "nullopt");
}

TEST(OnceSchedule, APastTimeIsStoredAsItIsSoItRunsOnceOverdue) {
  const Schedule once = parse(ScheduleType::once, "2026-05-01T12:00Z");
  const SysTime now = utc("2026-05-18T10:20Z");
  EXPECT_EQ(show(first_run(once, now)), "2026-05-01T12:00:00.000Z");
  EXPECT_EQ(show(next_run(once, now)), "nullopt");
}

TEST(OnceSchedule, RejectsGarbageWithAnExample) {
  for (const char* text : {"tomorrow", "2026-13-01T00:00", "2026-12-24T25:00", "24.12.2026 18:00",
                           "2026-12-24T18:00 Europe/Berlin", ""}) {
    EXPECT_EQ(error_of(ScheduleType::once, text),
              "a once schedule is an ISO-8601 date-time such as 2026-12-24T18:00 (local time) or "
              "2026-12-24T17:00Z; got '" +
                  std::string(text) + "'")
        << text;
  }
}

TEST(CronFirstRun, IsTheNextMatchAfterNow) {
  EXPECT_EQ(show(first_run(cron("0 9 * * *"), utc("2026-05-18T09:00Z"))),
            "2026-05-19T09:00:00.000Z");
}

}  // namespace
}  // namespace sb

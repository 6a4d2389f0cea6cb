#include "common/time.h"

#include <gtest/gtest.h>

#include <string>

namespace sb {
namespace {

using namespace std::chrono;

// The parsed time written back in the store's format, or "nullopt".
std::string normalised(std::string_view text) {
  const auto t = parse_iso8601(text);
  return t ? format_iso8601(*t) : "nullopt";
}

TEST(Time, FormatsUtcWithMillisecondsAndZ) {
  const SysTime t = sys_days{2026y / May / 18} + 10h + 20min + 30s + 7ms;
  EXPECT_EQ(format_iso8601(t), "2026-05-18T10:20:30.007Z");
  EXPECT_EQ(format_iso8601(SysTime{}), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_iso8601(sys_days{1969y / December / 31} + 23h + 59min + 59s + 999ms),
            "1969-12-31T23:59:59.999Z");
}

TEST(Time, NowIsTheSystemClockInWholeMilliseconds) {
  const auto before = floor<milliseconds>(system_clock::now());
  const SysTime now = now_utc();
  const auto after = system_clock::now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
}

TEST(Time, ParsesZuluAndNumericOffsets) {
  EXPECT_EQ(normalised("2026-05-18T10:20:30Z"), "2026-05-18T10:20:30.000Z");
  EXPECT_EQ(normalised("2026-05-18T10:20:30z"), "2026-05-18T10:20:30.000Z");
  EXPECT_EQ(normalised("2026-05-18T12:20:30+02:00"), "2026-05-18T10:20:30.000Z");
  EXPECT_EQ(normalised("2026-05-18T12:20:30+0200"), "2026-05-18T10:20:30.000Z");
  EXPECT_EQ(normalised("2026-05-18T05:20:30-0500"), "2026-05-18T10:20:30.000Z");
  EXPECT_EQ(normalised("2026-05-18T15:50:30+05:30"), "2026-05-18T10:20:30.000Z");
  EXPECT_EQ(normalised("2026-05-18T10:20:30-00:00"), "2026-05-18T10:20:30.000Z");
}

TEST(Time, OffsetsCanMoveTheDateAcrossDayMonthAndYear) {
  EXPECT_EQ(normalised("2026-01-01T01:00:00+02:00"), "2025-12-31T23:00:00.000Z");
  EXPECT_EQ(normalised("2028-02-28T23:30:00-01:00"), "2028-02-29T00:30:00.000Z");
}

TEST(Time, TimesWithoutAZoneAreUtc) {
  EXPECT_EQ(normalised("2026-05-18T10:20:30"), "2026-05-18T10:20:30.000Z");
  EXPECT_EQ(normalised("2026-05-18 10:20:30"), "2026-05-18T10:20:30.000Z");
  EXPECT_EQ(normalised("2026-05-18 10:20"), "2026-05-18T10:20:00.000Z");
  EXPECT_EQ(normalised("2026-05-18"), "2026-05-18T00:00:00.000Z");
}

TEST(Time, FractionsAreTruncatedToMilliseconds) {
  EXPECT_EQ(normalised("2026-05-18T10:20:30.123999Z"), "2026-05-18T10:20:30.123Z");
  EXPECT_EQ(normalised("2026-05-18T10:20:30.999999999+00:00"), "2026-05-18T10:20:30.999Z");
  EXPECT_EQ(normalised("2026-05-18T10:20:30.5"), "2026-05-18T10:20:30.500Z");
  EXPECT_EQ(normalised("2026-05-18T10:20:30.04Z"), "2026-05-18T10:20:30.040Z");
  EXPECT_EQ(normalised("2026-05-18T10:20:30,25Z"), "2026-05-18T10:20:30.250Z");
}

TEST(Time, LeapDaysExistOnlyInLeapYears) {
  EXPECT_EQ(normalised("2028-02-29T00:00:00Z"), "2028-02-29T00:00:00.000Z");
  EXPECT_EQ(normalised("2000-02-29"), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(normalised("2026-02-29"), "nullopt");
  EXPECT_EQ(normalised("1900-02-29"), "nullopt");
}

TEST(Time, RejectsOutOfRangeFields) {
  for (const char* text :
       {"2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-04-31T00:00:00Z",
        "2026-05-00T00:00:00Z", "2026-05-18T25:00:00Z", "2026-05-18T24:00:00Z",
        "2026-05-18T10:60:00Z", "2026-05-18T10:20:60Z", "2026-05-18T10:20:30+24:00",
        "2026-05-18T10:20:30+02:60", "0000-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"}) {
    EXPECT_EQ(normalised(text), "nullopt") << text;
  }
}

TEST(Time, RejectsMalformedText) {
  for (const char* text :
       {"", "yesterday", "2026-5-18", "2026/05/18", "20260518", "2026-05-18T", "2026-05-18T10",
        "2026-05-18T10:2", "2026-05-18T10:20:3", "2026-05-18T10:20:30.", "2026-05-18T10:20:30Zjunk",
        "2026-05-18T10:20:30+2", "2026-05-18T10:20:30+02:0", "2026-05-18T10:20:30 +02:00",
        " 2026-05-18", "2026-05-18 ", "2026-05-18X10:20:30", "+2026-05-18",
        "2026-05-18T10:20:30UTC"}) {
    EXPECT_EQ(normalised(text), "nullopt") << '"' << text << '"';
  }
}

TEST(Time, FormattedTimesParseBackAndSortInTimeOrder) {
  const SysTime earlier = sys_days{2026y / May / 18} + 9h + 59min + 59s + 999ms;
  const SysTime later = earlier + 1ms;
  const std::string a = format_iso8601(earlier);
  const std::string b = format_iso8601(later);
  EXPECT_EQ(parse_iso8601(a), earlier);
  EXPECT_EQ(parse_iso8601(b), later);
  EXPECT_LT(a, b);
  EXPECT_EQ(normalised("0000-01-01T00:00:00Z"), "0000-01-01T00:00:00.000Z");
  EXPECT_EQ(normalised("9999-12-31T23:59:59.999Z"), "9999-12-31T23:59:59.999Z");
}

}  // namespace
}  // namespace sb

//! Calendar dates as GTFS writes them (`YYYYMMDD`), the days of the week, and service
//! days: which date a moment of simulated time belongs to.

use serde::{Deserialize, Serialize};
use streamcity_core::TimestampMs;

/// A calendar date, stored as GTFS writes it: `20251123` is 23 November 2025.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Date(pub u32);

const MS_PER_DAY: i64 = 86_400_000;

impl Date {
    /// The date of `year`, `month` (1–12), `day` (1–31).
    pub const fn from_ymd(year: u32, month: u32, day: u32) -> Date {
        Date(year * 10_000 + month * 100 + day)
    }

    /// Year, month (1–12) and day (1–31).
    pub const fn ymd(self) -> (u32, u32, u32) {
        (self.0 / 10_000, self.0 / 100 % 100, self.0 % 100)
    }

    /// Whether it names a real day.
    pub fn is_valid(self) -> bool {
        let (y, m, d) = self.ymd();
        (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m) && (1900..=2999).contains(&y)
    }

    /// The date `days` days after 1970-01-01 (negative before it).
    pub fn from_days(days: i64) -> Date {
        // Civil-from-days (H. Hinnant's algorithm), on the proleptic Gregorian calendar.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date::from_ymd(year.clamp(0, 9_999) as u32, month as u32, day as u32)
    }

    /// Days after 1970-01-01.
    pub fn days(self) -> i64 {
        let (y, m, d) = self.ymd();
        let (y, m, d) = (i64::from(y) - i64::from(m <= 2), i64::from(m), i64::from(d));
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// As ISO 8601 writes it: `2014-06-02`.
    pub fn iso(self) -> String {
        let (y, m, d) = self.ymd();
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// The day of the week.
    pub fn weekday(self) -> Weekday {
        // 1970-01-01 was a Thursday.
        Weekday::ALL[(self.days() + 3).rem_euclid(7) as usize]
    }

    /// The service day a moment belongs to, in a place `utc_offset_min` minutes ahead
    /// of UTC. A service day runs from midnight to midnight local time here (GTFS times
    /// past 24:00 belong to the day before, which timetables handle themselves).
    pub fn of(ts: TimestampMs, utc_offset_min: i32) -> Date {
        let local = ts + i64::from(utc_offset_min) * 60_000;
        Date::from_days(local.div_euclid(MS_PER_DAY))
    }
}

impl std::fmt::Display for Date {
    /// `2025-11-23`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// A moment as ISO 8601 in UTC, to the second: `2025-11-23T17:05:03Z`.
pub fn iso8601(ts: TimestampMs) -> String {
    let secs = ts.div_euclid(1000);
    let (days, s) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        Date::from_days(days),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A time of a service day as GTFS writes it, `HH:MM:SS`, `seconds` after its start
/// (past `24:00:00` after midnight: never wrapped).
pub fn service_time(seconds: u32) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// A day of the week, Monday first as GTFS's `calendar.txt` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

impl Weekday {
    /// Monday to Sunday.
    pub const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// 0 for Monday to 6 for Sunday.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_both_ways_and_know_their_weekday() {
        assert_eq!(Date::from_days(0), Date(19_700_101));
        assert_eq!(Date(19_700_101).weekday(), Weekday::Thursday);
        let d = Date::from_ymd(2025, 11, 23);
        assert_eq!(Date::from_days(d.days()), d);
        assert_eq!(d.weekday(), Weekday::Sunday);
        assert_eq!(d.to_string(), "2025-11-23");
        assert_eq!(Date::from_ymd(2024, 2, 29).weekday(), Weekday::Thursday);
        for days in [-500_000, -1, 0, 59, 60, 11_016, 20_000, 2_932_896] {
            assert_eq!(Date::from_days(days).days(), days, "{days}");
        }
        assert!(Date(20_240_229).is_valid());
        assert!(!Date(20_230_229).is_valid() && !Date(20_231_301).is_valid());
    }

    #[test]
    fn moments_print_as_iso_8601() {
        assert_eq!(iso8601(1_763_940_600_000), "2025-11-23T23:30:00Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_service_day_follows_local_time() {
        // 2025-11-23T23:30:00Z is already the 24th an hour east of UTC.
        let ts = 1_763_940_600_000;
        assert_eq!(Date::of(ts, 0), Date(20_251_123));
        assert_eq!(Date::of(ts, 60), Date(20_251_124));
        assert_eq!(Date::of(ts, -600), Date(20_251_123));
    }
}

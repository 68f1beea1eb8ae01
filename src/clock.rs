//! Time: the clock the agent loop reads (behind a trait, so the loop is
//! tested against a fake one), and UTC calendar arithmetic for log
//! timestamps and `Retry-After` dates.
//!
//! The calendar is a few lines of Howard Hinnant's civil-date algorithms
//! instead of a date crate: we only ever need UTC, and a date crate costs
//! more bytes than the whole of this file.

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Time as the agent loop sees it: offsets from the agent's start.
pub trait Clock {
    /// Time since the agent started (monotonic).
    fn elapsed(&self) -> Duration;
    fn sleep(&self, nap: Duration);
    /// Wall-clock time, for status lines a person reads.
    fn wall(&self) -> SystemTime;
}

/// The real clock: monotonic offsets from when it was made.
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep(&self, nap: Duration) {
        thread::sleep(nap);
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) for a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-11-22T05:56:49Z`, the shape of a log timestamp.
pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `12:00:30`, UTC wall-clock time of day for status lines.
pub fn format_time_of_day(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let rem = secs % 86_400;
    format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parses an HTTP date in the three formats RFC 9110 (section 5.6.7) says
/// a recipient must accept: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
/// the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`, whose
/// two-digit year is taken as the nearest one not more than 50 years
/// ahead) and C's asctime (`Sun Nov  6 08:49:37 1994`).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (day, month, year, time) = match s.split_once(", ") {
        Some((_, rest)) if rest.contains('-') => rfc850(rest)?,
        Some((_, rest)) => {
            // IMF-fixdate: DD Mon YYYY HH:MM:SS GMT
            let mut parts = rest.split(' ');
            let (day, month, year, time) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            if parts.next()? != "GMT" || parts.next().is_some() {
                return None;
            }
            (day, month, four_digits(year)?, time)
        }
        None => {
            // asctime: Wdy Mon _D HH:MM:SS YYYY (a one-digit day is space-padded)
            let mut parts = s.split_whitespace();
            let _weekday = parts.next()?;
            let (month, day, time, year) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            (day, month, four_digits(year)?, time)
        }
    };
    let day: u32 = day.parse().ok()?;
    let month = month_number(month)?;
    let mut hms = time.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days)
        .ok()?
        .checked_mul(86_400)?
        .checked_add(h * 3600 + m * 60 + sec)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// A four-digit year; anything else is not a date we can trust (and a
/// huge one would overflow the arithmetic).
fn four_digits(year: &str) -> Option<i64> {
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    year.parse().ok()
}

/// `06-Nov-94 08:49:37 GMT`: day, month, the year as RFC 9110 reads two
/// digits (the nearest year that is not more than 50 years in the future,
/// counted from now), and the time.
fn rfc850(rest: &str) -> Option<(&str, &str, i64, &str)> {
    let mut parts = rest.split(' ');
    let (date, time) = (parts.next()?, parts.next()?);
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    let mut dmy = date.split('-');
    let (day, month, yy) = (dmy.next()?, dmy.next()?, dmy.next()?);
    if dmy.next().is_some() || yy.len() != 2 || !yy.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i64 = yy.parse().ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let this_year = civil_year(now);
    let mut year = this_year - this_year % 100 + yy;
    if year > this_year + 50 {
        year -= 100;
    }
    Some((day, month, year, time))
}

/// The year (UTC) of `secs` since the epoch.
fn civil_year(secs: u64) -> i64 {
    // 365.2425 days a year; exact enough for choosing a century.
    1970 + (secs / 31_556_952) as i64
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let i = MONTHS.iter().position(|m| *m == name)?;
    u32::try_from(i + 1).ok()
}

/// `1.5s`, `30s`, `4m10s`, `2h3m`: short human durations for log lines.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if secs < 60 {
        let tenths = (ms % 1000) / 100;
        return if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        };
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, s) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{m}m{s}s"),
        (_, _) if m == 0 => format!("{h}h"),
        _ => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_across_leap_years_and_eras() {
        for days in [-800_000, -1, 0, 1, 10_957, 11_016, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn rfc3339_formats_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_327_009);
        assert_eq!(format_rfc3339(t), "2026-11-22T05:56:49Z");
        assert_eq!(format_time_of_day(t), "05:56:49");
    }

    #[test]
    fn http_dates_in_all_three_formats_are_parsed() {
        let t = Some(UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), t);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), t);
        assert_eq!(parse_http_date("Sun Nov 6 08:49:37 1994"), t);
        // RFC 850's two-digit year: 94 is 1994, not more than 50 years ahead.
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), t);
        let soon = parse_http_date("Friday, 31-Dec-49 23:59:59 GMT").unwrap();
        assert!(
            soon > UNIX_EPOCH + Duration::from_secs(2_208_988_800),
            "2049, not 1949"
        );
    }

    #[test]
    fn malformed_http_dates_are_refused() {
        for s in [
            "",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 UTC",
            "Sun Nov  6 08:49:37 94",
            "Sun Nov  6 08:49:37 1994 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            // Absurd years: refused, never an overflow.
            "Sun, 06 Nov 99999999999999999 08:49:37 GMT",
            "Sun, 06 Nov 9223372036854775807 08:49:37 GMT",
            "Sun, 06 Nov -9223372036854775808 08:49:37 GMT",
            "Sun, 06 Nov 01994 08:49:37 GMT",
            "Sun, 06 Nov +994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 99999999999999999999:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(s), None, "{s}");
        }
    }

    #[test]
    fn dates_before_1970_and_far_ahead_are_handled() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1900 00:00:00 GMT"), None);
        let far = parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT").unwrap();
        assert_eq!(far, UNIX_EPOCH + Duration::from_secs(253_402_300_799));
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(250)), "4m10s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7380)), "2h3m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }
}

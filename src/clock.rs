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

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only date
/// format RFC 9110 lets a server send. The two obsolete formats are not
/// accepted: a server that sends them gets our ordinary backoff instead.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.trim().split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    // IMF-fixdate has a four-digit year; anything else is not a date we
    // can trust (and a huge one would overflow the arithmetic below).
    let year_text = parts.next()?;
    if year_text.len() != 4 || !year_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i64 = year_text.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days)
        .ok()?
        .checked_mul(86_400)?
        .checked_add(h * 3600 + m * 60 + sec)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
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
    fn http_date_in_imf_fixdate_is_parsed() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(t, Some(UNIX_EPOCH + Duration::from_secs(784_111_777)));
    }

    #[test]
    fn malformed_http_dates_are_refused() {
        for s in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
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

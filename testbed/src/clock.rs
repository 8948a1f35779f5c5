//! Timestamps for the emulators' answers: ISO 8601 for JSON, IMF-fixdate for HTTP
//! headers.
//!
//! Box writes `2012-12-12T10:53:43-08:00`; we write the same shape in UTC (`+00:00`),
//! which every SDK's date parser accepts. Edgio's delivery host sends `Last-Modified:
//! Mon, 17 Aug 2015 20:23:17 GMT` (RFC 9110 §5.6.7). Written by hand to avoid a date
//! crate for two functions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` as `YYYY-MM-DDTHH:MM:SS+00:00`. Times before 1970 print as the epoch.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix seconds of `t`; times before 1970 give 0.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// `t` as an HTTP date, `Sun, 06 Nov 1994 08:49:37 GMT`. Times before 1970 print as
/// the epoch.
pub(crate) fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_secs(t);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[(days % 7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (non-negative only).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00+00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // leap year, Feb 29
        assert_eq!(iso8601(t), "2024-02-29T23:59:59+00:00");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601(t), "2000-02-29T00:00:00+00:00");
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        // The seed's HEAD answer: Last-Modified of an upload made at 1439842997.
        let t = UNIX_EPOCH + Duration::from_secs(1_439_842_997);
        assert_eq!(http_date(t), "Mon, 17 Aug 2015 20:23:17 GMT");
        assert_eq!(unix_secs(t), 1_439_842_997);
    }
}

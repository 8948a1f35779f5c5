//! The `timestamp` header: RFC 3339 date-times in, UTC milliseconds out.
//!
//! The service types the header as an OpenAPI `date-time` (RFC 3339) and keeps
//! timestamps "as strings in ISO 8601 format in the UTC timezone" (filtering page), so a
//! `+02:00` value is found by searching for its `Z` form. The emulator therefore
//! parses the header to epoch milliseconds and writes every time back as
//! `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form of the spec's examples. Hand-written: one parser
//! and one formatter do not justify a date crate.

/// Milliseconds since the Unix epoch of an RFC 3339 date-time
/// (`2024-05-01T10:20:30.123+02:00`, `...Z`; seconds and offset required, fraction
/// optional, `T`/`Z` in either case). `None` if it is not one or names no real instant.
pub(crate) fn parse_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0i64;
    if sep(at, b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        // Only milliseconds are kept; finer digits are truncated.
        let kept = digits.min(3);
        millis = num(at + 1, kept)? * 10i64.pow(3 - kept as u32);
        at += 1 + digits;
    }
    let offset_min = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// `ms` (since the epoch, may be negative) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn format_ms(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic
/// Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_normalises_to_utc() {
        let cases = [
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01T00:00:00.5Z", 500),
            ("2018-07-27T17:05:31.208Z", 1_532_711_131_208),
            ("2018-07-27t19:05:31.208123+02:00", 1_532_711_131_208),
            ("2024-02-29T23:59:59-01:30", 1_709_256_599_000),
            ("1969-12-31T23:59:59.999Z", -1),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_ms(text), Some(ms), "{text}");
        }
        assert_eq!(format_ms(1_532_711_131_208), "2018-07-27T17:05:31.208Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn refuses_what_is_not_a_date_time() {
        for bad in [
            "",
            "yesterday",
            "2018-07-27",
            "2018-07-27T17:05:31",
            "2018-07-27T17:05Z",
            "2018-07-27 17:05:31Z",
            "2018-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2018-13-01T00:00:00Z",
            "2018-07-27T24:00:00Z",
            "2018-07-27T17:60:00Z",
            "2018-07-27T17:05:60Z",
            "2018-07-27T17:05:31.Z",
            "2018-07-27T17:05:31+0200",
            "2018-07-27T17:05:31+24:00",
            "2018-07-27T17:05:31Zjunk",
            "+018-07-27T17:05:31Z",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips_every_day_of_a_leap_cycle() {
        for day in (-800..146_097 + 800).step_by(7) {
            let ms = day * 86_400_000 + 45_296_789;
            assert_eq!(parse_ms(&format_ms(ms)), Some(ms));
        }
    }
}

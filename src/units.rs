//! Human units in the config: sizes ("8MiB"), durations ("300ms") and rates ("2MiB/s").
//!
//! Each type deserializes from a string (or a bare integer: bytes, or whole seconds),
//! so a bad unit is reported by the TOML parser with the key, line and column.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A byte count written as `"8MiB"`, `"512k"`, `"1GB"` or a plain integer of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A duration written as `"2s"`, `"300ms"`, `"5m"`, `"1h"`, `"1.5s"` or whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

/// Bytes per second: `"2MiB/s"`, `"500kB/s"`, `"0"` (unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRate(pub u64);

/// Parses `"8MiB"`-style sizes. Decimal (k, M, G: powers of 1000) and binary (Ki, Mi,
/// Gi: powers of 1024) prefixes are both accepted because vendors document limits in
/// both ("20 MB" minimum at Box, "5 MiB" ranges at Exosite).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num = num.replace('_', "");
    if num.is_empty() {
        return Err(format!(
            "{text:?} is not a size: expected a number such as \"8MiB\""
        ));
    }
    let mult: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "k" | "K" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "{text:?} has an unknown size unit {other:?}: use B, kB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size: {num:?} is not a number"))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    if bytes.fract() != 0.0 {
        return Err(format!("{text:?} is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Parses `"300ms"`-style durations. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "{text:?} is not a duration: expected e.g. \"2s\" or \"300ms\""
        ));
    }
    let ms_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" | "sec" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "{text:?} has an unknown duration unit {other:?}: use ms, s, m, h or d"
            ));
        }
    };
    let out_of_range = || format!("{text:?} is out of range");
    // A whole number is counted exactly; only a fraction goes through floats.
    if let Ok(whole) = num.parse::<u64>() {
        return whole
            .checked_mul(ms_per_unit)
            .map(Duration::from_millis)
            .ok_or_else(out_of_range);
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: {num:?} is not a number"))?;
    Duration::try_from_secs_f64(value * ms_per_unit as f64 / 1000.0).map_err(|_| out_of_range())
}

/// Parses `"2MiB/s"`; `"0"` means unlimited. The `/s` suffix is optional.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    parse_size(t).map_err(|e| format!("{e} (a rate is a size per second, e.g. \"2MiB/s\")"))
}

/// Accepts a string with units or a bare non-negative integer.
fn from_str_or_int<'de, D, T>(
    d: D,
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
    from_int: fn(u64) -> T,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T> {
        what: &'static str,
        parse: fn(&str) -> Result<T, String>,
        from_int: fn(u64) -> T,
    }
    impl<T> de::Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.what)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            u64::try_from(v)
                .map(self.from_int)
                .map_err(|_| E::custom(format!("{v} is negative")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            Ok((self.from_int)(v))
        }
    }
    d.deserialize_any(V {
        what,
        parse,
        from_int,
    })
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_or_int(d, "a size such as \"8MiB\"", parse_size, |n| n).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_or_int(
            d,
            "a duration such as \"2s\"",
            parse_duration,
            Duration::from_secs,
        )
        .map(HumanDuration)
    }
}

impl<'de> Deserialize<'de> for ByteRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_or_int(d, "a rate such as \"2MiB/s\" or \"0\"", parse_rate, |n| n).map(ByteRate)
    }
}

/// Formats a byte count for people: `8.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("8 MiB"), Ok(8 << 20));
        assert_eq!(parse_size("20MB"), Ok(20_000_000));
        assert_eq!(parse_size("512k"), Ok(512_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert!(
            parse_size("8MiBs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("0.5B").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("2 fortnights").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("2MiB/s"), Ok(2 << 20));
        assert_eq!(parse_rate("500kB/s"), Ok(500_000));
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn deserialize_from_toml() {
        #[derive(Deserialize)]
        struct T {
            a: ByteSize,
            b: HumanDuration,
            c: ByteRate,
            d: ByteSize,
        }
        let t: T = toml::from_str("a = \"4MiB\"\nb = \"250ms\"\nc = \"1MiB/s\"\nd = 17\n")
            .expect("valid units");
        assert_eq!(t.a, ByteSize(4 << 20));
        assert_eq!(t.b, HumanDuration(Duration::from_millis(250)));
        assert_eq!(t.c, ByteRate(1 << 20));
        assert_eq!(t.d, ByteSize(17));
        let err = toml::from_str::<T>("a = \"4Mb?\"\nb = \"1s\"\nc = \"0\"\nd = 1\n")
            .err()
            .expect("bad unit is refused");
        let msg = err.to_string();
        assert!(msg.contains("line 1"), "{msg}");
        assert!(msg.contains("unknown size unit"), "{msg}");
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(8 << 20), "8.0 MiB");
    }
}

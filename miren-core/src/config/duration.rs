//! Durations as app.toml writes them: `"30s"`, `"10m"`, `"1h30m"`, `"1.5h"`.
//!
//! The syntax is Go's `time.ParseDuration` (what Miren users already write), minus
//! negative values. Units a user might guess but that are ambiguous or too coarse
//! (`d`, `w`, `M`, `y`) get their own error so the message can say what to write.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DurationError {
    /// `""`.
    #[error("the duration is empty")]
    Empty,
    /// `"30"`: a number without a unit.
    #[error("`{0}` has no unit")]
    NoUnit(String),
    /// `"1M"`: months have no fixed length.
    #[error("months (`M`) are not a duration unit")]
    Months,
    /// `"2d"`, `"1w"`, `"1y"`.
    #[error("`{0}` is not a duration unit")]
    CoarseUnit(String),
    /// Any other unit.
    #[error("unknown unit `{0}`")]
    UnknownUnit(String),
    /// Anything else that doesn't parse (`"-5s"`, `"s"`, `"1..5s"`).
    #[error("`{0}` is not a duration")]
    Invalid(String),
    /// Too large to represent.
    #[error("the duration is too long")]
    Overflow,
}

impl DurationError {
    /// What to write instead.
    pub fn help(&self) -> String {
        let units = "units are ms, s, m and h, and they combine: \"90s\", \"10m\", \"1h30m\"";
        match self {
            DurationError::NoUnit(n) => {
                format!("add a unit: \"{n}s\" is {n} seconds, \"{n}m\" {n} minutes")
            }
            DurationError::Months => "write months as hours, e.g. \"720h\" for 30 days".into(),
            DurationError::CoarseUnit(u) if u == "d" => {
                "write days as hours: \"24h\" is one day".into()
            }
            DurationError::CoarseUnit(_) => "write it in hours, e.g. \"168h\" for a week".into(),
            _ => units.into(),
        }
    }
}

/// Parses `s` as a duration.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(DurationError::NoUnit(text.to_string()));
    }
    let invalid = || DurationError::Invalid(s.to_string());
    let mut rest = text;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() {
            return Err(invalid());
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit = unit.trim();
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(DurationError::NoUnit(text.to_string())),
            "M" | "mo" | "mon" | "month" | "months" => return Err(DurationError::Months),
            "d" | "w" | "y" => return Err(DurationError::CoarseUnit(unit.to_string())),
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
            return Err(invalid());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| DurationError::Overflow)?
        };
        let mut part = whole.checked_mul(per_unit).ok_or(DurationError::Overflow)?;
        // Fractions: keep 9 digits, plenty below a nanosecond for every unit.
        let mut scale = per_unit;
        for digit in frac.bytes().take(18) {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        nanos = nanos.checked_add(part).ok_or(DurationError::Overflow)?;
        rest = tail;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    // The remainder is below 1e9, so it always fits.
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// Formats a duration the way it would be written in app.toml (`"1h30m"`, `"15m"`,
/// `"1.5s"`), so the resolved config reads like the file.
pub struct Display(pub Duration);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let total = d.as_secs();
        let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
        let nanos = d.subsec_nanos();
        if total == 0 {
            return if nanos.is_multiple_of(1_000_000) {
                write!(f, "{}ms", nanos / 1_000_000)
            } else {
                write!(f, "{nanos}ns")
            };
        }
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || nanos > 0 {
            if nanos > 0 {
                let frac = format!("{nanos:09}");
                write!(f, "{s}.{}s", frac.trim_end_matches('0'))?;
            } else {
                write!(f, "{s}s")?;
            }
        }
        Ok(())
    }
}

/// `Option<Duration>` as an optional duration string.
pub mod serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `Some` like [`super::serde_str`], `None` as null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serde_str::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Reads what [`serialize`] writes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| super::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// serde as a duration string, for the resolved config.
pub mod serde_str {
    use super::{Display, parse};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes `"15m"`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Display(*d))
    }

    /// Reads `"15m"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> f64 {
        parse(s).map(|d| d.as_secs_f64()).unwrap_or(-1.0)
    }

    #[test]
    fn the_documented_forms_parse() {
        assert_eq!(secs("30s"), 30.0);
        assert_eq!(secs("10m"), 600.0);
        assert_eq!(secs("1h30m"), 5400.0);
        assert_eq!(secs("1.5h"), 5400.0);
        assert_eq!(secs("500ms"), 0.5);
        assert_eq!(secs("2m3.25s"), 123.25);
    }

    #[test]
    fn months_bare_numbers_and_days_are_rejected_with_a_reason() {
        assert_eq!(parse("1M"), Err(DurationError::Months));
        assert_eq!(parse("30"), Err(DurationError::NoUnit("30".into())));
        assert_eq!(parse("2d"), Err(DurationError::CoarseUnit("d".into())));
        assert_eq!(parse("5x"), Err(DurationError::UnknownUnit("x".into())));
        assert!(matches!(parse("-5s"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("1.2.3s"), Err(DurationError::Invalid(_))));
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(
            parse("99999999999999999999999h"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formatting_reads_like_the_file() {
        let show = |s: u64| Display(Duration::from_secs(s)).to_string();
        assert_eq!(show(900), "15m");
        assert_eq!(show(5400), "1h30m");
        assert_eq!(show(3661), "1h1m1s");
        assert_eq!(Display(Duration::from_millis(1500)).to_string(), "1.5s");
        assert_eq!(Display(Duration::from_millis(250)).to_string(), "250ms");
    }

    #[test]
    fn formatting_round_trips() {
        for s in ["15m", "1h30m", "1.5s", "250ms", "2h", "45s"] {
            let d = parse(s).unwrap_or_default();
            assert_eq!(Display(d).to_string(), s);
        }
    }
}

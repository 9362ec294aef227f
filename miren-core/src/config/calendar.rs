//! systemd's calendar events (`OnCalendar=`, `man systemd.time`), for scheduled tasks.
//!
//! No maintained Rust crate parses them, and upstream Miren's users write them, so this
//! is the documented grammar: `[weekdays] [date] [time] [UTC]`, where the weekdays are
//! `Mon`, `Mon,Fri` or `Mon..Fri`; the date is `[year-]month-day` with `~` counting
//! days from the month's end; the time is `hour:minute[:second]`; each component is
//! `*`, a value, a list (`1,15`), a range (`8..17`) or a repetition (`0/15`,
//! `8..17/2`); and the shorthands `minutely`, `hourly`, `daily`, `weekly`, `monthly`,
//! `quarterly`, `semiannually`, `yearly`/`annually`. Times are UTC (the server's
//! schedule doesn't move with anybody's daylight saving); another time zone is refused
//! rather than silently read as UTC. Tests check the next times against
//! `systemd-analyze calendar` itself.

use std::fmt;

/// A parsed calendar event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Allowed weekdays, bit 0 = Monday; all set when not written.
    weekdays: u8,
    years: Field,
    months: Field,
    days: Field,
    /// `days` counts back from the month's last day (`~`).
    from_end: bool,
    hours: Field,
    minutes: Field,
    seconds: Field,
}

/// One component: `*` or a list of ranges with steps.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Any,
    List(Vec<Span>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
    step: u32,
}

impl Field {
    fn matches(&self, v: u32) -> bool {
        match self {
            Field::Any => true,
            Field::List(spans) => spans
                .iter()
                .any(|s| v >= s.start && v <= s.end && (v - s.start).is_multiple_of(s.step)),
        }
    }
}

/// Why an expression isn't a calendar event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarError(String);

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CalendarError {}

fn err(msg: impl Into<String>) -> CalendarError {
    CalendarError(msg.into())
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Parses an `OnCalendar=` expression.
pub fn parse(expr: &str) -> Result<Calendar, CalendarError> {
    let trimmed = expr.trim();
    let expanded = match trimmed.to_ascii_lowercase().as_str() {
        "minutely" => "*-*-* *:*:00",
        "hourly" => "*-*-* *:00:00",
        "daily" => "*-*-* 00:00:00",
        "weekly" => "Mon *-*-* 00:00:00",
        "monthly" => "*-*-01 00:00:00",
        "quarterly" => "*-01,04,07,10-01 00:00:00",
        "semiannually" | "semi-annually" => "*-01,07-01 00:00:00",
        "yearly" | "annually" => "*-01-01 00:00:00",
        _ => trimmed,
    };
    let mut tokens: Vec<&str> = expanded.split_whitespace().collect();
    if tokens.is_empty() {
        return Err(err("empty calendar expression"));
    }
    if let Some(last) = tokens.last()
        && last
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && tokens.len() > 1
        && !is_weekday_list(last)
    {
        if last.eq_ignore_ascii_case("utc") {
            tokens.pop();
        } else {
            return Err(err(format!(
                "time zone `{last}`: schedules run in UTC here; write the time in UTC (or end with `UTC`)"
            )));
        }
    }
    let mut cal = Calendar {
        weekdays: 0x7f,
        years: Field::Any,
        months: Field::Any,
        days: Field::Any,
        from_end: false,
        hours: Field::List(vec![Span::one(0)]),
        minutes: Field::List(vec![Span::one(0)]),
        seconds: Field::List(vec![Span::one(0)]),
    };
    let mut rest = tokens.as_slice();
    if let Some((first, more)) = rest.split_first()
        && first.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        cal.weekdays = weekdays(first)?;
        rest = more;
    }
    let (mut date, mut time) = (None, None);
    for t in rest {
        if t.contains(':') && time.is_none() {
            time = Some(*t);
        } else if (t.contains('-') || t.contains('~')) && date.is_none() && time.is_none() {
            date = Some(*t);
        } else {
            return Err(err(format!(
                "`{t}` is not a weekday, a date (`*-*-01`) or a time (`03:00`)"
            )));
        }
    }
    if let Some(d) = date {
        parse_date(d, &mut cal)?;
    }
    if let Some(t) = time {
        parse_time(t, &mut cal)?;
    }
    Ok(cal)
}

fn is_weekday_list(s: &str) -> bool {
    weekdays(s).is_ok()
}

impl Span {
    fn one(v: u32) -> Self {
        Span {
            start: v,
            end: v,
            step: 1,
        }
    }
}

fn weekday(s: &str) -> Result<u32, CalendarError> {
    let lower = s.to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|w| {
            lower.len() >= 3 && w.starts_with(&lower) && (lower.len() == 3 || lower == *w)
        })
        .map(|i| i as u32)
        .ok_or_else(|| err(format!("`{s}` is not a weekday (Mon, Tue, … or Monday, …)")))
}

fn weekdays(s: &str) -> Result<u8, CalendarError> {
    let mut bits = 0u8;
    for part in s.split(',') {
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (weekday(a)?, weekday(b)?);
                if b < a {
                    return Err(err(format!(
                        "weekday range `{part}` runs backwards (weeks start on Monday): split it, e.g. `Mon,Wed..Sun`"
                    )));
                }
                for d in a..=b {
                    bits |= 1 << d;
                }
            }
            None => bits |= 1 << weekday(part)?,
        }
    }
    Ok(bits)
}

fn parse_date(s: &str, cal: &mut Calendar) -> Result<(), CalendarError> {
    let (ym, day, from_end) = match s.rsplit_once('~') {
        Some((ym, day)) => (ym, day, true),
        None => match s.rsplit_once('-') {
            Some((ym, day)) => (ym, day, false),
            None => return Err(err(format!("`{s}` is not a date: write year-month-day"))),
        },
    };
    let (year, month) = match ym.split_once('-') {
        Some((y, m)) => (Some(y), m),
        None => (None, ym),
    };
    if let Some(y) = year {
        cal.years = field(y, 1970, 2199, "year")?;
    }
    cal.months = field(month, 1, 12, "month")?;
    cal.days = field(day, 1, 31, "day")?;
    cal.from_end = from_end;
    Ok(())
}

fn parse_time(s: &str, cal: &mut Calendar) -> Result<(), CalendarError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (*h, *m, "00"),
        [h, m, s] => (*h, *m, *s),
        _ => {
            return Err(err(format!(
                "`{s}` is not a time: write hour:minute[:second]"
            )));
        }
    };
    cal.hours = field(h, 0, 23, "hour")?;
    cal.minutes = field(m, 0, 59, "minute")?;
    cal.seconds = field(sec, 0, 59, "second")?;
    Ok(())
}

fn number(s: &str, min: u32, max: u32, what: &str) -> Result<u32, CalendarError> {
    let n: u32 = s
        .parse()
        .map_err(|_| err(format!("`{s}` is not a {what}")))?;
    if n < min || n > max {
        return Err(err(format!("{what} {n} is out of range ({min} to {max})")));
    }
    Ok(n)
}

fn field(s: &str, min: u32, max: u32, what: &str) -> Result<Field, CalendarError> {
    if s == "*" {
        return Ok(Field::Any);
    }
    let mut spans = Vec::new();
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, step)) => {
                let step: u32 = step.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    err(format!("`{step}` is not a repetition (a whole number > 0)"))
                })?;
                (r, Some(step))
            }
            None => (part, None),
        };
        if range == "*" {
            return Err(err(format!(
                "`{part}`: a repetition starts from a value, e.g. `0/{}`",
                step.unwrap_or(1)
            )));
        }
        let (start, end) = match range.split_once("..") {
            Some((a, b)) => (number(a, min, max, what)?, number(b, min, max, what)?),
            None => {
                let v = number(range, min, max, what)?;
                (v, if step.is_some() { max } else { v })
            }
        };
        if end < start {
            return Err(err(format!("{what} range `{range}` ends before it starts")));
        }
        spans.push(Span {
            start,
            end,
            step: step.unwrap_or(1),
        });
    }
    Ok(Field::List(spans))
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day; proleptic Gregorian) of a day count since
/// 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Calendar {
    /// The first time it elapses strictly after `after` (Unix seconds, UTC); `None`
    /// when it never does again (a date in the past, or the 31st of February).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let start = after + 1;
        let first_day = start.div_euclid(86_400);
        let mut from = start.rem_euclid(86_400) as u32;
        // Leap days recur within 8 years; nothing else needs that long.
        for day in first_day..first_day + 366 * 8 + 2 {
            if self.day_matches(day)
                && let Some(t) = self.first_time_from(from)
            {
                return Some(day * 86_400 + i64::from(t));
            }
            from = 0;
        }
        None
    }

    fn day_matches(&self, day: i64) -> bool {
        let weekday = (day + 3).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        if self.weekdays & (1 << weekday) == 0 {
            return false;
        }
        let (y, m, d) = civil_from_days(day);
        let Ok(year) = u32::try_from(y) else {
            return false;
        };
        let d = if self.from_end {
            days_in_month(y, m) - d + 1
        } else {
            d
        };
        self.years.matches(year) && self.months.matches(m) && self.days.matches(d)
    }

    /// The first second of a day at or after `from` (seconds into it) that matches.
    fn first_time_from(&self, from: u32) -> Option<u32> {
        let (h0, m0, s0) = (from / 3600, from / 60 % 60, from % 60);
        for h in h0..24 {
            if !self.hours.matches(h) {
                continue;
            }
            let m_start = if h == h0 { m0 } else { 0 };
            for m in m_start..60 {
                if !self.minutes.matches(m) {
                    continue;
                }
                let s_start = if h == h0 && m == m0 { s0 } else { 0 };
                if let Some(s) = (s_start..60).find(|s| self.seconds.matches(*s)) {
                    return Some(h * 3600 + m * 60 + s);
                }
            }
        }
        None
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC, for messages and tests.
pub fn format_utc(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) as Unix seconds.
pub fn parse_utc(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('-').map(str::parse::<u32>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(str::parse::<i64>);
    let (h, min, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    Some(days_from_civil(i64::from(y), m, day) * 86_400 + h * 3600 + min * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(expr: &str, base: &str, n: usize) -> Vec<String> {
        let cal = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let mut t = parse_utc(base).unwrap_or_else(|| panic!("bad base {base}"));
        let mut out = Vec::new();
        for _ in 0..n {
            match cal.next_after(t) {
                Some(x) => {
                    out.push(format_utc(x));
                    t = x;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn civil_dates_round_trip() {
        for day in [-1_000_000i64, -1, 0, 1, 59, 10_956, 20_789, 3_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(
            parse_utc("2026-12-02 10:07:03").map(format_utc).as_deref(),
            Some("2026-12-02 10:07:03")
        );
    }

    #[test]
    fn systemds_documented_examples_give_its_next_times() {
        // Each from `systemd-analyze calendar --iterations=3 --base-time=…` (systemd 252).
        let base = "2026-12-02 10:07:03";
        assert_eq!(
            next("Mon *-*-* 03:00:00", base, 2),
            ["2026-12-07 03:00:00", "2026-12-14 03:00:00"]
        );
        assert_eq!(
            next("*:0/15", base, 3),
            [
                "2026-12-02 10:15:00",
                "2026-12-02 10:30:00",
                "2026-12-02 10:45:00"
            ]
        );
        assert_eq!(
            next("daily", base, 2),
            ["2026-12-03 00:00:00", "2026-12-04 00:00:00"]
        );
        assert_eq!(
            next("*-*~03", base, 3),
            [
                "2026-12-29 00:00:00",
                "2027-01-29 00:00:00",
                "2027-02-26 00:00:00"
            ]
        );
        assert_eq!(
            next("Mon..Fri 8..17/2:00", base, 3),
            [
                "2026-12-02 12:00:00",
                "2026-12-02 14:00:00",
                "2026-12-02 16:00:00"
            ]
        );
        assert_eq!(
            next("Sat,Sun 12:00 UTC", base, 2),
            ["2026-12-05 12:00:00", "2026-12-06 12:00:00"]
        );
        assert_eq!(next("*-02-29 00:00:00", base, 1), ["2028-02-29 00:00:00"]);
    }

    #[test]
    fn what_systemd_refuses_is_refused() {
        for bad in [
            "",
            "*:*/15",
            "Funday",
            "25:00",
            "*-13-01",
            "12:00 Europe/Berlin",
            "1..x:00",
            "10..5:00",
            "*-*-* 00:00:00 junk",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let e = parse("12:00 CET")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("UTC"), "{e}");
    }

    #[test]
    fn a_date_that_never_comes_has_no_next_time() {
        assert_eq!(
            next("2020-01-01", "2026-01-01 00:00:00", 1),
            Vec::<String>::new()
        );
        assert_eq!(
            next("*-02-30", "2026-01-01 00:00:00", 1),
            Vec::<String>::new()
        );
    }
}

//! Tables and times as people read them.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use miren_core::runtime::now_millis;

/// `--timestamps`: times in tables as RFC 3339 instead of `5s ago`.
static ABSOLUTE: AtomicBool = AtomicBool::new(false);

/// Shows times in tables as RFC 3339 from now on.
pub fn absolute_times(on: bool) {
    ABSOLUTE.store(on, Ordering::Relaxed);
}

/// Prints rows under headers, columns padded to their widest cell.
pub fn print(headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    std::io::stdout()
        .lock()
        .write_all(render(headers, rows).as_bytes())
}

/// Rows under headers, columns padded to their widest cell, a line each.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    c.to_string()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// `5s`, `3m`, `2h`, `1d`.
pub fn duration_short(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// `5s ago` for a Unix-ms time (RFC 3339 with `--timestamps`).
pub fn ago(ms: u64) -> String {
    if ABSOLUTE.load(Ordering::Relaxed) {
        return rfc3339(ms);
    }
    format!(
        "{} ago",
        duration_short(now_millis().saturating_sub(ms) / 1000)
    )
}

/// `5s` for how long ago a Unix-ms time was (an AGE column; RFC 3339 with
/// `--timestamps`).
pub fn age(ms: u64) -> String {
    if ABSOLUTE.load(Ordering::Relaxed) {
        return rfc3339(ms);
    }
    duration_short(now_millis().saturating_sub(ms) / 1000)
}

/// `2026-12-02T05:00:06.123Z` for a Unix-ms time.
pub fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Fields of the JSON the CLI prints that hold a time.
const TIME_FIELDS: &[&str] = &[
    "created", "updated", "deployed", "time", "retry_at", "started", "finished", "next",
];

/// `value` with its times (Unix ms, in the fields that hold one) as RFC 3339 UTC: the
/// API counts milliseconds, people and scripts read dates.
pub fn json_times(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Array(a) => Value::Array(a.into_iter().map(json_times).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    let v = match v.as_u64() {
                        Some(ms) if TIME_FIELDS.contains(&k.as_str()) => Value::String(rfc3339(ms)),
                        _ => json_times(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        v => v,
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for a Unix-ms time.
pub fn timestamp(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .trim_end_matches('Z')
        .replace('T', " ")
}

/// `-` for nothing.
pub fn or_dash(s: Option<&str>) -> String {
    s.unwrap_or("-").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_people_write_them() {
        assert_eq!(duration_short(5), "5s");
        assert_eq!(duration_short(180), "3m");
        assert_eq!(duration_short(7200), "2h");
        assert_eq!(duration_short(86400 * 3), "3d");
        assert_eq!(timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(ago(now_millis() - 5_000), "5s ago");
        assert_eq!(rfc3339(1_000), "1970-01-01T00:00:01.000Z");
        let v = json_times(serde_json::json!([{"created": 1000, "restarts": 3, "x": {"time": 0}}]));
        assert_eq!(
            v,
            serde_json::json!([{"created": "1970-01-01T00:00:01.000Z", "restarts": 3, "x": {"time": "1970-01-01T00:00:00.000Z"}}])
        );
    }
}

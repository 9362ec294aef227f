//! Tables and times as people read them.

use std::io::Write;

use miren_core::runtime::now_millis;

/// Prints rows under headers, columns padded to their widest cell.
pub fn print(headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = std::io::stdout().lock();
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
    writeln!(out, "{}", line(headers.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
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

/// `5s ago` for a Unix-ms time.
pub fn ago(ms: u64) -> String {
    format!(
        "{} ago",
        duration_short(now_millis().saturating_sub(ms) / 1000)
    )
}

/// `5s` for how long ago a Unix-ms time was (an AGE column).
pub fn age(ms: u64) -> String {
    duration_short(now_millis().saturating_sub(ms) / 1000)
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
    }
}

//! Scheduled tasks' calendar events give the next times systemd itself gives:
//! `systemd-analyze calendar` (Debian's systemd) is the oracle.

use std::process::Command;

use miren_core::config::calendar;

/// Expressions from `man systemd.time` and what users write, over several base times
/// (month ends, a leap year, a weekday boundary).
const EXPRESSIONS: &[&str] = &[
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "semiannually",
    "yearly",
    "annually",
    "Mon *-*-* 03:00:00",
    "*:0/15",
    "*:00/10:30",
    "Mon..Fri 8..17/2:00",
    "Sat,Sun 12:00 UTC",
    "Fri *-*-13 13:13",
    "*-*-01 04:00",
    "*-*~01",
    "*-02~03 09:00",
    "*-02-29",
    "2027-01-01",
    "2027-*-* 23:59:59",
    "*-1,4,7,10-1 00:00",
    "Tue,Thu *-*-1..7 10:00",
    "12:30",
    "*-*-* 0/6:00:00",
    "Sunday 23:00",
    "*-*-* 08:15:00 UTC",
    "monday..wednesday 06:30",
    "*:5/20:07",
];

const REFUSED: &[&str] = &[
    "*:*/15",
    "Funday 10:00",
    "25:00",
    "*-13-01",
    "10..5:00",
    "12:61",
    "Wed..Mon 00:00",
];

const BASES: &[&str] = &[
    "2026-12-02 10:07:03",
    "2027-02-27 23:59:59",
    "2028-02-28 12:00:00",
    "2026-12-31 23:30:00",
];

fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("systemd-analyze");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "systemd-analyze is missing: CI installs Debian's `systemd` for this test"
    );
    eprintln!("skipped: systemd-analyze not installed (apt-get install systemd)");
    None
}

/// systemd's next `n` elapses of `expr` after `base`, as `YYYY-MM-DD HH:MM:SS`; `Err`
/// with its message when it refuses the expression.
fn systemd_next(bin: &str, expr: &str, base: &str, n: usize) -> Result<Vec<String>, String> {
    let out = Command::new(bin)
        .env("TZ", "UTC")
        .args([
            "calendar",
            &format!("--iterations={n}"),
            &format!("--base-time={base} UTC"),
            expr,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| l.contains("Next elapse:") || l.contains("Iter. #"))
        .filter_map(|l| {
            // "    Next elapse: Mon 2026-12-07 03:00:00 UTC"
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words
                .iter()
                .position(|w| w.len() == 10 && w.as_bytes()[4] == b'-')?;
            Some(format!("{} {}", words[at], words.get(at + 1)?))
        })
        .collect())
}

fn ours(expr: &str, base: &str, n: usize) -> Vec<String> {
    let cal = calendar::parse(expr).unwrap_or_else(|e| panic!("{expr:?} refused: {e}"));
    let mut t = calendar::parse_utc(base).unwrap_or_else(|| panic!("base {base}"));
    let mut out = Vec::new();
    while out.len() < n {
        let Some(next) = cal.next_after(t) else { break };
        out.push(calendar::format_utc(next));
        t = next;
    }
    out
}

#[test]
fn next_times_match_systemd_analyze() {
    let Some(bin) = systemd_analyze() else { return };
    let mut checked = 0;
    for expr in EXPRESSIONS {
        for base in BASES {
            let theirs = systemd_next(bin, expr, base, 5)
                .unwrap_or_else(|e| panic!("systemd refused {expr:?}: {e}"));
            assert!(
                !theirs.is_empty() || expr.starts_with("2027"),
                "no times from systemd for {expr:?}"
            );
            assert_eq!(ours(expr, base, 5), theirs, "{expr:?} after {base}");
            checked += 1;
        }
    }
    assert_eq!(checked, EXPRESSIONS.len() * BASES.len());
}

#[test]
fn what_systemd_refuses_is_refused() {
    let Some(bin) = systemd_analyze() else { return };
    for expr in REFUSED {
        assert!(
            systemd_next(bin, expr, BASES[0], 1).is_err(),
            "systemd accepts {expr:?}: fix the list"
        );
        assert!(
            calendar::parse(expr).is_err(),
            "{expr:?} accepted here, refused by systemd"
        );
    }
}

//! Sandbox output under stress and across deletion: a flood can't exhaust the server's
//! memory, a deleted app's logs stay deleted, a new app of the same name logs at once,
//! and a line without its newline shows up.

use std::time::{Duration, Instant};

use super::TestServer;
use crate::app_dir;

fn status_kib(pid: u32, field: &str) -> u64 {
    let s =
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("{e}"));
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field}"))
}

/// `miren logs -a <app>` until `cond` holds on its output (20 s at most).
fn logs_until(server: &TestServer, app: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = server.ok(["logs", "-a", app]);
        if cond(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "{what}; the logs say:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_five_second_flood_keeps_the_server_under_128_mib_more_and_a_deleted_app_stays_deleted() {
    let server = TestServer::start(&[]);
    server.ok(["app", "list"]);
    let pid = server.child.id();
    let before = status_kib(pid, "VmRSS:");
    let line = "a".repeat(1000);
    let app = app_dir(&format!(
        "name = \"flood\"\n[services.worker]\ncommand = \"exec yes {line}\"\n"
    ));
    server.deploy(app.path());
    // The flood runs for five seconds.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let peak = status_kib(pid, "VmHWM:");
    assert!(
        peak < before + 128 * 1024,
        "the server's peak RSS went from {before} KiB to {peak} KiB"
    );
    let other = app_dir("name = \"other\"\n[services.worker]\ncommand = \"exec sleep 600\"\n");
    server.deploy(other.path());
    server.ok(["app", "delete", "flood"]);
    // Any read goes through the log writer: what was queued is behind us after it.
    server.ok(["logs", "-a", "other"]);
    let dir = server.data.path().join("logs/flood");
    assert!(!dir.exists(), "the backlog re-created {}", dir.display());
    let gone = server
        .cli()
        .args(["logs", "-a", "flood"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone.status.code(), Some(1));
    assert!(gone.stdout.is_empty());
}

#[test]
fn a_line_without_its_newline_shows_and_a_redeployed_app_logs_after_a_delete() {
    let server = TestServer::start(&[]);
    let app = app_dir(
        "name = \"prompt\"\n[services.worker]\ncommand = \"printf 'ready? '; exec sleep 1000\"\n",
    );
    server.deploy(app.path());
    logs_until(&server, "prompt", "the partial line never showed", |l| {
        l.contains("ready?")
    });
    server.ok(["app", "delete", "prompt"]);
    std::fs::write(
        app.path().join(".miren/app.toml"),
        "name = \"prompt\"\n[services.worker]\ncommand = \"echo second life; exec sleep 1000\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    let out = logs_until(&server, "prompt", "the new app's line never showed", |l| {
        l.contains("second life")
    });
    assert!(
        !out.contains("ready?"),
        "the deleted app's lines are gone: {out}"
    );
}

//! Debian's real PostgreSQL as a process service, run as the `postgres` user: a stop
//! is a clean shutdown (no recovery, no sequence jump), and a changed service deploys
//! while the old postmaster finishes with its data directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::TestServer;
use crate::app_dir;

/// Where Debian's PostgreSQL server programs are; `None` (the test skips, saying so)
/// when not installed — CI installs it and must not skip.
fn postgres_bin() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .find(|b| b.join("postgres").is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL is not installed: .ci/run installs the `postgresql` package"
        );
        eprintln!("skipped: no PostgreSQL server here (apt install postgresql)");
    }
    found
}

fn app(bin: &std::path::Path, release: u32) -> String {
    format!(
        "name = \"pg\"\n[services.db]\ncommand = \"[ -f $MIREN_DISK_PG/PG_VERSION ] || {bin}/initdb -D $MIREN_DISK_PG -U app --auth=trust > /dev/null; {bin}/postgres -D $MIREN_DISK_PG -p $PORT -k /tmp -c listen_addresses=127.0.0.1\"\nport = 5432\n[[services.db.env]]\nkey = \"RELEASE\"\nvalue = \"{release}\"\n[[services.db.disks]]\nname = \"pg\"\nmount_path = \"/data\"\nsize_gb = 1\n",
        bin = bin.display()
    )
}

/// Runs SQL through psql on the running instance; its output.
fn psql(server: &TestServer, sql: &str) -> String {
    let sandboxes = server.json(&["sandbox", "list", "-a", "pg", "--status", "running"]);
    let addr = sandboxes
        .as_array()
        .and_then(|a| a.first())
        .and_then(|s| s["address"].as_str())
        .unwrap_or_else(|| panic!("no running db: {sandboxes:#}"))
        .to_string();
    let (host, port) = addr.rsplit_once(':').unwrap_or_else(|| panic!("{addr}"));
    let out = Command::new("psql")
        .args([
            "-h", host, "-p", port, "-U", "app", "-d", "postgres", "-tA", "-c", sql,
        ])
        .output()
        .unwrap_or_else(|e| panic!("psql: {e}"));
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn postgres_stops_cleanly_and_a_changed_postgres_service_deploys() {
    let Some(bin) = postgres_bin() else {
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: running postgres as `postgres` needs the server to be root");
        return;
    }
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(
        data.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let server = TestServer::start_in(data, &["--sandbox-user", "postgres"]);
    let dir = app_dir(&app(&bin, 1));
    server.deploy(dir.path());
    psql(&server, "create table t (id serial primary key, v text)");
    assert_eq!(
        psql(
            &server,
            "insert into t (v) values ('a'), ('b') returning id"
        ),
        "1\n2\nINSERT 0 2"
    );
    // A changed service: a new pool, whose instance starts once the old postmaster has
    // shut down and let go of its data directory.
    std::fs::write(dir.path().join(".miren/app.toml"), app(&bin, 2))
        .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(dir.path());
    // A clean shutdown leaves the sequence where it was: after a crash it would
    // jump ahead by its cache of 32.
    assert_eq!(
        psql(&server, "insert into t (v) values ('c') returning id"),
        "3\nINSERT 0 1"
    );
    assert_eq!(
        psql(&server, "select string_agg(v, ',' order by id) from t"),
        "a,b,c"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = server.ok(["logs", "-a", "pg"]);
        if logs.contains("database system is shut down") {
            assert!(!logs.contains("was not properly shut down"), "{logs}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no clean shutdown in the logs: {logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.stop().success());
}

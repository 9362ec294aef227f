//! The durable store under kill -9: every transaction acknowledged before the kill is
//! there after reopening, and the file opens cleanly.
//!
//! The test binary re-runs itself as the writer (selected by an env var), so the
//! process that dies is a real separate process holding the real file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use miren_core::store::{Op, RedbStore, Store};

const CHILD_ENV: &str = "MIREN_TEST_STORE_WRITER";

/// The writer: appends one key per transaction and reports each commit on stdout.
#[test]
fn writer_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = RedbStore::open(std::path::Path::new(&path)).expect("open");
        let (items, _) = store.list("k/").await.expect("list");
        // Bounded: the parent kills us long before this.
        for i in items.len()..items.len() + 100_000 {
            let rev = store
                .txn(vec![
                    Op::put(format!("k/{i:08}"), i.to_string()),
                    Op::put("last", i.to_string()),
                ])
                .await
                .expect("txn");
            println!("{i} {rev}");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_at_any_moment_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.redb");
    let exe = std::env::current_exe().expect("test binary");
    let mut acknowledged: Option<(usize, u64)> = None;
    // Kill after different numbers of commits, so the kill lands at different
    // points of a transaction.
    for (round, after) in [1usize, 7, 30, 3, 90, 15, 55].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read");
            let mut parts = line.split_whitespace();
            let (Some(i), Some(rev)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(i), Ok(rev)) = (i.parse(), rev.parse()) else {
                continue;
            };
            acknowledged = Some((i, rev));
            seen += 1;
            if seen >= after || Instant::now() > deadline {
                break;
            }
        }
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        assert!(
            seen >= after,
            "round {round}: the writer committed only {seen} transactions"
        );

        let store = RedbStore::open(&path)
            .unwrap_or_else(|e| panic!("round {round}: reopen after kill -9: {e}"));
        let (i, rev) = acknowledged.expect("some commit");
        assert!(
            store.revision().await.expect("revision") >= rev,
            "round {round}: revision went back"
        );
        let (items, _) = store.list("k/").await.expect("list");
        assert!(
            items.len() > i,
            "round {round}: acknowledged key {i} lost ({} keys)",
            items.len()
        );
        for (n, (key, _)) in items.iter().enumerate() {
            assert_eq!(
                key,
                &format!("k/{n:08}"),
                "round {round}: a gap in committed keys"
            );
        }
        drop(store);
    }
}

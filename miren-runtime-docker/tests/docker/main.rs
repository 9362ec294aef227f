//! The Docker runtime with the controller: real containers on a real Engine, from
//! the images `tests/images/build.sh` makes. Without an Engine the tests skip and
//! say so; with `MIREN_TEST_DOCKER=1` (CI) they must run.

mod harness;

use std::time::{Duration, Instant};

use harness::{Harness, get, running};
use miren_core::model::{SandboxStatus, VersionState};

const HTTPD: &str = "mkdir -p /www && echo hello from $MIREN_SERVICE > /www/index.html && exec httpd -f -vv -p $PORT -h /www";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_run_as_containers_with_their_own_addresses_and_output() {
    let Some(h) = Harness::new().await else {
        return;
    };
    let app = h.app();
    let v = h
        .deploy(&format!(
            "name = \"{app}\"\n[services.web]\nimage = \"miren-test/busybox\"\ncommand = \"{HTTPD}\"\n\
             [services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 2\n"
        ))
        .await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let s = h
        .until("2 web running", |s| running(s, "web").len() == 2)
        .await;
    let web = running(&s, "web");
    let addrs: Vec<_> = web.iter().filter_map(|w| w.address).collect();
    assert_eq!(addrs.len(), 2);
    assert_ne!(
        addrs[0].ip, addrs[1].ip,
        "each container has its own address"
    );
    for a in &addrs {
        assert_eq!(a.port, Some(3000), "web's default port");
        assert!(!a.ip.is_loopback(), "the container's own address: {a}");
        let body = get(a).await;
        assert!(body.contains("hello from web"), "{body}");
    }
    // httpd -vv logs each request on stderr: the output arrives with its stream.
    h.until_logs("a request line", |l| {
        l.iter()
            .any(|r| r.stream == miren_core::runtime::Stream::Stderr && r.line.contains("url:/"))
    })
    .await;

    // A stop is SIGTERM to the init, which passes it on: it takes nothing like the
    // 10 s grace, and the pool replaces it.
    let t = Instant::now();
    h.ctl.stop_sandbox(&web[0].id).await.expect("stop");
    let s = h
        .until("replaced", |s| {
            running(s, "web").len() == 2 && !running(s, "web").iter().any(|x| x.id == web[0].id)
        })
        .await;
    let stopped = s
        .sandboxes
        .iter()
        .find(|x| x.id == web[0].id)
        .expect("kept");
    assert_eq!(stopped.status, SandboxStatus::Stopped);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "stopped in {:?}",
        t.elapsed()
    );
    assert!(
        !h.container_exists(&web[0].id).await,
        "its container is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_reported_with_its_code_and_last_lines() {
    let Some(h) = Harness::new().await else {
        return;
    };
    let app = h.app();
    let v = h
        .deploy(&format!(
            "name = \"{app}\"\n[services.web]\nimage = \"miren-test/busybox\"\n\
             command = \"echo cannot reach the database >&2; exit 3\"\n"
        ))
        .await;
    assert_eq!(v.state, VersionState::Failed);
    let why = v.failure.unwrap_or_default();
    assert!(why.contains("exited with code 3"), "{why}");
    assert!(why.contains("cannot reach the database"), "{why}");
}

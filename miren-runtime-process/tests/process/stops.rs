//! Stops are graceful: the app gets SIGTERM and the whole grace period, every process
//! of the sandbox (its group and what left it) is waited for, and only what is still
//! there when the grace ends is SIGKILLed.

use std::collections::BTreeSet;
use std::time::Duration;

use miren_core::model::{SandboxId, VersionState};
use miren_core::runtime::Runtime;
use tokio::time::Instant;

use miren_core::runtime::LogRecord;

use super::{Harness, helper, running, with_env};

/// Processes whose environment says they are `sandbox`'s.
fn of_sandbox(sandbox: &SandboxId) -> BTreeSet<u32> {
    with_env(&format!("MIREN_SANDBOX={sandbox}"))
}

/// The first line a sandbox wrote that `pred` accepts.
fn logged(h: &Harness, pred: impl Fn(&LogRecord) -> bool) -> Option<String> {
    h.logs
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|l| pred(l))
        .map(|l| l.line.clone())
}

/// Waits (20 s at most) until `service` has one running sandbox that printed `ready`.
async fn ready_one(h: &Harness, service: &str) -> SandboxId {
    let s = h.until("running", |s| running(s, service).len() == 1).await;
    let id = running(&s, service)[0].id.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if logged(h, |l| l.sandbox == id && l.line == "ready").is_some() {
            return id;
        }
        assert!(Instant::now() < deadline, "{id} never said ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn app(service: &str, command: &str, mark: &std::path::Path) -> String {
    format!(
        "name = \"stops\"\n[services.{service}]\ncommand = \"{command}\"\n[[services.{service}.env]]\nkey = \"TEST_MARKFILE\"\nvalue = \"{}\"\n",
        mark.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_handler_runs_to_its_end_in_a_simple_and_a_compound_command() {
    for command in [
        // As written in app.toml: one program, run with exec.
        helper::command("graceful").replacen("MIREN_TEST_ROLE=graceful exec ", "", 1),
        // A shell before it: the shell dies at SIGTERM, the app still gets its time.
        format!("echo starting; {}", helper::command("graceful")),
    ] {
        let h = Harness::new().await;
        let mark = h.dir.path().join("mark");
        let command = command.replace('\'', "");
        let toml = app("worker", &command, &mark)
            + "[[services.worker.env]]\nkey = \"TEST_ROLE\"\nvalue = \"graceful\"\n";
        let v = h.deploy(&toml).await;
        assert_eq!(v.state, VersionState::Active, "{command}: {:?}", v.failure);
        let id = ready_one(&h, "worker").await;
        let t0 = Instant::now();
        h.rt.stop(&id, Duration::from_secs(5)).await.expect("stop");
        let took = t0.elapsed();
        assert_eq!(
            std::fs::read_to_string(&mark).ok().as_deref(),
            Some("clean"),
            "{command}: the handler finished before the sandbox was stopped"
        );
        assert!(took >= Duration::from_millis(400), "{command}: {took:?}");
        assert!(
            of_sandbox(&id).is_empty(),
            "{command}: nothing of it is left"
        );
        h.ctl.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_ignores_sigterm_gets_the_whole_grace_then_sigkill() {
    let h = Harness::new().await;
    let mark = h.dir.path().join("mark");
    let v = h
        .deploy(&app("worker", &helper::command("stubborn"), &mark))
        .await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let id = ready_one(&h, "worker").await;
    let t0 = Instant::now();
    h.rt.stop(&id, Duration::from_millis(1500))
        .await
        .expect("stop");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "SIGKILL came before the grace ended: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "it was never SIGKILLed: {took:?}"
    );
    assert!(of_sandbox(&id).is_empty());
    let said = logged(&h, |l| l.sandbox == id && l.line == "ignoring SIGTERM");
    assert!(said.is_some(), "it got SIGTERM first");
    h.ctl.shutdown().await.expect("shutdown");
}

const DAEMONS: &str = "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do setsid sleep 1000 & done; echo ready; exec sleep 1000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_that_left_the_process_group_are_stopped_with_their_sandbox() {
    let h = Harness::new().await;
    let v = h
        .deploy(&format!(
            "name = \"daemons\"\n[services.worker]\ncommand = \"{DAEMONS}\"\n"
        ))
        .await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let id = ready_one(&h, "worker").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while of_sandbox(&id).len() < 21 {
        assert!(Instant::now() < deadline, "{:?}", of_sandbox(&id));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.rt.stop(&id, Duration::from_secs(5)).await.expect("stop");
    assert_eq!(
        of_sandbox(&id),
        BTreeSet::new(),
        "every daemon went with it"
    );
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_a_crashed_server_left_are_killed_when_the_next_one_starts() {
    let h = Harness::new().await;
    h.deploy(&format!(
        "name = \"daemons\"\n[services.worker]\ncommand = \"{DAEMONS}\"\n"
    ))
    .await;
    let id = ready_one(&h, "worker").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while of_sandbox(&id).len() < 21 {
        assert!(Instant::now() < deadline, "{:?}", of_sandbox(&id));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The server dies without stopping anything; the next one on its data dir starts.
    let store = std::sync::Arc::new(miren_core::store::MemoryStore::new());
    let _next = miren_runtime_process::ProcessRuntime::new(h.dir.path().join("process"), store)
        .await
        .expect("runtime");
    assert_eq!(
        of_sandbox(&id),
        BTreeSet::new(),
        "nothing of the old sandbox survives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_names_in_the_command_line_are_rewritten_to_the_stable_address() {
    let h = Harness::new().await;
    let toml = format!(
        "name = \"cmdline\"\n[services.db]\ncommand = \"{}\"\nport = 5432\n\
         [services.worker]\ncommand = \"echo url=redis://db.app.miren:5432/0; exec sleep 1000\"\n",
        helper::command("counter")
    );
    let v = h.deploy(&toml).await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let want = h.rt.service_address("cmdline", "db").expect("db address");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = logged(&h, |l| l.service == "worker" && l.line.starts_with("url=")) {
            assert_eq!(line, format!("url=redis://{want}/0"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never printed its url"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.ctl.shutdown().await.expect("shutdown");
}

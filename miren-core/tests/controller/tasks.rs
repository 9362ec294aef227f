//! Tasks (SPEC §14) on the fake runtime, in virtual time: deploy tasks gate the
//! switch, scheduled ones keep to `max_concurrent`, manual ones report their end.

use std::collections::BTreeSet;
use std::time::Duration;

use miren_core::controller::{ControllerError, Event};
use miren_core::model::{RunStatus, RunTrigger, VersionState};
use miren_core::runtime::fake::Behavior;
use tokio::time::Instant;

use super::{Harness, SHOP};

fn with_task(web: &str, task: &str) -> String {
    format!(
        "{}\n{task}\n",
        SHOP.replace("command = \"web-v1\"", &format!("command = \"{web}\""))
    )
}

const MIGRATE: &str = "[tasks.migrate]\ncommand = \"migrate\"\ntrigger = \"deploy\"";

#[tokio::test(start_paused = true)]
async fn a_deploy_task_that_succeeds_runs_before_the_new_web_starts() {
    let h = Harness::new().await;
    let v1 = h.deploy_and_wait(SHOP).await;
    h.rt.behave(
        "migrate",
        Behavior::ExitBeforeReady(Duration::from_secs(3), 0),
    );
    let t0 = Instant::now();
    let v2 = h.deploy_and_wait(&with_task("web-v2", MIGRATE)).await;
    assert_eq!(v2.state, VersionState::Active, "{:?}", v2.failure);
    assert!(
        t0.elapsed() >= Duration::from_secs(3),
        "active before the task ended"
    );
    let order: Vec<String> =
        h.rt.started()
            .iter()
            .filter_map(|s| s.spec.command.clone())
            .collect();
    let migrate = order
        .iter()
        .position(|c| c == "migrate")
        .expect("migrate ran");
    let web2 = order
        .iter()
        .position(|c| c == "web-v2")
        .expect("web-v2 ran");
    assert!(
        migrate < web2,
        "the new web started before its migration: {order:?}"
    );
    // Postgres is unchanged (reused): it kept running and was not restarted.
    assert_eq!(
        order.iter().filter(|c| *c == "postgres").count(),
        1,
        "{order:?}"
    );
    let s = h.snap().await;
    let run = s.runs.iter().find(|r| r.task == "migrate").expect("a run");
    assert_eq!(
        (run.status, run.exit_code, run.trigger),
        (RunStatus::Succeeded, Some(0), RunTrigger::Deploy)
    );
    assert_eq!(run.version, v2.id);
    assert_ne!(v1.id, v2.id);
}

#[tokio::test(start_paused = true)]
async fn a_failing_deploy_task_fails_the_deploy_and_the_old_version_keeps_serving() {
    let h = Harness::new().await;
    let v1 = h.deploy_and_wait(SHOP).await;
    h.rt.behave(
        "migrate",
        Behavior::ExitBeforeReady(Duration::from_secs(1), 1),
    );
    let retrying = format!("{MIGRATE}\nretries = 1");
    let v2 = h.deploy_and_wait(&with_task("web-v2", &retrying)).await;
    assert_eq!(v2.state, VersionState::Failed);
    let failure = v2.failure.unwrap_or_default();
    assert!(
        failure.starts_with("deploy task `migrate` exited with code 1"),
        "{failure}"
    );
    assert!(failure.contains("after 2 tries"), "{failure}");
    let s = h.snap().await;
    assert_eq!(s.apps[0].active_version.as_ref(), Some(&v1.id));
    assert!(
        h.rt.started()
            .iter()
            .all(|x| x.spec.command.as_deref() != Some("web-v2")),
        "the new web started although its migration failed"
    );
    let runs: Vec<_> = s.runs.iter().filter(|r| r.task == "migrate").collect();
    assert_eq!(runs.len(), 2, "one try and one retry");
    assert!(
        runs.iter()
            .all(|r| r.status == RunStatus::Failed && r.exit_code == Some(1))
    );
    assert_eq!(runs[1].attempt, 2);
}

#[tokio::test(start_paused = true)]
async fn a_deploy_task_that_runs_past_its_timeout_is_stopped_and_fails_the_deploy() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    h.rt.behave("migrate", Behavior::Hang);
    let t0 = Instant::now();
    let v2 = h
        .deploy_and_wait(&with_task(
            "web-v2",
            &format!("{MIGRATE}\ntimeout = \"40s\""),
        ))
        .await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(40) && took < Duration::from_secs(41),
        "{took:?}"
    );
    let failure = v2.failure.unwrap_or_default();
    assert!(
        failure.starts_with("deploy task `migrate` timed out after 40s"),
        "{failure}"
    );
    assert!(
        h.rt.running()
            .iter()
            .all(|id| !id.as_str().contains("-migrate-"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_task_never_runs_more_than_max_concurrent_at_once() {
    for max in [1u32, 2] {
        let h = Harness::new().await;
        // Each run takes 5 s; it is due every 2 s.
        h.rt.behave(
            "report",
            Behavior::ExitBeforeReady(Duration::from_secs(5), 0),
        );
        let task = format!(
            "[tasks.report]\ncommand = \"report\"\ntrigger = \"schedule\"\nevery = \"2s\"\nmax_concurrent = {max}"
        );
        let mut events = h.ctl.subscribe();
        h.deploy_and_wait(&with_task("web-v1", &task)).await;
        let end = Instant::now() + Duration::from_secs(30);
        let (mut live, mut peak, mut started) = (BTreeSet::new(), 0, 0);
        while let Ok(Ok(ev)) = tokio::time::timeout_at(end, events.recv()).await {
            if let Event::Run { id, status, .. } = ev {
                match status {
                    RunStatus::Running => {
                        if live.insert(id) {
                            started += 1;
                        }
                    }
                    _ => {
                        live.remove(&id);
                    }
                }
                peak = peak.max(live.len());
            }
        }
        assert_eq!(peak, max as usize, "max_concurrent = {max}");
        // 30 s of 5 s runs: about 30/6 with one at a time, twice that with two.
        let expected = if max == 1 { 5..=6 } else { 9..=12 };
        assert!(expected.contains(&started), "max {max}: {started} runs");
        let s = h.snap().await;
        assert!(s.runs.iter().all(|r| r.trigger == RunTrigger::Schedule));
    }
}

#[tokio::test(start_paused = true)]
async fn a_manual_run_reports_its_end_and_a_second_waits_for_max_concurrent() {
    let h = Harness::new().await;
    h.rt.behave("seed", Behavior::ExitBeforeReady(Duration::from_secs(2), 3));
    h.deploy_and_wait(&with_task("web-v1", "[tasks.seed]\ncommand = \"seed\""))
        .await;
    let run = h.ctl.run_task("shop", "seed").await.expect("started");
    assert_eq!(
        (run.status, run.trigger),
        (RunStatus::Running, RunTrigger::Manual)
    );
    match h.ctl.run_task("shop", "seed").await {
        Err(ControllerError::Invalid(m)) => {
            assert!(
                m.contains("already has 1 run going (max_concurrent = 1)"),
                "{m}"
            )
        }
        other => panic!("a second run at once: {other:?}"),
    }
    match h.ctl.run_task("shop", "sed").await {
        Err(ControllerError::NotFound { kind: "task", .. }) => {}
        other => panic!("an unknown task: {other:?}"),
    }
    let s = h
        .until("the run ended", |s| {
            s.runs
                .iter()
                .any(|r| r.id == run.id && r.status != RunStatus::Running)
        })
        .await;
    let done = s.runs.iter().find(|r| r.id == run.id).expect("kept");
    assert_eq!((done.status, done.exit_code), (RunStatus::Failed, Some(3)));
    // (Times are wall-clock milliseconds, which virtual time doesn't move.)
    assert!(done.finished.is_some_and(|f| f >= done.started));
    // Not replaced: a run is not a pool member.
    assert_eq!(
        h.rt.started()
            .iter()
            .filter(|x| x.spec.command.as_deref() == Some("seed"))
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn an_app_of_only_tasks_goes_active_and_runs_them() {
    let h = Harness::new().await;
    h.rt.behave(
        "cleanup",
        Behavior::ExitBeforeReady(Duration::from_secs(1), 0),
    );
    let v = h
        .deploy_and_wait("name = \"shop\"\nweb = false\n[tasks.cleanup]\ncommand = \"cleanup\"\n")
        .await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    assert!(h.snap().await.pools.is_empty());
    let run = h.ctl.run_task("shop", "cleanup").await.expect("started");
    let s = h
        .until("the run succeeded", |s| {
            s.runs
                .iter()
                .any(|r| r.id == run.id && r.status == RunStatus::Succeeded)
        })
        .await;
    assert_eq!(s.runs.len(), 1);
    let spec =
        h.rt.started()
            .into_iter()
            .find(|x| x.id == run.id)
            .expect("started");
    assert_eq!(spec.spec.port, None);
    assert_eq!(spec.pool, None);
}

//! Stops as real programs see them: the grace period is given to the runtime whole,
//! a program that ignores SIGTERM is killed only once it is over, and a disk service's
//! next instance waits for the old one to be gone however long that takes.

use std::time::Duration;

use miren_core::controller::Event;
use miren_core::model::{SandboxStatus, VersionState};
use miren_core::runtime::fake::OnStop;
use tokio::time::Instant;

use super::{Harness, SHOP};

const GRACE: Duration = Duration::from_secs(10);
const DRAIN: Duration = Duration::from_secs(1);

/// The harness with the server's own timings: a 1 s drain, then a 10 s grace.
async fn harness() -> Harness {
    Harness::with(|cfg| {
        cfg.stop_grace = GRACE;
        cfg.drain_delay = DRAIN;
    })
    .await
}

/// Stops one running `web`, checking the runtime was given `grace`; how long until it
/// was gone, and why it says it went.
pub(super) async fn stop_one_web(h: &Harness, grace: Duration) -> (Duration, String) {
    let web = h
        .snap()
        .await
        .sandboxes
        .into_iter()
        .find(|x| x.service == "web" && x.status == SandboxStatus::Running)
        .expect("web runs");
    let t0 = Instant::now();
    h.ctl.stop_sandbox(&web.id).await.expect("stop");
    let s = h
        .until("the web instance is gone", |s| {
            s.sandboxes.iter().any(|x| x.id == web.id && !x.is_live())
        })
        .await;
    let gone = s.sandboxes.iter().find(|x| x.id == web.id).expect("known");
    assert_eq!(
        h.rt.stops().last().map(|(id, grace)| (id.clone(), *grace)),
        Some((web.id.clone(), grace)),
        "the runtime was given the whole grace period"
    );
    (t0.elapsed(), gone.reason.clone().unwrap_or_default())
}

#[tokio::test(start_paused = true)]
async fn a_program_that_finishes_its_work_is_waited_for_not_killed() {
    let h = harness().await;
    h.deploy_and_wait(SHOP).await;
    h.rt.on_stop("web-v1", OnStop::Exits(Duration::from_secs(3)));
    let (took, reason) = stop_one_web(&h, GRACE).await;
    assert_eq!(took, DRAIN + Duration::from_secs(3), "{reason}");
    assert_eq!(reason, "stopped by an operator");
}

#[tokio::test(start_paused = true)]
async fn a_program_that_ignores_sigterm_runs_the_whole_grace_then_is_killed() {
    let h = harness().await;
    h.deploy_and_wait(SHOP).await;
    h.rt.on_stop("web-v1", OnStop::IgnoresTerm);
    let (took, reason) = stop_one_web(&h, GRACE).await;
    assert_eq!(took, DRAIN + GRACE, "{reason}");
    assert!(
        reason.ends_with("; killed: still running 10s after SIGTERM"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_changed_disk_service_starts_only_once_the_stubborn_old_one_is_killed() {
    let h = harness().await;
    h.deploy_and_wait(SHOP).await;
    h.rt.on_stop("postgres", OnStop::IgnoresTerm);
    let old: Vec<_> = h.rt.running_of("shop", "postgres");
    assert_eq!(old.len(), 1);
    let mut events = h.ctl.subscribe();
    let watcher = {
        let rt = h.rt.clone();
        tokio::spawn(async move {
            let mut most = 0;
            let mut new_started = None;
            while let Ok(ev) = events.recv().await {
                most = most.max(rt.running_of("shop", "postgres").len());
                if new_started.is_none()
                    && rt
                        .started()
                        .iter()
                        .any(|s| s.spec.command.as_deref() == Some("postgres-16"))
                {
                    new_started = Some(Instant::now());
                }
                if matches!(
                    ev,
                    Event::Version {
                        state: VersionState::Active,
                        ..
                    }
                ) {
                    break;
                }
            }
            (most, new_started)
        })
    };
    let t0 = Instant::now();
    let v2 = h
        .deploy_and_wait(&SHOP.replace("command = \"postgres\"", "command = \"postgres-16\""))
        .await;
    assert_eq!(v2.state, VersionState::Active, "{:?}", v2.failure);
    let (most, new_started) = watcher.await.expect("watcher");
    assert_eq!(most, 1, "old and new postgres never ran together");
    let new_started = new_started.expect("the new postgres started");
    assert!(
        new_started - t0 >= GRACE,
        "the new postgres started {:?} after the deploy, before the old one's grace was over",
        new_started - t0
    );
    assert!(
        h.rt.stops()
            .iter()
            .any(|(id, g)| *id == old[0].id && *g == GRACE)
    );
}

//! `port_timeout` and `shutdown_timeout` (SPEC §14), in virtual time: an instance not
//! ready in time fails the deploy at that time, saying which port it was given and
//! which one its command binds; a service's own grace is what its stops get.

use std::time::Duration;

use miren_core::model::VersionState;
use miren_core::runtime::fake::{Behavior, OnStop};
use tokio::time::Instant;

use super::{Harness, SHOP};

#[tokio::test(start_paused = true)]
async fn an_instance_not_listening_within_its_port_timeout_fails_the_deploy_then() {
    let h = Harness::new().await;
    let v1 = h.deploy_and_wait(SHOP).await;
    h.rt.behave("never-listens", Behavior::Hang);
    let t0 = Instant::now();
    let v2 = h
        .deploy_and_wait(&SHOP.replace(
            "command = \"web-v1\"",
            "command = \"never-listens --bind 0.0.0.0:8000\"\nport_timeout = \"7s\"",
        ))
        .await;
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(7),
        "at the port timeout, not the 5 min deploy timeout"
    );
    assert_eq!(v2.state, VersionState::Failed);
    let failure = v2.failure.unwrap_or_default();
    assert!(
        failure.contains("service `web` did not listen on $PORT (3000) within 7s; its command binds the fixed port 8000 itself"),
        "{failure}"
    );
    let s = h.snap().await;
    assert_eq!(s.apps[0].active_version.as_ref(), Some(&v1.id));
    // Stopped, and not started again for the failed version.
    let stuck = h
        .until("the timed-out instance is gone", |_| {
            h.rt.running_of("shop", "web")
                .iter()
                .all(|x| x.spec.command.as_deref() == Some("web-v1"))
        })
        .await;
    assert_eq!(stuck.apps[0].active_version.as_ref(), Some(&v1.id));
}

#[tokio::test(start_paused = true)]
async fn the_default_port_timeout_is_30s() {
    let h = Harness::new().await;
    h.rt.behave("web-v1", Behavior::Hang);
    let t0 = Instant::now();
    let v = h.deploy_and_wait(SHOP).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert!(v.failure.unwrap_or_default().contains("within 30s"));
}

#[tokio::test(start_paused = true)]
async fn a_services_shutdown_timeout_is_the_grace_its_stops_get() {
    let h = Harness::new().await;
    let toml = SHOP.replace(
        "[services.web.concurrency]\n",
        "[services.web.concurrency]\nshutdown_timeout = \"2s\"\n",
    );
    h.deploy_and_wait(&toml).await;
    h.rt.on_stop("web-v1", OnStop::IgnoresTerm);
    let (_, reason) = super::stops::stop_one_web(&h, Duration::from_secs(2)).await;
    assert!(
        reason.ends_with("killed: still running 2s after SIGTERM"),
        "{reason}"
    );
}

//! The controller on the fake runtime, in virtual time (tokio's paused clock): every
//! wait is on a condition, and timing assertions are exact.

use std::sync::Arc;
use std::time::Duration;

use miren_core::artifact::ArtifactStore;
use miren_core::config::resolve;
use miren_core::controller::{Controller, ControllerConfig, DeployRequest, Event, Snapshot};
use miren_core::model::{Route, SandboxStatus, SourceInfo, VersionId, VersionState};
use miren_core::runtime::fake::{Behavior, FakeRuntime};
use miren_core::store::{MemoryStore, Store, keys};
use tokio::time::Instant;

mod addons;
mod collect;
mod placement;
mod readiness;
mod secrets;
mod stops;
mod tasks;
mod upstream;

const SHOP: &str = r#"
name = "shop"

[services.web]
command = "web-v1"
[services.web.concurrency]
mode = "fixed"
num_instances = 2

[services.postgres]
command = "postgres"
port = 5432
[[services.postgres.disks]]
name = "pg"
mount_path = "/data"
size_gb = 1
"#;

struct Harness {
    ctl: Controller,
    rt: FakeRuntime,
    store: Arc<MemoryStore>,
    artifacts: ArtifactStore,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A harness whose controller config `tune` changes first.
    async fn with(tune: impl FnOnce(&mut ControllerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let artifacts = ArtifactStore::open(dir.path()).expect("artifact store");
        let rt = FakeRuntime::new();
        let store = Arc::new(MemoryStore::new());
        let ctl = start_with(&store, &rt, &artifacts, tune).await;
        Self {
            ctl,
            rt,
            store,
            artifacts,
            dir,
        }
    }

    async fn deploy(&self, src: &str) -> VersionId {
        self.deploy_code(src, b"code").await
    }

    /// Uploads `code` (as a client does before each deploy) and deploys it.
    async fn deploy_code(&self, src: &str, code: &[u8]) -> VersionId {
        let config = resolve(src).expect("valid config");
        let digest = self.artifacts.put(code).expect("put").digest;
        self.ctl
            .deploy(DeployRequest {
                config,
                artifact_digest: digest,
                source: SourceInfo::default(),
            })
            .await
            .expect("deploy accepted")
    }

    async fn deploy_and_wait(&self, src: &str) -> miren_core::model::Version {
        let id = self.deploy(src).await;
        self.ctl.wait(&id).await.expect("wait")
    }

    async fn snap(&self) -> Snapshot {
        self.ctl.snapshot(Some("shop")).await.expect("snapshot")
    }

    /// Waits (virtual time, 10 min at most) until `cond` holds on a snapshot.
    async fn until(&self, what: &str, cond: impl Fn(&Snapshot) -> bool) -> Snapshot {
        match self
            .ctl
            .wait_for(Some("shop"), Duration::from_secs(600), cond)
            .await
        {
            Ok(Some(s)) => s,
            _ => panic!(
                "timed out waiting for: {what}\nlast state: {:#?}",
                self.snap().await
            ),
        }
    }
}

async fn start(
    store: &Arc<MemoryStore>,
    rt: &FakeRuntime,
    artifacts: &ArtifactStore,
) -> Controller {
    start_with(store, rt, artifacts, |_| {}).await
}

async fn start_with(
    store: &Arc<MemoryStore>,
    rt: &FakeRuntime,
    artifacts: &ArtifactStore,
    tune: impl FnOnce(&mut ControllerConfig),
) -> Controller {
    let mut cfg = ControllerConfig::new(artifacts.clone());
    cfg.stop_grace = Duration::from_millis(10);
    tune(&mut cfg);
    Controller::start(store.clone() as Arc<dyn Store>, Arc::new(rt.clone()), cfg)
        .await
        .expect("controller starts")
}

fn running(s: &Snapshot, service: &str) -> usize {
    count(s, service, SandboxStatus::Running)
}

fn count(s: &Snapshot, service: &str, status: SandboxStatus) -> usize {
    s.sandboxes
        .iter()
        .filter(|x| x.service == service && x.status == status)
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_deploy_runs_the_desired_counts_and_goes_active() {
    let h = Harness::new().await;
    let v = h.deploy_and_wait(SHOP).await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let s = h.snap().await;
    assert_eq!(s.apps[0].active_version.as_ref(), Some(&v.id));
    assert_eq!(running(&s, "web"), 2);
    assert_eq!(running(&s, "postgres"), 1);
    let web = s
        .pools
        .iter()
        .find(|p| p.service == "web")
        .expect("web pool");
    assert_eq!((web.desired, web.current, web.ready), (2, 2, 2));
    assert_eq!(web.desired_reason, "fixed: num_instances = 2");
    assert_eq!(h.rt.running().len(), 3);
    // Every sandbox got the standard labels and its pool's spec.
    for spec in h.rt.started() {
        assert_eq!(spec.labels["dev.miren.app"], "shop");
        assert_eq!(spec.labels["dev.miren.sandbox"], spec.id.as_str());
    }
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_service_keeps_its_pool_and_sandbox() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    let before = h.snap().await;
    let pg_before: Vec<_> = before
        .sandboxes
        .iter()
        .filter(|s| s.service == "postgres")
        .map(|s| s.id.clone())
        .collect();

    let v2 = h.deploy_and_wait(&SHOP.replace("web-v1", "web-v2")).await;
    assert_eq!(v2.state, VersionState::Active);
    let after = h
        .until("old web pool drained", |s| s.pools.len() == 2)
        .await;
    let pg_after: Vec<_> = after
        .sandboxes
        .iter()
        .filter(|s| s.service == "postgres")
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(pg_before, pg_after, "postgres was restarted");
    let pg_pool = |s: &Snapshot| {
        s.pools
            .iter()
            .find(|p| p.service == "postgres")
            .map(|p| (p.id.clone(), p.versions.clone()))
    };
    assert_eq!(pg_pool(&before).map(|p| p.0), pg_pool(&after).map(|p| p.0));
    assert_eq!(pg_pool(&after).map(|p| p.1), Some(vec![v2.id.clone()]));
    let web: Vec<_> = h.rt.running_of("shop", "web");
    assert_eq!(web.len(), 2);
    assert!(
        web.iter()
            .all(|s| s.spec.command.as_deref() == Some("web-v2"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_version_takes_over_only_when_ready_and_old_serves_until_then() {
    let h = Harness::new().await;
    let v1 = h.deploy_and_wait(SHOP).await;
    h.rt.behave("web-v2", Behavior::Ready(Duration::from_secs(3)));
    let v2 = h.deploy(&SHOP.replace("web-v1", "web-v2")).await;
    // While v2 boots, v1 is active and both its web instances run.
    let s = h
        .until("v2 web sandboxes started", |s| {
            s.sandboxes.iter().filter(|x| x.service == "web").count() == 4
        })
        .await;
    assert_eq!(s.apps[0].active_version.as_ref(), Some(&v1.id));
    assert_eq!(running(&s, "web"), 2);
    let v2 = h.ctl.wait(&v2).await.expect("wait");
    assert_eq!(v2.state, VersionState::Active);
    let s = h.snap().await;
    let v1_now = s.versions.iter().find(|v| v.id == v1.id).expect("v1");
    assert_eq!(v1_now.state, VersionState::Superseded);
    h.until("v1 web stopped", |s| {
        s.sandboxes
            .iter()
            .filter(|x| x.service == "web" && x.version == v1.id)
            .all(|x| x.status == SandboxStatus::Stopped)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_web_that_exits_at_once_fails_the_deploy_and_the_old_version_keeps_serving() {
    let h = Harness::new().await;
    let v1 = h.deploy_and_wait(SHOP).await;
    h.rt.behave(
        "web-broken",
        Behavior::ExitBeforeReady(Duration::from_millis(50), 3),
    );
    let v2 = h
        .deploy_and_wait(&SHOP.replace("web-v1", "web-broken"))
        .await;
    assert_eq!(v2.state, VersionState::Failed);
    let failure = v2.failure.unwrap_or_default();
    assert!(
        failure.contains("service `web` exited with code 3 before it was ready"),
        "{failure}"
    );
    let s = h.until("broken pool removed", |s| s.pools.len() == 2).await;
    assert_eq!(s.apps[0].active_version.as_ref(), Some(&v1.id));
    assert_eq!(running(&s, "web"), 2);
    assert!(
        h.rt.running_of("shop", "web")
            .iter()
            .all(|x| x.spec.command.as_deref() == Some("web-v1"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_prepare_error_fails_the_deploy_with_its_message() {
    let h = Harness::new().await;
    h.rt.fail_prepare(Some("service `postgres` needs the docker runtime"));
    let v = h.deploy_and_wait(SHOP).await;
    assert_eq!(v.state, VersionState::Failed);
    assert_eq!(
        v.failure.as_deref(),
        Some("service `postgres` needs the docker runtime")
    );
    assert!(h.rt.running().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_deploy_that_never_gets_ready_times_out_after_five_minutes() {
    let h = Harness::new().await;
    h.rt.behave("web-v1", Behavior::Hang);
    let t0 = Instant::now();
    // A port timeout past the deploy's: the deploy timeout decides.
    let v = h
        .deploy_and_wait(&SHOP.replace(
            "command = \"web-v1\"",
            "command = \"web-v1\"\nport_timeout = \"10m\"",
        ))
        .await;
    assert_eq!(v.state, VersionState::Failed);
    assert_eq!(t0.elapsed().as_secs(), 300);
    let failure = v.failure.unwrap_or_default();
    assert!(failure.contains("deploy timeout (5m)"), "{failure}");
    assert!(failure.contains("web 0/2 ready"), "{failure}");
    h.until("hung sandboxes stopped", |s| {
        running(s, "web") == 0 && s.pools.is_empty()
    })
    .await;
    assert!(h.rt.running().is_empty());
}

#[tokio::test(start_paused = true)]
async fn crash_backoff_doubles_from_one_second_caps_at_five_minutes_and_resets() {
    let h = Harness::new().await;
    let src = "name = \"shop\"\n[services.worker]\ncommand = \"crashy\"\n";
    // Ready at once, dies 100 ms later: a quick crash every time.
    h.rt.behave(
        "crashy",
        Behavior::ReadyThenExit(Duration::ZERO, Duration::from_millis(100), 1),
    );
    let mut events = h.ctl.subscribe();
    h.deploy_and_wait(src).await;
    // The subscription saw the first start too.
    let mut starts: Vec<Instant> = Vec::new();
    while starts.len() < 12 {
        if let Ok(Event::Sandbox {
            status: SandboxStatus::Pending,
            ..
        }) = events.recv().await
        {
            starts.push(Instant::now());
        }
    }
    let gaps: Vec<u64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0] - Duration::from_millis(100)).as_millis() as u64)
        .collect();
    assert_eq!(
        gaps,
        [
            1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000
        ]
    );
    let pool = h.snap().await.pools[0].clone();
    assert_eq!(pool.quick_crashes, 11);

    // A sandbox that stays up 2 minutes clears the record; the next crash waits 1 s.
    h.rt.behave("crashy", Behavior::Ready(Duration::ZERO));
    h.until("a healthy sandbox ran 2 minutes", |s| {
        s.pools[0].quick_crashes == 0 && running(s, "worker") == 1
    })
    .await;
    let healthy = h
        .snap()
        .await
        .sandboxes
        .iter()
        .find(|s| s.status == SandboxStatus::Running)
        .map(|s| s.id.clone())
        .expect("running");
    h.rt.behave(
        "crashy",
        Behavior::ReadyThenExit(Duration::ZERO, Duration::from_millis(100), 1),
    );
    let crash_at = Instant::now();
    assert!(h.rt.crash(&healthy, 1));
    h.until("replacement started", |s| running(s, "worker") == 1)
        .await;
    // The healthy one ran > 2 min, so its crash is not quick: replaced at once.
    assert_eq!(crash_at.elapsed(), Duration::ZERO);
    h.until("next quick crash backs off 1 s", |s| {
        s.pools[0].quick_crashes == 1
    })
    .await;
    let before = Instant::now();
    h.until("replacement after 1 s", |s| running(s, "worker") == 1)
        .await;
    assert_eq!(before.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_killed_instance_is_replaced_and_app_list_shows_the_crash() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    let victim = h.rt.running_of("shop", "web")[0].id.clone();
    assert!(h.rt.crash(&victim, 137));
    let s = h.until("web back to 2", |s| running(s, "web") == 2).await;
    let dead = s.sandboxes.iter().find(|x| x.id == victim).expect("kept");
    assert_eq!(dead.status, SandboxStatus::Dead);
    assert_eq!(dead.exit_code, Some(137));
    // It lived 0 s: a quick crash, so the replacement waited 1 s.
    let web = s.pools.iter().find(|p| p.service == "web").expect("web");
    assert_eq!(web.quick_crashes, 1);
}

#[tokio::test(start_paused = true)]
async fn disk_pools_never_overlap_old_and_new() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    let mut events = h.ctl.subscribe();
    let watcher = {
        let rt = h.rt.clone();
        tokio::spawn(async move {
            let mut most = 0;
            while let Ok(ev) = events.recv().await {
                if matches!(
                    ev,
                    Event::Version {
                        state: VersionState::Active,
                        ..
                    }
                ) {
                    break;
                }
                most = most.max(rt.running_of("shop", "postgres").len());
            }
            most
        })
    };
    h.rt.behave("postgres-16", Behavior::Ready(Duration::from_secs(2)));
    let v2 = h
        .deploy_and_wait(&SHOP.replace("command = \"postgres\"", "command = \"postgres-16\""))
        .await;
    assert_eq!(v2.state, VersionState::Active);
    assert_eq!(watcher.await.expect("watcher"), 1);
    let pg = h.rt.running_of("shop", "postgres");
    assert_eq!(pg.len(), 1);
    assert_eq!(pg[0].spec.command.as_deref(), Some("postgres-16"));
}

#[tokio::test(start_paused = true)]
async fn a_stopped_disk_instance_is_replaced_only_once_it_is_gone() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    let pg = h
        .snap()
        .await
        .sandboxes
        .into_iter()
        .find(|x| x.service == "postgres" && x.status == SandboxStatus::Running)
        .expect("postgres runs");
    let old = pg.id.clone();
    let mut events = h.ctl.subscribe();
    let watcher = {
        let (rt, old) = (h.rt.clone(), old.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while let Ok(ev) = events.recv().await {
                most = most.max(rt.running_of("shop", "postgres").len());
                if let Event::Sandbox { id, status, .. } = ev
                    && id != old
                    && status == SandboxStatus::Running
                {
                    break;
                }
            }
            most
        })
    };
    h.ctl.stop_sandbox(&old).await.expect("stop");
    // Anything that makes the pool look again while the old one drains (here a
    // desired count set anew) must not start the replacement yet.
    h.ctl
        .set_desired(&pg.pool, 1, "again")
        .await
        .expect("set desired");
    let s = h.snap().await;
    let draining = s
        .sandboxes
        .iter()
        .find(|x| x.id == old)
        .expect("still known");
    assert_eq!(draining.status, SandboxStatus::Stopping);
    assert_eq!(
        watcher.await.expect("watcher"),
        1,
        "the disk was never shared"
    );
    assert_eq!(h.rt.running_of("shop", "postgres").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_disk_deploy_gives_the_old_pool_back() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    h.rt.behave(
        "pg-broken",
        Behavior::ExitBeforeReady(Duration::from_millis(10), 1),
    );
    let v2 = h
        .deploy_and_wait(&SHOP.replace("command = \"postgres\"", "command = \"pg-broken\""))
        .await;
    assert_eq!(v2.state, VersionState::Failed);
    h.until("old postgres back", |s| running(s, "postgres") == 1)
        .await;
    let pg = h.rt.running_of("shop", "postgres");
    assert_eq!(pg[0].spec.command.as_deref(), Some("postgres"));
}

#[tokio::test(start_paused = true)]
async fn rollback_reactivates_the_previous_version() {
    let h = Harness::new().await;
    let v1 = h.deploy_and_wait(SHOP).await;
    let v2 = h.deploy_and_wait(&SHOP.replace("web-v1", "web-v2")).await;
    assert_eq!(v2.state, VersionState::Active);
    let back = h.ctl.rollback("shop", None).await.expect("rollback");
    assert_eq!(back, v1.id);
    let v = h.ctl.wait(&back).await.expect("wait");
    assert_eq!(v.state, VersionState::Active);
    let s = h.until("v2's web drained", |s| s.pools.len() == 2).await;
    assert_eq!(s.apps[0].active_version.as_ref(), Some(&v1.id));
    let states: Vec<_> = s.versions.iter().map(|v| v.state).collect();
    assert_eq!(states, [VersionState::Active, VersionState::Superseded]);
    assert!(
        h.rt.running_of("shop", "web")
            .iter()
            .all(|x| x.spec.command.as_deref() == Some("web-v1"))
    );
    let err = h.ctl.rollback("shop", Some(v1.id.clone())).await;
    assert!(err.is_err_and(|e| e.to_string().contains("already active")));
}

#[tokio::test(start_paused = true)]
async fn set_desired_resizes_and_stop_sandbox_is_replaced() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    let web = h
        .snap()
        .await
        .pools
        .iter()
        .find(|p| p.service == "web")
        .map(|p| p.id.clone())
        .expect("web");
    let p = h
        .ctl
        .set_desired(&web, 4, "set by an operator")
        .await
        .expect("set");
    assert_eq!(p.desired, 4);
    h.until("4 web", |s| running(s, "web") == 4).await;
    h.ctl
        .set_desired(&web, 1, "set by an operator")
        .await
        .expect("set");
    h.until("1 web", |s| {
        running(s, "web") == 1 && h.rt.running_of("shop", "web").len() == 1
    })
    .await;
    let one = h.rt.running_of("shop", "web")[0].id.clone();
    h.ctl.stop_sandbox(&one).await.expect("stop");
    let s = h
        .until("replaced", |s| {
            running(s, "web") == 1
                && s.sandboxes
                    .iter()
                    .any(|x| x.id == one && x.status == SandboxStatus::Stopped)
        })
        .await;
    assert!(
        s.sandboxes
            .iter()
            .any(|x| x.id != one && x.status == SandboxStatus::Running)
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_controller_adopts_what_runs_and_duplicates_nothing() {
    let h = Harness::new().await;
    let v = h.deploy_and_wait(SHOP).await;
    let before: Vec<_> = h.rt.running();
    drop(h.ctl);
    let ctl = start(&h.store, &h.rt, &h.artifacts).await;
    let mut events = ctl.subscribe();
    loop {
        let s = ctl.snapshot(Some("shop")).await.expect("snap");
        if running(&s, "web") == 2 && running(&s, "postgres") == 1 {
            assert_eq!(s.apps[0].active_version.as_ref(), Some(&v.id));
            break;
        }
        tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("event")
            .ok();
    }
    assert_eq!(
        h.rt.running(),
        before,
        "no sandbox was replaced or duplicated"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_everything_and_the_next_start_brings_it_back() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    h.ctl.shutdown().await.expect("shutdown");
    assert!(h.rt.running().is_empty());
    let stored = h.store.list("sandboxes/shop/").await.expect("list").0;
    assert_eq!(stored.len(), 3);
    assert!(
        stored
            .iter()
            .all(|(_, v)| String::from_utf8_lossy(&v.value).contains("\"stopped\""))
    );
    let ctl = start(&h.store, &h.rt, &h.artifacts).await;
    let mut events = ctl.subscribe();
    while h.rt.running().len() < 3 {
        tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("event")
            .ok();
    }
    assert_eq!(h.rt.running().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn delete_app_stops_everything_and_forgets_it() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    h.ctl
        .put_route(route("shop.example.com", "shop", false))
        .await
        .expect("route");
    h.ctl.delete_app("shop", false).await.expect("delete");
    assert!(h.rt.running().is_empty());
    assert_eq!(h.rt.removed_apps(), [("shop".to_string(), false)]);
    assert_eq!(h.snap().await, Snapshot::default());
    assert!(h.store.list("").await.expect("list").0.is_empty());
    let err = h.ctl.delete_app("shop", false).await;
    assert!(err.is_err_and(|e| e.to_string() == "no app `shop`"));
}

fn route(host: &str, app: &str, default: bool) -> Route {
    Route {
        host: host.into(),
        app: app.into(),
        default,
    }
}

#[tokio::test(start_paused = true)]
async fn twenty_concurrent_default_routes_for_different_apps_leave_exactly_one() {
    let h = Harness::new().await;
    for i in 0..20 {
        let app = format!("name = \"a{i}\"\n[services.web]\ncommand = \"web\"\n");
        h.deploy_and_wait(&app).await;
    }
    h.ctl
        .put_route(route("plain.example", "a0", false))
        .await
        .expect("route");
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let ctl = h.ctl.clone();
            // Half of them as `set-default` does it (the hostless route), half as a
            // host that is also the default.
            let host = if i % 2 == 0 {
                "*".to_string()
            } else {
                format!("a{i}.example")
            };
            tokio::spawn(async move { ctl.put_route(route(&host, &format!("a{i}"), true)).await })
        })
        .collect();
    for c in calls {
        let r = c.await.expect("task").expect("route accepted");
        assert!(r.default);
    }
    let stored: Vec<Route> = keys::list(h.store.as_ref(), keys::ROUTES)
        .await
        .expect("routes");
    let defaults: Vec<&Route> = stored.iter().filter(|r| r.default).collect();
    assert_eq!(defaults.len(), 1, "{stored:#?}");
    assert!(
        stored
            .iter()
            .any(|r| r.host == "plain.example" && !r.default)
    );
    let all = h.ctl.snapshot(None).await.expect("snapshot");
    assert_eq!(all.routes, stored, "the controller agrees with the store");
}

#[tokio::test(start_paused = true)]
async fn routes_need_an_app_and_a_host_name() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    let e = h.ctl.put_route(route("a.example", "nope", false)).await;
    assert!(e.is_err_and(|e| e.to_string() == "no app `nope`"));
    let e = h
        .ctl
        .put_route(route("http://a.example/", "shop", false))
        .await;
    assert!(e.is_err_and(|e| e.to_string().contains("is not a host name")));
    let e = h.ctl.remove_route("a.example").await;
    assert!(e.is_err_and(|e| e.to_string() == "no route `a.example`"));
    h.ctl
        .put_route(route("a.example", "shop", false))
        .await
        .expect("route");
    h.ctl.remove_route("a.example").await.expect("removed");
    assert!(h.snap().await.routes.is_empty());
}

const AUTO: &str = r#"
name = "shop"
[services.web]
command = "web"
[services.web.concurrency]
mode = "auto"
requests_per_instance = 10
scale_down_delay = "1m"
min_instances = 0
max_instances = 5
"#;

fn web_pool(s: &Snapshot) -> miren_core::model::SandboxPool {
    s.pools
        .iter()
        .find(|p| p.service == "web")
        .cloned()
        .expect("web pool")
}

#[tokio::test(start_paused = true)]
async fn autoscaler_ramps_up_at_once_holds_through_the_delay_and_idles_to_zero() {
    let h = Harness::new().await;
    let v = h.deploy_and_wait(AUTO).await;
    assert_eq!(v.state, VersionState::Active);
    let t0 = Instant::now();
    let pool = web_pool(&h.snap().await);
    assert_eq!(
        pool.desired, 1,
        "a new version starts at max(1, min_instances)"
    );

    // Ramp: each report raises desired immediately.
    for (load, want) in [(5, 1), (15, 2), (25, 3), (35, 4), (1000, 5)] {
        h.ctl.report_load(vec![(pool.id.clone(), load)]);
        let s = h
            .until(&format!("{load} in flight → {want}"), |s| {
                web_pool(s).desired == want && running(s, "web") == want as usize
            })
            .await;
        assert_eq!(t0.elapsed(), Duration::ZERO, "scale-up waits for nothing");
        if load == 1000 {
            assert!(web_pool(&s).desired_reason.contains("max_instances = 5"));
        }
    }

    // Calm: 5 in flight every 10 s. The spike's peak holds for the whole delay, then
    // desired drops to what 5 needs.
    let spike_at = Instant::now();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        h.ctl.report_load(vec![(pool.id.clone(), 5)]);
    }
    assert_eq!(web_pool(&h.snap().await).desired, 5);
    let s = h
        .until("after the delay: 1", |s| web_pool(s).desired == 1)
        .await;
    assert_eq!(spike_at.elapsed(), Duration::from_secs(60));
    assert!(
        web_pool(&s).desired_reason.contains("peak 5 in flight"),
        "{}",
        web_pool(&s).desired_reason
    );

    // Idle: a minute after the last report, zero.
    let last_report = spike_at + Duration::from_secs(50);
    let s = h.until("idle → 0", |s| web_pool(s).desired == 0).await;
    assert_eq!(Instant::now() - last_report, Duration::from_secs(60));
    assert_eq!(
        web_pool(&s).desired_reason,
        "auto: no request in the last 1m"
    );
    // The last instance gets no new request at once (it is draining), and its signal
    // after the drain delay.
    let s = h
        .until("draining", |s| {
            count(s, "web", SandboxStatus::Stopping) == 1
        })
        .await;
    assert_eq!(running(&s, "web"), 0);
    assert_eq!(Instant::now() - last_report, Duration::from_secs(60));
    h.until("stopped", |s| {
        !s.sandboxes
            .iter()
            .any(|x| x.service == "web" && x.is_live())
    })
    .await;
    assert_eq!(
        Instant::now() - last_report,
        Duration::from_secs(60) + ControllerConfig::new(h.artifacts.clone()).drain_delay
    );
    assert!(h.rt.running_of("shop", "web").is_empty());

    // A waiting request brings one back.
    h.ctl.want_capacity(&pool.id);
    h.until("scale from zero", |s| running(s, "web") == 1).await;
}

#[tokio::test(start_paused = true)]
async fn min_instances_is_a_floor_and_a_redeploy_keeps_the_pool_scaled() {
    let h = Harness::new().await;
    let src = AUTO.replace("min_instances = 0", "min_instances = 2");
    h.deploy_and_wait(&src).await;
    let pool = web_pool(&h.snap().await);
    assert_eq!(pool.desired, 2);
    h.ctl.report_load(vec![(pool.id.clone(), 31)]);
    h.until("4", |s| web_pool(s).desired == 4).await;
    // Changing only scaling keeps the pool (same spec), resized within the new bounds.
    let v2 = h
        .deploy_and_wait(&src.replace("max_instances = 5", "max_instances = 3"))
        .await;
    assert_eq!(v2.state, VersionState::Active);
    let s = h.until("clamped to 3", |s| web_pool(s).desired == 3).await;
    assert_eq!(web_pool(&s).id, pool.id);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        web_pool(&h.snap().await).desired,
        2,
        "never below min_instances"
    );
}

#[tokio::test(start_paused = true)]
async fn an_auto_pool_that_never_sees_a_request_goes_to_zero_after_the_delay() {
    let h = Harness::new().await;
    h.deploy_and_wait(AUTO).await;
    let t0 = Instant::now();
    h.until("zero", |s| web_pool(s).desired == 0).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn shutdown_also_stops_a_sandbox_whose_start_is_still_in_flight() {
    let h = Harness::new().await;
    h.deploy_and_wait(SHOP).await;
    let web = web_pool(&h.snap().await).id;
    h.rt.start_delay(Duration::from_secs(3));
    h.ctl
        .set_desired(&web, 3, "set by an operator")
        .await
        .expect("set");
    // The third web sandbox is being started when the shutdown comes.
    h.until("starting", |s| {
        s.sandboxes
            .iter()
            .filter(|x| x.service == "web" && x.status == SandboxStatus::Pending)
            .count()
            == 1
    })
    .await;
    h.ctl.shutdown().await.expect("shutdown");
    assert_eq!(h.rt.running(), Vec::new(), "nothing is left running");
}

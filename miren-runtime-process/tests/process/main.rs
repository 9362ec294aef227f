//! The process runtime with the controller: real processes on loopback.

mod helper;
mod server;
mod stops;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use miren_core::artifact::ArtifactStore;
use miren_core::controller::{Controller, ControllerConfig, Snapshot};
use miren_core::model::{SandboxStatus, Version, VersionState};
use miren_core::runtime::{LogRecord, LogSink};
use miren_core::store::{MemoryStore, Store};
use miren_runtime_process::{ProcessRuntime, group_members};
use tokio::time::Instant;

/// Not a test: the entry point of the apps and the server the tests run.
#[test]
fn helper() {
    helper::run();
}

#[derive(Default)]
struct Logs(Mutex<Vec<LogRecord>>);

impl LogSink for Logs {
    fn write(&self, r: LogRecord) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }
}

struct Harness {
    ctl: Controller,
    rt: ProcessRuntime,
    store: Arc<MemoryStore>,
    artifacts: ArtifactStore,
    logs: Arc<Logs>,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MemoryStore::new());
        let artifacts = ArtifactStore::open(dir.path().join("artifacts")).expect("artifacts");
        let rt = ProcessRuntime::new(dir.path().join("process"), store.clone())
            .await
            .expect("runtime");
        let logs = Arc::new(Logs::default());
        let ctl = start(&store, &rt, &artifacts, &logs).await;
        Self {
            ctl,
            rt,
            store,
            artifacts,
            logs,
            dir,
        }
    }

    /// Writes `app.toml` into a fresh app dir and deploys it; waits for the outcome.
    async fn deploy(&self, app_toml: &str) -> Version {
        miren_core::testing::deploy_text(&self.ctl, &self.artifacts, self.dir.path(), app_toml)
            .await
            .expect("deploy")
    }

    async fn snap(&self) -> Snapshot {
        self.ctl.snapshot(None).await.expect("snapshot")
    }

    /// Waits (real time, 20 s at most) until `cond` holds.
    async fn until(&self, what: &str, cond: impl Fn(&Snapshot) -> bool) -> Snapshot {
        match self.ctl.wait_for(None, Duration::from_secs(20), cond).await {
            Ok(Some(s)) => s,
            _ => panic!(
                "timed out waiting for: {what}\nlast state: {:#?}",
                self.snap().await
            ),
        }
    }
}

impl Drop for Harness {
    /// A test that panics before shutting down leaves no process behind.
    fn drop(&mut self) {
        self.rt.kill_all();
    }
}

async fn start(
    store: &Arc<MemoryStore>,
    rt: &ProcessRuntime,
    artifacts: &ArtifactStore,
    logs: &Arc<Logs>,
) -> Controller {
    let mut cfg = ControllerConfig::new(artifacts.clone());
    cfg.stop_grace = Duration::from_secs(2);
    cfg.logs = logs.clone();
    Controller::start(store.clone() as Arc<dyn Store>, Arc::new(rt.clone()), cfg)
        .await
        .expect("controller")
}

fn rand_suffix() -> String {
    miren_core::model::new_suffix()
}

fn running(s: &Snapshot, service: &str) -> Vec<miren_core::model::Sandbox> {
    s.sandboxes
        .iter()
        .filter(|x| x.service == service && x.status == SandboxStatus::Running)
        .cloned()
        .collect()
}

fn web_and_db(web_extra: &str) -> String {
    format!(
        r#"name = "shop"

[services.web]
command = "{web}{web_extra}"
[services.web.concurrency]
mode = "fixed"
num_instances = 2
[[services.web.env]]
key = "UPSTREAM"
value = "db.app.miren:5432"

[services.db]
command = "{db}"
port = 5432
[[services.db.disks]]
name = "data"
mount_path = "/data"
size_gb = 1
"#,
        web = helper::command("http"),
        db = helper::command("counter"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_answer_on_their_own_ports_a_killed_one_is_replaced_and_stop_leaves_nothing()
{
    let h = Harness::new().await;
    let v = h.deploy(&web_and_db("")).await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let s = h
        .until("2 web running", |s| running(s, "web").len() == 2)
        .await;
    let web = running(&s, "web");
    let addrs: BTreeSet<_> = web.iter().filter_map(|w| w.address).collect();
    assert_eq!(addrs.len(), 2, "distinct ports: {addrs:?}");
    let mut pids = BTreeSet::new();
    for a in &addrs {
        let body = helper::get(&a.to_string()).await.expect("instance answers");
        // `web <pid> db <pid> <n>`: web reached db through db.app.miren.
        let parts: Vec<&str> = body.split(' ').collect();
        assert_eq!(parts[0], "web", "{body}");
        assert_eq!(parts[2], "db", "{body}");
        pids.insert(parts[1].to_string());
    }
    assert_eq!(pids.len(), 2);

    // kill -9 one instance: it is replaced and the count is back to 2.
    let victim = web[0].clone();
    let pgid = h.rt.pgid(&victim.id).expect("pgid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let s = h
        .until("replaced", |s| {
            running(s, "web").len() == 2 && running(s, "web").iter().all(|w| w.id != victim.id)
        })
        .await;
    let dead = s
        .sandboxes
        .iter()
        .find(|x| x.id == victim.id)
        .expect("kept");
    assert_eq!(dead.status, SandboxStatus::Dead);
    assert_eq!(dead.reason.as_deref(), Some("killed by signal 9 (SIGKILL)"));

    // Stop: every process group is gone, children included.
    let groups: Vec<u32> = h
        .snap()
        .await
        .sandboxes
        .iter()
        .filter_map(|s| h.rt.pgid(&s.id))
        .collect();
    assert_eq!(groups.len(), 3);
    h.ctl.shutdown().await.expect("shutdown");
    for g in groups {
        assert_eq!(group_members(g), Vec::<u32>::new(), "group {g} left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_binds_the_services_port_itself_runs_two_instances_on_ports_of_their_own() {
    let h = Harness::new().await;
    // As Docker-first docs write it: `--bind 0.0.0.0:8000` for a service on 8000.
    let toml = format!(
        "name = \"fixed\"\n[services.web]\ncommand = \"LISTEN=0.0.0.0:8000 {}\"\nport = 8000\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 2\n",
        helper::command("http")
    );
    let v = h.deploy(&toml).await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let s = h
        .until("2 web running", |s| running(s, "web").len() == 2)
        .await;
    let addrs: BTreeSet<_> = running(&s, "web")
        .iter()
        .filter_map(|w| w.address)
        .collect();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    for a in &addrs {
        assert_ne!(a.port, Some(8000), "{a}");
        let body = helper::get(&a.to_string()).await.expect("instance answers");
        assert!(body.starts_with("web "), "{body}");
    }
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_gates_readiness_and_an_instance_that_fails_it_is_replaced() {
    let h = Harness::new().await;
    let flag = h.dir.path().join("sick");
    std::fs::write(&flag, "").expect("flag");
    let toml = format!(
        "name = \"checked\"\n[services.web]\ncommand = \"{}\"\nport_timeout = \"20s\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n[services.web.health]\npath = \"/health\"\ninterval = \"1s\"\nunhealthy_after = 2\n[[services.web.env]]\nkey = \"HEALTH_FLAG\"\nvalue = \"{}\"\n",
        helper::command("http"),
        flag.display()
    );
    // It listens at once, but answers 503: not ready until the flag goes.
    let deploy = {
        let (ctl, artifacts, dir) = (
            h.ctl.clone(),
            h.artifacts.clone(),
            h.dir.path().to_path_buf(),
        );
        tokio::spawn(async move {
            miren_core::testing::deploy_text(&ctl, &artifacts, &dir, &toml).await
        })
    };
    h.until("the instance is up, pending", |s| {
        s.sandboxes
            .iter()
            .any(|x| x.status == SandboxStatus::Pending && x.address.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = h.snap().await;
    assert_eq!(
        running(&s, "web").len(),
        0,
        "not ready while unhealthy: {s:#?}"
    );
    std::fs::remove_file(&flag).expect("healthy now");
    let v = deploy.await.expect("task").expect("deploy");
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let first = running(&h.snap().await, "web")[0].clone();

    // Sick again: after two failed checks it is out and replaced.
    std::fs::write(&flag, "").expect("flag");
    let s = h
        .until("the sick instance is replaced", |s| {
            s.sandboxes.iter().any(|x| {
                x.id == first.id
                    && x.status == SandboxStatus::Dead
                    && x.reason.as_deref().is_some_and(|r| {
                        r.starts_with("unhealthy: GET /health answered 503 (2 checks in a row)")
                    })
            })
        })
        .await;
    assert!(!running(&s, "web").iter().any(|x| x.id == first.id));
    std::fs::remove_file(&flag).expect("healthy again");
    h.until("a healthy replacement serves", |s| {
        running(s, "web").iter().any(|x| x.id != first.id)
    })
    .await;
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_sandbox_takes_its_grandchildren_along() {
    let h = Harness::new().await;
    let cmd = format!("sleep 300 & sleep 301 & {}", helper::command("worker"));
    let v = h
        .deploy(&format!(
            "name = \"kids\"\n[services.worker]\ncommand = \"{cmd}\"\n"
        ))
        .await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let s = h
        .until("worker running", |s| running(s, "worker").len() == 1)
        .await;
    let id = running(&s, "worker")[0].id.clone();
    let pgid = h.rt.pgid(&id).expect("pgid");
    // A service without a port is ready once spawned; its shell forks the sleeps and
    // the worker prints right after. Wait for both (bounded).
    let has_tick = |h: &Harness| {
        h.logs
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|l| l.service == "worker" && l.app == "kids" && l.line == "tick 0")
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while (group_members(pgid).len() < 3 || !has_tick(&h)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(group_members(pgid).len(), 3, "sh/worker plus two sleeps");
    // Its output is captured line by line, tagged with app and service.
    assert!(has_tick(&h), "no `tick 0` line captured");
    h.ctl.stop_sandbox(&id).await.expect("stop");
    h.until("stopped", |s| {
        s.sandboxes
            .iter()
            .any(|x| x.id == id && x.status == SandboxStatus::Stopped)
    })
    .await;
    assert_eq!(group_members(pgid), Vec::<u32>::new());
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_web_restarts_web_only_and_the_db_keeps_its_sandbox_and_pid() {
    let h = Harness::new().await;
    h.deploy(&web_and_db("")).await;
    let s = h.until("up", |s| running(s, "web").len() == 2).await;
    let db = running(&s, "db")[0].clone();
    let db_pid = h.rt.pgid(&db.id).expect("db pid");
    let v2 = h.deploy(&web_and_db(" # v2")).await;
    assert_eq!(v2.state, VersionState::Active, "{:?}", v2.failure);
    let s = h
        .until("old web gone", |s| {
            running(s, "web").len() == 2 && running(s, "web").iter().all(|w| w.version == v2.id)
        })
        .await;
    let db_now = running(&s, "db");
    assert_eq!(db_now.len(), 1);
    assert_eq!(db_now[0].id, db.id);
    assert_eq!(h.rt.pgid(&db.id), Some(db_pid));
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_web_serves_until_the_new_one_is_ready_and_a_broken_deploy_changes_nothing() {
    let h = Harness::new().await;
    h.deploy(&web_and_db("")).await;
    let web_addr =
        h.rt.service_address("shop", "web")
            .expect("stable web address")
            .to_string();

    // A bounded request loop against web's stable address during two deploys.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let load = {
        let (stop, answered) = (stop.clone(), answered.clone());
        let addr = web_addr.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let t0 = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && ok + (failed.len() as u32) < 20_000
                && t0.elapsed() < Duration::from_secs(30)
            {
                match helper::get(&addr).await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (ok, failed)
        })
    };
    let count = || answered.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while count() < 5 {
        assert!(Instant::now() < deadline, "the load loop never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before_deploys = count();
    // v2's web takes 300 ms to listen.
    let slow = web_and_db("").replace(
        "value = \"db.app.miren:5432\"",
        "value = \"db.app.miren:5432\"\n[[services.web.env]]\nkey = \"STARTUP_MS\"\nvalue = \"300\"",
    );
    let v2 = h.deploy(&slow).await;
    assert_eq!(v2.state, VersionState::Active, "{:?}", v2.failure);
    h.until("v1 web drained", |s| {
        running(s, "web").iter().all(|w| w.version == v2.id)
    })
    .await;

    // v3's web exits at once: failed, v2 keeps serving.
    let broken = slow.replace(&helper::command("http"), &helper::command("exit"));
    let v3 = h.deploy(&broken).await;
    assert_eq!(v3.state, VersionState::Failed);
    let failure = v3.failure.unwrap_or_default();
    assert!(
        failure.contains("exited with code 3 before it was ready"),
        "{failure}"
    );
    assert!(failure.contains("boom: missing DATABASE_URL"), "{failure}");
    let s = h.snap().await;
    assert_eq!(s.apps[0].active_version.as_ref(), Some(&v2.id));

    // Requests went on during the deploys (however fast this machine is).
    let deadline = Instant::now() + Duration::from_secs(20);
    while count() < before_deploys + 5 {
        assert!(Instant::now() < deadline, "the load loop stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.await.expect("load loop");
    assert!(ok >= 10, "only {ok} requests went through");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        failed.first()
    );
    let body = helper::get(&web_addr).await.expect("v2 serves");
    let pid: u32 = body
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("pid");
    let v2_pids: Vec<u32> = running(&s, "web")
        .iter()
        .filter_map(|w| h.rt.pgid(&w.id))
        .collect();
    assert!(v2_pids.contains(&pid));
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_data_survives_a_redeploy_and_a_restart() {
    let h = Harness::new().await;
    let counter = |extra: &str| {
        format!(
            "name = \"kv\"\n[services.db]\ncommand = \"{}{extra}\"\nport = 5432\n[[services.db.disks]]\nname = \"data\"\nmount_path = \"/data\"\nsize_gb = 1\n",
            helper::command("counter")
        )
    };
    h.deploy(&counter("")).await;
    let addr =
        h.rt.service_address("kv", "db")
            .expect("address")
            .to_string();
    let count = |line: String| line.rsplit(' ').next().unwrap_or_default().to_string();
    assert_eq!(count(helper::read_line_from(&addr).await.expect("1")), "1");
    assert_eq!(count(helper::read_line_from(&addr).await.expect("2")), "2");
    let v2 = h.deploy(&counter(" # v2")).await;
    assert_eq!(v2.state, VersionState::Active, "{:?}", v2.failure);
    assert_eq!(count(helper::read_line_from(&addr).await.expect("3")), "3");
    h.ctl.shutdown().await.expect("shutdown");
    h.rt.close().await;
    let rt = ProcessRuntime::new(h.dir.path().join("process"), h.store.clone())
        .await
        .expect("runtime again");
    let ctl = start(&h.store, &rt, &h.artifacts, &h.logs).await;
    let mut events = ctl.subscribe();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctl
        .snapshot(None)
        .await
        .map(|s| running(&s, "db").len())
        .unwrap_or(0)
        != 1
    {
        tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("db back")
            .ok();
    }
    let addr2 = rt.service_address("kv", "db").expect("address").to_string();
    assert_eq!(addr2, addr, "the stable address survived the restart");
    assert_eq!(count(helper::read_line_from(&addr).await.expect("4")), "4");
    assert!(h.dir.path().join("process/disks/kv/data/count").is_file());
    ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_service_fails_the_deploy_and_says_to_use_docker() {
    let h = Harness::new().await;
    let v = h
        .deploy("name = \"pg\"\n[services.web]\ncommand = \"true\"\n[services.postgres]\nimage = \"postgres:16\"\n")
        .await;
    assert_eq!(v.state, VersionState::Failed);
    let failure = v.failure.unwrap_or_default();
    assert!(
        failure.contains("service `postgres` runs the image `postgres:16`"),
        "{failure}"
    );
    assert!(failure.contains("--runtime docker"), "{failure}");
    assert!(h.snap().await.sandboxes.is_empty());
}

/// Processes whose environment carries `MIREN_TEST_MARK=<mark>`.
fn marked(mark: &str) -> BTreeSet<u32> {
    with_env(&format!("MIREN_TEST_MARK={mark}"))
}

/// Live processes (zombies left out) whose environment holds `key=value`.
fn with_env(kv: &str) -> BTreeSet<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .ok()
                        .and_then(|s| Some(s.get(s.rfind(')')? + 2..)?.starts_with(['Z', 'X'])))
                        == Some(false);
                    alive
                        && std::fs::read(format!("/proc/{pid}/environ"))
                            .map(|env| env.split(|b| *b == 0).any(|k| k == kv.as_bytes()))
                            .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A server run by this test binary, and the mark its sandboxes carry: dropped (a
/// test that failed midway), it is killed, and so is every process with the mark,
/// whichever server started it.
struct Spawned {
    child: std::process::Child,
    mark: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in marked(&self.mark) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn spawn_server(data: &Path, deploy: Option<&Path>, mark: &str) -> (Spawned, String) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
    cmd.args([
        "helper",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ])
    .env("MIREN_TEST_ROLE", "server")
    .env("MIREN_TEST_DATA", data)
    .stdout(std::process::Stdio::piped());
    if let Some(d) = deploy {
        cmd.env("MIREN_TEST_DEPLOY_DIR", d);
    }
    let mut child = Spawned {
        child: cmd.spawn().expect("server"),
        mark: mark.to_string(),
    };
    let out = child.child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(out).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.by_ref().map_while(Result::ok) {
            if l.starts_with("ready") || l.starts_with("never") {
                let _ = tx.send(l);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server ready");
    (child, line)
}

#[test]
fn kill_9_of_the_server_loses_no_deploy_and_leaves_no_orphan_or_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = rand_suffix();
    let app = dir.path().join("app");
    std::fs::create_dir_all(app.join(".miren")).expect("app");
    std::fs::write(
        app.join(".miren/app.toml"),
        format!(
            "name = \"crashy\"\n[services.web]\ncommand = \"MIREN_TEST_MARK={mark} {web}\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 2\n[services.worker]\ncommand = \"MIREN_TEST_MARK={mark} {worker}\"\n",
            web = helper::command("http"),
            worker = helper::command("worker"),
        ),
    )
    .expect("app.toml");
    let data = dir.path().join("data");

    let (mut first, ready1) = spawn_server(&data, Some(&app), &mark);
    assert!(ready1.starts_with("ready crashy-v"), "{ready1}");
    let before = marked(&mark);
    assert_eq!(before.len(), 3, "2 web + 1 worker: {before:?}");
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    // The sandboxes outlive the killed server: this is what the restart must clean up.
    assert_eq!(marked(&mark), before);

    let (mut second, ready2) = spawn_server(&data, None, &mark);
    assert_eq!(
        ready2, ready1,
        "the same version is active after the restart"
    );
    let after = marked(&mark);
    assert_eq!(after.len(), 3, "no duplicate: {after:?}");
    assert!(
        after.is_disjoint(&before),
        "no orphan of the first server survives"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = second.child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        marked(&mark),
        BTreeSet::new(),
        "a clean shutdown leaves nothing"
    );
    let _: PathBuf = data;
}

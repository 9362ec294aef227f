//! `miren server --runtime docker|auto` with real containers, from the images
//! `tests/images/build.sh` makes. Without an Engine these skip and say so; with
//! `MIREN_TEST_DOCKER=1` (CI) they must run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TestServer, get_path, signal, wait_exit};

/// Whether the Docker tests run here: an Engine and the test images. Panics when
/// `MIREN_TEST_DOCKER=1` requires them and they are missing.
pub(super) fn docker_here() -> bool {
    let required = std::env::var("MIREN_TEST_DOCKER").is_ok_and(|v| v == "1");
    let images = ["miren-test/busybox", "redis:7-alpine", "busybox:1.36"];
    let why = match Command::new("docker")
        .args(["image", "inspect"])
        .args(images)
        .output()
    {
        Ok(o) if o.status.success() => return true,
        Ok(o) => format!(
            "no Docker Engine or test images ({}): run `bash tests/images/build.sh`",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("no docker CLI ({e})"),
    };
    assert!(!required, "MIREN_TEST_DOCKER=1, but {why}");
    eprintln!("skipping a Docker test: {why}");
    false
}

/// `docker <args>`; its trimmed stdout, or `None` when it failed.
pub(super) fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A copy of an example app in a temp dir.
pub(super) fn example(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    copy_dir(&super::examples().join(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Deploys `dir` as the app `name` (tests running at once each deploy their own: two
/// servers can't share an app's network).
pub(super) fn deploy_as(server: &TestServer, dir: &Path, name: &str) -> String {
    server.ok([
        std::ffi::OsStr::new("deploy"),
        "-d".as_ref(),
        dir.as_os_str(),
        "-a".as_ref(),
        name.as_ref(),
    ])
}

/// The sandboxes of `app` that run, by service.
pub(super) fn running(server: &TestServer, app: &str) -> Vec<Value> {
    let v = server.json(&["sandbox", "list", "-a", app, "--status", "running"]);
    v.as_array().cloned().unwrap_or_default()
}

/// Removes whatever a test's apps left in the Engine, whatever happened.
pub(super) struct Cleanup(pub(super) Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for app in &self.0 {
            if let Some(ids) = docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=dev.miren.app={app}"),
            ]) {
                for id in ids.split_whitespace() {
                    let _ = docker(&["rm", "-f", "-v", id]);
                }
            }
            let _ = docker(&["network", "rm", &format!("miren-{app}")]);
            if let Some(images) = docker(&["images", "-q", &format!("miren/{app}")]) {
                for id in images.split_whitespace() {
                    let _ = docker(&["rmi", "-f", id]);
                }
            }
            if let Some(vols) = docker(&[
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=dev.miren.app={app}"),
            ]) {
                for v in vols.split_whitespace() {
                    let _ = docker(&["volume", "rm", v]);
                }
            }
        }
    }
}

#[test]
fn the_counter_example_runs_in_containers_finding_redis_through_service_dns() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["count-a".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = example("counter");
    let version = deploy_as(&server, app.path(), "count-a");
    server.ok(["route", "set-default", "--app", "count-a"]);
    for n in 1..=2 {
        let (status, body) = get_path(&server.http, "any.example", "/cgi-bin/count");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, format!("visit {n}, counted by redis\n"));
    }
    let sandboxes = running(&server, "count-a");
    assert_eq!(sandboxes.len(), 2, "{sandboxes:#?}");
    assert!(
        sandboxes.iter().all(|s| s["runtime"] == "docker"),
        "{sandboxes:#?}"
    );
    // `app status` measures each container through the Engine's stats, and counts the
    // requests the web container answered.
    let status = server.json(&["app", "status", "-a", "count-a"]);
    let instances = status["instances"].as_array().cloned().unwrap_or_default();
    assert_eq!(instances.len(), 2, "{status}");
    assert!(
        instances
            .iter()
            .all(|i| i["memory_bytes"].as_u64().is_some_and(|m| m > 0)
                && i["cpu_percent"].is_number()),
        "{instances:#?}"
    );
    assert_eq!(status["traffic"][0]["requests"], 2, "{status}");
    // Removed with the app: its containers and its network.
    server.ok(["app", "delete", "count-a"]);
    assert_eq!(
        docker(&["ps", "-aq", "--filter", "label=dev.miren.app=count-a"]).as_deref(),
        Some("")
    );
    assert!(docker(&["network", "inspect", "miren-count-a"]).is_none());
    // And the image built for it, once collected.
    let deadline = Instant::now() + Duration::from_secs(30);
    let image = format!("miren/count-a:{version}");
    assert!(version.starts_with("count-a-v"), "{version}");
    while docker(&["images", "-q", &image]).as_deref() != Some("") {
        assert!(
            Instant::now() < deadline,
            "{image} stays after the app's deletion"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();
}

#[test]
fn under_auto_a_process_web_reaches_its_redis_container() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["visits-a".into()]);
    let server = TestServer::start(&["--runtime", "auto"]);
    let app = example("visits");
    deploy_as(&server, app.path(), "visits-a");
    server.ok(["route", "set-default", "--app", "visits-a"]);
    let (status, body) = get_path(&server.http, "any.example", "/");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("visit 1, counted by redis at 127.77."),
        "{body}"
    );
    let sandboxes = running(&server, "visits-a");
    let runtime_of = |svc: &str| {
        sandboxes
            .iter()
            .find(|s| s["service"] == svc)
            .map(|s| s["runtime"].clone())
    };
    assert_eq!(
        runtime_of("web"),
        Some("process".into()),
        "no Dockerfile: a process"
    );
    assert_eq!(
        runtime_of("redis"),
        Some("docker".into()),
        "an image: a container"
    );
    let status = server.ok(["app", "status", "-a", "visits-a"]);
    assert!(
        status.contains("docker") && status.contains("process"),
        "{status}"
    );
    server.stop();
}

#[test]
fn another_apps_containers_can_neither_resolve_nor_reach_its_services() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["count-b".into(), "probe".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = example("counter");
    deploy_as(&server, app.path(), "count-b");
    let redis = running(&server, "count-b")
        .into_iter()
        .find(|s| s["service"] == "redis")
        .and_then(|s| s["address"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("count-b's redis runs"));
    let probe = super::super::app_dir(&format!(
        "name = \"probe\"\n[services.probe]\nimage = \"miren-test/busybox\"\n\
         command = \"nslookup redis.count-b.app.miren; nslookup redis; \
         if printf 'PING\\\\r\\\\n' | nc -w 2 {} 6379 | grep -q PONG; then echo REACHED; else echo UNREACHABLE; fi; \
         echo PROBE DONE; exec sleep 600\"\n",
        redis.replace(":6379", "")
    ));
    server.deploy(probe.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let logs = server.ok(["logs", "-a", "probe"]);
        if logs.contains("PROBE DONE") {
            break logs;
        }
        assert!(
            Instant::now() < deadline,
            "the probe never finished: {logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        logs.contains("REFUSED"),
        "another app's name is refused: {logs}"
    );
    assert!(
        logs.contains("UNREACHABLE") && !logs.contains("REACHED\n"),
        "{logs}"
    );
    server.stop();
}

#[test]
fn kill_9_of_a_docker_server_then_restart_adopts_its_containers_and_removes_strangers() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["count-c".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = example("counter");
    deploy_as(&server, app.path(), "count-c");
    let before: Vec<String> = running(&server, "count-c")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(before.len(), 2);
    let owner = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"dev.miren.owner\"}}",
        &before[0],
    ])
    .unwrap_or_else(|| panic!("{} is a container", before[0]));
    // What a crashed server may leave: a container of its own the store doesn't know.
    let stranger = "count-c-redis-1111111111111111111111";
    docker(&[
        "run",
        "-d",
        "--name",
        stranger,
        "--label",
        &format!("dev.miren.sandbox={stranger}"),
        "--label",
        "dev.miren.app=count-c",
        "--label",
        &format!("dev.miren.owner={owner}"),
        "miren-test/busybox",
        "sleep",
        "600",
    ])
    .unwrap_or_else(|| panic!("the stranger starts"));

    let data = {
        let mut s = server;
        signal(s.child.id(), nix::sys::signal::Signal::SIGKILL);
        wait_exit(&mut s.child, 10);
        std::mem::replace(
            &mut s.data,
            tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        )
    };
    let server = TestServer::start_in(data, &["--runtime", "docker"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now: Vec<String> = running(&server, "count-c")
            .iter()
            .filter_map(|s| s["id"].as_str().map(str::to_string))
            .collect();
        let gone = docker(&["inspect", stranger]).is_none();
        if now.len() == 2 && gone {
            let mut a = now.clone();
            let mut b = before.clone();
            a.sort();
            b.sort();
            assert_eq!(a, b, "the same containers, adopted, none started again");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "running {now:?}, stranger gone: {gone}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.ok(["route", "set-default", "--app", "count-c"]);
    let (status, body) = get_path(&server.http, "any.example", "/cgi-bin/count");
    assert_eq!(
        (status, body.as_str()),
        (200, "visit 1, counted by redis\n")
    );
    server.stop();
}

/// The four-service app of `tests/apps/shop`, with or without its Dockerfile.
fn shop(dockerfile: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    copy_dir(&super::examples().join("../tests/apps/shop"), dir.path());
    if !dockerfile {
        std::fs::remove_file(dir.path().join("Dockerfile")).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

/// Waits (60 s at most) until the worker says postgres has more than `n` rows and
/// redis counted them too; the line.
fn worker_counts(server: &TestServer, app: &str, n: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = server.ok(["logs", "-a", app, "--service", "worker"]);
        let found = logs.lines().rev().find_map(|l| {
            let rest = l.split("worker: postgres has ").nth(1)?;
            let (rows, rest) = rest.split_once(" ticks, redis counted ")?;
            let rows: u64 = rows.trim().parse().ok()?;
            let hits: u64 = rest.trim().parse().ok()?;
            (rows > n && hits > n).then(|| l.to_string())
        });
        if let Some(l) = found {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never counted past {n}: {logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_four_service_app_runs_in_containers_with_real_postgres_and_redis() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["shop-a".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = shop(true);
    deploy_as(&server, app.path(), "shop-a");
    server.ok(["route", "set-default", "--app", "shop-a"]);
    // The worker, in its container, writes to PostgreSQL and counts in Redis, both
    // found as <svc>.app.miren through service DNS.
    worker_counts(&server, "shop-a", 1);
    let (status, body) = get_path(&server.http, "any.example", "/cgi-bin/state");
    assert_eq!(status, 200, "{body}");
    let rows: u64 = body
        .trim()
        .strip_prefix("ticks in postgres: ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{body}"));
    assert!(rows >= 1, "{body}");
    let sandboxes = running(&server, "shop-a");
    assert_eq!(sandboxes.len(), 4, "{sandboxes:#?}");
    assert!(
        sandboxes.iter().all(|s| s["runtime"] == "docker"),
        "{sandboxes:#?}"
    );
    server.stop();
}

#[test]
fn without_its_dockerfile_under_auto_the_code_runs_as_processes_beside_the_databases() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["shop-b".into()]);
    let server = TestServer::start(&["--runtime", "auto"]);
    let app = shop(false);
    deploy_as(&server, app.path(), "shop-b");
    server.ok(["route", "set-default", "--app", "shop-b"]);
    // DATABASE_URL's postgres.app.miren is PostgreSQL's stable address here.
    worker_counts(&server, "shop-b", 1);
    let (status, body) = get_path(&server.http, "any.example", "/cgi-bin/state");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ticks in postgres: "), "{body}");
    let sandboxes = running(&server, "shop-b");
    for (svc, runtime) in [
        ("web", "process"),
        ("worker", "process"),
        ("postgres", "docker"),
        ("redis", "docker"),
    ] {
        let s = sandboxes.iter().find(|s| s["service"] == svc);
        assert_eq!(
            s.map(|s| s["runtime"].clone()),
            Some(runtime.into()),
            "{svc}"
        );
    }
    server.stop();
}

/// An app of one web service: busybox's httpd in a container, saying `served by <id>`.
fn httpd_app(name: &str, concurrency: &str, extra: &str) -> tempfile::TempDir {
    super::super::app_dir(&format!(
        "name = \"{name}\"\n[services.web]\nimage = \"miren-test/busybox\"\n\
         command = \"mkdir -p /www && echo served by $MIREN_SANDBOX > /www/index.html && exec httpd -f -p $PORT -h /www\"\n\
         {extra}[services.web.concurrency]\n{concurrency}\n"
    ))
}

fn web_pool(server: &TestServer, app: &str) -> Value {
    let pools = server.json(&["sandbox-pool", "list", "-a", app]);
    pools
        .as_array()
        .and_then(|p| {
            p.iter().find(|p| {
                p["service"] == "web" && !p["versions"].as_array().is_some_and(Vec::is_empty)
            })
        })
        .cloned()
        .unwrap_or_else(|| panic!("a web pool: {pools}"))
}

#[test]
fn containers_scale_2_3_1_and_a_crashing_one_backs_off() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["scale".into(), "crash".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = httpd_app("scale", "mode = \"fixed\"\nnum_instances = 2", "");
    server.deploy(app.path());
    let pool = web_pool(&server, "scale")["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for n in [2, 3, 1] {
        server.ok(["sandbox-pool", "set-desired", &pool, &n.to_string()]);
        server.until(
            &["sandbox", "list", "-a", "scale", "--status", "running"],
            |v| v.as_array().is_some_and(|a| a.len() == n),
        );
        let containers =
            docker(&["ps", "-q", "--filter", "label=dev.miren.app=scale"]).unwrap_or_default();
        let want = n;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut count = containers.split_whitespace().count();
        while count != want {
            assert!(
                Instant::now() < deadline,
                "{count} containers for {want} instances"
            );
            std::thread::sleep(Duration::from_millis(100));
            count = docker(&["ps", "-q", "--filter", "label=dev.miren.app=scale"])
                .unwrap_or_default()
                .split_whitespace()
                .count();
        }
    }

    // A worker that dies at once: replaced, later each time (1 s, 2 s, …).
    let crash = super::super::app_dir(
        "name = \"crash\"\n[services.web]\nimage = \"miren-test/busybox\"\n\
         command = \"mkdir -p /www && exec httpd -f -p $PORT -h /www\"\n\
         [services.worker]\nimage = \"miren-test/busybox\"\ncommand = \"echo dying; sleep 1; exit 4\"\n",
    );
    server.ok([
        std::ffi::OsStr::new("deploy"),
        "-d".as_ref(),
        crash.path().as_os_str(),
        "--no-wait".as_ref(),
    ]);
    // Three quick crashes, counted in `app status`…
    server.until(&["app", "status", "-a", "crash"], |v| {
        v["pools"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p["service"] == "worker" && p["quick_crashes"].as_u64() >= Some(3))
        })
    });
    // …and `app list` says what it is doing now.
    let status = server.until(&["app", "list"], |v| {
        v.as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["name"] == "crash"
                    && x["status"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("crashing (worker, retry in"))
            })
        })
    });
    let line = status
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "crash"))
        .map(|x| x["status"].to_string())
        .unwrap_or_default();
    assert!(line.contains("retry in"), "{line}");
    let dead = server.json(&["sandbox", "list", "-a", "crash", "--status", "dead"]);
    let dead = dead.as_array().cloned().unwrap_or_default();
    assert!(dead.len() >= 3, "{dead:#?}");
    // The gaps grow: 1 s, then 2 s (a container's start takes some of it).
    let mut created: Vec<u64> = dead
        .iter()
        .filter_map(|s| super::json_ms(&s["created"]))
        .collect();
    created.sort_unstable();
    let gaps: Vec<u64> = created.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g >= 900), "{gaps:?}");
    assert!(gaps.windows(2).all(|w| w[1] > w[0]), "growing: {gaps:?}");
    server.stop();
}

#[test]
fn a_container_web_at_zero_answers_a_held_request_once_it_is_ready() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["idle".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = httpd_app(
        "idle",
        "mode = \"auto\"\nmin_instances = 0\nscale_down_delay = \"1s\"",
        "",
    );
    server.deploy(app.path());
    server.ok(["route", "set-default", "--app", "idle"]);
    // Idle: no container left.
    server.until(&["sandbox-pool", "list", "-a", "idle"], |v| {
        v.as_array()
            .is_some_and(|a| a.iter().all(|p| p["desired"] == 0 && p["current"] == 0))
    });
    assert_eq!(
        docker(&["ps", "-q", "--filter", "label=dev.miren.app=idle"]).as_deref(),
        Some("")
    );
    // A request starts one, is held meanwhile, and is answered by it.
    let t = Instant::now();
    let (status, body) = get_path(&server.http, "any.example", "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("served by idle-web-"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    server.stop();
}

#[test]
fn a_redeploy_of_containers_under_load_fails_no_request() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["steady".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = httpd_app("steady", "mode = \"fixed\"\nnum_instances = 2", "");
    let v1 = server.deploy(app.path());
    server.ok(["route", "set-default", "--app", "steady"]);
    let (first, _) = get_path(&server.http, "any.example", "/");
    assert_eq!(first, 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let load = {
        let (http, stop, answered) = (server.http.clone(), stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(120);
            // Bounded: 50,000 requests or two minutes, whichever comes first.
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && ok + (failed.len() as u32) < 50_000
                && Instant::now() < deadline
            {
                match get_path(&http, "any.example", "/") {
                    (200, _) => ok += 1,
                    (s, b) => failed.push(format!("{s} {b}")),
                }
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (ok, failed)
        })
    };
    let until = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "{what} within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    until("the load runs", &|| {
        answered.load(std::sync::atomic::Ordering::Relaxed) >= 20
    });
    let of_v1 = format!("label=dev.miren.version={v1}");
    assert_eq!(
        docker(&["ps", "-q", "--filter", &of_v1]).map(|ids| ids.lines().count()),
        Some(2),
        "release 1 runs in two containers"
    );
    let v2 = httpd_app(
        "steady",
        "mode = \"fixed\"\nnum_instances = 2",
        "[[services.web.env]]\nkey = \"RELEASE\"\nvalue = \"2\"\n",
    );
    server.deploy(v2.path());
    // The load goes on until the old version's containers are stopped and gone, and a
    // little past it.
    until("release 1's containers are gone", &|| {
        docker(&["ps", "-aq", "--filter", &of_v1]).as_deref() == Some("")
    });
    let mark = answered.load(std::sync::atomic::Ordering::Relaxed);
    until("more requests after that", &|| {
        answered.load(std::sync::atomic::Ordering::Relaxed) >= mark + 20
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.join().unwrap_or_else(|_| panic!("the load thread"));
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests");
    server.stop();
}

#[test]
fn the_readme_examples_run_with_miren_up_as_written() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["visits".into(), "counter".into()]);
    for (name, path, answer) in [
        ("visits", "/", "visit 1, counted by redis at 127.77."),
        ("counter", "/cgi-bin/count", "visit 1, counted by redis\n"),
    ] {
        let app = example(name);
        let mut up = super::Guard(
            std::process::Command::new(assert_cmd::cargo::cargo_bin("miren"))
                .arg("up")
                .arg(app.path())
                .args(["--http-addr", "127.0.0.1:0"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let lines = super::lines_of(up.0.stdout.take().unwrap_or_else(|| panic!("stdout")));
        let url = super::wait_line(&lines, 120, |l| {
            super::after(l, "is up at http://").map(str::to_string)
        });
        let (status, body) = get_path(&url, "localhost", path);
        assert_eq!(status, 200, "{name}: {body}");
        assert!(body.starts_with(answer), "{name}: {body}");
        signal(up.0.id(), nix::sys::signal::Signal::SIGINT);
        let status = wait_exit(&mut up.0, 30);
        assert!(status.success(), "{name}: {status:?}");
        assert_eq!(
            docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=dev.miren.app={name}")
            ])
            .as_deref(),
            Some(""),
            "{name}: Ctrl-C leaves no container"
        );
    }
}

#[test]
fn without_an_engine_image_services_fail_to_deploy_saying_docker_is_needed() {
    // No Engine at all here, whatever this machine has.
    let missing = "unix:///nonexistent/docker.sock";
    let mut miren = Command::new(assert_cmd::cargo::cargo_bin("miren"));
    miren.env("DOCKER_HOST", missing);
    let server = TestServer::spawn(
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        &["--runtime", "auto"],
        miren,
    );
    let app =
        super::super::app_dir("name = \"db\"\n[services.postgres]\nimage = \"postgres:16\"\n");
    let out = server
        .cli()
        .args(["deploy", "-d"])
        .arg(app.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "service `postgres` runs the image `postgres:16`, which needs a Docker Engine"
        ),
        "{err}"
    );
    assert!(
        err.contains("no Docker Engine answers at /nonexistent/docker.sock"),
        "{err}"
    );
    assert!(err.contains("start one"), "says how: {err}");
    // Code without an image still runs: as a process.
    let web = super::super::app_dir(
        "name = \"plain\"\n[services.web]\ncommand = \"exec python3 -m http.server $PORT\"\n",
    );
    server.deploy(web.path());
    server.stop();

    // --runtime docker has nothing to run on: the server says so and doesn't start.
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(assert_cmd::cargo::cargo_bin("miren"))
        .env("DOCKER_HOST", missing)
        .args([
            "server",
            "--runtime",
            "docker",
            "--http-addr",
            "127.0.0.1:0",
            "--dns-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--runtime docker: no Docker Engine answers"),
        "{err}"
    );
}

#[test]
fn containers_are_health_checked_like_processes() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["checked".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    // Healthy: `/` answers 200 from the container's own address.
    let good = httpd_app(
        "checked",
        "mode = \"fixed\"\nnum_instances = 1",
        "port_timeout = \"20s\"\n[services.web.health]\npath = \"/index.html\"\ninterval = \"1s\"\n",
    );
    let v1 = server.deploy(good.path());
    server.ok(["route", "set-default", "-a", "checked"]);
    let (status, body) = get_path(&server.http, "any.example", "/");
    assert_eq!(status, 200, "{body}");
    // A check that gets 404: never ready, the deploy fails at its port timeout and
    // says what the last check got; the old version serves.
    let bad = httpd_app(
        "checked",
        "mode = \"fixed\"\nnum_instances = 1",
        "port_timeout = \"3s\"\n[services.web.health]\npath = \"/missing\"\ninterval = \"1s\"\n",
    );
    let err = server.deploy_fails(bad.path());
    assert!(
        err.contains(
            "did not answer healthy on /missing within 3s (last check: GET /missing answered 404)"
        ),
        "{err}"
    );
    assert_eq!(server.json(&["app", "list"])[0]["version"], v1.as_str());
    let (status, _) = get_path(&server.http, "any.example", "/");
    assert_eq!(status, 200);
    server.stop();
}

#[test]
fn onbuild_commands_run_on_the_built_image() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["imagebuilt".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = super::super::app_dir(
        "name = \"imagebuilt\"\n[build]\nonbuild = [\"echo made by onbuild > /app/asset.txt\"]\n[services.web]\ncommand = \"exec httpd -f -p $PORT -h /app\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n",
    );
    std::fs::write(
        app.path().join("Dockerfile"),
        "FROM miren-test/busybox\nCOPY . /app\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "imagebuilt"]);
    let (status, body) = get_path(&server.http, "any.example", "/asset.txt");
    assert_eq!((status, body.as_str()), (200, "made by onbuild\n"));
    server.stop();
}

#[test]
fn static_files_are_exported_from_the_built_image() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["imagestatic".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = super::super::app_dir(
        "name = \"imagestatic\"\n[static]\ndir = \"/app/dist\"\n[services.web]\ncommand = \"exec httpd -f -p $PORT -h /app\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n",
    );
    std::fs::write(app.path().join("hello.txt"), "from the web service\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        app.path().join("Dockerfile"),
        "FROM miren-test/busybox\nCOPY . /app\nRUN mkdir -p /app/dist/css && echo '<h1>from the image</h1>' > /app/dist/index.html && echo 'a{}' > /app/dist/css/a.css && ln -s /etc/passwd /app/dist/passwd\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "imagestatic"]);
    let get = |p: &str| get_path(&server.http, "any.example", p);
    assert_eq!(get("/"), (200, "<h1>from the image</h1>\n".into()));
    assert_eq!(get("/css/a.css"), (200, "a{}\n".into()));
    // Not exported (a link in the image): it goes on to the web, which has none.
    assert_eq!(get("/passwd").0, 404);
    assert_eq!(get("/hello.txt"), (200, "from the web service\n".into()));
    // No export container is left behind.
    let left = docker(&["ps", "-aq", "--filter", "name=miren-export-"]).unwrap_or_default();
    assert!(left.is_empty(), "{left}");
    server.stop();
}

#[test]
fn a_disk_owner_is_given_its_new_volume() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["owned".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = super::super::app_dir(
        "name = \"owned\"\n[services.web]\nimage = \"miren-test/busybox\"\ncommand = \"mkdir -p /www && stat -c %u:%g /data > /www/owner.txt; exec httpd -f -p $PORT -h /www\"\nport = 8080\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n[[services.web.disks]]\nname = \"data\"\nmount_path = \"/data\"\nsize_gb = 1\nowner = \"1234:4321\"\n",
    );
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "owned"]);
    let (status, body) = get_path(&server.http, "any.example", "/owner.txt");
    assert_eq!((status, body.trim()), (200, "1234:4321"));
    server.stop();
}

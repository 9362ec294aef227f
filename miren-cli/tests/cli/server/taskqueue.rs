//! The user's "Python App with Redis Queue", as written: Flask under gunicorn and
//! three `rq worker`s from PyPI as processes, Redis from its image in a container
//! (`--runtime auto`). Its command lines bind `0.0.0.0:8000` and name
//! `redis.app.miren:6379`; both must work on the process runtime.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestServer;
use super::docker::{Cleanup, deploy_as, docker_here, example, running};

/// The virtualenv with the example's requirements (`.ci/run` makes it); `None` (the
/// test skips, saying so) when it is missing — CI must not skip.
pub(super) fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("MIREN_TEST_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv"),
        PathBuf::from,
    );
    if dir.join("bin/gunicorn").is_file() && dir.join("bin/rq").is_file() {
        return Some(dir);
    }
    let how = "python3 -m venv target/test-venv && target/test-venv/bin/pip install -r \
               examples/python-redis-queue/requirements.txt";
    assert!(
        std::env::var_os("CI").is_none(),
        "no gunicorn and rq in {}: {how}",
        dir.display()
    );
    eprintln!("skipped: no gunicorn and rq in {} ({how})", dir.display());
    None
}

/// A server whose sandboxes find the virtualenv's programs (gunicorn, rq) on PATH.
pub(super) fn server_with(venv: &std::path::Path, runtime: &str) -> TestServer {
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut miren = Command::new(assert_cmd::cargo::cargo_bin("miren"));
    miren.env("PATH", path);
    TestServer::spawn(
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        &["--runtime", runtime],
        miren,
    )
}

/// One HTTP/1.0 request with a body; (status, JSON body).
fn send(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: tasks.example\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap_or_else(|e| panic!("{e}"));
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out}"));
    (status, json)
}

#[test]
fn the_python_redis_queue_example_runs_as_written_with_gunicorn_rq_and_redis() {
    if !docker_here() {
        return;
    }
    let Some(venv) = venv() else {
        return;
    };
    let _cleanup = Cleanup(vec!["taskq-a".into()]);
    let server = server_with(&venv, "auto");
    let app = example("python-redis-queue");
    deploy_as(&server, app.path(), "taskq-a");
    server.ok(["route", "set-default", "--app", "taskq-a"]);

    // Jobs in through gunicorn (started by the first request: web scales from zero).
    let texts = [
        "one",
        "two words",
        "three little words",
        "and now four words",
    ];
    let mut jobs = Vec::new();
    for text in texts {
        let (status, body) = send(&server.http, "POST", "/jobs", text);
        assert_eq!(status, 202, "{body}");
        let id = body["id"].as_str().unwrap_or_else(|| panic!("{body}"));
        jobs.push((id.to_string(), text.split_whitespace().count()));
    }
    // Done by the rq workers, through Redis in its container.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (id, words) in &jobs {
        loop {
            let (status, body) = send(&server.http, "GET", &format!("/jobs/{id}"), "");
            assert_eq!(status, 200, "{body}");
            if body["status"] == "finished" {
                assert_eq!(body["result"]["words"], *words as u64, "{body}");
                let worker = body["result"]["worker"].as_str().unwrap_or_default();
                assert!(worker.starts_with("taskq-a-worker-"), "{body}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} not finished within 60 s: {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let sandboxes = running(&server, "taskq-a");
    let of =
        |svc: &str| -> Vec<&Value> { sandboxes.iter().filter(|s| s["service"] == svc).collect() };
    assert_eq!(of("worker").len(), 3, "{sandboxes:#?}");
    assert!(of("worker").iter().all(|s| s["runtime"] == "process"));
    assert!(!of("web").is_empty() && of("web").iter().all(|s| s["runtime"] == "process"));
    assert_eq!(of("redis").len(), 1, "{sandboxes:#?}");
    assert_eq!(of("redis")[0]["runtime"], "docker");
    // Each web instance listens on a port of its own, not 8000.
    for web in of("web") {
        let addr = web["address"].as_str().unwrap_or_default();
        assert!(!addr.ends_with(":8000"), "{web:#}");
    }
    // rq knows the three workers, registered in Redis.
    let (_, index) = send(&server.http, "GET", "/", "");
    assert_eq!(index["workers"], 3, "{index}");
    server.stop();
}

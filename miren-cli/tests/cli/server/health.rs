//! Readiness as operators need it (SPEC §14), through the real binary: health checks
//! with real gunicorn, port and shutdown timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{TestServer, get};
use crate::app_dir;

/// A bounded GET loop on the proxy (any host reaches the default route), on a thread.
pub(super) struct Load {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU32>,
    thread: std::thread::JoinHandle<(u32, Vec<String>)>,
}

impl Load {
    /// Starts it and waits until it runs.
    pub(super) fn start(http: &str) -> Self {
        let (stop, count) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU32::new(0)),
        );
        let thread = {
            let (http, stop, count) = (http.to_string(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, Vec::new());
                let deadline = Instant::now() + Duration::from_secs(90);
                while !stop.load(Ordering::Relaxed)
                    && ok + (failed.len() as u32) < 20_000
                    && Instant::now() < deadline
                {
                    match get(&http, "any.example") {
                        (200, _) => ok += 1,
                        (s, b) => failed.push(format!("{s} {b}")),
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
                (ok, failed)
            })
        };
        let load = Self {
            stop,
            count,
            thread,
        };
        wait_for("the load loop runs", 20, || load.done() >= 10);
        load
    }

    fn done(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Lets it run a little more (`what`), stops it, and asserts no request failed.
    pub(super) fn finish_without_failures(self, what: &str) {
        let mark = self.done();
        wait_for(what, 20, || self.done() >= mark + 10);
        self.stop.store(true, Ordering::Relaxed);
        let (ok, failed) = self.thread.join().unwrap_or_else(|_| panic!("load"));
        assert!(
            failed.is_empty(),
            "{} of {} failed: {:?}",
            failed.len(),
            ok as usize + failed.len(),
            &failed[..failed.len().min(3)]
        );
    }
}

pub(super) fn wait_for(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const FLASK_TOML: &str = "name = \"flasky\"\n[services.web]\ncommand = \"gunicorn app:app --bind 127.0.0.1:$PORT\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n[services.web.health]\npath = \"/health\"\ninterval = \"1s\"\n";

#[test]
fn a_release_whose_module_fails_to_import_is_never_made_active_with_a_health_check() {
    let Some(venv) = super::taskqueue::venv() else {
        return;
    };
    let server = super::taskqueue::server_with(&venv, "process");
    let app = app_dir(FLASK_TOML);
    let good = "from flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef index():\n    return 'release 1\\n'\n\n@app.get('/health')\ndef health():\n    return 'ok'\n";
    std::fs::write(app.path().join("app.py"), good).unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "flasky"]);
    assert_eq!(
        get(&server.http, "any.example"),
        (200, "release 1\n".into())
    );

    let load = Load::start(&server.http);
    // Release 2 can't import its module: gunicorn's master listens, no worker boots.
    std::fs::write(
        app.path().join("app.py"),
        format!("import a_module_that_is_not_there\n{good}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = server.deploy_fails(app.path());
    assert!(err.contains("a_module_that_is_not_there"), "{err}");
    load.finish_without_failures("more requests after the failed deploy");
    assert_eq!(
        get(&server.http, "any.example"),
        (200, "release 1\n".into())
    );
    server.stop();
}

#[test]
fn an_instance_that_turns_unhealthy_under_load_is_replaced_with_no_failed_request() {
    let server = TestServer::start(&[]);
    let flags = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = app_dir(&format!(
        "name = \"sickbay\"\n[[env]]\nkey = \"FLAGS\"\nvalue = \"{}\"\n[services.web]\ncommand = \"exec python3 web.py\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 2\n[services.web.health]\npath = \"/health\"\ninterval = \"1s\"\nunhealthy_after = 2\n",
        flags.path().display()
    ));
    std::fs::write(
        app.path().join("web.py"),
        "import os\nfrom http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n\
         SICK = os.path.join(os.environ['FLAGS'], os.environ['MIREN_SANDBOX'])\n\
         class H(BaseHTTPRequestHandler):\n    protocol_version = 'HTTP/1.1'\n    def do_GET(self):\n\
         \x20       code = 503 if self.path == '/health' and os.path.exists(SICK) else 200\n\
         \x20       body = b'ok\\n'\n        self.send_response(code)\n        self.send_header('Content-Length', str(len(body)))\n        self.end_headers()\n        self.wfile.write(body)\n\
         \x20   def log_message(self, *a):\n        pass\n\
         ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "sickbay"]);
    let running = server.json(&["sandbox", "list", "-a", "sickbay", "--status", "running"]);
    let victim = running[0]["id"].as_str().unwrap_or_default().to_string();

    let load = Load::start(&server.http);
    std::fs::write(flags.path().join(&victim), "").unwrap_or_else(|e| panic!("{e}"));
    // `sandbox list` says it is unhealthy while its checks fail…
    server.until(&["sandbox", "list", "-a", "sickbay"], |v| {
        v.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s["id"] == victim.as_str()
                    && (s["health"].as_str().is_some_and(|h| h.contains("503"))
                        || s["status"] == "dead")
            })
        })
    });
    // …then it is dead, and a replacement serves.
    let after = server.until(&["sandbox", "list", "-a", "sickbay"], |v| {
        v.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s["id"] == victim.as_str()
                    && s["status"] == "dead"
                    && s["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("unhealthy: GET /health answered 503"))
            }) && a.iter().filter(|s| s["status"] == "running").count() == 2
        })
    });
    assert!(!after.as_array().is_some_and(|a| {
        a.iter()
            .any(|s| s["id"] == victim.as_str() && s["status"] == "running")
    }));
    load.finish_without_failures("more requests after the replacement");
    server.stop();
}

#[test]
fn port_and_shutdown_timeouts_hold_through_the_real_binary() {
    let server = TestServer::start(&[]);
    // Binds its own port, never $PORT: the deploy fails at 2 s, saying both ports.
    let app = app_dir(
        "name = \"deaf\"\n[services.web]\ncommand = \"sleep 600 # --port 8000\"\nport_timeout = \"2s\"\n",
    );
    let t0 = Instant::now();
    let out = server
        .cli()
        .arg("deploy")
        .arg(app.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not listen on $PORT ("), "{err}");
    assert!(
        err.contains("within 2s; its command binds the fixed port 8000 itself"),
        "{err}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "{took:?}"
    );

    // Ignores SIGTERM; its service's grace is 2 s.
    let stubborn = app_dir(
        "name = \"stubborn\"\n[services.worker]\ncommand = \"trap '' TERM; while true; do sleep 0.2; done\"\n[services.worker.concurrency]\nshutdown_timeout = \"2s\"\n",
    );
    server.deploy(stubborn.path());
    let id = server.json(&["sandbox", "list", "-a", "stubborn", "--status", "running"])[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let t0 = Instant::now();
    server.ok(["sandbox", "stop", &id]);
    let gone = server.until(&["sandbox", "list", "-a", "stubborn"], |v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|s| s["id"] == id.as_str() && s["status"] == "stopped")
        })
    });
    let took = t0.elapsed();
    let reason = gone
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id.as_str()))
        .map(|s| s["reason"].to_string())
        .unwrap_or_default();
    assert!(
        reason.contains("killed: still running 2s after SIGTERM"),
        "{reason}"
    );
    // A 1 s drain, then the 2 s grace: not the server's 10 s.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(9),
        "{took:?}"
    );
}

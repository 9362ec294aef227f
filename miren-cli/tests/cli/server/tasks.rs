//! Tasks through the real binary (SPEC §14): a deploy task runs before the new web
//! starts and a failing one fails the deploy while the old version serves; `task run`
//! streams a run and exits with its code; a scheduled task runs on its own.

use super::health::{Load, wait_for};
use super::{TestServer, get, stdout_of};
use crate::app_dir;

/// A web that says which release it is, first thing on start.
const WEB: &str = "import os, sys\nfrom http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n\
print('web starting', os.environ['RELEASE'], flush=True)\n\
class H(BaseHTTPRequestHandler):\n    protocol_version = 'HTTP/1.1'\n    def do_GET(self):\n\
\x20       body = (os.environ['RELEASE'] + '\\n').encode()\n        self.send_response(200)\n        self.send_header('Content-Length', str(len(body)))\n        self.end_headers()\n        self.wfile.write(body)\n\
\x20   def log_message(self, *a):\n        pass\n\
ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n";

fn toml(release: &str, migrate: &str) -> String {
    format!(
        "name = \"tasky\"\n[[env]]\nkey = \"RELEASE\"\nvalue = \"{release}\"\n\
         [services.web]\ncommand = \"exec python3 web.py\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n\
         [tasks.migrate]\ncommand = \"{migrate}\"\ntrigger = \"deploy\"\n\
         [tasks.seed]\ncommand = \"echo seeding $RELEASE; echo oops >&2; exit 3\"\n"
    )
}

#[test]
fn a_deploy_task_gates_the_switch_and_task_run_returns_the_exit_code() {
    let server = TestServer::start(&[]);
    let app = app_dir(&toml("r1", "echo migrating $RELEASE"));
    std::fs::write(app.path().join("web.py"), WEB).unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "tasky"]);
    assert_eq!(get(&server.http, "any.example"), (200, "r1\n".into()));

    // Release 2's migration succeeds (slowly): it runs before r2's web starts.
    std::fs::write(
        app.path().join(".miren/app.toml"),
        toml("r2", "sleep 1; echo migrating $RELEASE"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let load = Load::start(&server.http);
    server.deploy(app.path());
    load.finish_without_failures("requests after release 2");
    assert_eq!(get(&server.http, "any.example"), (200, "r2\n".into()));
    let logs = server.ok(["logs", "-a", "tasky"]);
    let at = |needle: &str| {
        logs.lines()
            .position(|l| l.ends_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in the logs:\n{logs}"))
    };
    assert!(at("migrating r2") < at("web starting r2"), "{logs}");
    assert!(
        logs.contains("[migrate/"),
        "the run's lines carry its task: {logs}"
    );

    // Release 3's migration fails: the deploy fails and r2 answers throughout.
    std::fs::write(
        app.path().join(".miren/app.toml"),
        toml("r3", "echo cannot migrate; exit 1"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let load = Load::start(&server.http);
    let err = server.deploy_fails(app.path());
    assert!(
        err.contains("deploy task `migrate` exited with code 1"),
        "{err}"
    );
    assert!(
        err.contains("cannot migrate"),
        "its last lines are shown: {err}"
    );
    load.finish_without_failures("requests after the failed deploy");
    assert_eq!(get(&server.http, "any.example"), (200, "r2\n".into()));
    assert!(
        !server
            .ok(["logs", "-a", "tasky"])
            .contains("web starting r3")
    );

    // A manual run: output streamed (stdout and stderr apart), its exit code returned.
    let out = server
        .cli()
        .args(["task", "run", "-a", "tasky", "seed"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(stdout_of(&out), "seeding r2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("oops") && err.contains("failed (exit 3)"),
        "{err}"
    );

    let history = server.json(&["task", "history", "-a", "tasky"]);
    let runs = history.as_array().cloned().unwrap_or_default();
    assert_eq!(runs[0]["task"], "seed");
    assert_eq!(
        (runs[0]["status"].as_str(), runs[0]["exit_code"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(runs[0]["trigger"], "manual");
    assert!(
        runs[0]["started"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "RFC 3339: {}",
        runs[0]
    );
    let migrations: Vec<_> = runs.iter().filter(|r| r["task"] == "migrate").collect();
    assert_eq!(migrations.len(), 3, "one per deploy: {runs:?}");
    let table = server.ok(["task", "list", "-a", "tasky"]);
    assert!(
        table.contains("migrate") && table.contains("deploy") && table.contains("seed"),
        "{table}"
    );
    let unknown = server
        .cli()
        .args(["task", "run", "-a", "tasky", "sed"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("did you mean `seed`?"));
    server.stop();
}

#[test]
fn a_scheduled_task_runs_on_its_own_and_its_runs_are_kept() {
    let server = TestServer::start(&[]);
    let app = app_dir(
        "name = \"ticker\"\nweb = false\n[tasks.tick]\ncommand = \"echo tick\"\ntrigger = \"schedule\"\nevery = \"1s\"\n",
    );
    server.deploy(app.path());
    wait_for("three scheduled runs", 20, || {
        let v = server.json(&["task", "history", "-a", "ticker", "tick"]);
        v.as_array().is_some_and(|a| {
            a.iter()
                .filter(|r| r["status"] == "succeeded" && r["trigger"] == "schedule")
                .count()
                >= 3
        })
    });
    let list = server.json(&["task", "list", "-a", "ticker"]);
    assert_eq!(list[0]["schedule"], "every 1s");
    assert!(list[0]["next"].as_str().is_some(), "{list}");
    let logs = server.ok(["logs", "-a", "ticker"]);
    assert!(
        logs.lines().filter(|l| l.ends_with(" tick")).count() >= 3,
        "{logs}"
    );
    server.stop();
}

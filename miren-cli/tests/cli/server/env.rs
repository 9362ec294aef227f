//! `miren env` and `miren app restart` (SPEC §14) through the real binary: config vars
//! over app.toml's env, rolled out as new versions of the same code; a secret reaches
//! its service and nothing else — no answer, output, log line or file but the store.

use std::path::Path;

use super::{TestServer, get};
use crate::app_dir;

const APP: &str = "name = \"vars\"\n[[env]]\nkey = \"GREETING\"\nvalue = \"from the file\"\n[services.web]\ncommand = \"exec python3 web.py\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n";

/// Answers `GREETING`, and `TOKEN` reversed (so the value itself never travels).
const WEB: &str = "import os\nfrom http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\nclass H(BaseHTTPRequestHandler):\n    def do_GET(self):\n        body = (os.environ.get('GREETING', '-') + ' ' + os.environ.get('TOKEN', '-')[::-1] + '\\n').encode()\n        self.send_response(200)\n        self.send_header('Content-Length', str(len(body)))\n        self.end_headers()\n        self.wfile.write(body)\n    def log_message(self, *a):\n        pass\nprint('web: up', flush=True)\nThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n";

/// Every file under `dir` that holds `needle`, but the store.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "state.redb")
                && std::fs::read(&p)
                    .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[test]
fn config_vars_roll_out_and_a_secret_reaches_its_service_and_nothing_else() {
    let server = TestServer::start(&[]);
    let app = app_dir(APP);
    std::fs::write(app.path().join("web.py"), WEB).unwrap_or_else(|e| panic!("{e}"));
    let v1 = server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "vars"]);
    assert_eq!(get(&server.http, "x"), (200, "from the file -\n".into()));

    // Set over the file: a new version of the same code.
    let v2 = server.ok(["env", "set", "-a", "vars", "GREETING=hello"]);
    assert_ne!(v2, v1);
    assert_eq!(get(&server.http, "x"), (200, "hello -\n".into()));

    let secret = format!("s3cr3t-{}", miren_core::model::new_suffix());
    let set = server
        .cli()
        .args(["env", "set", "-a", "vars", "--secret"])
        .arg(format!("TOKEN={secret}"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(set.status.success());
    let reversed: String = secret.chars().rev().collect();
    assert_eq!(get(&server.http, "x"), (200, format!("hello {reversed}\n")));

    // Listed, the secret as (secret).
    let list = server.ok(["env", "list", "-a", "vars"]);
    assert!(
        list.contains("GREETING") && list.contains("hello"),
        "{list}"
    );
    assert!(
        list.contains("TOKEN") && list.contains("(secret)"),
        "{list}"
    );

    // Nowhere: outputs (table and JSON), answers, logs, files.
    let mut seen = vec![
        String::from_utf8_lossy(&set.stdout).into_owned(),
        String::from_utf8_lossy(&set.stderr).into_owned(),
        list,
    ];
    for args in [
        &["env", "list", "-a", "vars", "--format", "json"][..],
        &["app", "status", "-a", "vars", "--format", "json"],
        &["app", "history", "-a", "vars", "--format", "json"],
        &["app", "list", "--format", "json"],
        &["sandbox-pool", "list", "--format", "json"],
        &["sandbox", "list", "--format", "json"],
        &["logs", "-a", "vars", "--format", "json"],
        &["logs", "-a", "vars"],
    ] {
        let out = server
            .cli()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{args:?}");
        seen.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    // A redeploy reports its version (with its vars) as JSON.
    let redeploy = server
        .cli()
        .args(["deploy", "--format", "json"])
        .arg(app.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(redeploy.status.success());
    let json = String::from_utf8_lossy(&redeploy.stdout).into_owned();
    assert!(
        json.contains("(secret)"),
        "the vars are listed, the value is not: {json}"
    );
    seen.push(json);
    // A failed change's error doesn't echo it either.
    let bad = server
        .cli()
        .args(["env", "set", "-a", "vars", "--secret"])
        .arg(format!("MIREN_X={secret}"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.status.code(), Some(1));
    seen.push(String::from_utf8_lossy(&bad.stderr).into_owned());
    while let Ok(l) = server.log.try_recv() {
        seen.push(l);
    }
    for (i, s) in seen.iter().enumerate() {
        assert!(!s.contains(&secret), "output {i} shows the secret: {s}");
    }
    assert_eq!(
        files_holding(server.data.path(), &secret),
        Vec::<String>::new()
    );
    // Still there after the redeploy (vars outlive deploys).
    assert_eq!(get(&server.http, "x"), (200, format!("hello {reversed}\n")));

    // Unset: the file's value again.
    server.ok(["env", "unset", "-a", "vars", "GREETING"]);
    assert_eq!(
        get(&server.http, "x"),
        (200, format!("from the file {reversed}\n"))
    );
    let out = server
        .cli()
        .args(["env", "unset", "-a", "vars", "NOPE"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no config var NOPE"));
    server.stop();
}

#[test]
fn app_restart_replaces_the_instances_of_a_service_and_keeps_the_others() {
    let server = TestServer::start(&[]);
    let app = app_dir(&format!(
        "{APP}[services.worker]\ncommand = \"exec sleep 600\"\n"
    ));
    std::fs::write(app.path().join("web.py"), WEB).unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "vars"]);
    let running = |svc: &str| -> Vec<String> {
        let v = server.json(&["sandbox", "list", "-a", "vars", "--status", "running"]);
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| s["service"] == svc)
                    .filter_map(|s| s["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (web, worker) = (running("web"), running("worker"));
    server.ok(["app", "restart", "-a", "vars", "--service", "web"]);
    let (web2, worker2) = (running("web"), running("worker"));
    assert_eq!(web2.len(), 1);
    assert_ne!(web2, web, "web has a new instance");
    assert_eq!(worker2, worker, "the worker kept its own");
    assert_eq!(get(&server.http, "x"), (200, "from the file -\n".into()));
    // Everything.
    server.ok(["app", "restart", "-a", "vars"]);
    assert_ne!(running("worker"), worker);
    let out = server
        .cli()
        .args(["app", "restart", "-a", "vars", "--service", "wbe"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `web`?"));
    server.stop();
}

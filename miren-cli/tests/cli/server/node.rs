//! A real Node.js web app, as its docs write one: on SIGTERM it stops taking
//! connections, finishes what is in flight and exits. A redeploy must let it: its slow
//! request in flight when the new version takes over is answered, by the old version,
//! and its SIGTERM handler runs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::TestServer;
use crate::app_dir;

const SERVER_JS: &str = r#"
const http = require("http");
const fs = require("fs");
const release = process.env.RELEASE;
const server = http.createServer((req, res) => {
  if (req.url.startsWith("/slow")) {
    fs.writeFileSync(process.env.MARK_DIR + "/slow-" + release, "started");
    setTimeout(() => res.end(`slow done by release ${release}\n`), 3000);
  } else {
    res.end(`release ${release}\n`);
  }
});
server.listen(process.env.PORT, "127.0.0.1");
process.on("SIGTERM", () => {
  console.log(`release ${release}: SIGTERM, finishing requests in flight`);
  server.close(() => {
    console.log(`release ${release}: drained`);
    process.exit(0);
  });
});
"#;

fn node_here() -> bool {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "no node: .ci/run installs nodejs"
        );
        eprintln!("skipped: no node here");
    }
    found
}

fn app(release: u32, marks: &Path) -> tempfile::TempDir {
    let dir = app_dir(&format!(
        "name = \"nodeapp\"\n[[env]]\nkey = \"RELEASE\"\nvalue = \"{release}\"\n[[env]]\nkey = \"MARK_DIR\"\nvalue = \"{}\"\n[services.web]\ncommand = \"node server.js\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n",
        marks.display()
    ));
    std::fs::write(dir.path().join("server.js"), SERVER_JS).unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn a_redeploy_lets_node_finish_its_request_in_flight_and_run_its_sigterm_handler() {
    if !node_here() {
        return;
    }
    let marks = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = TestServer::start(&[]);
    let v1 = app(1, marks.path());
    server.deploy(v1.path());
    server.ok(["route", "set-default", "--app", "nodeapp"]);

    // A slow request, in flight at release 1.
    let http = server.http.clone();
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&http).unwrap_or_else(|e| panic!("{e}"));
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap_or_else(|e| panic!("{e}"));
        s.write_all(b"GET /slow HTTP/1.0\r\nHost: node.example\r\n\r\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marks.path().join("slow-1").exists() {
        assert!(Instant::now() < deadline, "the slow request never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Release 2 takes over while it is in flight; release 1 is stopped.
    let v2 = app(2, marks.path());
    server.deploy(v2.path());
    let (status, body) = super::get(&server.http, "node.example");
    assert_eq!((status, body.as_str()), (200, "release 2\n"));

    let answer = slow
        .join()
        .unwrap_or_else(|_| panic!("the slow request's thread"));
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );
    assert!(answer.ends_with("slow done by release 1\n"), "{answer}");
    // Its handler ran to the end (`drained` comes after the slow answer): it was
    // neither killed at SIGTERM nor before it finished.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = server.ok(["logs", "-a", "nodeapp"]);
        if logs.contains("release 1: drained") {
            assert!(
                logs.contains("release 1: SIGTERM, finishing requests in flight"),
                "{logs}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "release 1 never drained:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();
}

//! A real `miren server` on a temp data dir, driven by the real CLI, running the demo
//! app's real processes (python3).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use miren_dns::proto::op::{Message, Query, ResponseCode};
use miren_dns::proto::rr::{Name, RData, RecordType};
use serde_json::Value;

use super::{examples, miren};

mod addons;
mod api;
mod artifacts;
mod attach;
mod conventions;
mod dashboard;
mod docker;
mod env;
mod etcd;
mod health;
mod isolation;
mod logs;
mod metrics;
mod node;
mod operator;
mod postgres;
mod raw;
mod secrets;
mod taskqueue;
mod tasks;
mod top;
mod upstream;

/// A server process; SIGKILLed if a test fails before stopping it.
struct TestServer {
    child: Child,
    data: tempfile::TempDir,
    http: String,
    api: Option<String>,
    /// Where service DNS answers (UDP and TCP).
    dns: String,
    /// The server's own log lines (stderr), as they come.
    log: mpsc::Receiver<String>,
    /// What it logged before it said it was ready.
    startup: Vec<String>,
}

/// Reads `r` line by line on a thread; lines come out of the receiver.
fn lines_of(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first line `find` accepts within `secs`.
fn wait_line<T>(
    rx: &mpsc::Receiver<String>,
    secs: u64,
    mut find: impl FnMut(&str) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                if let Some(t) = find(&l) {
                    return t;
                }
                seen.push(l);
            }
            Err(_) => panic!("no such line within {secs}s; saw:\n{}", seen.join("\n")),
        }
    }
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &line[line.find(marker)? + marker.len()..];
    Some(
        rest.split(|c: char| c.is_whitespace() || c == ',' || c == '/')
            .next()
            .unwrap_or(rest),
    )
}

impl TestServer {
    fn start(extra: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")), extra)
    }

    /// A server on `data` (a fresh one, or what an earlier server left).
    fn start_in(data: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::spawn(
            data,
            extra,
            Command::new(assert_cmd::cargo::cargo_bin("miren")),
        )
    }

    /// A server started with a soft limit of `n` open files, as a login shell gives.
    fn start_with_open_files(n: u32) -> Self {
        let mut sh = Command::new("sh");
        sh.args(["-c", &format!("ulimit -Sn {n} && exec \"$@\""), "sh"])
            .arg(assert_cmd::cargo::cargo_bin("miren"));
        Self::spawn(
            tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            &[],
            sh,
        )
    }

    fn spawn(data: tempfile::TempDir, extra: &[&str], miren: Command) -> Self {
        Self::launch(data, extra, miren).ready()
    }

    /// A server process started, not yet waited for.
    fn launch(data: tempfile::TempDir, extra: &[&str], mut miren: Command) -> Launch {
        let mut child = miren
            .args(["server", "--data-dir"])
            .arg(data.path())
            .args(["--http-addr", "127.0.0.1:0"])
            .args(if extra.contains(&"--runtime") {
                &[][..]
            } else {
                &["--runtime", "process"][..]
            })
            .args(["--dns-addr", "127.0.0.1:0"])
            // Not the default 127.0.0.1:8081: test servers run side by side.
            .args(if extra.contains(&"--ui-addr") {
                &[][..]
            } else {
                &["--ui-addr", "off"][..]
            })
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = lines_of(child.stderr.take().unwrap_or_else(|| panic!("stderr")));
        // Until it is ready, a panic here must not leave it (or what it started) behind.
        let starting = Starting(Some(child), data.path().to_path_buf());
        Launch {
            starting,
            stderr,
            data,
            startup: Vec::new(),
        }
    }

    fn socket(&self) -> PathBuf {
        self.data.path().join("miren.sock")
    }

    fn cli(&self) -> assert_cmd::Command {
        let mut c = miren();
        c.arg("--server").arg(self.socket());
        c
    }

    /// Runs the CLI, asserts it succeeded, returns its trimmed stdout.
    fn ok<I, A>(&self, args: I) -> String
    where
        I: IntoIterator<Item = A>,
        A: AsRef<std::ffi::OsStr>,
    {
        let out = self
            .cli()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout_of(&out)
    }

    /// `miren deploy -d <dir>`, successful; the version id.
    fn deploy(&self, dir: &Path) -> String {
        self.ok([
            std::ffi::OsStr::new("deploy"),
            "-d".as_ref(),
            dir.as_os_str(),
        ])
    }

    /// `miren deploy <dir>` that must fail (exit 1); what it said on stderr.
    fn deploy_fails(&self, dir: &Path) -> String {
        let out = self
            .cli()
            .arg("deploy")
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self
            .cli()
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Polls `args` (JSON) until `cond` holds, 30 s at most.
    fn until(&self, args: &[&str], cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.json(args);
            if cond(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{args:?} never got there: {v:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), nix::sys::signal::Signal::SIGTERM);
        wait_exit(&mut self.child, 30)
    }
}

impl Drop for TestServer {
    /// A test that fails midway still leaves nothing running: SIGTERM lets the
    /// server stop its sandboxes; SIGKILL only if it hangs. Whatever still works under
    /// its data dir then (what a killed server left) is killed too.
    fn drop(&mut self) {
        stop_child(&mut self.child);
        kill_processes_under(self.data.path());
    }
}

/// A server process that may not be ready yet.
struct Launch {
    starting: Starting,
    stderr: mpsc::Receiver<String>,
    data: tempfile::TempDir,
    startup: Vec<String>,
}

impl Launch {
    /// Until it logs a line containing `marker` (30 s at most).
    fn wait_for(&mut self, marker: &str) {
        let startup = &mut self.startup;
        wait_line(&self.stderr, 30, |l| {
            startup.push(l.to_string());
            l.contains(marker).then_some(())
        });
    }

    /// Until it says it is ready (30 s at most).
    fn ready(mut self) -> TestServer {
        let startup = &mut self.startup;
        let (http, api, dns) = wait_line(&self.stderr, 30, |l| {
            startup.push(l.to_string());
            let http = after(l, "HTTP on http://")?.to_string();
            let api = after(l, " and http://").map(str::to_string);
            let dns = after(l, "DNS on ")?.to_string();
            Some((http, api, dns))
        });
        // The reader thread keeps draining stderr into the channel, so the server
        // never blocks on it.
        let child = self.starting.0.take().unwrap_or_else(|| panic!("started"));
        TestServer {
            child,
            data: self.data,
            http,
            api,
            dns,
            log: self.stderr,
            startup: self.startup,
        }
    }
}

/// A server that hasn't said it is ready yet.
struct Starting(Option<Child>, PathBuf);

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            stop_child(child);
            kill_processes_under(&self.1);
        }
    }
}

/// SIGKILLs every process working under `dir`.
fn kill_processes_under(dir: &Path) {
    for pid in processes_under(dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// SIGTERM, up to 15 s to exit, then SIGKILL.
fn stop_child(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A child process stopped like a server when the guard goes.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        stop_child(&mut self.0);
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            return s;
        }
        assert!(Instant::now() < deadline, "did not exit within {secs}s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A copy of `examples/demo` in a temp dir.
fn demo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = examples().join("demo");
    std::fs::create_dir_all(dir.path().join(".miren")).unwrap_or_else(|e| panic!("{e}"));
    for f in [".miren/app.toml", "web.py", "worker.py", "store.py"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    dir
}

/// One HTTP/1.0 GET; (status, body).
fn get(addr: &str, host: &str) -> (u16, String) {
    get_path(addr, host, "/")
}

/// One HTTP/1.0 GET of `path`; (status, body).
fn get_path(addr: &str, host: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap_or_else(|e| panic!("{e}"));
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `miren --server <server's> <args>` on a terminal of its own (a pty): the child and
/// the terminal's other side, where what it shows is read and what is typed written.
fn on_terminal(server: &TestServer, args: &[&str]) -> (std::process::Child, std::fs::File) {
    use std::os::fd::OwnedFd;
    let pty = nix::pty::openpty(None, None).unwrap_or_else(|e| panic!("openpty: {e}"));
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap_or_else(|e| panic!("{e}")));
    let child = Command::new(assert_cmd::cargo::cargo_bin("miren"))
        .arg("--server")
        .arg(server.socket())
        .args(args)
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave))
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    drop(pty.slave);
    (child, std::fs::File::from(pty.master))
}

/// Processes whose working directory is under `dir`.
fn processes_under(dir: &Path) -> Vec<u32> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read_link(format!("/proc/{pid}/cwd"))
                        .is_ok_and(|cwd| cwd.starts_with(&dir))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The python3 processes under `dir` (each instance is `sh -c` plus its python3).
fn pythons_under(dir: &Path) -> Vec<u32> {
    processes_under(dir)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "python3")
        })
        .collect()
}

/// Replaces `from` (which must be there) with `to` in the app's `.miren/app.toml`.
fn edit_app_toml(app: &Path, from: &str, to: &str) {
    let path = app.join(".miren/app.toml");
    let toml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(toml.contains(from), "{from:?} is not in {}", path.display());
    std::fs::write(&path, toml.replace(from, to)).unwrap_or_else(|e| panic!("{e}"));
}

/// One DNS question over UDP from 127.0.0.1 (an operator, not a sandbox): the answer's
/// code and its records as text (`A 127.0.0.1`, `SRV 7000 127-0-0-1.store.demo.app.miren.`).
fn dig(server: &str, name: &str, t: RecordType) -> (ResponseCode, Vec<String>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut q = Message::query();
    q.add_query(Query::query(
        Name::from_ascii(name).unwrap_or_else(|e| panic!("{e}")),
        t,
    ));
    let bytes = q.to_vec().unwrap_or_else(|e| panic!("{e}"));
    socket
        .send_to(&bytes, server)
        .unwrap_or_else(|e| panic!("{server}: {e}"));
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no DNS answer to {name}: {e}"));
    let m = Message::from_vec(&buf[..n]).unwrap_or_else(|e| panic!("{e}"));
    let records = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => format!("A {a}"),
            RData::SRV(s) => format!("SRV {} {}", s.port, s.target),
            other => format!("{other:?}"),
        })
        .collect();
    (m.metadata.response_code, records)
}

/// A time the CLI printed in JSON (RFC 3339 UTC), as Unix ms.
fn json_ms(v: &Value) -> Option<u64> {
    let t = humantime::parse_rfc3339(v.as_str()?).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_deployed_app_is_listed_routed_logged_rolled_back_and_deleted() {
    let server = TestServer::start(&[]);
    let app = demo_copy();

    // Deploy: the version id on stdout.
    let v1 = server.deploy(app.path());
    assert!(v1.starts_with("demo-v"), "{v1}");

    // Listings, table and JSON.
    let apps = server.until(&["app", "list"], |v| v[0]["status"] == "running");
    assert_eq!(apps[0]["name"], "demo");
    assert_eq!(apps[0]["version"], v1.as_str());
    let table = server.ok(["app", "list"]);
    assert!(table.starts_with("NAME  VERSION"), "{table}");
    assert!(
        table.contains("demo") && table.contains("running") && table.contains("s ago"),
        "{table}"
    );

    let pools = server.json(&["sandbox-pool", "list", "-a", "demo"]);
    let pools = pools.as_array().unwrap_or_else(|| panic!("array"));
    assert_eq!(pools.len(), 3);
    for p in pools {
        assert_eq!(
            (p["desired"].as_u64(), p["ready"].as_u64()),
            (Some(1), Some(1)),
            "{p}"
        );
    }
    let table = server.ok(["sandbox-pool", "list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.split_whitespace().collect::<Vec<_>>()
                == ["ID", "VERSION", "SERVICE", "DESIRED", "CURRENT", "READY"])
    );
    let sandboxes = server.json(&["sandbox", "list", "-a", "demo", "--status", "running"]);
    assert_eq!(sandboxes.as_array().map(Vec::len), Some(3));
    let table = server.ok(["sandbox", "list"]);
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.split_whitespace().collect::<Vec<_>>()
                == [
                    "ID", "SERVICE", "POOL", "ADDRESS", "STATUS", "RESTARTS", "AGE", "RUNTIME"
                ])
    );
    assert!(
        table
            .lines()
            .skip(1)
            .all(|l| l.trim_end().ends_with("process")),
        "each sandbox says its runtime: {table}"
    );

    // Service DNS: an operator resolves the qualified names, with the instance's port
    // in SRV; short names are for sandboxes; nobody gets an open resolver.
    let store = sandboxes
        .as_array()
        .and_then(|s| s.iter().find(|s| s["service"] == "store"))
        .unwrap_or_else(|| panic!("{sandboxes}"));
    let (ip, port) = store["address"]
        .as_str()
        .and_then(|a| a.rsplit_once(':'))
        .unwrap_or_else(|| panic!("{store}"));
    assert_eq!(
        dig(&server.dns, "store.demo.app.miren.", RecordType::A),
        (ResponseCode::NoError, vec![format!("A {ip}")])
    );
    let (code, srv) = dig(&server.dns, "_store._tcp.demo.app.miren.", RecordType::SRV);
    assert_eq!(code, ResponseCode::NoError);
    assert!(
        matches!(srv.as_slice(), [one] if one.starts_with(&format!("SRV {port} "))),
        "{srv:?}"
    );
    assert_eq!(
        dig(&server.dns, "store.app.miren.", RecordType::A).0,
        ResponseCode::NXDomain
    );
    assert_eq!(
        dig(&server.dns, "example.com.", RecordType::A).0,
        ResponseCode::Refused
    );

    // Routes: exact host through the proxy; removed → 404.
    server
        .cli()
        .args(["route", "add", "Demo.Example", "--app", "demo"])
        .assert()
        .success();
    let routes = server.json(&["route", "list"]);
    assert_eq!(routes[0]["host"], "demo.example");
    let (status, body) = get(&server.http, "demo.example:8080");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from miren! visit 1"), "{body}");
    assert!(body.contains("the worker has ticked"), "{body}");
    // One access line per request: app, sandbox, method, path, status, duration.
    let access = wait_line(&server.log, 10, |l| {
        l.contains(" demo demo-web-").then(|| l.to_string())
    });
    let fields: Vec<&str> = access.split_whitespace().collect();
    let at = fields
        .iter()
        .position(|f| *f == "demo")
        .unwrap_or_else(|| panic!("{access}"));
    assert!(fields[at + 1].starts_with("demo-web-"), "{access}");
    assert_eq!(&fields[at + 2..at + 5], ["GET", "/", "200"], "{access}");
    assert!(fields[at + 5].ends_with("ms"), "{access}");
    server
        .cli()
        .args(["route", "remove", "demo.example"])
        .assert()
        .success();
    let (status, body) = get(&server.http, "demo.example");
    assert_eq!(
        (status, body.as_str()),
        (404, "no route for host demo.example\n")
    );

    // Logs: the worker's output; -f delivers a new line within a second of its time.
    let logs = server.ok(["logs", "-a", "demo", "--service", "worker"]);
    assert!(
        logs.lines()
            .any(|l| l.starts_with("S ") && l.contains("[worker/") && l.contains("worker: tick")),
        "{logs}"
    );
    let mut follow = Command::new(assert_cmd::cargo::cargo_bin("miren"))
        .arg("--server")
        .arg(server.socket())
        .args([
            "logs",
            "-a",
            "demo",
            "--service",
            "worker",
            "-f",
            "--last",
            "1s",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = lines_of(follow.stdout.take().unwrap_or_else(|| panic!("stdout")));
    let started = miren_core::runtime::now_millis();
    let lag = wait_line(&lines, 10, |l| {
        let v: Value = serde_json::from_str(l).ok()?;
        let t = json_ms(&v["time"])?;
        (t > started).then(|| miren_core::runtime::now_millis().saturating_sub(t))
    });
    assert!(
        lag < 1000,
        "a followed line arrived {lag} ms after it was written"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // A second version, history, rollback.
    edit_app_toml(
        app.path(),
        "command = \"python3 worker.py\"",
        "command = \"python3 -u worker.py\"",
    );
    let v2 = server.deploy(app.path());
    let history = server.json(&["app", "history", "-a", "demo"]);
    assert_eq!(history[0]["id"], v2.as_str());
    assert_eq!(history[0]["state"], "active");
    assert_eq!(history[1]["id"], v1.as_str());
    assert_eq!(history[1]["state"], "superseded");
    assert_eq!(server.ok(["app", "rollback", "-a", "demo"]), v1);
    server.until(&["app", "list"], |v| {
        v[0]["version"] == v1.as_str() && v[0]["status"] == "running"
    });

    // Delete: everything stops, the disk stays.
    let disk = server
        .data
        .path()
        .join("process/disks/demo/data/counters.json");
    assert!(disk.is_file());
    server
        .cli()
        .args(["app", "delete", "demo"])
        .assert()
        .success();
    assert_eq!(server.json(&["app", "list"]), serde_json::json!([]));
    assert_eq!(server.json(&["sandbox", "list"]), serde_json::json!([]));
    assert_eq!(processes_under(server.data.path()), Vec::<u32>::new());
    assert!(disk.is_file(), "app delete keeps disks");

    let status = server.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_server_raises_its_open_files_limit() {
    let limits = |pid: u32| -> (String, String) {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits"))
            .unwrap_or_else(|e| panic!("{e}"));
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or_else(|| panic!("{text}"))
            .to_string();
        let f: Vec<&str> = line.split_whitespace().collect();
        (f[3].to_string(), f[4].to_string())
    };
    let me = limits(std::process::id());
    if me.1.parse::<u64>().is_ok_and(|hard| hard <= 256) {
        eprintln!("skipped: the hard limit here is {} files", me.1);
        return;
    }
    let server = TestServer::start_with_open_files(256);
    let (soft, hard) = limits(server.child.id());
    assert_eq!(soft, hard, "soft limit raised to the hard one (was 256)");
}

#[test]
fn an_invalid_app_is_not_uploaded_and_exits_1() {
    let server = TestServer::start(&[]);
    let app = super::app_dir("name = \"shop\"\n[services.web]\ncomand = \"x\"\n");
    server
        .cli()
        .args(["deploy", "-d"])
        .arg(app.path())
        .assert()
        .code(1)
        .stderr(predicates::str::contains("unknown key `comand`"))
        .stderr(predicates::str::contains("nothing was deployed"));
    let uploads = std::fs::read_dir(server.data.path().join("artifacts"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(uploads, 0, "nothing was uploaded");
    assert!(server.stop().success());
}

#[test]
fn no_server_and_bad_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    miren()
        .arg("--server")
        .arg(dir.path().join("nothing.sock"))
        .args(["app", "list"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no miren server answers at"))
        .stderr(predicates::str::contains("start one with `miren server`"));
    miren().args(["app", "list", "--bogus"]).assert().code(2);
    miren().args(["logs"]).assert().code(2);
}

#[test]
fn the_tcp_api_wants_the_token_and_the_socket_is_private() {
    let server = TestServer::start(&["--api-addr", "127.0.0.1:0"]);
    let mode = std::fs::metadata(server.socket())
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let api = server
        .api
        .clone()
        .unwrap_or_else(|| panic!("no TCP API address"));
    let raw = |auth: &str| {
        let mut s = TcpStream::connect(&api).unwrap_or_else(|e| panic!("{e}"));
        write!(s, "GET /v1/apps HTTP/1.0\r\nHost: x\r\n{auth}\r\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap_or_else(|e| panic!("{e}"));
        out
    };
    let denied = raw("");
    assert!(denied.starts_with("HTTP/1.0 401"), "{denied}");
    assert!(denied.contains("\"code\":\"unauthorized\""), "{denied}");
    assert!(raw("Authorization: Bearer wrong\r\n").starts_with("HTTP/1.0 401"));
    let token = std::fs::read_to_string(server.data.path().join("api-token")).unwrap_or_default();
    let token_mode = std::fs::metadata(server.data.path().join("api-token"))
        .map(|m| m.permissions().mode() & 0o777);
    assert_eq!(token_mode.ok(), Some(0o600));
    assert!(raw(&format!("Authorization: Bearer {token}\r\n")).starts_with("HTTP/1.0 200"));
    // The CLI over TCP with the token.
    miren()
        .args([
            "--server",
            &format!("http://{api}"),
            "--token",
            &token,
            "app",
            "list",
        ])
        .assert()
        .success();
    miren()
        .args(["--server", &format!("http://{api}"), "app", "list"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("Authorization: Bearer"));
    assert!(server.stop().success());
}

#[test]
fn miren_up_serves_the_demo_and_ctrl_c_leaves_nothing() {
    let app = demo_copy();
    let mut up = Guard(
        Command::new(assert_cmd::cargo::cargo_bin("miren"))
            .arg("up")
            .arg(app.path())
            .args(["--http-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let lines = lines_of(up.0.stdout.take().unwrap_or_else(|| panic!("stdout")));
    let url = wait_line(&lines, 60, |l| {
        after(l, "is up at http://").map(str::to_string)
    });
    let (status, body) = get(&url, "anything.example");
    assert_eq!(status, 200, "{body}");
    // The page proves web reached the stateful store through store.app.miren.
    assert!(body.contains("Hello from miren! visit 1;"), "{body}");
    assert!(
        body.contains("counted by the store at http://127.77."),
        "{body}"
    );
    let (_, again) = get(&url, "localhost");
    assert!(again.contains("visit 2;"), "{again}");

    signal(up.0.id(), nix::sys::signal::Signal::SIGINT);
    let status = wait_exit(&mut up.0, 30);
    assert!(status.success(), "{status:?}");
    assert_eq!(
        processes_under(&app.path().join(".miren/data")),
        Vec::<u32>::new()
    );
}

#[test]
fn a_failing_deploy_exits_1_with_the_instance_last_lines_and_the_old_version_keeps_serving() {
    let server = TestServer::start(&[]);
    let app = demo_copy();
    let v1 = server.deploy(app.path());
    edit_app_toml(
        app.path(),
        "command = \"python3 web.py\"",
        "command = \"echo 'web: missing SECRET_KEY' >&2; exit 3\"",
    );
    server
        .cli()
        .args(["deploy", "-d"])
        .arg(app.path())
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "exited with code 3 before it was ready",
        ))
        .stderr(predicates::str::contains("web: missing SECRET_KEY"));
    let apps = server.json(&["app", "list"]);
    assert_eq!(apps[0]["version"], v1.as_str());
    server
        .cli()
        .args(["route", "set-default", "--app", "demo"])
        .assert()
        .success();
    let (status, body) = get(&server.http, "whatever");
    assert_eq!(status, 200, "{body}");
    assert!(server.stop().success());
}

#[test]
fn kill_9_of_the_server_then_restart_keeps_state_and_duplicates_nothing() {
    let mut server = TestServer::start(&[]);
    let app = demo_copy();
    let v1 = server.deploy(app.path());
    server
        .cli()
        .args(["route", "add", "demo.example", "--app", "demo"])
        .assert()
        .success();
    let before = pythons_under(server.data.path());
    assert_eq!(before.len(), 3, "web, worker, store");
    let _ = server.child.kill();
    let _ = server.child.wait();

    // Same data dir, new server process.
    let data = std::mem::replace(
        &mut server.data,
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
    );
    drop(server);
    let again = TestServer::start_in(data, &[]);
    let apps = again.until(&["app", "list"], |v| v[0]["status"] == "running");
    assert_eq!(apps[0]["version"], v1.as_str(), "the deploy survived");
    assert_eq!(again.json(&["route", "list"])[0]["host"], "demo.example");
    let after_restart = pythons_under(again.data.path());
    assert_eq!(after_restart.len(), 3, "no duplicate: {after_restart:?}");
    assert!(
        before.iter().all(|p| !after_restart.contains(p)),
        "the killed server's instances were stopped, not left running"
    );
    let (status, body) = get(&again.http, "demo.example");
    assert_eq!(status, 200, "{body}");
    assert!(again.stop().success());
}

#[test]
fn a_dns_port_in_use_is_a_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = taken.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    miren()
        .args(["server", "--data-dir"])
        .arg(data.path())
        .args(["--http-addr", "127.0.0.1:0", "--runtime", "process"])
        .args(["--dns-addr", &addr.to_string()])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(1)
        .stderr(predicates::str::contains(format!(
            "error: listening on {addr} for DNS (UDP and TCP; --dns-addr changes it): Address already in use"
        )));
}

#[test]
fn twenty_concurrent_set_default_calls_leave_exactly_one_default_route() {
    let server = TestServer::start(&[]);
    let app = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(app.path().join(".miren")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        app.path().join(".miren/app.toml"),
        "name = \"a\"\n[services.worker]\ncommand = \"exec sleep 600\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
    for n in &names {
        server.ok([
            std::ffi::OsStr::new("deploy"),
            "-d".as_ref(),
            app.path().as_os_str(),
            "-a".as_ref(),
            n.as_ref(),
        ]);
    }
    server.ok(["route", "add", "plain.example", "--app", "a0"]);
    // Twenty CLI processes at once, each making its app the default.
    let calls: Vec<Child> = names
        .iter()
        .map(|n| {
            Command::new(assert_cmd::cargo::cargo_bin("miren"))
                .arg("--server")
                .arg(server.socket())
                .args(["route", "set-default", "--app", n])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for c in calls {
        let out = c.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let routes = server.json(&["route", "list"]);
    let routes = routes.as_array().unwrap_or_else(|| panic!("{routes}"));
    let defaults: Vec<&Value> = routes.iter().filter(|r| r["default"] == true).collect();
    assert_eq!(defaults.len(), 1, "{routes:#?}");
    assert!(
        routes
            .iter()
            .any(|r| r["host"] == "plain.example" && r["default"] == false),
        "{routes:#?}"
    );
    // The proxy agrees: a host without a route of its own reaches the default app,
    // which has no web service.
    let default_app = defaults[0]["app"].as_str().unwrap_or_default();
    let (status, body) = get(&server.http, "nowhere.example");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(default_app), "{body}");
    server.stop();
}

#[test]
fn a_stopped_instance_is_out_of_dns_when_stop_returns_while_it_still_drains() {
    let server = TestServer::start(&[]);
    let app = demo_copy();
    server.deploy(app.path());
    let sandboxes = server.until(&["sandbox", "list", "-a", "demo"], |v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|s| s["service"] == "web" && s["status"] == "running")
        })
    });
    let web = sandboxes
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["service"] == "web" && s["status"] == "running")
        })
        .unwrap_or_else(|| panic!("{sandboxes}"))
        .clone();
    let id = web["id"].as_str().unwrap_or_default().to_string();
    let port = web["address"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .unwrap_or_else(|| panic!("{web}"))
        .to_string();
    let srv = |records: &[String]| {
        records
            .iter()
            .any(|r| r.starts_with(&format!("SRV {port} ")))
    };
    let (_, before) = dig(&server.dns, "_web._tcp.demo.app.miren.", RecordType::SRV);
    assert!(srv(&before), "{before:?}");

    server.ok(["sandbox", "stop", &id]);
    let (_, after) = dig(&server.dns, "_web._tcp.demo.app.miren.", RecordType::SRV);
    assert!(
        !srv(&after),
        "a draining instance is still answered: {after:?}"
    );
    // It had not been signalled yet: it drains for a second first.
    let listed = server.json(&["sandbox", "list", "-a", "demo"]);
    let status = listed
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id.as_str()))
        .map(|s| s["status"].clone());
    assert!(
        matches!(
            status.as_ref().and_then(Value::as_str),
            Some("stopping" | "stopped")
        ),
        "{listed}"
    );
    server.stop();
}

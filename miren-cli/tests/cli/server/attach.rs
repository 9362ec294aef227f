//! `miren app run` and `miren sandbox exec` through the real binary (SPEC §14): exit
//! codes passed through, stdin in, a terminal with `-t`, the sandbox's environment,
//! `<svc>.app.miren` reachable, and a command whose caller goes away killed.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::docker::{Cleanup, docker, docker_here};
use super::{TestServer, processes_under, stdout_of};
use crate::app_dir;

const APP: &str = "name = \"oneoff\"\n[[env]]\nkey = \"GREETING\"\nvalue = \"hello\"\n[[env]]\nkey = \"API\"\nvalue = \"http://web.app.miren:3000/\"\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n";

/// The CLI as a plain process (to feed and kill it).
fn cli(server: &TestServer) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("miren"));
    c.arg("--server").arg(server.socket());
    c
}

fn output(server: &TestServer, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = cli(server)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn app_run_passes_the_exit_code_stdin_and_a_terminal_and_reaches_the_services() {
    let server = TestServer::start(&[]);
    let app = app_dir(APP);
    server.deploy(app.path());

    let out = output(
        &server,
        &[
            "app",
            "run",
            "-a",
            "oneoff",
            "--",
            "echo $GREETING; echo oops >&2; exit 7",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(stdout_of(&out), "hello");
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "oops");

    // Several words are a program and its arguments, not a shell line.
    let out = output(
        &server,
        &[
            "app",
            "run",
            "-a",
            "oneoff",
            "--",
            "echo",
            "$GREETING",
            "a  b",
        ],
        None,
    );
    assert_eq!(stdout_of(&out), "$GREETING a  b");

    let out = output(
        &server,
        &["app", "run", "-a", "oneoff", "--", "tr a-z A-Z"],
        Some("piped in\nand more\n"),
    );
    assert_eq!(
        (out.status.code(), stdout_of(&out).as_str()),
        (Some(0), "PIPED IN\nAND MORE")
    );

    // `web.app.miren` in its env reaches the app's web.
    let fetch =
        "import os, urllib.request; r = urllib.request.urlopen(os.environ['API']); print(r.status)";
    let out = output(
        &server,
        &["app", "run", "-a", "oneoff", "--", "python3", "-c", fetch],
        None,
    );
    assert_eq!(
        (out.status.code(), stdout_of(&out).as_str()),
        (Some(0), "200"),
        "{out:?}"
    );

    let out = output(
        &server,
        &["app", "run", "-t", "-a", "oneoff", "--", "tty"],
        None,
    );
    assert!(stdout_of(&out).starts_with("/dev/pts/"), "{out:?}");

    let out = output(
        &server,
        &[
            "app",
            "run",
            "-a",
            "oneoff",
            "--service",
            "wbe",
            "--",
            "true",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean `web`?"),
        "{out:?}"
    );
    // It ran beside the service, not as one of its instances.
    let sandboxes = server.json(&["sandbox", "list", "-a", "oneoff"]);
    assert_eq!(sandboxes.as_array().map(Vec::len), Some(1), "{sandboxes}");
    server.stop();
}

#[test]
fn sandbox_exec_runs_in_the_sandboxs_environment_and_dies_with_its_caller() {
    let server = TestServer::start(&[]);
    let app = app_dir(APP);
    server.deploy(app.path());
    let running = server.json(&["sandbox", "list", "-a", "oneoff", "--status", "running"]);
    let id = running[0]["id"].as_str().unwrap_or_default().to_string();
    let suffix = &id[id.len() - 6..];

    let out = output(
        &server,
        &[
            "sandbox",
            "exec",
            suffix,
            "--",
            "echo $MIREN_SANDBOX $GREETING; test -f .miren/app.toml || ls; exit 4",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(stdout_of(&out), format!("{id} hello"));
    let out = output(
        &server,
        &["sandbox", "exec", suffix, "--", "cat"],
        Some("both ways\n"),
    );
    assert_eq!(stdout_of(&out), "both ways");

    let out = output(&server, &["sandbox", "exec", "nosuch", "--", "true"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no running sandbox `nosuch`"),
        "{out:?}"
    );

    // A caller killed mid-command takes the command with it.
    let data = server.data.path().to_path_buf();
    let before = processes_under(&data).len();
    let mut caller = cli(&server)
        .args(["sandbox", "exec", suffix, "--", "sleep 300"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_under(&data).len() <= before {
        assert!(Instant::now() < deadline, "the exec never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    caller.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = caller.wait();
    while processes_under(&data).len() > before {
        assert!(Instant::now() < deadline, "`sleep 300` outlived its caller");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A server that stops takes its one-off commands with it.
    let mut caller = cli(&server)
        .args(["app", "run", "-a", "oneoff", "--", "sleep 301"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let one_off = || processes_under(&data).len() > before;
    while !one_off() {
        assert!(Instant::now() < deadline, "the one-off never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut server = server;
    super::signal(server.child.id(), nix::sys::signal::Signal::SIGTERM);
    let status = super::wait_exit(&mut server.child, 30);
    assert!(status.success(), "{status:?}");
    assert!(
        processes_under(&data).is_empty(),
        "left running: {:?}",
        processes_under(&data)
    );
    let code = caller.wait().unwrap_or_else(|e| panic!("{e}")).code();
    assert_ne!(code, Some(0), "the caller was told the command ended badly");
}

#[test]
fn in_containers_exec_and_one_off_runs_go_through_the_engine() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["boxed".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    let app = app_dir(
        "name = \"boxed\"\nweb = false\n[services.box]\nimage = \"busybox:1.36\"\ncommand = \"sleep 3600\"\n[[services.box.env]]\nkey = \"X\"\nvalue = \"from the box\"\n",
    );
    server.deploy(app.path());
    let running = server.json(&["sandbox", "list", "-a", "boxed", "--status", "running"]);
    let id = running[0]["id"].as_str().unwrap_or_default().to_string();

    let out = output(
        &server,
        &[
            "sandbox",
            "exec",
            &id,
            "--",
            "echo $X $MIREN_SANDBOX; exit 4",
        ],
        None,
    );
    assert_eq!(
        (out.status.code(), stdout_of(&out)),
        (Some(4), format!("from the box {id}"))
    );
    let out = output(
        &server,
        &["sandbox", "exec", &id, "--", "cat"],
        Some("in and out\n"),
    );
    assert_eq!(stdout_of(&out), "in and out");

    let out = output(
        &server,
        &[
            "app",
            "run",
            "-a",
            "boxed",
            "--service",
            "box",
            "--",
            "echo $X; exit 5",
        ],
        None,
    );
    assert_eq!(
        (out.status.code(), stdout_of(&out).as_str()),
        (Some(5), "from the box"),
        "{out:?}"
    );
    let out = output(
        &server,
        &[
            "app",
            "run",
            "-a",
            "boxed",
            "--service",
            "box",
            "--",
            "tr a-z A-Z",
        ],
        Some("shout\n"),
    );
    assert_eq!(stdout_of(&out), "SHOUT");
    let out = output(
        &server,
        &[
            "app",
            "run",
            "-t",
            "-a",
            "boxed",
            "--service",
            "box",
            "--",
            "tty",
        ],
        None,
    );
    assert!(stdout_of(&out).starts_with("/dev/pts/"), "{out:?}");
    // One-off containers are removed when they end: only the service's is left.
    let left = docker(&["ps", "-aq", "--filter", "label=dev.miren.app=boxed"]).unwrap_or_default();
    assert_eq!(left.split_whitespace().count(), 1, "{left}");
    server.stop();
}

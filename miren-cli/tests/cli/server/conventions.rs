//! The conventions every command follows (SPEC §11), on the real binary: finding the
//! server, the app of the current directory, ids by any unique part, unknown names as
//! errors, guard rails (with a real terminal where they ask), JSON errors, closed pipes.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TestServer, lines_of, wait_line};
use crate::{app_dir, miren};

const SLEEPER: &str = "name = \"calm\"\n[services.worker]\ncommand = \"exec sleep 600\"\n";

fn web_app(name: &str, concurrency: &str) -> tempfile::TempDir {
    app_dir(&format!(
        "name = \"{name}\"\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n[services.web.concurrency]\n{concurrency}\n"
    ))
}

/// A CLI process told nothing about where the server is (no flag, no environment,
/// an empty default data dir), run in `dir`.
fn bare_cli(dir: &Path) -> assert_cmd::Command {
    let mut c = miren();
    c.current_dir(dir)
        .env_remove("MIREN_SERVER")
        .env("MIREN_DATA_DIR", dir.join("no-such-data-dir"));
    c
}

/// Runs `args` against `server` on a real terminal, answering `answer` to the
/// question it asks; (exit code, everything the terminal showed).
fn on_a_terminal(server: &TestServer, args: &[&str], answer: &str) -> (i32, String) {
    let (mut child, mut master) = super::on_terminal(server, args);
    let mut shown = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    // Up to the question, then the answer; then whatever it says until it exits.
    while !String::from_utf8_lossy(&shown).contains("[y/N]") {
        assert!(
            Instant::now() < deadline,
            "no question: {}",
            String::from_utf8_lossy(&shown)
        );
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => shown.extend_from_slice(&buf[..n]),
        }
    }
    master
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let status = super::wait_exit(&mut child, 20);
    // The rest (EIO once the child has gone and the slave is closed).
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        shown.extend_from_slice(&buf[..n]);
    }
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&shown).into_owned(),
    )
}

/// `miren --server <server's> <args>`, whatever its outcome.
fn run(server: &TestServer, args: &[&str]) -> std::process::Output {
    server
        .cli()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn commands_beside_a_running_miren_up_reach_it_without_flags() {
    let app = web_app("nearby", "mode = \"fixed\"\nnum_instances = 1");
    let sub = app.path().join("src/deep");
    std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));

    // Nothing runs: the error says where it looked, the app's `miren up` included.
    let out = bare_cli(&sub)
        .args(["app", "list"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("no miren server answers at"), "{err}");
    assert!(err.contains("also looked at"), "{err}");
    assert!(
        err.contains(".miren/data/miren.sock (no `miren up` of"),
        "{err}"
    );
    assert!(err.contains("--server or MIREN_SERVER"), "{err}");

    let mut up = super::Guard(
        Command::new(assert_cmd::cargo::cargo_bin("miren"))
            .current_dir(&sub)
            .args(["up", "--http-addr", "0", "--runtime", "process"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let said = lines_of(up.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let out_lines = lines_of(up.0.stdout.take().unwrap_or_else(|| panic!("stdout")));
    let export = wait_line(&said, 60, |l| {
        l.split_once("export MIREN_SERVER=")
            .map(|(_, s)| s.to_string())
    });
    assert!(export.ends_with(".miren/data/miren.sock"), "{export}");
    // `--http-addr 0` is a free port on loopback.
    let url = wait_line(&out_lines, 60, |l| {
        super::after(l, "is up at http://").map(str::to_string)
    });
    assert!(url.starts_with("127.0.0.1:"), "{url}");

    let out = bare_cli(&sub)
        .args(["app", "list", "--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let apps: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(apps[0]["name"], "nearby", "{apps:#}");
    // The app of the directory is the default app of every command.
    let out = bare_cli(&sub)
        .args(["sandbox", "list"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.contains("RESTARTS") && h.contains("AGE")),
        "{table}"
    );
    assert!(table.contains("nearby-web-"), "{table}");
    super::signal(up.0.id(), nix::sys::signal::Signal::SIGINT);
    assert!(super::wait_exit(&mut up.0, 30).success());
}

#[test]
fn the_app_of_the_current_directory_is_the_one_commands_mean() {
    let server = TestServer::start(&[]);
    let app = app_dir(SLEEPER);
    let sub = app.path().join("lib");
    std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
    // `deploy` with no directory finds the app from a subdirectory, as validate does.
    let out = server
        .cli()
        .current_dir(&sub)
        .arg("deploy")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let status = server
        .cli()
        .current_dir(&sub)
        .args(["app", "status", "--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.status.success(), "{}", stderr_of(&status));
    let v: Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["app"]["name"], "calm");
    let out = server
        .cli()
        .current_dir(&sub)
        .args(["route", "add", "calm.example"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(server.json(&["route", "list"])[0]["app"], "calm");
    // Outside an app directory, a command that needs an app says how to name one.
    let elsewhere = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = server
        .cli()
        .current_dir(elsewhere.path())
        .args(["app", "status"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("which app? pass -a APP"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn versions_have_numbers_and_every_id_is_taken_by_a_unique_part() {
    let server = TestServer::start(&[]);
    let two = app_dir(&format!(
        "{SLEEPER}[services.worker.concurrency]\nmode = \"fixed\"\nnum_instances = 2\n"
    ));
    let v1 = server.deploy(two.path());
    std::fs::write(two.path().join("changed"), "1").unwrap_or_else(|e| panic!("{e}"));
    let v2 = server.deploy(two.path());
    assert!(!v1.starts_with("calm-v1"), "reads as version 1: {v1}");
    let history = server.json(&["app", "history", "-a", "calm"]);
    assert_eq!(history[0]["number"], 2, "{history:#}");
    assert_eq!(history[1]["number"], 1);
    assert_eq!(history[0]["id"], v2.as_str());
    let table = server.ok(["app", "history", "-a", "calm"]);
    assert!(
        table.lines().nth(1).is_some_and(|l| l.starts_with("v2 ")),
        "{table}"
    );
    let list = server.ok(["app", "list"]);
    assert!(list.contains(" v2 "), "{list}");

    // Rollback by number, then by a part of the id.
    server.ok(["app", "rollback", "-a", "calm", "v1"]);
    assert_eq!(server.json(&["app", "list"])[0]["version"], v1.as_str());
    server.ok(["app", "rollback", "-a", "calm", &v2[v2.len() - 6..]]);
    assert_eq!(server.json(&["app", "list"])[0]["version"], v2.as_str());
    let out = run(&server, &["app", "rollback", "-a", "calm", "v9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("has no version v9: its versions go up to v2"),
        "{}",
        stderr_of(&out)
    );

    // A sandbox by the end of its id; two by a shared start: ambiguous, listed.
    let sandboxes = server.json(&["sandbox", "list", "-a", "calm", "--status", "running"]);
    let ids: Vec<String> = sandboxes
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids.len(), 2, "{sandboxes:#}");
    let out = run(&server, &["sandbox", "stop", "calm-worker-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("matches 2 sandboxes"),
        "{}",
        stderr_of(&out)
    );
    server.ok(["sandbox", "stop", &ids[0][ids[0].len() - 7..]]);
    let stopped = server.json(&["sandbox", "list", "-a", "calm"]);
    assert!(
        stopped.as_array().is_some_and(|a| a
            .iter()
            .any(|s| s["id"] == ids[0].as_str() && s["status"] != "running")),
        "{stopped:#}"
    );
    // A pool by a part of its id.
    let pool = server.json(&["sandbox-pool", "list", "-a", "calm"])[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    server.ok(["sandbox-pool", "set-desired", &pool[pool.len() - 5..], "1"]);
    server.until(&["sandbox-pool", "list", "-a", "calm"], |v| {
        v[0]["desired"] == 1
    });
}

#[test]
fn unknown_names_are_errors_with_did_you_mean_never_empty_listings() {
    let server = TestServer::start(&[]);
    let app = app_dir(&SLEEPER.replace("calm", "pyapp"));
    server.deploy(app.path());
    for args in [
        &["logs", "-a", "pyap"][..],
        &["sandbox", "list", "-a", "pyap"],
        &["sandbox-pool", "list", "-a", "pyap"],
        &["app", "status", "-a", "pyap"],
    ] {
        let out = run(&server, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            stderr_of(&out).contains("no app `pyap`: did you mean `pyapp`?"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    let out = run(&server, &["logs", "-a", "pyapp", "--service", "wroker"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("did you mean `worker`?"),
        "{}",
        stderr_of(&out)
    );
    let out = run(&server, &["logs", "-s", "nosuchsandbox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("no sandbox `nosuchsandbox`"),
        "{}",
        stderr_of(&out)
    );
    // With --format json the error is the document on stdout; the exit code stays.
    let out = run(
        &server,
        &["--format", "json", "app", "status", "-a", "pyap"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["error"]["code"], "not_found");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did you mean"))
    );
    // A duration without its unit gets an example; --since is --last.
    let out = run(&server, &["logs", "-a", "pyapp", "--last", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("for example `--last 10m`"),
        "{}",
        stderr_of(&out)
    );
    server.ok(["logs", "-a", "pyapp", "--since", "10m"]);
}

#[test]
fn set_desired_keeps_to_an_auto_pools_max_unless_forced_and_asks_for_many_fixed() {
    let server = TestServer::start(&[]);
    let auto = web_app("scaler", "mode = \"auto\"\nmax_instances = 3");
    server.deploy(auto.path());
    let before = server.json(&["sandbox-pool", "list", "-a", "scaler"]);
    let pool = before[0]["id"].as_str().unwrap_or_default().to_string();
    let out = run(&server, &["sandbox-pool", "set-desired", &pool, "1000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("max_instances = 3") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        server.json(&["sandbox-pool", "list", "-a", "scaler"])[0]["desired"],
        before[0]["desired"],
        "refused: unchanged"
    );
    server.ok(["sandbox-pool", "set-desired", &pool, "4", "--force"]);
    // A negative count is said plainly, not as clap's `-- -1` tip.
    let out = run(&server, &["sandbox-pool", "set-desired", &pool, "-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("can't run -1 instances"),
        "{}",
        stderr_of(&out)
    );

    // Many instances of a fixed pool: asked on a terminal; "n" changes nothing.
    let fixed = app_dir(SLEEPER);
    server.deploy(fixed.path());
    let calm = server.json(&["sandbox-pool", "list", "-a", "calm"])[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (code, shown) = on_a_terminal(&server, &["sandbox-pool", "set-desired", &calm, "100"], "n");
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("Run 100 instances"), "{shown}");
    assert!(shown.contains("nothing was changed"), "{shown}");
    assert_eq!(
        server.json(&["sandbox-pool", "list", "-a", "calm"])[0]["desired"],
        1
    );
}

#[test]
fn hosts_are_host_names_and_app_delete_says_what_goes_and_asks_first() {
    let server = TestServer::start(&[]);
    let app = app_dir(
        "name = \"keeper\"\n[services.db]\ncommand = \"exec sleep 600\"\n[[services.db.disks]]\nname = \"data\"\nmount_path = \"/data\"\nsize_gb = 1\n",
    );
    server.deploy(app.path());
    let out = run(
        &server,
        &["route", "add", "http://myapp.example.com/", "-a", "keeper"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("is a URL")
            && stderr_of(&out).contains("did you mean `myapp.example.com`?"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(server.json(&["route", "list"]), serde_json::json!([]));
    server.ok(["route", "add", "myapp.example.com", "-a", "keeper"]);
    server.ok(["route", "set-default", "-a", "keeper"]);

    // On a terminal: what goes, what stays, then the question; "n" keeps it all.
    let (code, shown) = on_a_terminal(&server, &["app", "delete", "keeper"], "n");
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("its routes (myapp.example.com)"), "{shown}");
    assert!(shown.contains("the default route"), "{shown}");
    assert!(shown.contains("keeps its disks (data)"), "{shown}");
    assert!(shown.contains("nothing was deleted"), "{shown}");
    assert_eq!(server.json(&["app", "list"])[0]["name"], "keeper");
    // "y" deletes.
    let (code, shown) = on_a_terminal(&server, &["app", "delete", "keeper"], "y");
    assert_eq!(code, 0, "{shown}");
    assert_eq!(server.json(&["app", "list"]), serde_json::json!([]));
}

#[test]
fn a_closed_pipe_is_a_quiet_success() {
    let server = TestServer::start(&[]);
    for args in [
        &["schema"][..],
        &["app", "list", "--format", "json"],
        &["route", "list"],
    ] {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("miren"))
            .arg("--server")
            .arg(server.socket())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        // The reader goes away before anything is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr_of(&out));
        assert_eq!(stderr_of(&out), "", "{args:?}");
    }
}

#[test]
fn help_lists_a_commands_own_flags_first_with_examples() {
    for args in [
        &["validate", "--help"][..],
        &["schema", "--help"],
        &["init", "--help"],
        &["up", "--help"],
        &["server", "--help"],
        &["deploy", "--help"],
        &["app", "list", "--help"],
        &["app", "status", "--help"],
        &["app", "history", "--help"],
        &["app", "rollback", "--help"],
        &["app", "delete", "--help"],
        &["sandbox-pool", "list", "--help"],
        &["sandbox-pool", "set-desired", "--help"],
        &["sandbox", "list", "--help"],
        &["sandbox", "stop", "--help"],
        &["logs", "--help"],
        &["route", "add", "--help"],
        &["route", "set", "--help"],
        &["route", "list", "--help"],
        &["route", "remove", "--help"],
        &["route", "set-default", "--help"],
        &["addon", "list", "--help"],
        &["addon", "create", "--help"],
        &["addon", "destroy", "--help"],
        &["addon", "list-available", "--help"],
        &["addon", "variants", "--help"],
        &["secret", "set", "--help"],
        &["secret", "list", "--help"],
        &["secret", "versions", "--help"],
        &["secret", "disable", "--help"],
        &["secret", "enable", "--help"],
        &["secret", "destroy", "--help"],
        &["completion", "--help"],
    ] {
        let out = miren()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let help = String::from_utf8_lossy(&out.stdout);
        let own = help
            .find("Options:")
            .unwrap_or_else(|| panic!("{args:?}: {help}"));
        let global = help
            .find("Global options:")
            .unwrap_or_else(|| panic!("{args:?}: {help}"));
        assert!(own < global, "{args:?}: {help}");
        assert!(help.contains("Examples:\n  miren "), "{args:?}: {help}");
    }
}

#[test]
fn validate_as_json_answers_for_a_file_that_is_not_text() {
    let dir = app_dir("");
    std::fs::write(dir.path().join(".miren/app.toml"), b"name = \"caf\xe9\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = miren()
        .current_dir(dir.path())
        .args(["validate", "--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["valid"], false);
    assert_eq!(v["diagnostics"][0]["line"], 1);
    assert_eq!(v["diagnostics"][0]["column"], 12);
    assert!(
        v["diagnostics"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not UTF-8"))
    );
}

#[test]
fn a_pool_that_recovered_is_running_with_its_crashes_counted_in_app_status() {
    let server = TestServer::start(&[]);
    // Crashes at its first start, runs from the second on.
    let app = app_dir(
        "name = \"phoenix\"\n[services.worker]\ncommand = \"[ -f $MIREN_DISK_D/ok ] && exec sleep 600; touch $MIREN_DISK_D/ok; exit 3\"\n[[services.worker.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 1\n",
    );
    server.ok([
        std::ffi::OsStr::new("deploy"),
        app.path().as_os_str(),
        "--no-wait".as_ref(),
    ]);
    server.until(&["app", "status", "-a", "phoenix"], |v| {
        v["pools"][0]["quick_crashes"] == 1 && v["pools"][0]["ready"] == 1
    });
    let apps = server.until(&["app", "list"], |v| v[0]["status"] == "running");
    assert_eq!(apps[0]["name"], "phoenix");
    let status = server.ok(["app", "status", "-a", "phoenix"]);
    let mut lines = status.lines().skip_while(|l| !l.starts_with("SERVICE"));
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let crashes = header.iter().position(|h| *h == "CRASHES");
    assert_eq!(crashes.map(|i| row[i]), Some("1"), "{status}");
}

#[test]
fn times_are_relative_in_tables_and_rfc_3339_in_json_and_with_timestamps() {
    let server = TestServer::start(&[]);
    let app = app_dir(SLEEPER);
    server.deploy(app.path());
    let table = server.ok(["app", "list"]);
    assert!(table.contains("s ago"), "{table}");
    let json = server.json(&["app", "list"]);
    let deployed = json[0]["deployed"].as_str().unwrap_or_default();
    assert!(humantime::parse_rfc3339(deployed).is_ok(), "{json:#}");
    assert!(deployed.ends_with('Z'), "UTC: {deployed}");
    let sandboxes = server.json(&["sandbox", "list", "-a", "calm"]);
    assert!(
        sandboxes[0]["created"]
            .as_str()
            .is_some_and(|t| humantime::parse_rfc3339(t).is_ok()),
        "{sandboxes:#}"
    );
    let absolute = server.ok(["app", "history", "-a", "calm", "--timestamps"]);
    let year = deployed.get(..4).unwrap_or("????");
    assert!(
        absolute.contains(&format!(" {year}-")) && !absolute.contains(" ago"),
        "{absolute}"
    );
    // A stop by a part of the id answers with the whole id, in JSON too.
    let id = sandboxes[0]["id"].as_str().unwrap_or_default().to_string();
    let stopped = server.json(&["sandbox", "stop", &id[id.len() - 6..]]);
    assert_eq!(stopped["stopped"], id.as_str());
}

#[test]
fn json_is_honoured_by_local_commands_and_their_errors_too() {
    let server = TestServer::start(&[]);
    let bad = app_dir("name = \"x\"\n[services.web]\ncomand = \"oops\"\n");
    let out = run(
        &server,
        &[
            "deploy",
            "--format",
            "json",
            &bad.path().display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["error"]["code"], "invalid", "{v:#}");
    let nowhere = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = server
        .cli()
        .current_dir(nowhere.path())
        .args(["deploy", "--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["error"]["code"], "usage", "{v:#}");
    let out = miren()
        .current_dir(nowhere.path())
        .args(["init", "-n", "fresh", "--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["app"], "fresh", "{v:#}");
    let out = miren()
        .current_dir(nowhere.path())
        .args(["init", "--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["error"]["code"], "exists", "{v:#}");
}

#[test]
fn an_http_address_in_use_names_the_flag_that_changes_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = taken.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = miren()
        .args([
            "server",
            "--runtime",
            "process",
            "--dns-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data.path())
        // Written as people do: the port alone means loopback.
        .args(["--http-addr", &port.to_string()])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains(&format!(
            "listening on 127.0.0.1:{port} for HTTP (--http-addr changes it)"
        )),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_server_on_its_own_data_dir_says_how_clients_find_it() {
    let server = TestServer::start(&[]);
    let export = wait_line(&server.log, 10, |l| {
        l.split_once("export MIREN_SERVER=")
            .map(|(_, s)| s.to_string())
    });
    assert_eq!(Path::new(&export), server.socket());
    // …and with it, a client anywhere reaches it.
    let elsewhere = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = bare_cli(elsewhere.path())
        .env("MIREN_SERVER", &export)
        .args(["app", "list"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", stderr_of(&out));
}

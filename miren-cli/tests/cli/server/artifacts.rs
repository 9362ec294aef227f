//! Uploaded code: streamed to disk and checked, never mixed between uploads, bounded
//! in memory and size, and collected once no version keeps it.

use std::path::Path;
use std::time::{Duration, Instant};

use miren_core::model::Digest;

use super::raw;
use super::{TestServer, get_path};
use crate::app_dir;

/// `len` bytes of text unique to `seed`.
fn content(seed: &str, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut n = 0u64;
    while v.len() < len {
        v.extend_from_slice(format!("{seed} line {n}\n").as_bytes());
        n += 1;
    }
    v.truncate(len);
    v
}

fn artifacts_dir(server: &TestServer) -> std::path::PathBuf {
    server.data.path().join("artifacts")
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn upload(socket: &Path, body: &[u8], digest: &Digest) -> raw::Answer {
    raw::call(
        socket,
        "PUT",
        &format!("/v1/artifacts?digest={digest}"),
        &["Content-Type: application/x-tar"],
        body,
    )
}

#[test]
fn four_concurrent_uploads_of_different_content_are_each_stored_as_sent() {
    let server = TestServer::start(&[]);
    let socket = server.socket();
    let bodies: Vec<Vec<u8>> = (0..4)
        .map(|i| content(&format!("app{i}"), 24 << 20))
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|b| s.spawn(|| upload(&socket, b, &Digest::of(b))))
            .collect();
        for (h, body) in handles.into_iter().zip(&bodies) {
            let a = h.join().unwrap_or_else(|_| panic!("upload thread"));
            assert_eq!(a.status, 200, "{}", a.text());
            let v: serde_json::Value =
                serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("{e}"));
            let digest = Digest::of(body);
            assert_eq!(v["digest"], digest.as_str());
            assert_eq!(v["bytes"], body.len());
            let stored =
                std::fs::read(artifacts_dir(&server).join(format!("{}.tar", digest.hex())))
                    .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                stored == *body,
                "the stored archive is what this upload sent"
            );
        }
    });
    // Content that is not what the client says it sent is refused and not kept.
    let sent = content("sent", 1 << 20);
    let claimed = Digest::of(b"something else");
    let a = upload(&socket, &sent, &claimed);
    assert_eq!(a.status, 400, "{}", a.text());
    let (code, message) = a.error();
    assert_eq!(code, "invalid");
    assert!(message.contains("changed on the way"), "{message}");
    let names = names_in(&artifacts_dir(&server));
    assert_eq!(
        names.len(),
        4,
        "only the four uploads, no temporary file: {names:?}"
    );
}

#[test]
fn two_apps_deployed_at_once_each_serve_their_own_code() {
    let server = TestServer::start(&[]);
    let apps: Vec<(tempfile::TempDir, Vec<u8>)> = ["alpha", "beta"]
        .iter()
        .map(|name| {
            let dir = app_dir(&format!(
                "name = \"{name}\"\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n"
            ));
            let page = content(name, 8 << 20);
            std::fs::write(dir.path().join("page.txt"), &page).unwrap_or_else(|e| panic!("{e}"));
            (dir, page)
        })
        .collect();
    let socket = server.socket();
    std::thread::scope(|s| {
        for (dir, _) in &apps {
            let socket = &socket;
            s.spawn(move || {
                crate::miren()
                    .arg("--server")
                    .arg(socket)
                    .args(["deploy", "-d"])
                    .arg(dir.path())
                    .assert()
                    .success();
            });
        }
    });
    for name in ["alpha", "beta"] {
        server.ok(["route", "add", &format!("{name}.example"), "--app", name]);
    }
    for ((_, page), name) in apps.iter().zip(["alpha", "beta"]) {
        let (status, body) = get_path(&server.http, &format!("{name}.example"), "/page.txt");
        assert_eq!(status, 200);
        assert!(
            body.as_bytes() == page.as_slice(),
            "{name} serves its own page"
        );
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let s =
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("{e}"));
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field}"))
}

#[test]
fn a_512_mib_upload_streams_to_disk_and_keeps_the_server_memory_flat() {
    use std::io::Write;
    let server = TestServer::start(&[]);
    server.ok(["app", "list"]);
    let pid = server.child.id();
    let before = status_kib(pid, "VmRSS:");
    let total: usize = 512 << 20;
    let piece = content("big", 1 << 20);
    let mut digest = miren_core::model::DigestHasher::default();
    let mut s = raw::connect(&server.socket());
    write!(
        s,
        "PUT /v1/artifacts HTTP/1.1\r\nHost: miren\r\nConnection: close\r\nContent-Type: application/x-tar\r\nContent-Length: {total}\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..(total / piece.len()) {
        s.write_all(&piece).unwrap_or_else(|e| panic!("{e}"));
        digest.update(&piece);
    }
    let a = raw::read_answer(&mut s);
    assert_eq!(a.status, 200, "{}", a.text());
    let digest = digest.finish();
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["digest"], digest.as_str());
    let peak = status_kib(pid, "VmHWM:");
    assert!(
        peak < before + 64 * 1024,
        "the server's peak RSS grew from {before} KiB to {peak} KiB"
    );
    let stored = artifacts_dir(&server).join(format!("{}.tar", digest.hex()));
    let len = std::fs::metadata(&stored).map(|m| m.len()).unwrap_or(0);
    assert_eq!(len, total as u64);
}

#[test]
fn an_upload_over_the_limit_is_refused_from_its_length_before_its_body_is_sent() {
    let server = TestServer::start(&[]);
    // Says 2 GiB and sends nothing: the answer comes anyway.
    let a = raw::call(
        &server.socket(),
        "PUT",
        "/v1/artifacts",
        &["Content-Length: 2147483648"],
        b"",
    );
    assert_eq!(a.status, 413, "{}", a.text());
    let (code, message) = a.error();
    assert_eq!(code, "too_large");
    assert!(message.contains("1 GiB"), "{message}");
    assert!(names_in(&artifacts_dir(&server)).is_empty());
}

/// Waits up to 30 s for `cond` on the names in `dir`.
fn until_names(dir: &Path, what: &str, cond: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let names = names_in(dir);
        if cond(&names) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} holds {names:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn old_code_is_collected_and_a_deleted_app_keeps_only_its_disks() {
    let server = TestServer::start(&[]);
    let app = app_dir(
        "name = \"churn\"\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n\
         [services.keeper]\ncommand = \"exec sleep 1000\"\n[[services.keeper.disks]]\nname = \"data\"\nmount_path = \"/data\"\nsize_gb = 1\n",
    );
    let mut versions = Vec::new();
    for n in 0..13 {
        std::fs::write(app.path().join("v.txt"), format!("{n}\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        versions.push(server.deploy(app.path()));
    }
    let code = server.data.path().join("process/code");
    let artifacts = artifacts_dir(&server);
    until_names(&artifacts, "the 10 newest archives", |n| n.len() == 10);
    until_names(&code, "the 10 newest unpacked", |n| n.len() == 10);
    let (status, body) = {
        server.ok(["route", "add", "churn.example", "--app", "churn"]);
        get_path(&server.http, "churn.example", "/v.txt")
    };
    assert_eq!((status, body.as_str()), (200, "12\n"));

    // The oldest version has lost its code: a rollback says what to do.
    let out = server
        .cli()
        .args(["app", "rollback", "-a", "churn", &versions[0]])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no longer stored: deploy it again"), "{err}");
    // One still kept rolls back.
    server.ok(["app", "rollback", "-a", "churn", &versions[5]]);
    assert_eq!(get_path(&server.http, "churn.example", "/v.txt").1, "5\n");

    server.ok(["app", "delete", "churn"]);
    until_names(&artifacts, "no archive of a deleted app", |n| n.is_empty());
    until_names(&code, "no unpacked code of a deleted app", |n| n.is_empty());
    let disks = server.data.path().join("process/disks/churn");
    assert!(disks.join("data").is_dir(), "its disk stays");
}

#[test]
fn half_written_uploads_and_unpacks_a_killed_server_left_are_removed_at_start() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = TestServer::start_in(data, &[]);
    server.ok(["app", "list"]);
    let data = server.data.path().to_path_buf();
    // What a kill -9 mid-upload and mid-unpack leaves.
    std::fs::write(data.join("artifacts/.upload-999-0"), b"half").unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(data.join("process/code/.unpack-999-0/src"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut server = server;
    let _ = server.child.kill();
    let _ = server.child.wait();
    let dir = std::mem::replace(
        &mut server.data,
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
    );
    drop(server);
    let again = TestServer::start_in(dir, &[]);
    again.ok(["app", "list"]);
    assert!(names_in(&data.join("artifacts")).is_empty());
    assert!(names_in(&data.join("process/code")).is_empty());
}

//! The server's own secret store through the binary (SPEC §17): `miren secret`
//! takes a value from stdin, never shows it, and an app's `backend = "cluster"`
//! reference gets it when its instance starts; build secrets reach the build (the
//! process runtime's `onbuild`, a Dockerfile's `RUN --mount=type=secret` through
//! BuildKit) and nothing else.

use std::io::Write;
use std::process::Stdio;

use super::docker::{Cleanup, docker, docker_here};
use super::{TestServer, stdout_of};

/// `miren secret set PATH` with `value` on stdin.
fn set(server: &TestServer, path: &str, value: &str) -> String {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("miren"))
        .env("MIREN_SERVER", server.socket())
        .args(["secret", "set", path])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("stdin"))
        .write_all(format!("{value}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Every file under `dir`, as text, for a search.
fn all_text(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for e in walk(dir) {
        if let Ok(b) = std::fs::read(&e) {
            out.push_str(&String::from_utf8_lossy(&b));
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_cluster_secret_reaches_its_app_and_no_listing_or_file() {
    let server = TestServer::start(&[]);
    let said = set(&server, "payments/stripe-key", "sk_live_SECRET1");
    assert!(said.starts_with("stored payments/stripe-key@"), "{said}");
    let again = set(&server, "payments/stripe-key", "sk_live_SECRET1");
    assert!(again.ends_with("is unchanged (the same value)"), "{again}");
    let listed = server.json(&["secret", "list"]);
    assert_eq!(listed[0]["path"], "payments/stripe-key");
    assert_eq!(listed[0]["versions"].as_array().map(Vec::len), Some(1));

    let app = crate::app_dir(
        "name = \"pay\"\n[[env]]\nkey = \"STRIPE_KEY\"\nbackend = \"cluster\"\nref = \"payments/stripe-key\"\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n",
    );
    server.deploy(app.path());
    let out = server
        .cli()
        .args(["app", "run", "-a", "pay", "--", "printenv STRIPE_KEY"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stdout_of(&out), "sk_live_SECRET1", "{out:?}");
    // Rotated: the next deploy takes the new value.
    set(&server, "payments/stripe-key", "sk_live_SECRET2");
    server.deploy(app.path());
    let out = server
        .cli()
        .args(["app", "run", "-a", "pay", "--", "printenv STRIPE_KEY"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stdout_of(&out), "sk_live_SECRET2", "{out:?}");

    for args in [
        &["secret", "list", "--format", "json"][..],
        &[
            "secret",
            "versions",
            "payments/stripe-key",
            "--format",
            "json",
        ],
        &["app", "status", "-a", "pay", "--format", "json"],
        &["app", "history", "-a", "pay", "--format", "json"],
        &["sandbox-pool", "list", "-a", "pay", "--format", "json"],
        &["env", "list", "-a", "pay"],
        &["logs", "-a", "pay"],
    ] {
        let shown = server.ok(args);
        assert!(!shown.contains("sk_live_SECRET"), "{args:?}: {shown}");
    }
    // At rest, only sealed: nothing of the data dir holds a value in the clear.
    let text = all_text(server.data.path());
    assert!(
        !text.contains("sk_live_SECRET"),
        "a value in the clear in the data dir"
    );

    // A disabled current version fails the next deploy closed, naming it.
    let versions = server.json(&["secret", "versions", "payments/stripe-key"]);
    let current = versions[0]["id"].as_str().unwrap_or_default().to_string();
    server.ok([
        "secret",
        "disable",
        &format!("payments/stripe-key@{current}"),
    ]);
    let err = server.deploy_fails(app.path());
    assert!(err.contains("is disabled"), "{err}");
    server.ok([
        "secret",
        "enable",
        &format!("payments/stripe-key@{current}"),
    ]);
    server.deploy(app.path());
    // Unknown names: did-you-mean.
    let out = server
        .cli()
        .args(["secret", "destroy", "payments/stripe-kee", "--yes"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `payments/stripe-key`?"));
    // A value is never an argument.
    let out = server
        .cli()
        .args(["secret", "set", "x", "--value", "plaintext"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    server.stop();
}

#[test]
fn a_build_secret_reaches_onbuild_and_stays_out_of_the_code() {
    let server = TestServer::start(&[]);
    set(&server, "registry/npm-token", "npm_TOKEN_123");
    let app = crate::app_dir(
        "name = \"built\"\n[build]\nonbuild = [\"sh build.sh\"]\n[[build.secrets]]\nid = \"npm\"\nref = \"registry/npm-token\"\nenv = \"NPM_TOKEN\"\n[[build.secrets]]\nid = \"npmrc\"\nref = \"registry/npm-token\"\nfile = \"~/.npmrc\"\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n",
    );
    // Checks the secret without naming it (the file is part of the code).
    std::fs::write(
        app.path().join("build.sh"),
        "set -e\ntest \"$(printf %s \"$NPM_TOKEN\" | wc -c)\" -eq 13\ncmp \"$MIREN_BUILD_SECRETS/npm\" \"$HOME/.npmrc\"\ntest \"$(cat \"$HOME/.npmrc\")\" = \"$NPM_TOKEN\"\necho authenticated > built.txt\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    let out = server
        .cli()
        .args([
            "app",
            "run",
            "-a",
            "built",
            "--",
            "cat built.txt; printenv NPM_TOKEN || echo no token",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stdout_of(&out), "authenticated\nno token", "{out:?}");
    let text = all_text(server.data.path());
    assert!(
        !text.contains("npm_TOKEN_123"),
        "the secret is in the data dir"
    );
    server.stop();
}

#[test]
fn a_dockerfile_build_mounts_its_secret_with_buildkit_and_the_image_keeps_none() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["bksecret".into()]);
    let server = TestServer::start(&["--runtime", "docker"]);
    set(&server, "registry/token", "tok_SEALED_789");
    let app = crate::app_dir(
        "name = \"bksecret\"\n[[build.secrets]]\nid = \"token\"\nref = \"registry/token\"\n[services.web]\ncommand = \"exec httpd -f -p $PORT -h /app\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n",
    );
    std::fs::write(
        app.path().join("Dockerfile"),
        "FROM miren-test/busybox\nCOPY . /app\nRUN --mount=type=secret,id=token sh -c 'test -s /run/secrets/token && wc -c < /run/secrets/token > /app/length.txt'\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "bksecret"]);
    let (status, body) = super::get_path(&server.http, "any.example", "/length.txt");
    assert_eq!(
        (status, body.trim()),
        (200, "14"),
        "the build read the secret"
    );
    // Not in the image: no layer, no history.
    let images = docker(&["images", "-q", "miren/bksecret"]).unwrap_or_default();
    let image = images.lines().next().unwrap_or_default().to_string();
    assert!(!image.is_empty(), "no built image");
    let history = docker(&["history", "--no-trunc", &image]).unwrap_or_default();
    assert!(!history.contains("tok_SEALED"), "{history}");
    let files = docker(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "grep -rl tok_SEALED /app /etc /root /tmp /var /run /bin 2>/dev/null || true",
    ])
    .unwrap_or_default();
    assert_eq!(files, "", "the secret is in the image's files");
    server.stop();
}

//! The operator's paths: what `--data-dir`, `--api-socket` and the token file may be
//! and what the server does with them; sandboxes run as a user of their own with
//! `--sandbox-user`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::TestServer;
use crate::{app_dir, miren};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .map(|m| m.mode() & 0o7777)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `miren server` that must fail at start: its stderr.
fn refused(data: &Path, extra: &[&str]) -> String {
    let out = miren()
        .args(["server", "--data-dir"])
        .arg(data)
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--dns-addr",
            "127.0.0.1:0",
            "--runtime",
            "process",
        ])
        .args(extra)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_api_socket_path_holding_a_regular_file_is_refused_and_the_file_kept() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = data.path().join("notes.txt");
    std::fs::write(&file, "precious").unwrap_or_else(|e| panic!("{e}"));
    let err = refused(
        &data.path().join("data"),
        &["--api-socket", &file.display().to_string()],
    );
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("precious")
    );
}

#[test]
fn an_existing_data_dir_keeps_its_mode_and_what_the_server_writes_is_private() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    // A token someone left readable.
    std::fs::write(data.path().join("api-token"), "0123456789abcdef\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(
        data.path().join("api-token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let server = TestServer::start_in(data, &["--api-addr", "127.0.0.1:0"]);
    let d = server.data.path();
    assert_eq!(mode(d), 0o755, "the data dir given keeps its mode");
    assert_eq!(mode(&d.join("state.redb")), 0o600);
    assert_eq!(
        mode(&d.join("api-token")),
        0o600,
        "the token is private again"
    );
    assert_eq!(mode(&d.join("artifacts")), 0o700);
    assert_eq!(mode(&d.join("logs")), 0o700);
    assert!(
        server
            .startup
            .iter()
            .any(|l| l.contains("was readable by other users")),
        "{:?}",
        server.startup
    );
    // The token was kept: it still opens the TCP API.
    let api = server.api.clone().unwrap_or_else(|| panic!("api"));
    miren()
        .args([
            "--server",
            &format!("http://{api}"),
            "--token",
            "0123456789abcdef",
            "app",
            "list",
        ])
        .assert()
        .success();
}

#[test]
fn a_data_dir_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("data");
    std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
    let err = refused(&file, &[]);
    assert!(err.contains("exists and is not a directory"), "{err}");
}

/// What a sandbox running as `--sandbox-user nobody` can do, as it prints it.
const PROBE: &str = "echo user=$(id -un); \
    (cat ../../../api-token > /dev/null 2>&1 && echo token=read) || echo token=denied; \
    (cat ../../../state.redb > /dev/null 2>&1 && echo state=read) || echo state=denied; \
    (echo hi > $MIREN_DISK_DATA/f && echo disk=ok) || echo disk=denied; \
    echo done; exec sleep 1000";

#[test]
fn sandboxes_run_as_the_sandbox_user_reach_their_disk_and_not_the_token() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: --sandbox-user needs the server to run as root");
        return;
    }
    // A private data dir: `nobody` can't reach its code through it.
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("{e}"));
    let err = refused(data.path(), &["--sandbox-user", "nobody"]);
    assert!(
        err.contains("who can't reach") && err.contains("chmod o+x"),
        "{err}"
    );
    let err = refused(
        &data.path().join("d"),
        &["--sandbox-user", "no-such-user-here"],
    );
    assert!(
        err.contains("there is no user `no-such-user-here`"),
        "{err}"
    );

    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o711))
        .unwrap_or_else(|e| panic!("{e}"));
    let server = TestServer::start_in(
        data,
        &["--sandbox-user", "nobody", "--api-addr", "127.0.0.1:0"],
    );
    let toml = format!(
        "name = \"probe\"\n[services.worker]\ncommand = \"{PROBE}\"\n[[services.worker.disks]]\nname = \"data\"\nmount_path = \"/data\"\nsize_gb = 1\n"
    );
    let app = app_dir(&toml);
    server.deploy(app.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let logs = server.ok(["logs", "-a", "probe"]);
        if logs.contains("done") {
            break logs;
        }
        assert!(Instant::now() < deadline, "{logs}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for want in ["user=nobody", "token=denied", "state=denied", "disk=ok"] {
        assert!(logs.contains(want), "{want}: {logs}");
    }
    let disk = server.data.path().join("process/disks/probe/data");
    let owner = std::fs::metadata(&disk)
        .map(|m| m.uid())
        .unwrap_or_else(|e| panic!("{e}"));
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("nobody"));
    assert_eq!(owner, nobody.uid.as_raw(), "the disk is the sandbox user's");
    assert_eq!(mode(&disk), 0o700);
    // Access an operator gives a disk stays given across a redeploy.
    std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o750))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        app.path().join(".miren/app.toml"),
        toml.replace("echo done", "echo done again"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    assert_eq!(mode(&disk), 0o750, "the disk's mode was reset");
}

const ECHO_XFF: &str = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ("xff=%s" % self.headers.get("X-Forwarded-For")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn only_a_trusted_load_balancers_forwarded_for_is_kept() {
    use std::io::{Read, Write};
    for (flags, want) in [
        (&[][..], "xff=127.0.0.1"),
        (
            &["--trust-forwarded-from", "127.0.0.0/8"][..],
            "xff=203.0.113.7, 127.0.0.1",
        ),
    ] {
        let server = TestServer::start(flags);
        let app = app_dir("name = \"echo\"\n[services.web]\ncommand = \"python3 echo.py\"\n");
        std::fs::write(app.path().join("echo.py"), ECHO_XFF).unwrap_or_else(|e| panic!("{e}"));
        server.deploy(app.path());
        server.ok(["route", "set-default", "--app", "echo"]);
        let mut s = std::net::TcpStream::connect(&server.http).unwrap_or_else(|e| panic!("{e}"));
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("{e}"));
        write!(
            s,
            "GET / HTTP/1.0\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.ends_with(want), "{flags:?}: {out}");
    }
}

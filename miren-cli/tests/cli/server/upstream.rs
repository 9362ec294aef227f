//! Upstream Miren's app.toml through the real binary (SPEC §17): a file without
//! `name` is the app of its directory; `required` env blocks a deploy until `env set`
//! gives it; `sensitive` values are secrets.

use super::{TestServer, stdout_of};

const TOML: &str = "[[env]]\nkey = \"STRIPE_KEY\"\nrequired = true\ndescription = \"the Stripe API key\"\n\
[[env]]\nkey = \"DB_PASSWORD\"\nvalue = \"hunter2-in-the-file\"\nsensitive = true\n\
[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n";

#[test]
fn an_upstream_file_without_a_name_deploys_once_its_required_env_is_set() {
    let server = TestServer::start(&[]);
    let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = parent.path().join("Shop_Front");
    std::fs::create_dir_all(dir.join(".miren")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join(".miren/app.toml"), TOML).unwrap_or_else(|e| panic!("{e}"));

    let out = server
        .cli()
        .arg("validate")
        .arg(&dir)
        .arg("--resolved")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no `name`: the app is `shop-front`, after its directory"),
        "{err}"
    );
    let resolved = stdout_of(&out);
    assert!(
        !resolved.contains("hunter2"),
        "a sensitive value printed: {resolved}"
    );

    // STRIPE_KEY has no value: nothing starts, and the error says how to give it one.
    let err = server.deploy_fails(&dir);
    assert!(
        err.contains("STRIPE_KEY (the Stripe API key), for service `web`"),
        "{err}"
    );
    assert!(
        err.contains("miren env set -a shop-front STRIPE_KEY=…"),
        "{err}"
    );

    server.ok([
        "env",
        "set",
        "-a",
        "shop-front",
        "--secret",
        "STRIPE_KEY=sk_test_4eC39",
    ]);
    let out = server
        .cli()
        .args(["deploy", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        !shown.contains("sk_test_4eC39") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert_eq!(server.json(&["app", "list"])[0]["name"], "shop-front");

    // The service gets both values; `-a` defaults to the directory's app.
    let out = server
        .cli()
        .current_dir(&dir)
        .args(["app", "run", "--", "echo $STRIPE_KEY $DB_PASSWORD"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        stdout_of(&out),
        "sk_test_4eC39 hunter2-in-the-file",
        "{out:?}"
    );
    for args in [
        vec!["app", "history", "-a", "shop-front"],
        vec!["app", "status", "-a", "shop-front"],
        vec!["sandbox-pool", "list", "-a", "shop-front"],
        vec!["env", "list", "-a", "shop-front"],
    ] {
        let v = server.json(&args).to_string();
        assert!(
            !v.contains("sk_test_4eC39") && !v.contains("hunter2"),
            "{args:?}: {v}"
        );
    }
    server.stop();
}

#[test]
fn args_run_as_the_program_and_its_arguments_without_a_shell() {
    let server = TestServer::start(&[]);
    let app = crate::app_dir(
        "name = \"argy\"\nweb = false\n[services.worker]\nargs = [\"python3\", \"-c\", \"import sys; print('args:', sys.argv[1:], flush=True); import time; time.sleep(60)\", \"a b\", \"$HOME\"]\n",
    );
    server.deploy(app.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let logs = server.ok(["logs", "-a", "argy"]);
        if logs.contains("args: ['a b', '$HOME']") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no args line: {logs}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stop();
}

#[test]
fn include_uploads_what_gitignore_leaves_out() {
    let server = TestServer::start(&[]);
    let toml = "name = \"built\"\ninclude = [\"dist/\"]\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n";
    let app = crate::app_dir(toml);
    std::fs::write(app.path().join(".gitignore"), "dist/\nsecret.txt\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(app.path().join("dist")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(app.path().join("dist/app.js"), "built by the bundler")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(app.path().join("secret.txt"), "stays home").unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    let run = |cmd: &str| {
        let out = server
            .cli()
            .args(["app", "run", "-a", "built", "--", cmd])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        stdout_of(&out)
    };
    assert_eq!(run("cat dist/app.js"), "built by the bundler");
    assert_eq!(
        run("test -e secret.txt && echo uploaded || echo left out"),
        "left out"
    );
    server.stop();
}

#[test]
fn aliases_run_their_targets_in_the_app_directory() {
    let server = TestServer::start(&[]);
    let toml = "name = \"aliased\"\n[aliases]\ngreet = \"app run -- 'echo hello from the alias'\"\nps = \"sandbox list --format json\"\n\"x say\" = \"app run -- echo\"\n\"app hi\" = \"app run -- echo hi from a namespace\"\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n";
    let app = crate::app_dir(toml);
    server.deploy(app.path());
    let run = |args: &[&str]| {
        crate::miren()
            .current_dir(app.path())
            .env("MIREN_SERVER", server.socket())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = run(&["greet"]);
    assert_eq!(
        (out.status.code(), stdout_of(&out).as_str()),
        (Some(0), "hello from the alias"),
        "{out:?}"
    );
    let out = run(&["ps"]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v[0]["service"], "web");
    // Several words: a namespace of its own, or under a command that has no such
    // subcommand; further words are appended.
    let out = run(&["x", "say", "one", "two"]);
    assert_eq!(stdout_of(&out), "one two", "{out:?}");
    let out = run(&["app", "hi"]);
    assert_eq!(stdout_of(&out), "hi from a namespace", "{out:?}");
    // A command is still itself.
    let out = run(&["app", "list", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Outside the app directory the alias means nothing.
    let out = crate::miren()
        .arg("greet")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    server.stop();
}

#[test]
fn a_udp_service_is_ready_when_started_and_has_its_own_srv_record() {
    let server = TestServer::start(&[]);
    // A UDP echo server: nothing accepts a TCP connection on its port, so a TCP probe
    // would never see it ready and the 3 s port timeout would fail the deploy.
    let app = crate::app_dir(
        "name = \"udpy\"\nweb = false\n[services.echo]\ncommand = \"exec python3 echo.py\"\nport = 5300\nport_type = \"udp\"\nport_name = \"resolver\"\nport_timeout = \"3s\"\n",
    );
    std::fs::write(
        app.path().join("echo.py"),
        "import os, socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('127.0.0.1', int(os.environ['PORT'])))\nwhile True:\n    data, peer = s.recvfrom(512)\n    s.sendto(data, peer)\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    let (code, records) = super::dig(
        &server.dns,
        "_resolver._udp.udpy.app.miren.",
        miren_dns::proto::rr::RecordType::SRV,
    );
    assert_eq!(
        code,
        miren_dns::proto::op::ResponseCode::NoError,
        "{records:?}"
    );
    let port: u16 = records
        .iter()
        .find_map(|r| r.strip_prefix("SRV ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no SRV: {records:?}"));
    // Its port answers over UDP (once the program has bound it: "ready" for a UDP port
    // means started, so the first datagrams may find nobody yet).
    assert_eq!(udp_echo(&format!("127.0.0.1:{port}")), "hi");
    let (code, _) = super::dig(
        &server.dns,
        "_echo._tcp.udpy.app.miren.",
        miren_dns::proto::rr::RecordType::SRV,
    );
    assert_eq!(code, miren_dns::proto::op::ResponseCode::NXDomain);
    server.stop();
}

#[test]
fn onbuild_commands_run_in_the_built_code_and_a_failing_one_fails_the_deploy() {
    let server = TestServer::start(&[]);
    let toml = |onbuild: &str| {
        format!(
            "name = \"builder\"\n[build]\nonbuild = [{onbuild}]\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n"
        )
    };
    let app = crate::app_dir(&toml(
        "\"mkdir -p out\", \"echo built from $(cat src.txt) > out/asset.txt\"",
    ));
    std::fs::write(app.path().join("src.txt"), "the source").unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    let out = server
        .cli()
        .args(["app", "run", "-a", "builder", "--", "cat out/asset.txt"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stdout_of(&out), "built from the source", "{out:?}");

    std::fs::write(
        app.path().join(".miren/app.toml"),
        toml("\"echo compiling\", \"echo broken >&2; exit 3\""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = server.deploy_fails(app.path());
    assert!(
        err.contains("onbuild `echo broken >&2; exit 3` exited with code 3"),
        "{err}"
    );
    assert!(err.contains("broken"), "its output is shown: {err}");
    // The first release still serves what its onbuild made.
    let out = server
        .cli()
        .args(["app", "run", "-a", "builder", "--", "cat out/asset.txt"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stdout_of(&out), "built from the source");
    server.stop();
}

#[test]
fn a_disk_owner_owns_its_directory_on_the_process_runtime() {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: giving a disk to another uid needs root (CI runs as root)");
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        return;
    }
    let server = TestServer::start(&[]);
    let app = crate::app_dir(
        "name = \"owned\"\nweb = false\n[services.store]\ncommand = \"sleep 60\"\n[[services.store.disks]]\nname = \"data\"\nmount_path = \"/data\"\nsize_gb = 1\nowner = \"4242:4343\"\n",
    );
    server.deploy(app.path());
    let dir = server.data.path().join("process/disks/owned/data");
    let meta = std::fs::metadata(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    server.stop();
}

/// A free port of 127.0.0.1 right now (for a node port).
fn free_port(udp: bool) -> u16 {
    if udp {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        s.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    } else {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    }
}

/// Serves HTTP on $PORT, a TCP echo on $PORT_DATA and a UDP echo on $PORT_GAME, each
/// answer saying which instance gave it.
const MULTI_PY: &str = r#"import os, socket, threading, http.server
me = os.environ['MIREN_SANDBOX'][-6:]
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(('127.0.0.1', int(os.environ['PORT_DATA']))); tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(('127.0.0.1', int(os.environ['PORT_GAME'])))
def serve_tcp():
    while True:
        c, _ = tcp.accept()
        c.sendall(b'data ' + c.recv(64) + b' ' + me.encode()); c.close()
def serve_udp():
    while True:
        d, peer = udp.recvfrom(512); udp.sendto(b'game ' + d + b' ' + me.encode(), peer)
threading.Thread(target=serve_tcp, daemon=True).start()
threading.Thread(target=serve_udp, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'admin ' + me.encode()
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()
"#;

const CLIENT_PY: &str = r#"import socket, sys
host, port = sys.argv[1].rsplit(':', 1)
c = socket.create_connection((host, int(port)), timeout=10); c.sendall(b'hi')
print(c.recv(64).decode())
"#;

/// One line over TCP to `addr`: what comes back.
fn tcp_echo(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(b"hi").unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap_or_else(|e| panic!("{e}"));
    out
}

/// One datagram to `addr`, retried until an answer comes (10 s at most).
fn udp_echo(addr: &str) -> String {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buf = [0u8; 64];
    loop {
        s.send_to(b"hi", addr).unwrap_or_else(|e| panic!("{e}"));
        if let Ok(n) = s.recv(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no UDP answer from {addr}"
        );
    }
}

/// The SRV records of `name`: (port, target).
fn srv(server: &TestServer, name: &str) -> Vec<(u16, String)> {
    let (code, records) = super::dig(&server.dns, name, miren_dns::proto::rr::RecordType::SRV);
    assert_eq!(
        code,
        miren_dns::proto::op::ResponseCode::NoError,
        "{name}: {records:?}"
    );
    records
        .iter()
        .filter_map(|r| {
            let mut w = r.strip_prefix("SRV ")?.split(' ');
            Some((w.next()?.parse().ok()?, w.next()?.to_string()))
        })
        .collect()
}

/// Upstream's `[[services.X.ports]]` on the process runtime: the proxy routes the
/// http port, every port has its SRV record (each instance at its own port), a
/// sibling reaches `web.app.miren:7000`, and node ports (TCP and UDP) reach the
/// instances from the node's address.
#[test]
fn several_ports_each_have_srv_records_and_node_ports_reach_them() {
    let server = TestServer::start(&[]);
    let (data_node, game_node) = (free_port(false), free_port(true));
    let app = crate::app_dir(&format!(
        "name = \"multi\"\n[services.web]\ncommand = \"exec python3 multi.py\"\n\
         [[services.web.ports]]\nport = 3000\nname = \"http\"\n\
         [[services.web.ports]]\nport = 7000\nname = \"data\"\ntype = \"tcp\"\nnode_port = {data_node}\n\
         [[services.web.ports]]\nport = 27015\nname = \"game\"\ntype = \"udp\"\nnode_port = {game_node}\n\
         [services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 2\n"
    ));
    std::fs::write(app.path().join("multi.py"), MULTI_PY).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(app.path().join("client.py"), CLIENT_PY).unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set", "multi.example", "multi"]);

    // The proxy routes the http port.
    let (status, body) = super::get(&server.http, "multi.example");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("admin "), "{body}");

    // Every port has its SRV name; each instance answers at its own ports.
    let http = srv(&server, "_http._tcp.multi.app.miren.");
    let data = srv(&server, "_data._tcp.multi.app.miren.");
    assert_eq!((http.len(), data.len()), (2, 2), "{http:?} {data:?}");
    let game = srv(&server, "_game._udp.multi.app.miren.");
    assert_eq!(game.len(), 2, "{game:?}");
    let mut seen = std::collections::BTreeSet::new();
    for (port, _) in &data {
        let answer = tcp_echo(&format!("127.0.0.1:{port}"));
        assert!(answer.starts_with("data hi "), "{answer}");
        seen.insert(answer);
    }
    assert_eq!(seen.len(), 2, "two instances: {seen:?}");
    for (port, _) in &game {
        assert!(udp_echo(&format!("127.0.0.1:{port}")).starts_with("game hi "));
    }
    let (code, _) = super::dig(
        &server.dns,
        "_data._udp.multi.app.miren.",
        miren_dns::proto::rr::RecordType::SRV,
    );
    assert_eq!(code, miren_dns::proto::op::ResponseCode::NXDomain);

    // A sibling writes the declared port; the stable address balances it.
    let out = server
        .cli()
        .args([
            "app",
            "run",
            "-a",
            "multi",
            "--",
            "python3",
            "client.py",
            "web.app.miren:7000",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(stdout_of(&out).starts_with("data hi "), "{out:?}");

    // Node ports, on the address the proxy listens on, reach both instances.
    let ip = server
        .http
        .rsplit_once(':')
        .map_or("127.0.0.1", |(ip, _)| ip);
    let mut via_node = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let answer = tcp_echo(&format!("{ip}:{data_node}"));
        assert!(answer.starts_with("data hi "), "{answer}");
        via_node.insert(answer);
        if via_node.len() == 2 {
            break;
        }
    }
    assert_eq!(via_node.len(), 2, "the node port balances: {via_node:?}");
    assert!(udp_echo(&format!("{ip}:{game_node}")).starts_with("game hi "));

    // Dropping the node port unpublishes it.
    super::edit_app_toml(app.path(), &format!("node_port = {data_node}\n"), "");
    server.deploy(app.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect((ip, data_node)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "node port {data_node} still open"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stop();
}

/// One HTTP/1.1 request with extra header lines; (status, headers, body).
fn request(addr: &str, head: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    write!(s, "{head}Connection: close\r\n\r\n").unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap_or_else(|e| panic!("{e}"));
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (headers, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, headers.to_ascii_lowercase(), body.to_string())
}

/// `[static]` with no service: the proxy serves the files itself, with types and
/// entity tags, and its 404 is the app's error page for browsers.
#[test]
fn a_static_only_app_is_served_by_the_proxy_with_its_error_page() {
    let server = TestServer::start(&[]);
    let app = crate::app_dir(
        "name = \"site\"\n[static]\ndir = \"/app/public\"\nerror_page = \"errors/404.html\"\n",
    );
    let public = app.path().join("public");
    std::fs::create_dir_all(public.join("errors")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(public.join("index.html"), "<h1>home</h1>").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(public.join("app.css"), "body{}").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        public.join("errors/404.html"),
        "<p>{{ .StatusCode }} {{ .Status }} for {{ .App }}</p>",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(app.path().join("secret.txt"), "not public").unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "site"]);
    let http = &server.http;

    let (status, headers, body) = request(http, "GET / HTTP/1.1\r\nHost: x\r\n");
    assert_eq!((status, body.as_str()), (200, "<h1>home</h1>"), "{headers}");
    assert!(headers.contains("content-type: text/html"), "{headers}");
    let (status, headers, body) = request(http, "GET /app.css HTTP/1.1\r\nHost: x\r\n");
    assert_eq!((status, body.as_str()), (200, "body{}"));
    assert!(headers.contains("content-type: text/css"), "{headers}");
    let etag = headers
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap_or_else(|| panic!("no etag: {headers}"))
        .to_string();
    let (status, _, body) = request(
        http,
        &format!("GET /app.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n"),
    );
    assert_eq!((status, body.as_str()), (304, ""));
    let (status, _, body) = request(http, "HEAD /app.css HTTP/1.1\r\nHost: x\r\n");
    assert_eq!((status, body.as_str()), (200, ""));

    // Nothing outside `dir`, however the path is spelled.
    for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/secret.txt"] {
        let (status, _, body) = request(http, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n"));
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("not public"));
    }
    // A browser gets the error page; curl the plain answer.
    let (status, headers, body) = request(
        http,
        "GET /nope HTTP/1.1\r\nHost: x\r\nAccept: text/html,*/*\r\n",
    );
    assert_eq!(status, 404);
    assert_eq!(body, "<p>404 Not Found for site</p>");
    assert!(headers.contains("content-type: text/html"), "{headers}");
    let (status, _, body) = request(http, "GET /nope HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n");
    assert_eq!((status, body.as_str()), (404, "no such file\n"));
    let (status, _, _) = request(http, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n");
    assert_eq!(status, 405);
    // No sandbox runs for it.
    let sandboxes = server.json(&["sandbox", "list", "-a", "site"]);
    assert_eq!(sandboxes.as_array().map(Vec::len), Some(0), "{sandboxes}");
    server.stop();
}

/// `[static]` beside a web service: files the build made are served, the rest goes
/// to the web; a new version serves its own files.
#[test]
fn static_files_built_by_onbuild_are_served_before_the_web_service() {
    let server = TestServer::start(&[]);
    let toml = |v: &str| {
        format!(
            "name = \"spa\"\n[build]\nonbuild = [\"mkdir -p dist && echo built {v} > dist/app.js\"]\n\
             [static]\ndir = \"/app/dist\"\n\
             [services.web]\ncommand = \"exec python3 -c 'import http.server as h, os\\nclass H(h.BaseHTTPRequestHandler):\\n  def do_GET(s):\\n    s.send_response(200); s.end_headers(); s.wfile.write(b\\\"from web\\\")\\nh.HTTPServer((\\\"127.0.0.1\\\", int(os.environ[\\\"PORT\\\"])), H).serve_forever()'\"\n"
        )
    };
    let app = crate::app_dir(&toml("v1"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "spa"]);
    assert_eq!(
        super::get_path(&server.http, "x", "/app.js"),
        (200, "built v1\n".into())
    );
    assert_eq!(
        super::get_path(&server.http, "x", "/api/items"),
        (200, "from web".into())
    );
    std::fs::write(app.path().join(".miren/app.toml"), toml("v2"))
        .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    assert_eq!(
        super::get_path(&server.http, "x", "/app.js"),
        (200, "built v2\n".into())
    );
    server.stop();
}

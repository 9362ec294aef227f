//! Addons through the real binary (SPEC §17): a PostgreSQL addon run from its image
//! in a container under `--runtime auto`, used by a process web through the
//! `DATABASE_URL` it was given; its data outlives a deploy, its password appears in
//! no output, and `addon destroy` deletes its volume. A SQLite addon is a disk of the
//! app's own process.

use super::docker::{Cleanup, docker, docker_here};
use super::{TestServer, get, stdout_of};

/// Counts visits in the database `DATABASE_URL` names, with Debian's `psql`.
const WEB_PG: &str = r#"import http.server, os, subprocess
SQL = "create table if not exists visits (n serial); insert into visits default values; select count(*) from visits"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        r = subprocess.run(['psql', os.environ['DATABASE_URL'], '-qtAc', SQL], capture_output=True, text=True)
        body = (r.stdout.strip().splitlines() or ['none'])[-1] if r.returncode == 0 else 'psql failed: ' + r.stderr
        code = 200 if r.returncode == 0 else 500
        self.send_response(code); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body.encode())
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()
"#;

fn pg_app(version: &str) -> tempfile::TempDir {
    let app = crate::app_dir(&format!(
        "name = \"pgaddon\"\n[services.web]\ncommand = \"exec python3 web.py {version}\"\n\
         [services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n\
         [addons.miren-postgresql]\nvariant = \"small\"\nversion = \"16\"\n"
    ));
    std::fs::write(app.path().join("web.py"), WEB_PG).unwrap_or_else(|e| panic!("{e}"));
    app
}

#[test]
fn a_postgres_addon_serves_its_database_url_keeps_its_data_and_is_destroyed_with_it() {
    if !docker_here() {
        return;
    }
    let _cleanup = Cleanup(vec!["pgaddon".into()]);
    let server = TestServer::start(&["--runtime", "auto"]);
    let app = pg_app("v1");
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "pgaddon"]);
    assert_eq!(get(&server.http, "x"), (200, "1".into()));
    assert_eq!(get(&server.http, "x"), (200, "2".into()));

    // Where it runs, and what `addon list` says of it.
    let sandboxes = server.json(&["sandbox", "list", "-a", "pgaddon", "--status", "running"]);
    let runtime_of = |svc: &str| {
        sandboxes
            .as_array()
            .and_then(|a| a.iter().find(|s| s["service"] == svc))
            .map(|s| s["runtime"].clone())
    };
    assert_eq!(runtime_of("miren-postgresql"), Some("docker".into()));
    assert_eq!(runtime_of("web"), Some("process".into()));
    let listed = server.json(&["addon", "list", "-a", "pgaddon"]);
    let row = &listed[0];
    assert_eq!(row["name"], "miren-postgresql");
    assert_eq!(row["status"], "active");
    assert_eq!(row["image"], "postgres:16");
    assert!(
        row["variables"]
            .as_array()
            .is_some_and(|v| v.iter().any(|k| k == "DATABASE_URL")),
        "{row}"
    );
    let disk = row["disk"].as_str().unwrap_or_default().to_string();
    assert!(disk.starts_with("miren-postgresql-"), "{row}");
    let volume = format!("miren-pgaddon-{disk}");
    assert!(
        docker(&["volume", "inspect", &volume]).is_some(),
        "no {volume}"
    );

    // The password reaches the app, and no listing.
    let out = server
        .cli()
        .args(["app", "run", "-a", "pgaddon", "--", "printenv PGPASSWORD"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let password = stdout_of(&out);
    assert!(password.len() >= 20, "{out:?}");
    for args in [
        &["addon", "list", "-a", "pgaddon", "--format", "json"][..],
        &["app", "status", "-a", "pgaddon", "--format", "json"],
        &["app", "history", "-a", "pgaddon", "--format", "json"],
        &["env", "list", "-a", "pgaddon", "--format", "json"],
        &["sandbox-pool", "list", "-a", "pgaddon", "--format", "json"],
        &["logs", "-a", "pgaddon"],
    ] {
        let shown = server.ok(args);
        assert!(
            !shown.contains(&password),
            "{args:?} shows the password: {shown}"
        );
    }

    // New code: the same database, its data kept.
    server.deploy(pg_app("v2").path());
    assert_eq!(get(&server.http, "x"), (200, "3".into()));

    // Destroyed: the app runs without it, and its volume goes.
    server.ok([
        "addon",
        "destroy",
        "miren-postgresql",
        "-a",
        "pgaddon",
        "--yes",
    ]);
    let out = server
        .cli()
        .args([
            "app",
            "run",
            "-a",
            "pgaddon",
            "--",
            "printenv DATABASE_URL || echo none",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stdout_of(&out), "none");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while docker(&["volume", "inspect", &volume]).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "{volume} is still there"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        server
            .json(&["addon", "list", "-a", "pgaddon"])
            .as_array()
            .is_some_and(|a| a.is_empty())
    );
    server.stop();
}

/// Writes to the SQLite database `DATABASE_URL` names, and counts.
const WEB_SQLITE: &str = r#"import http.server, os, sqlite3
path = os.environ['DATABASE_URL'].removeprefix('sqlite://')
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        db = sqlite3.connect(path)
        db.execute('create table if not exists visits (n integer primary key)')
        db.execute('insert into visits default values'); db.commit()
        body = str(db.execute('select count(*) from visits').fetchone()[0]) + ' at ' + path
        db.close()
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body.encode())
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()
"#;

#[test]
fn a_sqlite_addon_is_a_disk_of_the_app_and_its_database_outlives_a_deploy() {
    let server = TestServer::start(&[]);
    let toml = |v: &str| {
        format!(
            "name = \"notes\"\n[services.web]\ncommand = \"exec python3 web.py {v}\"\n\
             [services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n\
             [addons.miren-sqlite]\n"
        )
    };
    let app = crate::app_dir(&toml("v1"));
    std::fs::write(app.path().join("web.py"), WEB_SQLITE).unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "set-default", "-a", "notes"]);
    let (status, body) = get(&server.http, "x");
    assert_eq!(status, 200, "{body}");
    // `/data` means the disk: on the process runtime, its directory.
    let disk = server
        .data
        .path()
        .join("process/disks/notes/sqlite/data.db");
    assert_eq!(body, format!("1 at {}", disk.display()));
    assert!(disk.is_file());
    std::fs::write(app.path().join(".miren/app.toml"), toml("v2"))
        .unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    assert_eq!(get(&server.http, "x").1, format!("2 at {}", disk.display()));
    server.stop();
}

#[test]
fn the_addon_catalog_and_what_addon_commands_refuse() {
    let server = TestServer::start(&[]);
    let catalog = server.json(&["addon", "list-available"]);
    let names: Vec<&str> = catalog
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "miren-postgresql",
            "miren-mysql",
            "miren-valkey",
            "miren-rabbitmq",
            "miren-memcache",
            "miren-sqlite"
        ]
    );
    let variants = server.ok(["addon", "variants", "miren-postgresql"]);
    assert!(
        variants.contains("small") && variants.contains("shared"),
        "{variants}"
    );
    let out = server
        .cli()
        .args(["addon", "variants", "miren-postgres"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean `miren-postgresql`?"),
        "{out:?}"
    );
    // On an app: an unknown addon, a second one of a name, an unknown service.
    let app = crate::app_dir(
        "name = \"plain\"\n[services.web]\ncommand = \"exec python3 -m http.server $PORT --bind 127.0.0.1\"\n",
    );
    server.deploy(app.path());
    let refused = |args: &[&str], says: &str| {
        let out = server
            .cli()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    };
    refused(
        &["addon", "create", "miren-valkyrie", "-a", "plain"],
        "did you mean `miren-valkey`?",
    );
    refused(
        &[
            "addon",
            "create",
            "miren-valkey",
            "-a",
            "plain",
            "--service",
            "wbe",
        ],
        "did you mean `web`?",
    );
    refused(
        &["addon", "create", "miren-valkey:huge", "-a", "plain"],
        "no variant `huge`",
    );
    refused(
        &["addon", "destroy", "miren-valkey", "-a", "plain", "--yes"],
        "addon of app `plain`",
    );
    server.stop();
}

/// Talks RESP to the server `REDIS_URL` names (password and all): `SET`, then `GET`.
const RESP_PY: &str = r#"import os, socket, urllib.parse
u = urllib.parse.urlparse(os.environ['REDIS_URL'])
s = socket.create_connection((u.hostname, u.port), timeout=10)
def cmd(*words):
    out = b'*%d\r\n' % len(words)
    for w in words:
        w = w.encode()
        out += b'$%d\r\n%s\r\n' % (len(w), w)
    s.sendall(out)
    return s.recv(512)
print(cmd('AUTH', u.password).decode().strip(), cmd('SET', 'k', 'v').decode().strip(), cmd('GET', 'k').decode().split()[-1])
"#;

#[test]
fn a_valkey_addon_answers_with_its_password_only() {
    if !docker_here() {
        return;
    }
    if docker(&["image", "inspect", "valkey/valkey:9"]).is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "valkey/valkey:9 is missing: bash tests/images/build.sh"
        );
        eprintln!("skipped: no valkey/valkey:9 (bash tests/images/build.sh)");
        return;
    }
    let _cleanup = Cleanup(vec!["cache".into()]);
    let server = TestServer::start(&["--runtime", "auto"]);
    let app = crate::app_dir(
        "name = \"cache\"\n[services.worker]\ncommand = \"exec sleep 600\"\n[addons.miren-valkey]\n",
    );
    std::fs::write(app.path().join("resp.py"), RESP_PY).unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    let out = server
        .cli()
        .args([
            "app",
            "run",
            "-a",
            "cache",
            "--service",
            "worker",
            "--",
            "python3 resp.py",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stdout_of(&out), "+OK +OK v", "{out:?}");
    // Without the password the server refuses.
    let out = server
        .cli()
        .args([
            "app", "run", "-a", "cache", "--service", "worker", "--",
            "python3 -c \"import os,socket,urllib.parse as p; u=p.urlparse(os.environ['REDIS_URL']); s=socket.create_connection((u.hostname,u.port)); s.sendall(b'*1\\r\\n\\$4\\r\\nPING\\r\\n'); print(s.recv(100).decode().strip())\"",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(stdout_of(&out).starts_with("-NOAUTH"), "{out:?}");
    server.stop();
}

//! The Docker runtime with the controller: real containers on a real Engine, from
//! the images `tests/images/build.sh` makes. Without an Engine the tests skip and
//! say so; with `MIREN_TEST_DOCKER=1` (CI) they must run.

mod harness;

use std::time::{Duration, Instant};

use harness::{Harness, get, redis, running};
use miren_core::model::{SandboxStatus, VersionState};

const HTTPD: &str = "mkdir -p /www && echo hello from $MIREN_SERVICE > /www/index.html && exec httpd -f -vv -p $PORT -h /www";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_run_as_containers_with_their_own_addresses_and_output() {
    let Some(h) = Harness::new().await else {
        return;
    };
    let app = h.app();
    let v = h
        .deploy(&format!(
            "name = \"{app}\"\n[services.web]\nimage = \"miren-test/busybox\"\ncommand = \"{HTTPD}\"\n\
             [services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 2\n"
        ))
        .await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let s = h
        .until("2 web running", |s| running(s, "web").len() == 2)
        .await;
    let web = running(&s, "web");
    let addrs: Vec<_> = web.iter().filter_map(|w| w.address).collect();
    assert_eq!(addrs.len(), 2);
    assert_ne!(
        addrs[0].ip, addrs[1].ip,
        "each container has its own address"
    );
    for a in &addrs {
        assert_eq!(a.port, Some(3000), "web's default port");
        assert!(!a.ip.is_loopback(), "the container's own address: {a}");
        let body = get(a).await;
        assert!(body.contains("hello from web"), "{body}");
    }
    // httpd -vv logs each request on stderr: the output arrives with its stream.
    h.until_logs("a request line", |l| {
        l.iter()
            .any(|r| r.stream == miren_core::runtime::Stream::Stderr && r.line.contains("url:/"))
    })
    .await;

    // A stop is SIGTERM to the init, which passes it on: it takes nothing like the
    // 10 s grace, and the pool replaces it.
    let t = Instant::now();
    h.ctl.stop_sandbox(&web[0].id).await.expect("stop");
    let s = h
        .until("replaced", |s| {
            running(s, "web").len() == 2 && !running(s, "web").iter().any(|x| x.id == web[0].id)
        })
        .await;
    let stopped = s
        .sandboxes
        .iter()
        .find(|x| x.id == web[0].id)
        .expect("kept");
    assert_eq!(stopped.status, SandboxStatus::Stopped);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "stopped in {:?}",
        t.elapsed()
    );
    assert!(
        !h.container_exists(&web[0].id).await,
        "its container is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_reported_with_its_code_and_last_lines() {
    let Some(h) = Harness::new().await else {
        return;
    };
    let app = h.app();
    let v = h
        .deploy(&format!(
            "name = \"{app}\"\n[services.web]\nimage = \"miren-test/busybox\"\n\
             command = \"echo cannot reach the database >&2; exit 3\"\n"
        ))
        .await;
    assert_eq!(v.state, VersionState::Failed);
    let why = v.failure.unwrap_or_default();
    assert!(why.contains("exited with code 3"), "{why}");
    assert!(why.contains("cannot reach the database"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_image_is_built_from_its_dockerfile_and_a_broken_build_keeps_the_old_version() {
    let Some(h) = Harness::new().await else {
        return;
    };
    let app = h.app();
    let toml = format!("name = \"{app}\"\n[services.web]\nport = 8000\n");
    let dockerfile = "FROM miren-test/busybox\nCOPY index.html /www/index.html\n\
                      CMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/www\"]\n";
    let mut events = h.ctl.subscribe();
    let v1 = h
        .deploy_dir(
            &toml,
            &[
                ("Dockerfile", dockerfile),
                ("index.html", "built from a Dockerfile\n"),
            ],
        )
        .await;
    assert_eq!(v1.state, VersionState::Active, "{:?}", v1.failure);
    // The build's steps came as the deploy's progress.
    let mut lines = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let miren_core::controller::Event::Prepare { line, .. } = ev {
            lines.push(line);
        }
    }
    assert!(
        lines.iter().any(|l| l.contains("FROM miren-test/busybox")),
        "{lines:#?}"
    );
    let s = h
        .until("web running", |s| running(s, "web").len() == 1)
        .await;
    let addr = running(&s, "web")[0].address.expect("an address");
    assert_eq!(get(&addr).await, "built from a Dockerfile\n");

    let broken = "FROM miren-test/busybox\nRUN echo about to fail && exit 7\n";
    let v2 = h.deploy_dir(&toml, &[("Dockerfile", broken)]).await;
    assert_eq!(v2.state, VersionState::Failed);
    let why = v2.failure.unwrap_or_default();
    assert!(why.contains("building the app's image failed"), "{why}");
    assert!(why.contains("about to fail"), "its last lines: {why}");
    let s = h.snap().await;
    let active = s
        .apps
        .iter()
        .find(|a| a.name == app)
        .and_then(|a| a.active_version.clone());
    assert_eq!(active, Some(v1.id));
    assert_eq!(
        get(&addr).await,
        "built from a Dockerfile\n",
        "the old version serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_fails_the_deploy_naming_it() {
    let Some(h) = Harness::new().await else {
        return;
    };
    let app = h.app();
    let v = h
        .deploy(&format!(
            "name = \"{app}\"\n[services.db]\nimage = \"miren-test/not-built-anywhere:3\"\n"
        ))
        .await;
    assert_eq!(v.state, VersionState::Failed);
    let why = v.failure.unwrap_or_default();
    assert!(
        why.contains(
            "the image miren-test/not-built-anywhere:3 is not on this machine and pulling it failed"
        ),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_service_listens_on_its_exposed_port_with_no_port_setting() {
    let Some(h) = Harness::new().await else {
        return;
    };
    let app = h.app();
    let v = h
        .deploy(&format!(
            "name = \"{app}\"\n[services.redis]\nimage = \"redis:7-alpine\"\n"
        ))
        .await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let s = h
        .until("redis running", |s| running(s, "redis").len() == 1)
        .await;
    let addr = running(&s, "redis")[0].address.expect("an address");
    assert_eq!(addr.port, Some(6379), "EXPOSE 6379");
    assert_eq!(redis(&addr, "PING").await, "+PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_row_survives_a_change_of_the_service_a_restart_and_app_deletion_until_purged() {
    let Some(mut h) = Harness::new().await else {
        return;
    };
    let app = h.app();
    let toml = |extra: &str| {
        format!(
            "name = \"{app}\"\n[services.postgres]\nimage = \"postgres:16\"\n\
             [[services.postgres.env]]\nkey = \"POSTGRES_PASSWORD\"\nvalue = \"secret\"\n{extra}\
             [[services.postgres.disks]]\nname = \"pgdata\"\nmount_path = \"/var/lib/postgresql/data\"\nsize_gb = 1\n"
        )
    };
    let psql = |sql: &str| ["psql", "-U", "postgres", "-tAc", sql].map(str::to_string);
    let pg = |s: &miren_core::controller::Snapshot| running(s, "postgres");
    let v = h.deploy(&toml("")).await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let first = pg(&h.until("postgres running", |s| pg(s).len() == 1).await)[0].clone();
    let args = psql("create table t (x int); insert into t values (42)");
    let out = h
        .exec(&first.id, &args.each_ref().map(String::as_str))
        .await;
    assert!(out.contains("INSERT 0 1"), "{out}");

    // A change to the service: a new container, after the old one stopped.
    let v2 = h
        .deploy(&toml(
            "[[services.postgres.env]]\nkey = \"TZ\"\nvalue = \"UTC\"\n",
        ))
        .await;
    assert_eq!(v2.state, VersionState::Active, "{:?}", v2.failure);
    let second = pg(&h
        .until("the new postgres", |s| {
            pg(s).len() == 1 && pg(s)[0].id != first.id
        })
        .await)[0]
        .clone();
    let select = psql("select x from t");
    let args = select.each_ref().map(String::as_str);
    assert_eq!(h.exec(&second.id, &args).await.trim(), "42");
    h.until_logs("a clean shutdown of the old one", |l| {
        l.iter()
            .any(|r| r.sandbox == first.id && r.line.contains("database system is shut down"))
    })
    .await;

    // A server restart: every sandbox stops (postgres cleanly), and starts again.
    h.restart().await;
    let restarted = pg(&h
        .until("postgres after the restart", |s| {
            pg(s).len() == 1 && pg(s)[0].id != second.id
        })
        .await)[0]
        .clone();
    assert_eq!(h.exec(&restarted.id, &args).await.trim(), "42");

    // Deleted: the disk stays, and a new deploy of the app finds the row.
    let volume = format!("miren-{app}-pgdata");
    h.ctl.delete_app(&app, false).await.expect("delete");
    assert!(h.volume_exists(&volume).await, "the disk outlives the app");
    let v3 = h.deploy(&toml("")).await;
    assert_eq!(v3.state, VersionState::Active, "{:?}", v3.failure);
    let third = pg(&h.until("postgres again", |s| pg(s).len() == 1).await)[0].clone();
    assert_eq!(h.exec(&third.id, &args).await.trim(), "42");
    h.ctl.delete_app(&app, true).await.expect("purge");
    assert!(!h.volume_exists(&volume).await, "purged");
}

//! The proxy in front of real processes (the process runtime) and the real controller:
//! routing, balancing under failure and redeploys, scale from zero, upgrades,
//! streaming and limits. All traffic stays on loopback.

mod backend;
mod hardening;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use miren_core::artifact::ArtifactStore;
use miren_core::controller::{Controller, ControllerConfig, Snapshot};
use miren_core::model::{Route, SandboxStatus, Version, VersionState};
use miren_core::store::Progress;
use miren_core::store::keys;
use miren_core::store::{MemoryStore, Op, Store};
use miren_proxy::{Proxy, ProxyConfig};
use miren_runtime_process::ProcessRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Not a test: the entry point of the backend the tests deploy.
#[test]
fn backend() {
    backend::run();
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

struct Harness {
    ctl: Controller,
    rt: ProcessRuntime,
    store: Arc<MemoryStore>,
    artifacts: ArtifactStore,
    /// Which store revision the proxy's table reflects.
    table: Progress,
    addr: std::net::SocketAddr,
    client: Client<HttpConnector, Body>,
    dir: tempfile::TempDir,
    proxy: tokio::task::JoinHandle<()>,
}

/// How `miren server` runs its proxy: connections served on threads of its own.
fn on_threads() -> ProxyConfig {
    ProxyConfig {
        threads: 2,
        ..ProxyConfig::default()
    }
}

impl Harness {
    async fn new(config: ProxyConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MemoryStore::new());
        let artifacts = ArtifactStore::open(dir.path().join("artifacts")).expect("artifacts");
        let rt = ProcessRuntime::new(dir.path().join("process"), store.clone())
            .await
            .expect("runtime");
        let mut cfg = ControllerConfig::new(artifacts.clone());
        cfg.stop_grace = Duration::from_secs(2);
        cfg.drain_delay = Duration::from_millis(200);
        let ctl = Controller::start(store.clone() as Arc<dyn Store>, Arc::new(rt.clone()), cfg)
            .await
            .expect("controller");
        let proxy = Proxy::bind(
            "127.0.0.1:0".parse().expect("addr"),
            store.clone(),
            Some(ctl.clone()),
            config,
        )
        .await
        .expect("proxy");
        let addr = proxy.local_addr();
        let table = proxy.progress();
        let proxy = tokio::spawn(proxy.run());
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Self {
            ctl,
            rt,
            store,
            artifacts,
            table,
            addr,
            client,
            dir,
            proxy,
        }
    }

    async fn deploy(&self, app_toml: &str) -> Version {
        let v =
            miren_core::testing::deploy_text(&self.ctl, &self.artifacts, self.dir.path(), app_toml)
                .await
                .expect("deploy");
        self.visible().await;
        v
    }

    /// Waits until the proxy's table shows the store as it is now.
    async fn visible(&self) {
        let ok = self.table.caught_up(Duration::from_secs(5)).await;
        assert!(ok.expect("store revision"), "the proxy caught up");
    }

    async fn route(&self, host: &str, app: &str) {
        let r = Route {
            host: host.to_string(),
            app: app.to_string(),
            default: host == "*",
        };
        self.store
            .txn(vec![Op::put(keys::route(host), keys::encode(&r))])
            .await
            .expect("route");
        self.visible().await;
    }

    async fn until(&self, what: &str, cond: impl Fn(&Snapshot) -> bool) -> Snapshot {
        match self.ctl.wait_for(None, Duration::from_secs(30), cond).await {
            Ok(Some(s)) => s,
            _ => panic!(
                "timed out waiting for: {what}\n{:#?}",
                self.ctl.snapshot(None).await
            ),
        }
    }

    async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        body: Body,
    ) -> (StatusCode, hyper::HeaderMap, String) {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("host", host)
            .body(body)
            .expect("request");
        let resp = self.client.request(req).await.expect("proxy answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&self, host: &str, path: &str) -> (StatusCode, String) {
        let (s, _, b) = self.request("GET", host, path, empty()).await;
        (s, b)
    }
}

impl Drop for Harness {
    /// A test that panics before shutting down leaves no process behind.
    fn drop(&mut self) {
        self.rt.kill_all();
    }
}

fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

fn running(s: &Snapshot, app: &str, service: &str) -> usize {
    s.sandboxes
        .iter()
        .filter(|x| {
            x.id.as_str().starts_with(&format!("{app}-{service}-"))
                && x.status == SandboxStatus::Running
                && x.reason.is_none()
        })
        .count()
}

fn web_app(name: &str, concurrency: &str) -> String {
    format!(
        "name = \"{name}\"\n[services.web]\ncommand = \"{}\"\n[services.web.concurrency]\n{concurrency}\n",
        backend::command()
    )
}

const FIXED_2: &str = "mode = \"fixed\"\nnum_instances = 2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_exact_host_then_default_and_reaches_only_web() {
    let h = Harness::new(ProxyConfig::default()).await;
    h.deploy(&web_app("shop", FIXED_2)).await;
    // blog has an internal service with a port: nothing routes to it.
    let blog = format!(
        "{}[services.api]\ncommand = \"{}\"\nport = 4000\n",
        web_app("blog", "mode = \"fixed\"\nnum_instances = 1"),
        backend::command()
    )
    .replace(
        "command = \"MIREN_TEST_ROLE=web exec",
        "command = \"V=blog MIREN_TEST_ROLE=web exec",
    );
    let v = h.deploy(&blog).await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);

    // Routed to an app that was never deployed: 503, try later.
    h.route("new.example", "fresh").await;
    let (s, headers, body) = h.request("GET", "new.example", "/", empty()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "app fresh has no active version yet (is it still deploying?)\n"
    );
    assert!(headers.contains_key("retry-after"));

    let (s, body) = h.get("nowhere.example", "/").await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::NOT_FOUND, "no route for host nowhere.example\n")
    );

    h.route("shop.example", "shop").await;
    h.route("*", "blog").await;
    // Exact host, case and port ignored.
    let (s, body) = h.get("SHOP.Example:8080", "/").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.starts_with("web ") && body.ends_with("v="), "{body}");
    assert!(
        body.contains("host=SHOP.Example:8080"),
        "Host is kept: {body}"
    );
    assert!(
        body.contains("xff=127.0.0.1") && body.contains("proto=http"),
        "{body}"
    );
    assert!(body.contains("fhost=SHOP.Example:8080"), "{body}");
    assert!(!body.contains("rid=-"), "a request id is added: {body}");
    // Anything else: the default route, to blog's web (never its api service).
    for host in ["other.example", "api.blog", "api.blog.app.miren"] {
        let (s, body) = h.get(host, "/").await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.ends_with("v=blog"), "{host}: {body}");
    }
    // An app without a web service answers 503.
    let worker_only = format!(
        "name = \"jobs\"\n[services.worker]\ncommand = \"{}\"\n",
        backend::command()
    );
    assert_eq!(h.deploy(&worker_only).await.state, VersionState::Active);
    h.route("jobs.example", "jobs").await;
    let (s, body) = h.get("jobs.example", "/").await;
    assert_eq!(
        (s, body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "app jobs has no web service running\n"
        )
    );
    // The proxy's own health endpoint.
    let (s, body) = h.get("anything", "/.well-known/miren/health").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "ok\n"));
    h.ctl.shutdown().await.expect("shutdown");
}

/// GETs through the proxy until `stop`, at most 20,000 or 30 s; the failures.
async fn load_loop(
    h: Arc<Harness>,
    host: &'static str,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (u32, Vec<String>) {
    let (mut ok, mut failed) = (0u32, Vec::new());
    let t0 = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed)
        && ok < 20_000
        && t0.elapsed() < Duration::from_secs(30)
    {
        let (s, body) = h.get(host, "/").await;
        if s == StatusCode::OK {
            ok += 1;
        } else {
            failed.push(format!("{s}: {body}"));
        }
    }
    (ok, failed)
}

/// A bounded GET loop through the proxy, running while a test does something nasty.
struct LoadLoop {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u32, Vec<String>)>,
}

impl LoadLoop {
    fn start(h: &Arc<Harness>, host: &'static str) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(load_loop(h.clone(), host, stop.clone()));
        Self { stop, task }
    }

    /// Stops the loop and asserts that it did real work and no request failed.
    async fn assert_no_failure(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (ok, failed) = self.task.await.expect("load");
        assert!(ok > 50, "only {ok} requests");
        assert!(
            failed.is_empty(),
            "{} of {} failed: {:?}",
            failed.len(),
            ok as usize + failed.len(),
            failed.first()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_two_instances_under_load_fails_no_get() {
    let h = Arc::new(Harness::new(on_threads()).await);
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    let load = LoadLoop::start(&h, "shop.example");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = h.ctl.snapshot(Some("shop")).await.expect("snap");
    let victim = s
        .sandboxes
        .iter()
        .find(|x| x.status == SandboxStatus::Running)
        .expect("running")
        .id
        .clone();
    let pgid = h.rt.pgid(&victim).expect("pgid");
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    h.until("replaced", |s| {
        running(s, "shop", "web") == 2
            && s.sandboxes
                .iter()
                .any(|x| x.id == victim && x.status == SandboxStatus::Dead)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.assert_no_failure().await;
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_under_load_fails_no_request() {
    let h = Arc::new(Harness::new(on_threads()).await);
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    let load = LoadLoop::start(&h, "shop.example");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v2 = h
        .deploy(&web_app("shop", FIXED_2).replace(
            "command = \"MIREN_TEST_ROLE",
            "command = \"V=2 MIREN_TEST_ROLE",
        ))
        .await;
    assert_eq!(v2.state, VersionState::Active);
    h.until("old instances gone", |s| {
        s.sandboxes
            .iter()
            .filter(|x| x.status == SandboxStatus::Running)
            .all(|x| x.version == v2.id)
    })
    .await;
    let (_, body) = h.get("shop.example", "/").await;
    assert!(body.ends_with("v=2"), "{body}");
    load.assert_no_failure().await;
    h.ctl.shutdown().await.expect("shutdown");
}

const TO_ZERO: &str =
    "mode = \"auto\"\nscale_down_delay = \"2s\"\nmin_instances = 0\nrequests_per_instance = 10";

async fn at_zero(h: &Harness, app: &str) {
    h.until("scaled to zero", |s| {
        s.pools
            .iter()
            .any(|p| p.app == app && p.desired == 0 && p.current == 0)
    })
    .await;
    h.visible().await;
}

/// Deploys `shop` (routed at shop.example), waits until it scaled to zero, then makes
/// its next start run `then` (a shell command) first.
async fn at_zero_then(h: &Harness, then: &str) {
    let flag = h.dir.path().join("flag");
    let app = web_app("shop", TO_ZERO).replace(
        "command = \"MIREN_TEST_ROLE",
        &format!(
            "command = \"test -e {} && {then}; MIREN_TEST_ROLE",
            flag.display()
        ),
    );
    assert_eq!(h.deploy(&app).await.state, VersionState::Active);
    h.route("shop.example", "shop").await;
    at_zero(h, "shop").await;
    std::fs::write(&flag, "").expect("flag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_from_zero_holds_requests_and_answers_them_all() {
    let h = Arc::new(
        Harness::new(ProxyConfig {
            hold_timeout: Duration::from_secs(5),
            ..on_threads()
        })
        .await,
    );
    h.deploy(&web_app("shop", TO_ZERO)).await;
    h.route("shop.example", "shop").await;
    at_zero(&h, "shop").await;

    // One request: held, then answered.
    let t0 = Instant::now();
    let (s, body) = h.get("shop.example", "/").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // Back to zero; then 20 at once: all answered.
    at_zero(&h, "shop").await;
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let h = h.clone();
        all.spawn(async move { h.get("shop.example", "/").await });
    }
    while let Some(r) = all.join_next().await {
        let (s, body) = r.expect("task");
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let s = h.ctl.snapshot(Some("shop")).await.expect("snap");
    let pool = s.pools.iter().find(|p| p.service == "web").expect("pool");
    assert!(
        pool.desired >= 1 && pool.desired_reason.starts_with("auto:"),
        "{}",
        pool.desired_reason
    );
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_are_shared_among_the_instances_that_become_ready() {
    let h = Arc::new(Harness::new(on_threads()).await);
    let to_zero = TO_ZERO.replace("requests_per_instance = 10", "requests_per_instance = 2");
    h.deploy(&web_app("shop", &to_zero)).await;
    h.route("shop.example", "shop").await;
    at_zero(&h, "shop").await;
    // Eight requests that each keep their instance busy for a while.
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let h = h.clone();
        all.spawn(async move { h.get("shop.example", "/?sleep_ms=1500").await });
    }
    let mut per_instance: std::collections::BTreeMap<String, usize> = Default::default();
    while let Some(r) = all.join_next().await {
        let (s, body) = r.expect("task");
        assert_eq!(s, StatusCode::OK, "{body}");
        let pid = body.split(' ').nth(1).unwrap_or_default().to_string();
        *per_instance.entry(pid).or_default() += 1;
    }
    assert!(
        per_instance.values().all(|n| *n <= 2),
        "requests_per_instance = 2, yet: {per_instance:?}"
    );
    assert!(per_instance.len() >= 4, "{per_instance:?}");
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_time_out_and_overflow_with_503() {
    let config = ProxyConfig {
        hold_timeout: Duration::from_millis(800),
        max_held_per_app: 1,
        ..ProxyConfig::default()
    };
    let h = Arc::new(Harness::new(config).await);
    // Once at zero, its next start takes 5 s.
    at_zero_then(&h, "sleep 5").await;

    let mut held = tokio::task::JoinSet::new();
    {
        let h = h.clone();
        held.spawn(async move { h.request("GET", "shop.example", "/", empty()).await });
    }
    // It is held once it asked for an instance.
    h.until("a request held", |s| {
        s.pools.iter().any(|p| p.app == "shop" && p.desired >= 1)
    })
    .await;
    // The next overflows at once: answered while the first still waits.
    let (s, headers, body) = h.request("GET", "shop.example", "/", empty()).await;
    assert!(
        held.try_join_next().is_none(),
        "the held request ended first"
    );
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("already has 1 requests waiting"), "{body}");
    assert_eq!(
        headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    while let Some(r) = held.join_next().await {
        let (s, headers, body) = r.expect("task");
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("did not start within"), "{body}");
        assert!(headers.contains_key("retry-after"));
    }
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_that_dies_while_starting_gives_502_without_waiting_out_the_hold() {
    let h = Harness::new(ProxyConfig::default()).await;
    // Once at zero, its next start exits at once.
    at_zero_then(&h, "exit 1").await;
    let t0 = Instant::now();
    let (s, body) = h.get("shop.example", "/").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body.contains("died while starting (exited with code 1)"),
        "{body}"
    );
    assert!(body.contains("miren logs -a shop"), "{body}");
    // Answered when the start failed, not at the 60 s hold timeout (the bound is loose:
    // the machine may be busy).
    assert!(
        t0.elapsed() < ProxyConfig::default().hold_timeout / 6,
        "{:?}",
        t0.elapsed()
    );
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_pass_through() {
    let h = Harness::new(ProxyConfig::default()).await;
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    let tcp = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://shop.example/ws", tcp)
        .await
        .expect("handshake");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..5 {
        let m = format!("hello {i}");
        ws.send(m.clone().into()).await.expect("send");
        let back = ws.next().await.expect("message").expect("ok");
        assert_eq!(back.into_text().expect("text").as_str(), m);
    }
    ws.close(None).await.expect("close");
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_upload_and_download_stream_through_in_bounded_memory() {
    const SIZE: u64 = 100 << 20;
    let h = Harness::new(ProxyConfig::default()).await;
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    let before = miren_core::testing::rss_kib();
    let chunk = Bytes::from(vec![b'y'; 256 * 1024]);
    let chunks = (SIZE / chunk.len() as u64) as usize;
    let stream = futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone()))),
    );
    let (s, _, body) = h
        .request(
            "POST",
            "shop.example",
            "/upload",
            BodyExt::boxed(StreamBody::new(stream)),
        )
        .await;
    assert_eq!((s, body), (StatusCode::OK, SIZE.to_string()));

    let req = Request::builder()
        .uri(format!("http://{}/download?bytes={SIZE}", h.addr))
        .header("host", "shop.example")
        .body(empty())
        .expect("request");
    let mut body = h.client.request(req).await.expect("download").into_body();
    let mut got: u64 = 0;
    while let Some(frame) = body.frame().await {
        got += frame
            .expect("frame")
            .data_ref()
            .map_or(0, |d| d.len() as u64);
    }
    assert_eq!(got, SIZE);
    let grew = miren_core::testing::rss_kib().saturating_sub(before);
    assert!(grew < 32 * 1024, "memory grew by {grew} KiB moving 200 MiB");
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let config = ProxyConfig {
        header_timeout: Duration::from_millis(500),
        ..ProxyConfig::default()
    };
    let h = Harness::new(config).await;
    let mut tcp = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: shop.example\r\nX-Slow: ")
        .await
        .expect("write");
    let t0 = Instant::now();
    let mut buf = [0u8; 1024];
    let r = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    let elapsed = t0.elapsed();
    match r {
        Ok(Ok(_)) | Ok(Err(_)) => {}
        Err(_) => panic!("the connection was still open after 5 s"),
    }
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_is_served() {
    let h = Harness::new(ProxyConfig::default()).await;
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    let h2: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    for _ in 0..3 {
        // Dial the proxy; the app is named by the Host header.
        let req = Request::builder()
            .uri(format!("http://{}/", h.addr))
            .header("host", "shop.example")
            .body(empty())
            .expect("request");
        let resp = h2.request(req).await.expect("h2 answer");
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.starts_with("web "), "{body}");
    }
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused_without_reaching_the_app() {
    let h = Harness::new(ProxyConfig::default()).await;
    h.deploy(&web_app("shop", "mode = \"fixed\"\nnum_instances = 1"))
        .await;
    h.route("shop.example", "shop").await;
    let (_, before) = h.get("shop.example", "/count").await;
    let mut tcp = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let big = "a".repeat(200 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: shop.example\r\nX-Big: {big}\r\n\r\n");
    let (mut r, mut w) = tcp.split();
    // The proxy answers before it has read it all, and reads the rest away so the
    // answer isn't lost to a reset.
    let (written, read) = tokio::join!(w.write_all(req.as_bytes()), async {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut out))
            .await
            .map(|r| r.map(|_| out))
    });
    let _ = written;
    let out = read.expect("closed within 5 s").expect("closed, not reset");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 431 "),
        "{}",
        text.lines().next().unwrap_or_default()
    );
    // The app never saw it: its count moved by one, the /count request itself.
    let (_, after) = h.get("shop.example", "/count").await;
    let (before, after): (u64, u64) = (
        before.parse().expect("count"),
        after.parse().expect("count"),
    );
    assert_eq!(after, before + 1, "the oversized request reached the app");
    h.ctl.shutdown().await.expect("shutdown");
}

/// Reads one response from a raw connection: its head, and its `Content-Length` body
/// unless `bodiless` (an answer to HEAD, a `100 Continue`).
async fn read_response(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    bodiless: bool,
) -> (String, String) {
    use tokio::io::AsyncBufReadExt;
    let read = async {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = conn.read_line(&mut line).await.expect("read");
            assert!(n > 0, "closed before the end of a head: {head:?}");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().expect("length"))
            })
            .unwrap_or(0);
        let mut body = vec![0; if bodiless { 0 } else { len }];
        conn.read_exact(&mut body).await.expect("body");
        (head, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s")
}

/// Everything the client sends until it closes (bounded by 10 s).
async fn read_until_closed(conn: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut out))
        .await
        .expect("closed within 10 s")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_details_on_raw_connections() {
    let h = Harness::new(ProxyConfig::default()).await;
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    let connect = || async {
        tokio::net::TcpStream::connect(h.addr)
            .await
            .expect("connect")
    };

    // Four requests in one write (pipelining): four answers, in order. HEAD gets the
    // length but no body; absolute-form is routed by its authority.
    let mut c = tokio::io::BufReader::new(connect().await);
    c.get_mut()
        .write_all(
            b"GET /?first HTTP/1.1\r\nHost: shop.example\r\n\r\n\
              HEAD / HTTP/1.1\r\nHost: shop.example\r\n\r\n\
              POST /.well-known/miren/health HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 2\r\n\r\nhi\
              GET http://shop.example/ HTTP/1.1\r\nHost: elsewhere\r\n\r\n",
        )
        .await
        .expect("write");
    let (head, body) = read_response(&mut c, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.starts_with("web "), "{body}");
    let (head, body) = read_response(&mut c, true).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: "),
        "{head}"
    );
    assert_eq!(body, "");
    let (head, body) = read_response(&mut c, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "ok\n", "the proxy's health, its body skipped");
    let (head, body) = read_response(&mut c, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("host=shop.example "), "{body}");

    // Expect: 100-continue, on the same connection: the proxy says continue, the
    // body follows and reaches the app.
    c.get_mut()
        .write_all(b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .expect("write");
    let (head, _) = read_response(&mut c, true).await;
    assert!(head.starts_with("HTTP/1.1 100"), "{head}");
    c.get_mut().write_all(b"hello").await.expect("write");
    let (head, body) = read_response(&mut c, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "5");

    // HTTP/1.0 gets a chunked download without the chunks, delimited by closing.
    let mut c = connect().await;
    c.write_all(b"GET /download?bytes=100000 HTTP/1.0\r\nHost: shop.example\r\n\r\n")
        .await
        .expect("write");
    let all = read_until_closed(&mut c).await;
    let (head, body) = all.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    assert_eq!(body.len(), 100_000);
    assert!(body.bytes().all(|b| b == b'x'));

    // Framing a proxy must not guess at: 400, and the connection closes.
    let mut c = connect().await;
    c.write_all(b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc")
        .await
        .expect("write");
    let all = read_until_closed(&mut c).await;
    assert!(all.starts_with("HTTP/1.1 400 "), "{all}");
    assert!(
        all.contains("Content-Length and Transfer-Encoding"),
        "{all}"
    );

    // An app that answers before the body is all there (413): the client, still
    // sending, gets the answer, then the connection closes — not a reset that would
    // eat the answer.
    let (mut r, mut w) = connect().await.into_split();
    w.write_all(
        b"POST /refuse HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 100000000\r\n\r\n",
    )
    .await
    .expect("write");
    let sending = tokio::spawn(async move {
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..128 {
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut all))
        .await
        .expect("closed within 10 s")
        .expect("closed, not reset");
    let _ = sending.await;
    let all = String::from_utf8_lossy(&all);
    assert!(all.starts_with("HTTP/1.1 413 "), "{all}");
    assert!(
        all.to_ascii_lowercase().contains("connection: close"),
        "{all}"
    );
    assert!(all.ends_with("too large\n"), "{all}");
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_on_threads_of_its_own_serves_every_connection_and_closes_them_when_stopped() {
    let h = Harness::new(on_threads()).await;
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    // Eight kept-alive connections, handed out over the two threads: each gets three
    // answers in turn.
    let mut conns = Vec::new();
    for _ in 0..8 {
        let c = tokio::net::TcpStream::connect(h.addr)
            .await
            .expect("connect");
        conns.push(tokio::io::BufReader::new(c));
    }
    for round in 0..3 {
        for (i, c) in conns.iter_mut().enumerate() {
            let req = format!("GET /?c={i}&r={round} HTTP/1.1\r\nHost: shop.example\r\n\r\n");
            c.get_mut().write_all(req.as_bytes()).await.expect("write");
            let (head, body) = read_response(c, false).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{i}/{round}: {head}");
            assert!(body.starts_with("web "), "{body}");
        }
    }
    // Stopping the proxy stops its threads: every client sees its connection closed,
    // and nothing accepts any more.
    h.proxy.abort();
    for c in &mut conns {
        assert_eq!(read_until_closed(c.get_mut()).await, "");
    }
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(h.addr),
    )
    .await
    .expect("an answer to connect");
    assert!(refused.is_err(), "the listener is closed");
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_drops_kept_alive_connections_fails_no_request() {
    let h = Harness::new(on_threads()).await;
    let app = web_app("shop", "mode = \"fixed\"\nnum_instances = 1").replace(
        "command = \"MIREN_TEST_ROLE=web exec",
        "command = \"ONESHOT=1 MIREN_TEST_ROLE=web exec",
    );
    assert!(app.contains("ONESHOT=1"));
    h.deploy(&app).await;
    h.route("shop.example", "shop").await;
    // Every connection the proxy keeps is closed by the app after one answer; the
    // proxy notices (or finds out when sending) and uses a new one. One client
    // connection, sequential requests: each reuses what the last one left.
    let mut c = tokio::io::BufReader::new(
        tokio::net::TcpStream::connect(h.addr)
            .await
            .expect("connect"),
    );
    for i in 0..200 {
        c.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
            .await
            .expect("write");
        let (head, body) = read_response(&mut c, false).await;
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "request {i}: {head}{body}"
        );
        assert!(body.starts_with("oneshot "), "request {i}: {body}");
    }
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_slower_than_the_upstream_timeout_gets_504() {
    let config = ProxyConfig {
        upstream_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let h = Harness::new(config).await;
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    let t0 = Instant::now();
    let (s, body) = h.get("shop.example", "/?sleep_ms=3000").await;
    let took = t0.elapsed();
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body, "app shop did not answer within 300ms\n");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // A quick request on the same client still works.
    let (s, _) = h.get("shop.example", "/").await;
    assert_eq!(s, StatusCode::OK);
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mixed_traffic_gets_every_answer_right() {
    let h = Arc::new(Harness::new(on_threads()).await);
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    // 16 clients × 40 requests: uploads with a length or chunked, downloads, plain
    // GETs, sizes from a fixed pseudo-random sequence. Kept-alive connections on both
    // sides are reused throughout, so a byte left behind by one exchange would show
    // up in another's answer.
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..16u64 {
        let h = h.clone();
        clients.spawn(async move {
            let mut x = client.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            for i in 0..40 {
                let size = (next() % 200_000) as usize;
                match next() % 4 {
                    0 => {
                        let body = Full::new(Bytes::from(vec![b'a'; size]))
                            .map_err(|never| match never {})
                            .boxed();
                        let (s, _, got) = h.request("POST", "shop.example", "/upload", body).await;
                        assert_eq!(
                            (s, got),
                            (StatusCode::OK, size.to_string()),
                            "client {client} #{i}"
                        );
                    }
                    1 => {
                        let piece = Bytes::from(vec![b'c'; 7_001]);
                        let pieces = size / piece.len();
                        let stream = futures_util::stream::iter(
                            (0..pieces)
                                .map(move |_| Ok::<_, std::io::Error>(Frame::data(piece.clone()))),
                        );
                        let body = BodyExt::boxed(StreamBody::new(stream));
                        let (s, _, got) = h.request("POST", "shop.example", "/upload", body).await;
                        let sent = pieces * 7_001;
                        assert_eq!(
                            (s, got),
                            (StatusCode::OK, sent.to_string()),
                            "client {client} #{i}"
                        );
                    }
                    2 => {
                        let path = format!("/download?bytes={size}");
                        let (s, _, got) = h.request("GET", "shop.example", &path, empty()).await;
                        assert_eq!(s, StatusCode::OK, "client {client} #{i}");
                        assert_eq!(got.len(), size, "client {client} #{i}");
                        assert!(got.bytes().all(|b| b == b'x'), "client {client} #{i}");
                    }
                    _ => {
                        let (s, body) = h.get("shop.example", "/").await;
                        assert_eq!(s, StatusCode::OK, "client {client} #{i}");
                        assert!(
                            body.starts_with("web ") && body.contains("host=shop.example "),
                            "{body}"
                        );
                    }
                }
            }
        });
    }
    let all = async {
        while let Some(done) = clients.join_next().await {
            done.expect("a client failed");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("640 requests within 60 s");
    h.ctl.shutdown().await.expect("shutdown");
}

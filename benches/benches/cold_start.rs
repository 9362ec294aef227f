//! Scale from zero (SPEC §12): the first response of a request to a pool at zero,
//! minus the app's own start-to-listen time, on the process runtime. 20 trials, timed
//! in-process (one `curl` costs ~10 ms of process start here). Target: ≤ 15 ms.
//!
//! `cargo bench -p miren-benches --bench cold_start`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use miren_core::artifact::ArtifactStore;
use miren_core::controller::{Controller, ControllerConfig};
use miren_core::model::Route;
use miren_core::store::keys;
use miren_core::store::{MemoryStore, Op, Store};
use miren_runtime_process::ProcessRuntime;

const TRIALS: usize = 20;
const APP: &str = env!("CARGO_BIN_EXE_tiny-http");

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The app's own time from spawn to accepting a connection.
fn app_listen_ms() -> f64 {
    let mut times = Vec::new();
    for _ in 0..TRIALS {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let t0 = Instant::now();
        let mut child = std::process::Command::new(APP)
            .env("PORT", port.to_string())
            .spawn()
            .expect("spawn");
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_micros(100));
        }
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        let _ = child.kill();
        let _ = child.wait();
    }
    percentile(&mut times, 0.5)
}

fn get(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn main() {
    let listen = app_listen_ms();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let (mut total, mut overhead) = rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        // `MIREN_BENCH_STORE=redb`: the durable store a server uses (fsync per write).
        let store: Arc<dyn Store> = if std::env::var("MIREN_BENCH_STORE").as_deref() == Ok("redb") {
            Arc::new(miren_core::store::RedbStore::open(&dir.path().join("state.redb")).expect("redb"))
        } else {
            Arc::new(MemoryStore::new())
        };
        let artifacts = ArtifactStore::open(dir.path().join("artifacts")).expect("artifacts");
        let runtime = ProcessRuntime::new(dir.path().join("process"), store.clone()).await.expect("runtime");
        let mut cfg = ControllerConfig::new(artifacts.clone());
        cfg.drain_delay = Duration::ZERO;
        let ctl = Controller::start(store.clone(), Arc::new(runtime), cfg)
            .await
            .expect("controller");
        let proxy = miren_proxy::Proxy::bind("127.0.0.1:0".parse().expect("addr"), store.clone(), Some(ctl.clone()), Default::default())
            .await
            .expect("proxy");
        let addr = proxy.local_addr();
        let table = proxy.progress();
        tokio::spawn(proxy.run());
        let app = format!(
            "name = \"cold\"\n[services.web]\ncommand = \"exec {APP}\"\n[services.web.concurrency]\nmode = \"auto\"\nmin_instances = 0\nscale_down_delay = \"1s\"\n"
        );
        let v = miren_core::testing::deploy_text(&ctl, &artifacts, dir.path(), &app).await.expect("deploy");
        assert_eq!(v.state, miren_core::model::VersionState::Active, "{:?}", v.failure);
        let route = Route { host: "*".into(), app: "cold".into(), default: true };
        store.txn(vec![Op::put(keys::route("*"), keys::encode(&route))]).await.expect("route");
        assert!(table.caught_up(Duration::from_secs(5)).await.expect("revision"));
        let (mut total, mut overhead) = (Vec::new(), Vec::new());
        for _ in 0..TRIALS {
            ctl.wait_for(Some("cold"), Duration::from_secs(30), |s| {
                s.pools.iter().all(|p| p.desired == 0 && p.current == 0)
            })
            .await
            .expect("snapshot")
            .expect("scaled to zero");
            assert!(table.caught_up(Duration::from_secs(5)).await.expect("revision"));
            let t0 = Instant::now();
            let resp = tokio::task::spawn_blocking(move || get(addr)).await.expect("get");
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
            total.push(ms);
            overhead.push(ms - listen);
        }
        ctl.shutdown().await.expect("shutdown");
        (total, overhead)
    });
    let which = std::env::var("MIREN_BENCH_STORE").unwrap_or_else(|_| "memory".into());
    println!("cold start on the process runtime ({TRIALS} trials, app = tiny-http, {which} store)");
    println!("  app's own spawn-to-listen:        median {listen:6.2} ms");
    println!(
        "  first response from zero:         median {:6.2} ms   p90 {:6.2} ms",
        percentile(&mut total, 0.5),
        percentile(&mut total, 0.9)
    );
    println!(
        "  platform overhead (minus listen): median {:6.2} ms   p90 {:6.2} ms   (target <= 15 ms)",
        percentile(&mut overhead, 0.5),
        percentile(&mut overhead, 0.9)
    );
}

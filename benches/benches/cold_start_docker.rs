//! Scale from zero on the Docker runtime (SPEC §12): the first response of a request
//! to a pool at zero, beside what the Engine itself takes to bring the same container
//! to listening — `docker start` alone, and create + start (what the platform has to
//! do for a new instance) — on a network of its own, as the platform's containers
//! (and docker-compose's) are: a user-defined network costs the Engine more at start
//! than its default bridge. Trials alternate between the two, 10 each, timed
//! in-process. Target: ≤ 15 ms over `docker start`.
//!
//! `cargo bench -p miren-benches --bench cold_start_docker` (needs an Engine and
//! `bash tests/images/build.sh busybox`)

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use miren_core::artifact::ArtifactStore;
use miren_core::controller::{Controller, ControllerConfig};
use miren_core::model::Route;
use miren_core::store::{MemoryStore, Store};
use miren_runtime_docker::{DockerOptions, DockerRuntime, socket_path};

const TRIALS: usize = 10;
const HTTPD: &str = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 3000 -h /www";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn until_listening(addr: SocketAddr) {
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

const NETWORK: &str = "miren-cold-bench";

async fn ip_of(docker: &Docker, name: &str) -> IpAddr {
    let i = docker.inspect_container(name, None).await.expect("inspect");
    i.network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get(NETWORK).cloned())
        .and_then(|e| e.ip_address)
        .and_then(|ip| ip.parse().ok())
        .expect("an address on the bench's network")
}

/// The Engine alone, once: (start → listening, create + start → listening) in ms.
async fn engine_only(docker: &Docker, i: usize) -> (f64, f64) {
    {
        let name = format!("miren-cold-bench-{i}");
        let t0 = Instant::now();
        let body = ContainerCreateBody {
            image: Some("miren-test/busybox".into()),
            cmd: Some(vec!["sh".into(), "-c".into(), HTTPD.into()]),
            host_config: Some(bollard::models::HostConfig {
                init: Some(true),
                network_mode: Some(NETWORK.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        docker
            .create_container(Some(options), body)
            .await
            .expect("create");
        let t1 = Instant::now();
        docker.start_container(&name, None).await.expect("start");
        let ip = ip_of(docker, &name).await;
        until_listening(SocketAddr::new(ip, 3000)).await;
        let times = (
            t1.elapsed().as_secs_f64() * 1e3,
            t0.elapsed().as_secs_f64() * 1e3,
        );
        let rm = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        let _ = docker.remove_container(&name, Some(rm)).await;
        times
    }
}

fn get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = DockerOptions {
            owner: "cold-start-bench".into(),
            dns: None,
            dir: dir.path().join("docker"),
        };
        let Ok(runtime) = DockerRuntime::connect(&socket_path(), options).await else {
            eprintln!("no Docker Engine answers: nothing to measure");
            return;
        };
        let docker = runtime.engine().clone();
        let net = bollard::models::NetworkCreateRequest {
            name: NETWORK.into(),
            ..Default::default()
        };
        let _ = docker.create_network(net).await;
        let (mut start, mut create_start) = (Vec::new(), Vec::new());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let artifacts = ArtifactStore::open(dir.path().join("artifacts")).expect("artifacts");
        let mut cfg = ControllerConfig::new(artifacts.clone());
        cfg.drain_delay = Duration::ZERO;
        let ctl = Controller::start(store.clone(), Arc::new(runtime), cfg)
            .await
            .expect("controller");
        let proxy = miren_proxy::Proxy::bind(
            "127.0.0.1:0".parse().expect("addr"),
            store.clone(),
            Some(ctl.clone()),
            Default::default(),
        )
        .await
        .expect("proxy");
        let addr = proxy.local_addr();
        let table = proxy.progress();
        tokio::spawn(proxy.run());
        let app = format!(
            "name = \"coldbench\"\n[services.web]\nimage = \"miren-test/busybox\"\ncommand = \"{HTTPD}\"\n\
             [services.web.concurrency]\nmode = \"auto\"\nmin_instances = 0\nscale_down_delay = \"1s\"\n"
        );
        let v = miren_core::testing::deploy_text(&ctl, &artifacts, dir.path(), &app)
            .await
            .expect("deploy");
        assert_eq!(v.state, miren_core::model::VersionState::Active, "{:?}", v.failure);
        let route = Route {
            host: "*".into(),
            app: "coldbench".into(),
            default: true,
        };
        ctl.put_route(route).await.expect("route");
        let mut total = Vec::new();
        for i in 0..TRIALS {
            let (s, cs) = engine_only(&docker, i).await;
            start.push(s);
            create_start.push(cs);
            ctl.wait_for(Some("coldbench"), Duration::from_secs(60), |s| {
                s.pools.iter().all(|p| p.desired == 0 && p.current == 0)
            })
            .await
            .expect("snapshot")
            .expect("scaled to zero");
            assert!(table.caught_up(Duration::from_secs(5)).await.expect("revision"));
            let t0 = Instant::now();
            let resp = tokio::task::spawn_blocking(move || get(addr)).await.expect("get");
            total.push(t0.elapsed().as_secs_f64() * 1e3);
            assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        }
        ctl.delete_app("coldbench", true).await.expect("delete");
        ctl.shutdown().await.expect("shutdown");
        let _ = docker.remove_network(NETWORK).await;
        let (start, create_start) = (median(&mut start), median(&mut create_start));
        let total = median(&mut total);
        println!("cold start on the Docker runtime ({TRIALS} trials, busybox httpd, medians)");
        println!("  docker start -> listening:          {start:7.1} ms");
        println!("  docker create + start -> listening: {create_start:7.1} ms");
        println!("  first response from zero:           {total:7.1} ms");
        println!(
            "  overhead over docker start: {:.1} ms (target <= 15 ms); over create + start: {:.1} ms",
            total - start,
            total - create_start
        );
    });
}

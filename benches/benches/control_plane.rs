//! Control plane at scale (SPEC §12): N apps × 3 services deployed at once on the
//! fake (no-op) runtime, until every version is active and every sandbox running.
//! Reports the time to converge, the memory per sandbox and the store writes
//! (transactions) per deploy, for 100, 1,000 and 5,000 apps, on each store: in memory,
//! redb (the single-node server's), etcd (three members on loopback, started here
//! when `etcd` is installed; more than one machine) and `etcd3`: etcd with three
//! nodes, the controller placing every sandbox through the store and an agent per
//! node running it (each node's runtime no-op) and reporting back, as a cluster does.
//! Each run is a fresh child process so its RSS is its own.
//!
//! `cargo bench -p miren-benches --bench control_plane` (add `-- 1000` for one size,
//! `-- --store etcd3` for one store).

use std::sync::Arc;
use std::time::{Duration, Instant};

use miren_core::artifact::ArtifactStore;
use miren_core::config::resolve;
use miren_core::controller::{Controller, ControllerConfig, DeployRequest};
use miren_core::model::{SandboxStatus, SourceInfo, VersionState};
use miren_core::runtime::fake::FakeRuntime;
use miren_core::store::{MemoryStore, RedbStore, Store};

const SIZES: [usize; 3] = [100, 1_000, 5_000];
const CHILD: &str = "MIREN_BENCH_APPS";

fn app_toml(i: usize) -> String {
    format!(
        r#"name = "app{i}"
[[env]]
key = "RAILS_ENV"
value = "production"

[services.web]
command = "bundle exec puma -p $PORT"
[services.web.concurrency]
mode = "fixed"
num_instances = 1

[services.worker]
command = "bundle exec sidekiq"

[services.redis]
command = "redis-server --port $PORT"
port = 6379
"#
    )
}

/// The store of one run, and what keeps it alive.
async fn open_store(
    kind: &str,
    dir: &std::path::Path,
) -> (Arc<dyn Store>, Option<Box<dyn std::any::Any>>) {
    match kind {
        "memory" => (Arc::new(MemoryStore::new()), None),
        "redb" => (
            Arc::new(RedbStore::open(&dir.join("state.redb")).expect("redb")),
            None,
        ),
        "etcd" | "etcd3" => {
            let etcd = miren_store_etcd::testing::Cluster::start(3).await;
            let store = etcd.store("bench").await;
            (Arc::new(store), Some(Box::new(etcd)))
        }
        other => panic!("no store {other} (memory, redb, etcd, etcd3)"),
    }
}

fn run(apps: usize, kind: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let artifacts = ArtifactStore::open(dir.path()).expect("artifacts");
        let digest = artifacts.put(b"code").expect("put").digest;
        let configs: Vec<_> = (0..apps)
            .map(|i| resolve(&app_toml(i)).expect("valid"))
            .collect();
        let (store, _keep) = open_store(kind, dir.path()).await;
        let (runtime, _agents) = if kind == "etcd3" {
            three_nodes(&store, &artifacts, &digest, dir.path()).await
        } else {
            (
                Arc::new(FakeRuntime::new()) as Arc<dyn miren_core::runtime::Runtime>,
                Vec::new(),
            )
        };
        let base = miren_core::testing::rss_kib();
        let revision0 = store.revision().await.expect("revision");
        let ctl = Controller::start(store.clone(), runtime, ControllerConfig::new(artifacts))
            .await
            .expect("controller");

        let t0 = Instant::now();
        let mut deploys = tokio::task::JoinSet::new();
        for config in configs {
            let ctl = ctl.clone();
            let digest = digest.clone();
            deploys.spawn(async move {
                let id = ctl
                    .deploy(DeployRequest {
                        config,
                        artifact_digest: digest,
                        source: SourceInfo::default(),
                    })
                    .await
                    .expect("deploy");
                ctl.wait(&id).await.expect("wait")
            });
        }
        let mut active = 0;
        while let Some(v) = deploys.join_next().await {
            if v.expect("task").state == VersionState::Active {
                active += 1;
            }
        }
        let converged = ctl
            .wait_for(None, Duration::from_secs(600), |s| {
                s.sandboxes.len() == apps * 3
                    && s.sandboxes.iter().all(|x| x.status == SandboxStatus::Running)
            })
            .await
            .expect("snapshot")
            .is_some();
        let took = t0.elapsed();
        let rss = miren_core::testing::rss_kib().saturating_sub(base);
        let sandboxes = apps * 3;
        let (items, revision) = store.list("").await.expect("list");
        let keys = items.len();
        let writes = revision - revision0;
        assert!(converged && active == apps, "did not converge: {active}/{apps} active");
        println!(
            "{kind:<6} {apps:>6} apps  {sandboxes:>6} sandboxes  converged in {:>8.1} ms  ({:>5.1} µs/sandbox)  \
             memory +{:>7} KiB  ({:>5.2} KiB/sandbox)  {keys} store keys  {writes} store writes ({:.1} per deploy)",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / sandboxes as f64,
            rss,
            rss as f64 / sandboxes as f64,
            writes as f64 / apps as f64,
        );
        proxy_table(&ctl, store.as_ref()).await;
    });
}

/// Three nodes on `store`: their heartbeats, an agent each on a no-op runtime, and the
/// leader's placement runtime (the code in the store, as a cluster's deploys put it).
async fn three_nodes(
    store: &Arc<dyn Store>,
    artifacts: &ArtifactStore,
    digest: &miren_core::model::Digest,
    dir: &std::path::Path,
) -> (
    Arc<dyn miren_core::runtime::Runtime>,
    Vec<miren_core::placement::Agent>,
) {
    use miren_core::placement::{Agent, AgentParts, PlacementRuntime};
    use miren_core::secret::SecretKey;
    use miren_core::store::{Op, keys};
    miren_core::artifact::replica::publish(store.as_ref(), artifacts, digest)
        .await
        .expect("code in the store");
    let key = Arc::new(SecretKey::from_bytes(&SecretKey::generate()));
    let mut agents = Vec::new();
    let mut leader_rt = None;
    for n in ["n1", "n2", "n3"] {
        store
            .txn(vec![Op::put(keys::alive(n), b"alive".to_vec())])
            .await
            .expect("heartbeat");
        let rt = Arc::new(FakeRuntime::new());
        leader_rt.get_or_insert_with(|| rt.clone());
        agents.push(
            Agent::start(AgentParts {
                store: store.clone(),
                key: key.clone(),
                node: n.to_string(),
                local: rt,
                artifacts: ArtifactStore::open(dir.join(n)).expect("artifacts"),
                logs: Arc::new(()),
            })
            .await
            .expect("agent"),
        );
    }
    let local = leader_rt.expect("a node");
    (
        Arc::new(PlacementRuntime::start(store.clone(), key, "n1", local)),
        agents,
    )
}

/// The proxy's routing table at this size: built from a full listing, and brought up
/// to date after one app's web pool grows by an instance (what the proxy does on
/// every change, from the store's watch events), driving its projection by hand.
async fn proxy_table(ctl: &Controller, store: &dyn Store) {
    use miren_core::store::Projection;
    use miren_core::store::WatchEvent;
    use miren_core::store::keys::Key;
    use miren_core::store::reflector::Put;
    use miren_proxy::table::{Routing, Table};
    let t0 = Instant::now();
    let mut routing = Routing::default();
    for kind in Routing::KINDS {
        let (items, _) = store.list(kind.prefix()).await.expect("list");
        for (key, v) in &items {
            let put = Put::new(key, &v.value).expect("a store key");
            routing.put(put).expect("decodes");
        }
    }
    let table = routing.publish(&Table::default(), 0).expect("a table");
    let full = t0.elapsed();

    let mut watch = store.watch("");
    let snapshot = ctl.snapshot(Some("app0")).await.expect("snapshot");
    let web = snapshot
        .pools
        .iter()
        .find(|p| p.service == "web")
        .expect("web pool");
    ctl.set_desired(&web.id, 2, "bench")
        .await
        .expect("set desired");
    ctl.wait_for(Some("app0"), Duration::from_secs(60), |s| {
        s.sandboxes
            .iter()
            .filter(|x| x.service == "web" && x.status == SandboxStatus::Running)
            .count()
            == 2
    })
    .await
    .expect("snapshot")
    .expect("a second web instance");
    let mut events = Vec::new();
    while let Some(ev) = watch.try_next() {
        events.push(ev);
    }
    let t0 = Instant::now();
    for ev in &events {
        match ev {
            WatchEvent::Put { key, value, .. } => {
                if let Some(put) = Put::new(key, value) {
                    routing.put(put).expect("decodes");
                }
            }
            WatchEvent::Delete { key, .. } => {
                if let Some(k) = Key::parse(key) {
                    routing.delete(k);
                }
            }
            WatchEvent::Lagged => panic!("the watch lagged"),
            WatchEvent::Progress { .. } => {}
        }
    }
    let updated = routing.publish(&table, 0).expect("a new table");
    let incremental = t0.elapsed();
    assert_eq!(updated.targets().count(), table.targets().count());
    println!(
        "        proxy table: full listing + build {:>8.2} ms;  after one app's change ({} events) {:>7.1} µs",
        full.as_secs_f64() * 1e3,
        events.len(),
        incremental.as_secs_f64() * 1e6,
    );
}

fn main() {
    if let Some((n, kind)) = std::env::var(CHILD)
        .ok()
        .as_deref()
        .and_then(|v| v.split_once(':'))
        && let Ok(n) = n.parse()
    {
        run(n, kind);
        return;
    }
    // `cargo bench` passes `--bench`; a bare number picks one size, `--store S` a store.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        SIZES.to_vec()
    } else {
        sizes
    };
    let mut stores: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--store")
        .map(|w| w[1].as_str())
        .collect();
    if stores.is_empty() {
        stores = vec!["memory", "redb"];
        if miren_store_etcd::testing::etcd_installed() {
            stores.push("etcd");
        }
    }
    println!("control plane: N apps × 3 services on the no-op runtime, deployed at once");
    let exe = std::env::current_exe().expect("exe");
    for n in sizes {
        for kind in &stores {
            let status = std::process::Command::new(&exe)
                .env(CHILD, format!("{n}:{kind}"))
                .status()
                .expect("child");
            assert!(status.success(), "size {n} on {kind} failed");
        }
    }
}

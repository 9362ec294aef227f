//! miren-proxy alone, for the side-by-side bench: one tokio thread (like nginx's one
//! worker and haproxy's one thread), routing every host to one app whose web instance
//! is the backend given.
//!
//! `proxy-standalone <listen addr> <backend addr>`

use std::sync::Arc;

use miren_core::config::resolve;
use miren_core::model::{
    App, Digest, PoolId, PoolSpec, Route, Sandbox, SandboxId, SandboxPool, SandboxStatus, Version,
    VersionId, VersionState,
};
use miren_core::store::keys;
use miren_core::store::{MemoryStore, Op, Store};

// The allocator the `miren` binary uses too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .ok_or("usage: proxy-standalone <listen> <backend>")?;
    let backend = args
        .next()
        .ok_or("usage: proxy-standalone <listen> <backend>")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = Arc::new(MemoryStore::new());
        let config = resolve("name = \"bench\"\n[services.web]\ncommand = \"serve\"\n")?;
        let version = VersionId::new("bench");
        let pool = PoolId::new();
        let code = Digest::of(b"bench");
        let spec = PoolSpec::of(&config, "web", &code).ok_or("no web")?;
        let sandbox = SandboxId::new("bench", "web");
        let ops = vec![
            Op::put(
                keys::app("bench"),
                keys::encode(&App {
                    active_version: Some(version.clone()),
                    ..App::new("bench", 0)
                }),
            ),
            Op::put(
                keys::version("bench", &version),
                keys::encode(&Version {
                    id: version.clone(),
                    app: "bench".into(),
                    number: 1,
                    config: config.clone(),
                    declared: None,
                    artifact_digest: code.clone(),
                    created: 0,
                    source: Default::default(),
                    state: VersionState::Active,
                    failure: None,
                    config_vars: Vec::new(),
                    restarted: Default::default(),
                    secret_pins: Default::default(),
                }),
            ),
            Op::put(
                keys::pool("bench", &pool),
                keys::encode(&SandboxPool {
                    id: pool.clone(),
                    app: "bench".into(),
                    service: "web".into(),
                    spec_hash: spec.hash(),
                    spec,
                    versions: vec![version.clone()],
                    scaling: config.services["web"].concurrency,
                    desired: 1,
                    desired_reason: "bench".into(),
                    current: 1,
                    ready: 1,
                    quick_crashes: 0,
                    retry_at: None,
                }),
            ),
            Op::put(
                keys::sandbox("bench", &sandbox),
                keys::encode(&Sandbox {
                    id: sandbox.clone(),
                    pool,
                    version,
                    service: "web".into(),
                    address: Some(backend.parse()?),
                    ports: Default::default(),
                    runtime: None,
                    node: None,
                    status: SandboxStatus::Running,
                    reason: None,
                    exit_code: None,
                    restarts: 0,
                    health: None,
                    created: 0,
                    updated: 0,
                }),
            ),
            Op::put(
                keys::route("*"),
                keys::encode(&Route {
                    host: "*".into(),
                    app: "bench".into(),
                    default: true,
                }),
            ),
        ];
        store.txn(ops).await?;
        let proxy =
            miren_proxy::Proxy::bind(listen.parse()?, store, None, Default::default()).await?;
        println!("listening on {}", proxy.local_addr());
        proxy.run().await;
        Ok(())
    })
}

//! Helpers for tests and benchmarks of embedders (feature `test-util`).

mod store_contract;

pub use store_contract::store_contract;

use std::path::Path;

use crate::artifact::{ArtifactStore, pack_dir};
use crate::controller::{Controller, DeployRequest};
use crate::model::{SourceInfo, Version};

/// Why [`deploy_text`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployTextError {
    /// Writing or packing the app dir.
    #[error("preparing the app dir: {0}")]
    Io(#[from] std::io::Error),
    /// Storing the packed code.
    #[error("storing the code: {0}")]
    Store(#[from] crate::artifact::ArtifactError),
    /// The config is invalid.
    #[error(transparent)]
    Invalid(#[from] crate::config::InvalidConfig),
    /// The controller refused.
    #[error(transparent)]
    Controller(#[from] crate::controller::ControllerError),
}

/// Writes `app_toml` into a fresh directory under `scratch`, packs and stores it,
/// deploys it and waits for the outcome (`active` or `failed`).
pub async fn deploy_text(
    ctl: &Controller,
    artifacts: &ArtifactStore,
    scratch: &Path,
    app_toml: &str,
) -> Result<Version, DeployTextError> {
    let dir = scratch.join(format!("app-{}", crate::model::new_suffix()));
    std::fs::create_dir_all(dir.join(".miren"))?;
    std::fs::write(dir.join(crate::config::APP_TOML), app_toml)?;
    let bytes = pack_dir(&dir)?;
    let art = artifacts.put(&bytes)?;
    let config = crate::config::resolve(app_toml)?;
    let id = ctl
        .deploy(DeployRequest {
            config,
            artifact_digest: art.digest,
            source: SourceInfo::default(),
        })
        .await?;
    Ok(ctl.wait(&id).await?)
}

/// This process's resident set size in KiB (Linux), for memory bounds in tests and
/// benchmarks.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A pool of `service` in `app` running an image, one instance wanted: the plain data
/// a store holds, for tests of what reads the store (proxy, DNS).
pub fn pool(app: &str, service: &str) -> crate::model::SandboxPool {
    use crate::config::Concurrency;
    use crate::model::{CodeSource, PoolId, PoolSpec, SandboxPool};
    let spec = PoolSpec {
        service: service.into(),
        source: CodeSource::Image(format!("{service}:latest")),
        command: None,
        args: Vec::new(),
        env: Default::default(),
        port: None,
        port_name: None,
        port_type: None,
        node_port: None,
        extra_ports: vec![],
        disks: vec![],
        onbuild: vec![],
        health: None,
        port_timeout: None,
        shutdown_timeout: None,
        secret_env: Default::default(),
        secret_refs: Default::default(),
        restarted: None,
    };
    SandboxPool {
        id: PoolId::new(),
        app: app.into(),
        service: service.into(),
        spec_hash: spec.hash(),
        spec,
        versions: vec![],
        scaling: Concurrency::Fixed { num_instances: 1 },
        desired: 1,
        desired_reason: String::new(),
        current: 1,
        ready: 1,
        quick_crashes: 0,
        retry_at: None,
    }
}

/// A sandbox of `service` in `app` at `address` (`None`: not known yet).
///
/// # Panics
/// When `address` is not `ip`, `ip:port` or `[v6]:port`: a test's typo.
pub fn sandbox(
    app: &str,
    service: &str,
    address: Option<&str>,
    status: crate::model::SandboxStatus,
) -> crate::model::Sandbox {
    use crate::model::{PoolId, Sandbox, SandboxId, VersionId};
    Sandbox {
        id: SandboxId::new(app, service),
        pool: PoolId::new(),
        version: VersionId::new(app),
        service: service.into(),
        runtime: None,
        node: None,
        ports: Default::default(),
        address: address.map(|a| {
            a.parse()
                .unwrap_or_else(|e| panic!("a test's sandbox address: {e}"))
        }),
        status,
        reason: None,
        exit_code: None,
        restarts: 0,
        health: None,
        created: 0,
        updated: 0,
    }
}

/// A memory store that counts its listings, and can write just before one: for tests
/// of what follows the store (that a follower doesn't list, that an event a listing
/// already reflects is skipped).
#[derive(Default)]
pub struct CountingStore {
    inner: crate::store::MemoryStore,
    lists: std::sync::atomic::AtomicUsize,
    before: std::sync::Mutex<Option<(String, Vec<crate::store::Op>)>>,
}

impl CountingStore {
    /// How many listings it answered.
    pub fn lists(&self) -> usize {
        self.lists.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Applies `ops` right before the next listing of `prefix`.
    pub fn write_before_listing(&self, prefix: &str, ops: Vec<crate::store::Op>) {
        *self.before.lock().unwrap_or_else(|e| e.into_inner()) = Some((prefix.to_string(), ops));
    }
}

#[async_trait::async_trait]
impl crate::store::Store for CountingStore {
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<crate::store::Versioned>, crate::store::StoreError> {
        self.inner.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
    ) -> Result<
        (
            Vec<(String, crate::store::Versioned)>,
            crate::store::Revision,
        ),
        crate::store::StoreError,
    > {
        self.lists
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let due = {
            let mut before = self.before.lock().unwrap_or_else(|e| e.into_inner());
            match before.take() {
                Some((p, ops)) if p == prefix => Some(ops),
                other => {
                    *before = other;
                    None
                }
            }
        };
        if let Some(ops) = due {
            self.inner.txn(ops).await?;
        }
        self.inner.list(prefix).await
    }

    async fn txn(
        &self,
        ops: Vec<crate::store::Op>,
    ) -> Result<crate::store::Revision, crate::store::StoreError> {
        self.inner.txn(ops).await
    }

    fn watch(&self, prefix: &str) -> crate::store::Watch {
        self.inner.watch(prefix)
    }

    async fn revision(&self) -> Result<crate::store::Revision, crate::store::StoreError> {
        self.inner.revision().await
    }
}

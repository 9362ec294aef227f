//! Helpers for tests and benchmarks of embedders (feature `test-util`).

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
    let art = artifacts.put(&pack_dir(&dir)?)?;
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

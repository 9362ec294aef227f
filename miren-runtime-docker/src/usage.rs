//! Containers' CPU and memory as `docker stats` shows them, from the Engine's one-shot
//! stats of each running container of this server, read all at once and bounded in
//! time (a container that does not answer is left out of this reading).

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::{ListContainersOptions, StatsOptions};
use futures_util::StreamExt;
use miren_core::model::SandboxId;
use miren_core::runtime::{LABEL_SANDBOX, RuntimeError, Usage};

use crate::engine::failed;
use crate::names;

/// How long a reading may take in all.
const WITHIN: Duration = Duration::from_secs(3);

/// Every running sandbox container of server `owner`, measured.
pub(crate) async fn of_running(docker: &Docker, owner: &str) -> Result<Vec<Usage>, RuntimeError> {
    let options = ListContainersOptions {
        all: false,
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![
                LABEL_SANDBOX.to_string(),
                format!("{}={owner}", names::LABEL_OWNER),
            ],
        )])),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| failed("listing containers", e))?;
    let ids: Vec<SandboxId> = containers
        .iter()
        .filter_map(|c| c.labels.as_ref()?.get(LABEL_SANDBOX)?.parse().ok())
        .collect();
    let reads = ids.into_iter().map(|id| async move {
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stats = docker.stats(id.as_str(), Some(options));
        match tokio::time::timeout(WITHIN, stats.next()).await {
            Ok(Some(Ok(s))) => measured(id, &s),
            _ => None,
        }
    });
    Ok(futures_util::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect())
}

/// CPU seconds and memory in use as `docker stats` counts it (the page cache that can
/// be dropped is not in use); `None` when the Engine gave neither (a container that
/// just stopped).
fn measured(sandbox: SandboxId, s: &ContainerStatsResponse) -> Option<Usage> {
    let cpu_ns = s
        .cpu_stats
        .as_ref()
        .and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.total_usage)?;
    let memory = s.memory_stats.as_ref();
    let usage = memory.and_then(|m| m.usage)?;
    let cache = memory
        .and_then(|m| m.stats.as_ref())
        .and_then(|st| {
            st.get("inactive_file")
                .or_else(|| st.get("total_inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    Some(Usage {
        sandbox,
        cpu_seconds: cpu_ns as f64 / 1e9,
        memory_bytes: usage.saturating_sub(cache),
    })
}

//! `GET /v1/nodes`: the nodes of the cluster and what each runs (a server on its own
//! is one node). A node's record says what it is; its heartbeat key, on its own lease,
//! whether it is still alive.

use std::collections::BTreeSet;

use miren_core::model::{Node, NodeRole, SandboxStatus};
use miren_core::store::keys;

use super::extract::Json;
use super::{ApiError, R, S};
use crate::api::NodeStatus;

pub async fn list(state: S) -> R<Json<Vec<NodeStatus>>> {
    let snapshot = state.controller.snapshot(None).await?;
    let live: Vec<_> = snapshot
        .sandboxes
        .iter()
        .filter(|s| {
            matches!(
                s.status,
                SandboxStatus::Pending | SandboxStatus::Running | SandboxStatus::Stopping
            )
        })
        .collect();
    let running = live.len();
    // In a cluster, each sandbox's node is where it was placed.
    let on = |node: &str| {
        live.iter()
            .filter(|s| s.node.as_deref() == Some(node))
            .count()
    };
    let Some(store) = &state.cluster_store else {
        return Ok(Json(vec![NodeStatus {
            name: state.node.clone(),
            address: state.http.clone(),
            status: "ready".into(),
            sandboxes: running,
        }]));
    };
    let failed = |e| ApiError::internal(format!("reading the cluster's nodes: {e}"));
    let (records, _) = store.list(keys::NODES).await.map_err(failed)?;
    let (alive, _) = store.list(keys::ALIVE).await.map_err(failed)?;
    let alive: BTreeSet<&str> = alive
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(keys::ALIVE))
        .collect();
    let mut nodes = Vec::new();
    for (key, v) in &records {
        let node: Node =
            keys::decode(key, &v.value).map_err(|e| ApiError::internal(e.to_string()))?;
        let live = alive.contains(node.name.as_str());
        let status = match (live, node.role) {
            (false, _) => "lost",
            (true, NodeRole::Leading) => "leading",
            (true, NodeRole::StandingBy) => "standing by",
        };
        nodes.push(NodeStatus {
            sandboxes: on(&node.name),
            name: node.name,
            address: node.http,
            status: status.into(),
        });
    }
    Ok(Json(nodes))
}

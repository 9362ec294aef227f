//! `GET /v1/nodes`: the nodes of the cluster and what each runs (a server on its own
//! is one node). A node's record says what it is; its heartbeat key, on its own lease,
//! whether it is still alive. `POST /v1/nodes/{name}/drain` moves a node's sandboxes
//! off it (and places nothing new there) until `DELETE` of the same path.

use std::collections::BTreeSet;
use std::time::Duration;

use miren_core::model::{Node, NodeRole, SandboxStatus};
use miren_core::placement::records::{DRAINS, drain_key};
use miren_core::store::{Op, Store, keys};

use super::extract::{Json, Path};
use super::{ApiError, R, S, lookup};
use crate::api::{DrainReport, NodeStatus};

/// How long one moved sandbox's replacement may take to be ready.
const MOVE_WITHIN: Duration = Duration::from_secs(60);

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
    let (drained, _) = store.list(DRAINS).await.map_err(failed)?;
    let drained: BTreeSet<&str> = drained
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(DRAINS))
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
        let status = if drained.contains(node.name.as_str()) {
            format!("{status}, drained")
        } else {
            status.to_string()
        };
        nodes.push(NodeStatus {
            sandboxes: on(&node.name),
            name: node.name,
            address: node.http,
            status,
        });
    }
    Ok(Json(nodes))
}

/// The cluster's store, and `name` as one of its nodes (404 with "did you mean").
async fn cluster_node(state: &S, name: &str) -> R<std::sync::Arc<dyn Store>> {
    let Some(store) = state.cluster_store.clone() else {
        return Err(ApiError::invalid(
            "this server is not in a cluster: there is no other node to move its sandboxes to",
        ));
    };
    let (records, _) = store
        .list(keys::NODES)
        .await
        .map_err(|e| ApiError::internal(format!("reading the cluster's nodes: {e}")))?;
    let names: Vec<&str> = records
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(keys::NODES))
        .collect();
    if !names.contains(&name) {
        return Err(ApiError::not_found(lookup::unknown(
            "node", name, &names, "nodes",
        )));
    }
    Ok(store)
}

/// Drains `name`: nothing new is placed there, and each sandbox running there is
/// stopped once and replaced on another node, one at a time, each waiting until its
/// pool is as ready as before. Requests never fail meanwhile: a stopping instance
/// leaves the proxy's routing before it is signalled and finishes what it serves, and
/// a pool left without a ready instance holds its requests until the replacement is
/// ready. A sandbox with a disk stays: its disk is on that node.
pub async fn drain(state: S, Path(name): Path<String>) -> R<Json<DrainReport>> {
    let store = cluster_node(&state, &name).await?;
    let since = miren_core::runtime::now_millis().to_string().into_bytes();
    store
        .txn(vec![Op::put(drain_key(&name), since)])
        .await
        .map_err(|e| ApiError::internal(format!("marking node `{name}` drained: {e}")))?;
    let snapshot = state.controller.snapshot(None).await?;
    let mut report = DrainReport {
        node: name.clone(),
        moved: Vec::new(),
        kept: Vec::new(),
    };
    let here: Vec<_> = snapshot
        .sandboxes
        .iter()
        .filter(|s| s.node.as_deref() == Some(name.as_str()) && s.is_live())
        .cloned()
        .collect();
    for s in here {
        let Some(pool) = snapshot.pools.iter().find(|p| p.id == s.pool) else {
            continue;
        };
        if let Some(d) = pool.spec.disks.first() {
            report
                .kept
                .push(format!("{} (its disk `{}` is on this node)", s.id, d.name));
            continue;
        }
        let ready_before = pool.ready.min(pool.desired);
        match state.controller.stop_sandbox(&s.id).await {
            Ok(()) => {}
            // Gone meanwhile: nothing to move.
            Err(miren_core::controller::ControllerError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        let (app, pid, stopped) = (pool.app.clone(), s.pool.clone(), s.id.clone());
        let back = state
            .controller
            .wait_for(Some(&app), MOVE_WITHIN, move |snap| {
                // As many serving as before, the stopped one not counted.
                let ready = snap
                    .sandboxes
                    .iter()
                    .filter(|x| {
                        x.pool == pid && x.status == SandboxStatus::Running && x.id != stopped
                    })
                    .count() as u32;
                ready >= ready_before
            })
            .await?;
        if back.is_none() {
            return Err(ApiError::internal(format!(
                "{} was stopped, but its pool was not as ready as before within {} s: `miren app status -a {app}` says why",
                s.id,
                MOVE_WITHIN.as_secs()
            )));
        }
        report.moved.push(s.id.to_string());
    }
    Ok(Json(report))
}

/// Undrains `name`: sandboxes may be placed there again.
pub async fn undrain(state: S, Path(name): Path<String>) -> R<Json<serde_json::Value>> {
    let store = cluster_node(&state, &name).await?;
    store
        .txn(vec![Op::delete(drain_key(&name))])
        .await
        .map_err(|e| ApiError::internal(format!("undraining node `{name}`: {e}")))?;
    Ok(super::done())
}

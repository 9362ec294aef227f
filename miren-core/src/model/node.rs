//! A node of a cluster (SPEC §15): what it says of itself in the store.

use serde::{Deserialize, Serialize};

/// What a node does in its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Runs the controller and the sandboxes.
    Leading,
    /// Serves the proxy and DNS, ready to take over.
    StandingBy,
}

/// A node's record, written by the node itself (`nodes/<name>`); whether it is alive
/// is a key on its heartbeat lease beside it (`alive/<name>`), gone when it stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Its name (`--node`).
    pub name: String,
    /// Where its proxy listens.
    pub http: String,
    /// Where its service DNS listens, if it does.
    pub dns: Option<String>,
    /// Its role when it last said.
    pub role: NodeRole,
    /// When it took that role (ms since the epoch).
    pub since: u64,
    /// Where it serves the log lines of the sandboxes it runs (to the leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// The token those lines are served with, sealed with the cluster's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_token: Option<super::Sealed>,
}

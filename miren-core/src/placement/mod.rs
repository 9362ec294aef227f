//! Sandboxes on every node of a cluster (SPEC §15), through the store alone: the
//! leader's controller runs on a [`PlacementRuntime`], whose "start" is a placement
//! record for the node chosen for the sandbox; every node runs an [`Agent`] that starts
//! what is placed on it with its own runtime and reports back. The controller is the
//! same as on one machine: it sees a runtime whose sandboxes become ready and exit.
//!
//! # Layout
//! - `records`: the placement, report and prepare records, sealed where they hold
//!   secrets.
//! - `choose`: which node (plain data in, a node out).
//! - `batch`: group commit of the per-sandbox records.
//! - `runtime`: the leader's side, [`PlacementRuntime`].
//! - `agent`: every node's side, [`Agent`].

mod agent;
mod batch;
mod choose;
pub mod records;
mod runtime;

pub use agent::{Agent, AgentParts};
pub use choose::{Choice, Cluster, choose};
pub use runtime::PlacementRuntime;

//! What the leader and the node agents say to each other, as records in the store:
//! a placement per sandbox (`placements/<node>/<sandbox>`, the leader's), a report per
//! placed sandbox (`reports/<sandbox>`, its node's), the version a node prepares on
//! demand (`prepares/<version>`, the leader's) and the node holding each disk
//! (`diskhomes/<app>/<disk>`). What may hold secrets — a sandbox's spec, a version's
//! build secrets — is sealed with the cluster's key: etcd never holds them in clear.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Address, SandboxId, Sealed, UnixMillis};
use crate::runtime::{PrepareApp, SandboxSpec};
use crate::secret::{SecretError, SecretKey};
use crate::store::keys;

/// Prefix of the placements, by node.
pub const PLACEMENTS: &str = "placements/";
/// Prefix of the nodes' reports.
pub const REPORTS: &str = "reports/";
/// Prefix of the versions nodes prepare.
pub const PREPARES: &str = "prepares/";
/// Prefix of the nodes that hold disks.
pub const DISK_HOMES: &str = "diskhomes/";
/// Prefix of the drained nodes (nothing new is placed on them).
pub const DRAINS: &str = "drains/";
/// Prefix of the apps deleted, for every node to forget (until deployed again).
pub const REMOVALS: &str = "removals/";

/// Key of `app`'s removal.
pub fn removal_key(app: &str) -> String {
    format!("{REMOVALS}{app}")
}

/// An app deleted: every node forgets it (its network, its code, and with
/// `purge_disks` its disks) once none of its sandboxes runs there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// Its disks go too.
    pub purge_disks: bool,
    /// When.
    pub at: UnixMillis,
}

/// Key of `node`'s drain record.
pub fn drain_key(node: &str) -> String {
    format!("{DRAINS}{node}")
}

/// Key of `sandbox` placed on `node`.
pub fn placement_key(node: &str, sandbox: &SandboxId) -> String {
    format!("{PLACEMENTS}{node}/{sandbox}")
}

/// Prefix of the placements on `node`.
pub fn placements_of(node: &str) -> String {
    format!("{PLACEMENTS}{node}/")
}

/// Key of `sandbox`'s report.
pub fn report_key(sandbox: &SandboxId) -> String {
    format!("{REPORTS}{sandbox}")
}

/// Key of `version`'s prepare record.
pub fn prepare_key(version: &str) -> String {
    format!("{PREPARES}{version}")
}

/// Key of the node holding `app`'s disk `disk`.
pub fn disk_home_key(app: &str, disk: &str) -> String {
    format!("{DISK_HOMES}{app}/{disk}")
}

/// A sandbox the leader wants run on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The node.
    pub node: String,
    /// Its [`SandboxSpec`], sealed.
    pub spec: Sealed,
    /// Its pool, in clear (placement counts by it).
    pub pool: Option<String>,
    /// Asked to stop, with this grace period (ms) between the polite signal and the
    /// kill.
    pub stop: Option<u64>,
    /// When it was placed.
    pub placed: UnixMillis,
}

/// What a node says of a sandbox placed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The node.
    pub node: String,
    /// Where the sandbox is.
    pub state: ReportState,
    /// When the node said so.
    pub at: UnixMillis,
}

/// A placed sandbox's state, as its node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ReportState {
    /// Launched by the node's runtime.
    Started {
        /// Where it listens, when known at launch.
        address: Option<Address>,
        /// Its extra named ports.
        #[serde(default)]
        ports: BTreeMap<String, u16>,
        /// Which of the node's runtimes runs it.
        runtime: Option<String>,
    },
    /// It accepts connections (or runs, without a port). It says what `Started`
    /// said too: written in the same group, it may be the only one seen.
    Ready {
        /// Where it listens.
        address: Option<Address>,
        /// Its extra named ports.
        #[serde(default)]
        ports: BTreeMap<String, u16>,
        /// Which of the node's runtimes runs it.
        #[serde(default)]
        runtime: Option<String>,
    },
    /// It could not be started there.
    Failed {
        /// Why, for people.
        reason: String,
    },
    /// It is gone.
    Exited {
        /// Its exit code.
        code: Option<i32>,
        /// What happened.
        reason: String,
        /// Its last output lines.
        last_lines: Vec<String>,
    },
}

impl ReportState {
    /// Whether the sandbox is gone (or never ran).
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            ReportState::Failed { .. } | ReportState::Exited { .. }
        )
    }
}

/// Seals `value` as JSON with the cluster's key.
pub fn seal<T: Serialize>(key: &SecretKey, value: &T) -> Result<Sealed, SecretError> {
    key.seal(&keys::encode(value))
}

/// Opens what [`seal`] sealed; `what` names it in errors.
pub fn open<T: for<'de> Deserialize<'de>>(
    key: &SecretKey,
    what: &str,
    sealed: &Sealed,
) -> Result<T, SecretError> {
    let bytes = key.open(what, sealed)?;
    serde_json::from_slice(&bytes).map_err(|e| SecretError::Sealed(what.into(), e.to_string()))
}

/// The spec of a placement, opened.
pub fn spec_of(key: &SecretKey, p: &Placement) -> Result<SandboxSpec, SecretError> {
    open(key, "a placement's spec", &p.spec)
}

/// A version as nodes prepare it: its [`PrepareApp`] sealed (its build secrets are in
/// it), the archive found by digest in each node's own artifact store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepare {
    /// The sealed [`PrepareApp`].
    pub app: Sealed,
}

/// The prepare record of `app`.
pub fn prepare_of(key: &SecretKey, app: &PrepareApp) -> Result<Prepare, SecretError> {
    Ok(Prepare {
        app: seal(key, app)?,
    })
}

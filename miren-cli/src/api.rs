//! The control API's wire types, shared by the server and the client (SPEC §10).
//!
//! Routes (all JSON; streams are NDJSON, one object per line):
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | GET | `/v1/health` | → `{"ok": true}` |
//! | PUT | `/v1/artifacts` | tar bytes → [`Uploaded`] |
//! | POST | `/v1/deploys` | [`DeployBody`] → stream of [`DeployLine`] |
//! | GET | `/v1/apps` | → `[`[`AppSummary`]`]` |
//! | GET | `/v1/apps/{app}` | → [`AppStatus`] (traffic of the last minute, instances' usage) |
//! | GET | `/v1/status` | → `[`[`AppStatus`]`]`, every app (`miren top`, the dashboard) |
//! | GET | `/v1/nodes` | → `[`[`NodeStatus`]`]` |
//! | POST | `/v1/nodes/{name}/drain` | → [`DrainReport`]; `DELETE`: undrained → `{}` |
//! | POST | `/v1/dashboard/logins` | → [`DashboardLogin`] (404 `no_dashboard` without one) |
//! | GET | `/metrics` | → Prometheus' text format (SPEC §16) |
//! | GET | `/v1/apps/{app}/versions` | → `[`[`VersionRow`]`]` |
//! | POST | `/v1/apps/{app}/rollback` | [`RollbackBody`] → stream of [`DeployLine`] |
//! | DELETE | `/v1/apps/{app}?purge_disks=` | → `{}` |
//! | GET | `/v1/apps/{app}/env` | → `[`[`ConfigVarRow`]`]` (secrets as `(secret)`) |
//! | POST | `/v1/apps/{app}/env` | [`EnvChange`] → stream of [`DeployLine`] |
//! | POST | `/v1/apps/{app}/restart` | [`RestartBody`] → stream of [`DeployLine`] |
//! | GET | `/v1/secrets` | → `[`[`SecretRow`]`]` (never a value) |
//! | PUT | `/v1/secrets/{path}` | [`SecretValue`] → `SecretSet` |
//! | DELETE | `/v1/secrets/{path}[@version]` | → `{"destroyed"}` |
//! | POST | `/v1/secret-states` | [`SecretState`] → `{"secret", "enabled"}` |
//! | GET | `/v1/addons` | → `[`[`AddonCatalogRow`]`]` |
//! | GET | `/v1/apps/{app}/addons` | → `[`[`AddonRow`]`]` (no credentials) |
//! | POST | `/v1/apps/{app}/addons` | [`AddonCreate`] → stream of [`DeployLine`] |
//! | DELETE | `/v1/apps/{app}/addons/{name}` | → stream of [`DeployLine`] |
//! | GET | `/v1/pools?app=` | → `[`SandboxPool`]` |
//! | PUT | `/v1/pools/{id}/desired` | [`DesiredBody`] → `SandboxPool` |
//! | GET | `/v1/sandboxes?app=&status=` | → `[`Sandbox`]` |
//! | POST | `/v1/sandboxes/{id}/stop` | → `{"stopped": id}` |
//! | GET | `/v1/logs?app=&service=&sandbox=&last=&follow=` | → stream of `LogRecord` |
//! | GET | `/v1/apps/{app}/tasks` | → `[`[`TaskRow`]`]` |
//! | POST | `/v1/apps/{app}/tasks/{task}/runs?follow=` | → `TaskRun`, or with `follow` a stream of [`RunLine`] |
//! | GET | `/v1/apps/{app}/runs?task=` | → `[`TaskRun`]`, newest first |
//! | GET | `/v1/apps/{app}/run?spec=` | `Upgrade: miren-attach` → 101, then [`crate::frames`] |
//! | GET | `/v1/sandboxes/{id}/exec?spec=` | `Upgrade: miren-attach` → 101, then [`crate::frames`] |
//! | GET | `/v1/routes` | → `[`Route`]` |
//! | PUT | `/v1/routes/{host}` | [`RouteBody`] → `Route` |
//! | DELETE | `/v1/routes/{host}` | → `{}` |
//!
//! Ids in paths (`{id}`) and version names may be any unique prefix or suffix of an
//! id; a version also by its number (`v3`). An unknown name is 404 with "did you
//! mean", an ambiguous one 409 (`ambiguous`) listing what it matches.
//!
//! Errors: `{"error": {"code": "not_found", "message": "…"}}` with the status code.

use serde::{Deserialize, Serialize};

use miren_core::model::{SandboxPool, Version};

/// Answer to an upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Uploaded {
    /// The archive's digest.
    pub digest: miren_core::model::Digest,
    /// Its size.
    pub bytes: u64,
}

/// A deploy request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployBody {
    /// The app.toml text; validated again by the server.
    pub app_toml: String,
    /// The uploaded code.
    pub artifact: String,
    /// The git commit of the app dir, when known.
    #[serde(default)]
    pub git_commit: Option<String>,
    /// Answer once the version exists instead of when it is ready.
    #[serde(default)]
    pub no_wait: bool,
    /// Deploy under this app name instead of the file's.
    #[serde(default)]
    pub app: Option<String>,
}

/// A rollback request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RollbackBody {
    /// The version; default: the one active before the current one.
    #[serde(default)]
    pub version: Option<String>,
}

/// One line of a deploy's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum DeployLine {
    /// The version was created.
    Created {
        /// Its id.
        version: String,
    },
    /// Something progressed (a sandbox started, a pool got ready).
    Progress {
        /// For people.
        message: String,
    },
    /// The end: active or failed.
    Done {
        /// The version as it ended.
        version: Box<Version>,
    },
}

/// `app list`'s row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppSummary {
    /// The app.
    pub name: String,
    /// The active version.
    pub version: Option<String>,
    /// Its number among the app's versions (`v3`).
    #[serde(default)]
    pub number: Option<u32>,
    /// When the active version was deployed (Unix ms).
    pub deployed: Option<u64>,
    /// Its git commit.
    pub commit: Option<String>,
    /// `running`, `deploying`, `starting (1/2 ready)`, `crashing (retry in 4s)`, …
    pub status: String,
}

/// `app status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppStatus {
    /// The summary line.
    pub app: AppSummary,
    /// Its pools, with why each has its count.
    pub pools: Vec<SandboxPool>,
    /// Which runtime runs each pool's sandboxes (`process`, `docker`), by pool id,
    /// for the pools that have run one.
    #[serde(default)]
    pub runtimes: std::collections::BTreeMap<String, String>,
    /// Its HTTP traffic over the last minute, per service the proxy routes to.
    #[serde(default)]
    pub traffic: Vec<ServiceTraffic>,
    /// Its live instances: what each uses and serves.
    #[serde(default)]
    pub instances: Vec<InstanceUsage>,
    /// Per service, how its latest instance that died on its own ended.
    #[serde(default)]
    pub last_exits: std::collections::BTreeMap<String, String>,
    /// The latest changes of its pools' sizes and why, newest first.
    #[serde(default)]
    pub decisions: Vec<DecisionRow>,
}

/// A pool's size changed: to what, and why (the autoscaler's reason, or who set it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionRow {
    /// When (Unix ms).
    pub at: u64,
    /// The pool.
    pub pool: String,
    /// Its service.
    pub service: String,
    /// Instances wanted.
    pub desired: u32,
    /// Why.
    pub reason: String,
}

/// `miren node drain`: what moved off the node, and what stayed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainReport {
    /// The node.
    pub node: String,
    /// Sandboxes stopped there and replaced on other nodes.
    pub moved: Vec<String>,
    /// Sandboxes that stay, and why.
    pub kept: Vec<String>,
}

/// `miren dashboard`: where to log in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DashboardLogin {
    /// The link carrying a one-time code.
    pub url: String,
    /// Seconds the code stays good.
    pub expires_in_secs: u64,
}

/// A service's HTTP traffic over the last minute (less when the server is younger).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceTraffic {
    /// The service.
    pub service: String,
    /// Seconds the figures cover (60 once the server has run a minute).
    pub window_secs: f64,
    /// Requests answered in the window.
    pub requests: u64,
    /// Requests per second over the window.
    pub req_per_sec: f64,
    /// The 95th percentile of latency, in milliseconds (none without requests).
    pub p95_ms: Option<f64>,
    /// Answers with a 5xx status in the window.
    pub errors_5xx: u64,
    /// `errors_5xx / requests` (0 without requests).
    pub error_rate: f64,
    /// Requests per second in each second of the window, oldest first.
    #[serde(default)]
    pub series: Vec<f64>,
    /// p95 in each second of the window (none for a second without requests).
    #[serde(default)]
    pub p95_series: Vec<Option<f64>>,
}

/// One live instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InstanceUsage {
    /// The sandbox.
    pub sandbox: String,
    /// Its service.
    #[serde(default)]
    pub service: String,
    /// `pending`, `running` or `stopping`.
    #[serde(default)]
    pub status: String,
    /// How many times its slot was restarted after a crash.
    #[serde(default)]
    pub restarts: u32,
    /// The node of the cluster it runs on (none outside a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// CPU it used lately, in percent of one core (none where its runtime cannot
    /// tell).
    pub cpu_percent: Option<f64>,
    /// Resident memory (none where its runtime cannot tell).
    pub memory_bytes: Option<u64>,
    /// Requests per second it answered over the last minute.
    pub req_per_sec: f64,
}

/// `app history`'s row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRow {
    /// Its number among the app's versions (`v3`); 0 for versions from before numbers.
    #[serde(default)]
    pub number: u32,
    /// The version.
    pub id: String,
    /// Its state.
    pub state: String,
    /// When it was created (Unix ms).
    pub created: u64,
    /// Its git commit.
    pub commit: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
}

/// A config var as the API shows it: a secret's value is `(secret)`.
pub type ConfigVarRow = miren_core::model::ConfigVar;

/// `miren env set|unset`: what changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnvChange {
    /// Vars to set.
    #[serde(default)]
    pub set: Vec<miren_core::model::ConfigVar>,
    /// Keys to remove (of `service`, or app-wide).
    #[serde(default)]
    pub unset: Vec<String>,
    /// Whose keys `unset` names.
    #[serde(default)]
    pub service: Option<String>,
}

/// A secret of the server's store, as listed: no value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretRow {
    /// Its path.
    pub path: String,
    /// Where it is kept (`cluster`: this server).
    pub backend: String,
    /// The version references without `@version` get.
    pub current: Option<String>,
    /// Its versions, newest first.
    pub versions: Vec<SecretVersionRow>,
}

/// One version of a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretVersionRow {
    /// Its id (`path@id` names it).
    pub id: String,
    /// When it was set (Unix ms).
    pub created: u64,
    /// Disabled: it resolves for nothing.
    pub disabled: bool,
}

/// `miren secret set`: the value.
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretValue {
    /// The value.
    pub value: String,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(…)")
    }
}

/// `miren secret disable|enable`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretState {
    /// `path@version`.
    pub secret: String,
    /// Enable (or disable).
    pub enabled: bool,
}

/// An addon of the catalog (`miren addon list-available`, `addon variants`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddonCatalogRow {
    /// Its name (`miren-postgresql`).
    pub name: String,
    /// What it is.
    pub description: String,
    /// The image its server runs, without a tag; none for `miren-sqlite`.
    pub image: Option<String>,
    /// Supported versions; the last is the default.
    pub versions: Vec<String>,
    /// The default version.
    pub default_version: Option<String>,
    /// Variants and what each means.
    pub variants: Vec<(String, String)>,
    /// The default variant.
    pub default_variant: String,
}

/// An app's addon (`miren addon list`): what runs for it, never its credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddonRow {
    /// The addon.
    pub name: String,
    /// Its variant.
    pub variant: String,
    /// The image its server runs.
    pub image: Option<String>,
    /// The services it attaches to; empty: every service.
    pub services: Vec<String>,
    /// Declared in app.toml (else made by `addon create`).
    pub from_file: bool,
    /// `pending` (no version runs it yet), `provisioning` (its server is starting),
    /// `active`.
    pub status: String,
    /// Where its services reach its server.
    pub host: Option<String>,
    /// Its server's disk.
    pub disk: Option<String>,
    /// The variables its services get.
    pub variables: Vec<String>,
    /// When it was made (Unix ms).
    pub created: u64,
}

/// `miren addon create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddonCreate {
    /// The addon.
    pub name: String,
    /// Its variant (default: the addon's).
    #[serde(default)]
    pub variant: Option<String>,
    /// Its version: a tag, or a whole image reference (default: the addon's).
    #[serde(default)]
    pub version: Option<String>,
    /// The services it attaches to (default: every service).
    #[serde(default)]
    pub services: Vec<String>,
}

/// `miren app restart`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestartBody {
    /// One service; default: every service.
    #[serde(default)]
    pub service: Option<String>,
}

/// `miren task list`'s row: a task of the active version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRow {
    /// Its name.
    pub name: String,
    /// `deploy`, `schedule` or `manual`.
    pub trigger: String,
    /// `every 15m` or the calendar event, for scheduled ones.
    pub schedule: Option<String>,
    /// Its command.
    pub command: String,
    /// Whose code and env it runs with (`None`: the app's built code).
    pub service: Option<String>,
    /// When it runs next (Unix ms), for scheduled ones.
    pub next: Option<u64>,
    /// Runs going now.
    pub running: u32,
    /// The newest run.
    pub last: Option<miren_core::model::TaskRun>,
}

/// A line of a followed run: it started, it wrote, it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum RunLine {
    /// It started.
    Started {
        /// The run.
        run: miren_core::model::TaskRun,
    },
    /// It wrote a line.
    Output {
        /// The line.
        record: miren_core::runtime::LogRecord,
    },
    /// It ended.
    Done {
        /// The run as it ended.
        run: miren_core::model::TaskRun,
    },
}

/// `sandbox-pool set-desired`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DesiredBody {
    /// The new count.
    pub desired: u32,
    /// Past an auto pool's `max_instances`.
    #[serde(default)]
    pub force: bool,
}

/// `route add` / `route set-default`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteBody {
    /// The app it reaches.
    pub app: String,
    /// Also the default route.
    #[serde(default)]
    pub default: bool,
}

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `not_found`, `invalid`, `unauthorized`, `conflict`, `internal`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// A node, as `miren node list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its name (`--node`; the host name for a server on its own).
    pub name: String,
    /// Where its proxy listens.
    pub address: String,
    /// `leading`, `standing by`, `lost` (no heartbeat), or `ready` (a server on its own).
    pub status: String,
    /// Sandboxes running on it.
    pub sandboxes: usize,
}

//! The objects the platform keeps (SPEC §3): plain data, serializable, no handles.
//!
//! App → one active [`Version`] → one [`SandboxPool`] per service → [`Sandbox`]es.
//! A pool is keyed by its [`PoolSpec`]'s hash, so a new version whose service spec is
//! unchanged reuses the pool (deploying a web change does not restart postgres).

mod address;
mod digest;
mod id;
mod node;
mod secret;
mod spec;
mod task;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use address::{Address, BadAddress};
pub use digest::{BadDigest, Digest, DigestHasher};
pub use id::{BadId, PoolId, SUFFIX_LEN, SandboxId, VersionId, encode as encode_id, new_suffix};
pub use node::{Node, NodeRole};
pub use secret::{Sealed, Secret, SecretRef, SecretVersion, check_path as check_secret_path};
pub use spec::{CodeSource, PoolSpec, SpecHash};
pub use task::{RunStatus, RunTrigger, TaskRun};

use crate::config::addons::AddonInstance;
use crate::config::{Concurrency, ResolvedApp};

/// Milliseconds since the Unix epoch: what every timestamp in the model is.
pub type UnixMillis = u64;

/// An app: its name and which version serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// The app's name (a DNS label); its id.
    pub name: String,
    /// The version that takes traffic; `None` before the first successful deploy.
    pub active_version: Option<VersionId>,
    /// When it was first deployed.
    pub created: UnixMillis,
    /// Config vars set with `miren env set` (SPEC §14), applied over app.toml's env
    /// by every deploy from now on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_vars: Vec<ConfigVar>,
    /// Its addons (from app.toml or `miren addon create`), with the credentials made
    /// for each; every new version runs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addons: Vec<AddonInstance>,
    /// Disks of destroyed addons, deleted once no pool uses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_disks: Vec<String>,
}

impl App {
    /// A new app, first deployed at `created`, with nothing of its own yet.
    pub fn new(name: &str, created: UnixMillis) -> Self {
        Self {
            name: name.to_string(),
            active_version: None,
            created,
            config_vars: Vec::new(),
            addons: Vec::new(),
            retired_disks: Vec::new(),
        }
    }
}

/// A config var: `miren env set [--service S] [--secret] KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVar {
    /// The variable.
    pub key: String,
    /// Its value. A secret's never leaves the server: API answers carry
    /// [`SECRET_SHOWN`] in its place.
    pub value: String,
    /// Whether it is a secret.
    #[serde(default)]
    pub secret: bool,
    /// Only this service's; `None`: every service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// What a secret's value is shown as, everywhere outside the server.
pub const SECRET_SHOWN: &str = "(secret)";

/// Where a version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Its pools are starting; the previous version still serves.
    Deploying,
    /// It serves.
    Active,
    /// A later version replaced it; it can be rolled back to.
    Superseded,
    /// It never became ready (see `failure`).
    Failed,
}

/// Where the code of a version came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The git commit of the app directory, when it was a clean or dirty checkout.
    pub git_commit: Option<String>,
}

/// One deploy: immutable config and code, plus its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// `<app>-v<base58>`.
    pub id: VersionId,
    /// The app it belongs to.
    pub app: String,
    /// Its place among the app's deploys: 1, 2, 3, … (shown as `v3`). 0 for versions
    /// stored before numbers existed.
    #[serde(default)]
    pub number: u32,
    /// What it runs: the validated config it was deployed with, with the app's
    /// addons in it (see [`crate::config::addons`]).
    pub config: ResolvedApp,
    /// The config as app.toml resolved it, when addons made `config` differ: a
    /// rollout of the same code (`env set`, `addon create`) expands this again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<ResolvedApp>,
    /// Content digest of the uploaded app directory.
    pub artifact_digest: Digest,
    /// When it was created.
    pub created: UnixMillis,
    /// Where the code came from.
    pub source: SourceInfo,
    /// Where it is in its life.
    pub state: VersionState,
    /// Why it failed, for `app history` and `deploy`'s exit message.
    pub failure: Option<String>,
    /// The config vars it runs with (the app's when it was made).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_vars: Vec<ConfigVar>,
    /// Services restarted by `miren app restart`, and when: a new time is a new pool.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restarted: BTreeMap<String, UnixMillis>,
    /// The version of each secret (by path) its references without `@version` were
    /// pinned to when it was made: a rollback runs the values it ran with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_pins: BTreeMap<String, String>,
}

impl Version {
    /// The config as app.toml resolved it (without the app's addons).
    pub fn declared(&self) -> &ResolvedApp {
        self.declared.as_ref().unwrap_or(&self.config)
    }

    /// The spec of its pool of `service`: app.toml's, with its config vars over the
    /// env (the app's, then the service's own) and its restart time.
    pub fn pool_spec(&self, service: &str) -> Option<PoolSpec> {
        let mut spec = PoolSpec::of(&self.config, service, &self.artifact_digest)?;
        let app_wide = self.config_vars.iter().filter(|v| v.service.is_none());
        let own = self
            .config_vars
            .iter()
            .filter(|v| v.service.as_deref() == Some(service));
        // References without `@version` run the version the deploy pinned.
        for r in spec.secret_refs.values_mut() {
            if !r.contains('@')
                && let Some(pin) = self.secret_pins.get(r.as_str())
            {
                *r = format!("{r}@{pin}");
            }
        }
        for v in app_wide.chain(own) {
            // `miren env set` wins over a reference too.
            spec.secret_refs.remove(&v.key);
            spec.env.insert(v.key.clone(), v.value.clone());
            if v.secret || self.config.sensitive_env.contains(&v.key) {
                spec.secret_env.insert(v.key.clone());
            } else {
                spec.secret_env.remove(&v.key);
            }
        }
        spec.restarted = self.restarted.get(service).copied();
        Some(spec)
    }

    /// What a run of `task` runs: [`Self::beside`] its service, with the task's command
    /// and env on top.
    pub fn task_spec(&self, task: &str) -> Option<PoolSpec> {
        let t = self.config.tasks.get(task)?;
        let mut spec = self.beside(t.service.as_deref(), task)?;
        spec.command = Some(t.command.clone());
        spec.args.clear();
        for (k, v) in &t.env {
            spec.env.insert(k.clone(), v.clone());
            if self.config.sensitive_env.contains(k) {
                spec.secret_env.insert(k.clone());
            } else {
                spec.secret_env.remove(k);
            }
        }
        Some(spec)
    }

    /// What `miren app run` runs: [`Self::beside`] `service` (default `web`, or the
    /// app's built code when it has none).
    pub fn one_off_spec(&self, service: Option<&str>) -> Option<PoolSpec> {
        let service = service.or_else(|| {
            self.config
                .services
                .contains_key(crate::config::defaults::WEB)
                .then_some(crate::config::defaults::WEB)
        });
        self.beside(service, "run")
    }

    /// What runs beside a service without being one of its instances (a task run, a
    /// one-off command): the service's code, image and env with the config vars, or
    /// without a service the app's built code and app-wide env (`name` then names
    /// it). No port, disks or health check: it serves nothing, and a disk stays with
    /// the service that mounts it.
    fn beside(&self, service: Option<&str>, name: &str) -> Option<PoolSpec> {
        let mut spec = match service {
            Some(service) => self.pool_spec(service)?,
            None => {
                let mut spec = PoolSpec {
                    service: name.to_string(),
                    source: CodeSource::Artifact(self.artifact_digest.clone()),
                    command: None,
                    args: Vec::new(),
                    env: self
                        .config
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    port: None,
                    port_name: None,
                    port_type: None,
                    node_port: None,
                    extra_ports: Vec::new(),
                    disks: Vec::new(),
                    onbuild: self.config.onbuild.clone(),
                    health: None,
                    port_timeout: None,
                    shutdown_timeout: None,
                    secret_env: Default::default(),
                    secret_refs: Default::default(),
                    restarted: None,
                };
                for v in self.config_vars.iter().filter(|v| v.service.is_none()) {
                    spec.env.insert(v.key.clone(), v.value.clone());
                    if v.secret {
                        spec.secret_env.insert(v.key.clone());
                    }
                }
                spec
            }
        };
        spec.port = None;
        spec.port_name = None;
        spec.port_type = None;
        spec.node_port = None;
        spec.extra_ports.clear();
        spec.disks.clear();
        spec.health = None;
        spec.port_timeout = None;
        spec.restarted = None;
        Some(spec)
    }

    /// Itself as it may leave the server: secret values replaced (config vars set
    /// with `--secret`, and `sensitive` env of the file).
    pub fn redacted(mut self) -> Self {
        for v in self.config_vars.iter_mut().filter(|v| v.secret) {
            v.value = SECRET_SHOWN.to_string();
        }
        self.config = self.config.redacted(SECRET_SHOWN);
        self.declared = self.declared.map(|d| d.redacted(SECRET_SHOWN));
        self
    }

    /// Env keys `app.toml` requires that have no value in this version (neither in
    /// the file nor from `miren env set`): (service, key, description).
    pub fn missing_env(&self) -> Vec<(String, String, Option<String>)> {
        let mut missing = Vec::new();
        for (name, s) in &self.config.services {
            let Some(spec) = self.pool_spec(name) else {
                continue;
            };
            for (key, description) in &s.required_env {
                if spec.env.get(key).is_none_or(String::is_empty) {
                    missing.push((name.clone(), key.clone(), description.clone()));
                }
            }
        }
        missing
    }
}

/// The sandboxes of one service spec, shared by every version with that spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPool {
    /// `pool-<base58>`.
    pub id: PoolId,
    /// The app.
    pub app: String,
    /// The service it runs.
    pub service: String,
    /// What its sandboxes run.
    pub spec: PoolSpec,
    /// `spec.hash()`, kept to find a reusable pool without rehashing.
    pub spec_hash: SpecHash,
    /// Versions that use it; a pool with none drains and goes away.
    pub versions: Vec<VersionId>,
    /// How it scales: the newest referencing version's setting.
    pub scaling: Concurrency,
    /// How many sandboxes it should have.
    pub desired: u32,
    /// Why `desired` is what it is ("fixed: num_instances = 2", "auto: 34 in flight /
    /// 10 per instance"), for `app status`.
    pub desired_reason: String,
    /// How many exist (pending or running).
    pub current: u32,
    /// How many are running and ready.
    pub ready: u32,
    /// Consecutive quick crashes (SPEC §5); 0 when healthy.
    #[serde(default)]
    pub quick_crashes: u32,
    /// When the next replacement starts, while backing off.
    #[serde(default)]
    pub retry_at: Option<UnixMillis>,
}

/// What a sandbox is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxStatus {
    /// Started, not yet ready.
    Pending,
    /// Ready and serving.
    Running,
    /// Asked to stop and draining: still running, but it takes no new requests and is
    /// out of DNS answers; `reason` says why it stops.
    Stopping,
    /// Stopped on purpose.
    Stopped,
    /// Exited on its own or failed to start.
    Dead,
}

impl SandboxStatus {
    /// Started and not gone yet: it exists in the runtime (booting, serving or
    /// draining).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            SandboxStatus::Pending | SandboxStatus::Running | SandboxStatus::Stopping
        )
    }

    /// How it is written (`pending`, `running`, …), as `--status` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxStatus::Pending => "pending",
            SandboxStatus::Running => "running",
            SandboxStatus::Stopping => "stopping",
            SandboxStatus::Stopped => "stopped",
            SandboxStatus::Dead => "dead",
        }
    }
}

impl std::str::FromStr for SandboxStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use SandboxStatus::*;
        [Pending, Running, Stopping, Stopped, Dead]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status `{s}`: expected pending, running, stopping, stopped or dead"
                )
            })
    }
}

/// One running instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// `<app>-<service>-<base58>`.
    pub id: SandboxId,
    /// Its pool.
    pub pool: PoolId,
    /// The version that started it.
    pub version: VersionId,
    /// Its service.
    pub service: String,
    /// Where it can be reached, once known.
    pub address: Option<Address>,
    /// Where it listens for each of its pool's extra named ports (`ports`), once
    /// known: the declared port in a container, its own on the process runtime.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u16>,
    /// Which runtime runs it (`process`, `docker`), once started.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Which node of a cluster runs it, once placed (`None`: not in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What it is doing.
    pub status: SandboxStatus,
    /// Why it stopped or died.
    pub reason: Option<String>,
    /// Its exit code, once it exited.
    pub exit_code: Option<i32>,
    /// How many times its slot was restarted after a crash.
    pub restarts: u32,
    /// The last health check's error while its checks fail (`None` when healthy or
    /// not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// When it was created.
    pub created: UnixMillis,
    /// When its status last changed.
    pub updated: UnixMillis,
}

impl Sandbox {
    /// Whether it takes new requests and is in DNS and balancer answers: ready and not
    /// draining. The one rule the proxy, DNS and service addresses share.
    pub fn is_serving(&self) -> bool {
        self.status == SandboxStatus::Running
    }

    /// Whether it exists in the runtime (see [`SandboxStatus::is_live`]).
    pub fn is_live(&self) -> bool {
        self.status.is_live()
    }
}

/// A host name routed to an app's web service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Lowercase host, no port.
    pub host: String,
    /// The app it reaches.
    pub app: String,
    /// Whether it also takes hosts with no route of their own.
    pub default: bool,
}

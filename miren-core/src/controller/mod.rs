//! The controller: turns deploys into running sandboxes and keeps them running.
//!
//! One task owns the state (apps, versions, pools, sandboxes) and is the only writer
//! of it; callers talk to it through the cloneable [`Controller`] handle, runtimes
//! through [`EventSink`](crate::runtime::EventSink)s. Every change is written to the
//! [`Store`] before the caller hears back, so a kill -9 loses nothing acknowledged.
//! Timing (deploy timeout, crash backoff) runs on tokio's clock: tests pause it.
//!
//! - [`plan`]: what a pool should start or stop, as a pure function.
//! - [`backoff`]: crash backoff, as a pure function.
//! - `actor`: the task: its state, its loop, loading at start, writing back.
//! - `rollout`: versions: deploy, activation, failure, rollback, app deletion.
//! - `sandboxes`: the sandbox lifecycle: start, stop, ready, exit, backoff, counts.
//! - `attach`: where `app run` and `sandbox exec` run.
//! - `tasks`: task runs: deploy tasks gating a rollout, schedules, manual runs.
//! - `scaling`: auto pools: demand in, desired counts out.
//! - `routes`: hosts → apps, each change one checked transaction.
//! - `collect`: removing the code and images no version keeps; `retained`: what
//!   that is.

mod actor;
mod addons;
mod attach;
pub mod backoff;
mod collect;
mod health;
pub mod plan;
mod readiness;
mod retained;
mod rollout;
mod routes;
mod sandboxes;
mod scaling;
mod secrets;
pub mod statics;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::artifact::ArtifactStore;
use crate::config::ResolvedApp;
use crate::model::{
    App, Digest, PoolId, Route, RunStatus, Sandbox, SandboxId, SandboxPool, SandboxStatus,
    SourceInfo, TaskRun, Version, VersionId, VersionState,
};
use crate::runtime::{LogSink, Runtime, RuntimeError};
use crate::store::{Store, StoreError};

pub use backoff::Backoff;

/// How the controller behaves.
#[derive(Clone)]
pub struct ControllerConfig {
    /// A deploy not ready by then fails (SPEC §4: 5 min).
    pub deploy_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a sandbox stops (SPEC §4: 10 s).
    pub stop_grace: Duration,
    /// Between marking a sandbox stopping (the proxy stops sending it requests) and
    /// signalling it, so no request is routed to an instance already shutting down.
    pub drain_delay: Duration,
    /// Crash backoff (SPEC §5).
    pub backoff: Backoff,
    /// Where uploaded code is.
    pub artifacts: ArtifactStore,
    /// Where sandbox output goes.
    pub logs: Arc<dyn LogSink>,
    /// How many of each app's newest versions keep their code (to roll back to);
    /// older ones lose it (a rollback to one asks for a new deploy).
    pub keep_versions: usize,
    /// Where versions' `[static]` files are exported for the proxy (`None`: a version
    /// with `[static]` fails to deploy).
    pub static_root: Option<std::path::PathBuf>,
    /// Uploaded code is kept in the store too (a cluster: `artifact::replica`), so the
    /// collector removes it there as well once no version keeps it.
    pub code_in_store: bool,
    /// The key of the server's own secret store (`None`: no secrets can be set, and a
    /// reference to one fails its deploy).
    pub secret_key: Option<crate::secret::SecretKey>,
}

impl ControllerConfig {
    /// SPEC defaults, code in `artifacts`, logs discarded.
    pub fn new(artifacts: ArtifactStore) -> Self {
        Self {
            deploy_timeout: Duration::from_secs(5 * 60),
            stop_grace: Duration::from_secs(10),
            drain_delay: Duration::from_secs(1),
            backoff: Backoff::default(),
            artifacts,
            logs: Arc::new(()),
            keep_versions: 10,
            static_root: None,
            code_in_store: false,
            secret_key: None,
        }
    }
}

/// A change to a running app that rolls out as a new version of the same code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppChange {
    /// Set these config vars (replacing ones of the same key and service).
    SetVars(Vec<crate::model::ConfigVar>),
    /// Remove the config vars of these keys (of `service`, or app-wide).
    UnsetVars {
        /// The keys.
        keys: Vec<String>,
        /// Whose.
        service: Option<String>,
    },
    /// New instances of `service` (or of every service), replaced like a deploy.
    Restart {
        /// Which; `None`: all.
        service: Option<String>,
    },
    /// Provision an addon (`miren addon create`): it stays until destroyed.
    AddAddon(AddonRequest),
    /// Deprovision an addon (`miren addon destroy`): its server goes, and its disk
    /// is deleted once nothing uses it.
    RemoveAddon(String),
}

/// What `miren secret set` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSet {
    /// The version that holds the value now.
    pub version: String,
    /// The value was the current one already: no version was made.
    pub unchanged: bool,
}

/// An addon asked for by `miren addon create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonRequest {
    /// The addon (`miren-postgresql`).
    pub name: String,
    /// Its variant; `None`: the addon's default.
    pub variant: Option<String>,
    /// Its version (a tag or a whole image reference); `None`: the default.
    pub version: Option<String>,
    /// The services it attaches to; empty: every service.
    pub services: Vec<String>,
}

/// A deploy: validated config plus the digest of code already in the artifact store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRequest {
    /// The resolved app.toml.
    pub config: ResolvedApp,
    /// The uploaded code.
    pub artifact_digest: Digest,
    /// Where it came from.
    pub source: SourceInfo,
}

/// Everything the controller knows, or one app's part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Apps by name.
    pub apps: Vec<App>,
    /// Versions, oldest first.
    pub versions: Vec<Version>,
    /// Pools, oldest first.
    pub pools: Vec<SandboxPool>,
    /// Sandboxes, oldest first.
    pub sandboxes: Vec<Sandbox>,
    /// Routes, by host.
    pub routes: Vec<Route>,
    /// Task runs, oldest first.
    #[serde(default)]
    pub runs: Vec<TaskRun>,
}

/// A change, for progress displays (`miren deploy`) and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// A version changed state.
    Version {
        /// The version.
        id: VersionId,
        /// Its state now.
        state: VersionState,
        /// Why it failed.
        failure: Option<String>,
    },
    /// A pool's counts changed.
    Pool {
        /// The pool.
        id: PoolId,
        /// Its app.
        app: String,
        /// Its service.
        service: String,
        /// Desired count.
        desired: u32,
        /// Existing sandboxes.
        current: u32,
        /// Ready sandboxes.
        ready: u32,
        /// Why it wants `desired` (the autoscaler's reason, or who set it).
        reason: String,
    },
    /// A sandbox changed status.
    Sandbox {
        /// The sandbox.
        id: SandboxId,
        /// Its app.
        app: String,
        /// Its service.
        service: String,
        /// Its status now.
        status: SandboxStatus,
        /// Why, when it stopped or died.
        reason: Option<String>,
    },
    /// A task run started or ended.
    Run {
        /// The run.
        id: SandboxId,
        /// Its app.
        app: String,
        /// Its task.
        task: String,
        /// Where it is.
        status: RunStatus,
        /// Its exit code, once it exited.
        exit_code: Option<i32>,
    },
    /// Preparing a version said something (a build step, pull progress).
    Prepare {
        /// The version.
        version: VersionId,
        /// What it said.
        line: String,
    },
    /// A collection removed what no version keeps (archives counted here; unpacked
    /// code and images by the runtime).
    Collected {
        /// Archives removed.
        archives: usize,
        /// Their size.
        bytes: u64,
    },
    /// An object is gone (a drained pool, its sandboxes, a deleted app).
    Removed {
        /// Its store key (`pools/<app>/<id>`, …).
        key: String,
    },
}

/// Why a controller call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// No such object.
    #[error("no {kind} `{name}`")]
    NotFound {
        /// "app", "version", "pool", "sandbox".
        kind: &'static str,
        /// What was asked for.
        name: String,
    },
    /// The request can't be done as asked (the state doesn't allow it).
    #[error("{0}")]
    Invalid(String),
    /// The store failed; nothing was acknowledged. Shared: one failed write answers
    /// every caller that waited on it.
    #[error("writing the state failed: {0}")]
    Store(#[source] Arc<StoreError>),
    /// The runtime failed doing what the request needed.
    #[error("the runtime failed: {0}")]
    Runtime(#[source] RuntimeError),
    /// The controller has shut down.
    #[error("the controller has stopped")]
    Stopped,
}

impl From<StoreError> for ControllerError {
    fn from(e: StoreError) -> Self {
        ControllerError::Store(Arc::new(e))
    }
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ControllerError>>;

pub(crate) enum Command {
    Deploy(Box<DeployRequest>, Reply<VersionId>),
    Change(String, AppChange, Reply<Option<VersionId>>),
    Wait(VersionId, Reply<Version>),
    Rollback(String, Option<VersionId>, Reply<VersionId>),
    SetDesired(PoolId, u32, String, Reply<SandboxPool>),
    StopSandbox(SandboxId, Reply<()>),
    DeleteApp(String, bool, Reply<()>),
    Snapshot(Option<String>, Reply<Snapshot>),
    PutRoute(Route, Reply<Route>),
    RemoveRoute(String, Reply<()>),
    Shutdown(Reply<()>),
    StepDown(Reply<()>),
    Load(Vec<(PoolId, u32)>),
    WantCapacity(PoolId),
    Retained(oneshot::Sender<crate::runtime::Retained>),
    /// The collector deleted these retired disks: (app, disk).
    DisksDeleted(std::collections::BTreeSet<(String, String)>),
    RunTask(String, String, Reply<TaskRun>),
    Secrets(Reply<Vec<crate::model::Secret>>),
    SetSecret(String, Vec<u8>, Reply<SecretSet>),
    EnableSecret(crate::model::SecretRef, bool, Reply<()>),
    DestroySecret(crate::model::SecretRef, Reply<()>),
    Attach(Target, crate::runtime::Attach, Reply<i32>),
}

/// Where an attached command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// In a running sandbox (or task run): `miren sandbox exec`.
    Sandbox(SandboxId),
    /// In a one-off sandbox of the app's active version: `miren app run`.
    OneOff {
        /// The app.
        app: String,
        /// Whose code, image and env (default `web`, else the app's built code).
        service: Option<String>,
    },
}

/// A handle on the controller task. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    tx: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<Event>,
    /// To check a deploy's code is there before the task sees it (a file lookup, kept
    /// off the controller's task).
    artifacts: ArtifactStore,
}

impl Controller {
    /// Loads the state from `store`, reconciles it with what `runtime` runs (adopting
    /// what it can, stopping leftovers, replacing what is gone) and starts the
    /// controller task. Needs a tokio runtime.
    pub async fn start(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        config: ControllerConfig,
    ) -> Result<Self, ControllerError> {
        let (events, _) = broadcast::channel(4096);
        let artifacts = config.artifacts.clone();
        let tx = actor::spawn(store, runtime, config, events.clone()).await?;
        Ok(Self {
            tx,
            events,
            artifacts,
        })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ControllerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .map_err(|_| ControllerError::Stopped)?;
        rx.await.map_err(|_| ControllerError::Stopped)?
    }

    /// Creates a version and starts rolling it out; returns its id once it is stored.
    /// [`wait`](Self::wait) tells how it ended.
    pub async fn deploy(&self, request: DeployRequest) -> Result<VersionId, ControllerError> {
        let path = self.artifacts.artifact(&request.artifact_digest).path;
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(ControllerError::Invalid(format!(
                "no uploaded code with digest {}: upload it before deploying",
                request.artifact_digest
            )));
        }
        self.call(|r| Command::Deploy(Box::new(request), r)).await
    }

    /// Changes an app's config vars or restarts services: a new version of the active
    /// one's code (`None` when nothing runs yet: vars then apply to the first deploy).
    pub async fn change_app(
        &self,
        app: &str,
        change: AppChange,
    ) -> Result<Option<VersionId>, ControllerError> {
        self.call(|r| Command::Change(app.to_string(), change, r))
            .await
    }

    /// Waits until `version` is no longer deploying and returns it (`active` or
    /// `failed` with the reason).
    pub async fn wait(&self, version: &VersionId) -> Result<Version, ControllerError> {
        self.call(|r| Command::Wait(version.clone(), r)).await
    }

    /// Re-activates `to` (default: the version active before the current one) the
    /// way a deploy activates; returns its id once the rollout started.
    pub async fn rollback(
        &self,
        app: &str,
        to: Option<VersionId>,
    ) -> Result<VersionId, ControllerError> {
        self.call(|r| Command::Rollback(app.to_string(), to, r))
            .await
    }

    /// Sets a pool's desired count, with the reason `app status` shows.
    pub async fn set_desired(
        &self,
        pool: &PoolId,
        desired: u32,
        reason: impl Into<String>,
    ) -> Result<SandboxPool, ControllerError> {
        let reason = reason.into();
        self.call(|r| Command::SetDesired(pool.clone(), desired, reason, r))
            .await
    }

    /// Stops one sandbox; its pool starts a replacement.
    pub async fn stop_sandbox(&self, id: &SandboxId) -> Result<(), ControllerError> {
        self.call(|r| Command::StopSandbox(id.clone(), r)).await
    }

    /// Stops every sandbox of `app`, forgets it and its routes; its disks stay unless
    /// `purge_disks`. Returns once everything is stopped.
    pub async fn delete_app(&self, app: &str, purge_disks: bool) -> Result<(), ControllerError> {
        self.call(|r| Command::DeleteApp(app.to_string(), purge_disks, r))
            .await
    }

    /// Routes `route.host` to `route.app` (which must exist). A default route (or the
    /// host `*`) also takes every host without a route of its own, and takes the flag
    /// from any other. Returns the route as stored.
    pub async fn put_route(&self, route: Route) -> Result<Route, ControllerError> {
        self.call(|r| Command::PutRoute(route, r)).await
    }

    /// Removes the route of `host` (lowercase, as stored).
    pub async fn remove_route(&self, host: &str) -> Result<(), ControllerError> {
        self.call(|r| Command::RemoveRoute(host.to_string(), r))
            .await
    }

    /// The current state, of one app or all.
    pub async fn snapshot(&self, app: Option<&str>) -> Result<Snapshot, ControllerError> {
        self.call(|r| Command::Snapshot(app.map(str::to_string), r))
            .await
    }

    /// The server's own secrets (values sealed: never opened here).
    pub async fn secrets(&self) -> Result<Vec<crate::model::Secret>, ControllerError> {
        self.call(Command::Secrets).await
    }

    /// Sets a secret's value: a new version, unless it is the current value already.
    pub async fn set_secret(
        &self,
        path: &str,
        value: Vec<u8>,
    ) -> Result<SecretSet, ControllerError> {
        self.call(|r| Command::SetSecret(path.to_string(), value, r))
            .await
    }

    /// Disables (or enables again) one version of a secret: disabled, it resolves for
    /// nothing.
    pub async fn enable_secret(
        &self,
        version: crate::model::SecretRef,
        enabled: bool,
    ) -> Result<(), ControllerError> {
        self.call(|r| Command::EnableSecret(version, enabled, r))
            .await
    }

    /// Destroys one version of a secret, or (without a version) all of it.
    pub async fn destroy_secret(
        &self,
        secret: crate::model::SecretRef,
    ) -> Result<(), ControllerError> {
        self.call(|r| Command::DestroySecret(secret, r)).await
    }

    /// Stops every sandbox (with the grace period), records them stopped and ends the
    /// task. The next start brings them back.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        self.call(Command::Shutdown).await
    }

    /// Stops deciding, leaving every sandbox as it is: what a cluster's leader does when
    /// it leaves, so the node that leads next adopts what runs. Returns once what was
    /// decided is written; the controller answers nothing after.
    pub async fn step_down(&self) -> Result<(), ControllerError> {
        self.call(Command::StepDown).await
    }

    /// Waits until `cond` holds for the state (of `app`, or all), re-checking after
    /// every change; `None` once `timeout` passed without it (tokio's clock).
    pub async fn wait_for(
        &self,
        app: Option<&str>,
        timeout: Duration,
        cond: impl Fn(&Snapshot) -> bool,
    ) -> Result<Option<Snapshot>, ControllerError> {
        let mut events = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.snapshot(app).await?;
            if cond(&s) {
                return Ok(Some(s));
            }
            // Any event (or a lag, which also means something changed): look again.
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Ok(None),
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err(ControllerError::Stopped);
                }
                Ok(_) => {}
            }
        }
    }

    /// Peak requests in flight per auto pool since the last report (the proxy calls
    /// this every ~100 ms). Scale-up follows at once; see [`crate::autoscale`].
    pub fn report_load(&self, loads: Vec<(PoolId, u32)>) {
        let _ = self.tx.send(Command::Load(loads));
    }

    /// A request waits for a pool with no ready sandbox: start one now if it has none
    /// (scale from zero).
    pub fn want_capacity(&self, pool: &PoolId) {
        let _ = self.tx.send(Command::WantCapacity(pool.clone()));
    }

    /// Starts a run of `task` of the app's active version by hand (`miren task run`);
    /// returns it once stored. Refused while `max_concurrent` runs are going.
    pub async fn run_task(&self, app: &str, task: &str) -> Result<TaskRun, ControllerError> {
        self.call(|r| Command::RunTask(app.to_string(), task.to_string(), r))
            .await
    }

    /// Runs a command attached to the caller (SPEC §14) where `target` says; returns
    /// its exit code once it ended. The controller only finds the place: the command
    /// itself runs on the runtime, off the controller's task.
    pub async fn attach(
        &self,
        target: Target,
        attach: crate::runtime::Attach,
    ) -> Result<i32, ControllerError> {
        self.call(|r| Command::Attach(target, attach, r)).await
    }

    /// Changes from now on. A slow reader misses events (`Lagged`), never blocks.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

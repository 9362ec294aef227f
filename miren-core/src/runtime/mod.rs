//! The one trait a backend implements (SPEC §8), and the plain data it is given.
//!
//! A runtime never reads app.toml: it gets a [`PrepareApp`] per version (unpack or build
//! the code, set up the app's network) and a [`SandboxSpec`] per sandbox. What happens
//! to a sandbox afterwards — ready, a log line, an exit — it reports through the
//! [`EventSink`] it was started with, so the controller never polls it.

mod attach;
mod lines;
mod sink;

#[cfg(any(test, feature = "test-util"))]
pub mod fake;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

use crate::model::{Address, Digest, PoolId, PoolSpec, SandboxId, VersionId};

pub use attach::{Attach, Input, Output, TermSize};
pub use lines::{Lines, MAX_LINE, read_lines};
pub use sink::{EventSink, LogLine, LogRecord, LogSink, RuntimeEvent, Stream, now_millis};

/// What a runtime needs to run a version: its code and every service's spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrepareApp {
    /// The app.
    pub app: String,
    /// The version being deployed.
    pub version: VersionId,
    /// The uploaded app directory.
    pub artifact: Artifact,
    /// The Dockerfile, relative to the app directory.
    pub dockerfile: String,
    /// One spec per service, in file order, then one per task (what its runs run:
    /// no port, no disks), so the code and images runs need are ready too.
    pub services: Vec<PoolSpec>,
    /// Secrets for the build only (`[[build.secrets]]`), opened: a runtime hands
    /// them to its build and keeps them nowhere.
    pub build_secrets: Vec<BuildSecret>,
}

/// A secret given to a build: `RUN --mount=type=secret,id=<id>` in a Dockerfile, or
/// `env`/`file` for the `onbuild` commands of the process runtime.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildSecret {
    /// Its id.
    pub id: String,
    /// Its value.
    pub value: String,
    /// The variable `onbuild` commands find it in.
    pub env: Option<String>,
    /// The file (`~/…`) `onbuild` commands find it in.
    pub file: Option<String>,
}

impl std::fmt::Debug for BuildSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildSecret")
            .field("id", &self.id)
            .field("value", &"(secret)")
            .field("env", &self.env)
            .field("file", &self.file)
            .finish()
    }
}

/// Where a runtime says what preparing a version does (an image build, a pull), a line
/// at a time: it shows in the deploy's progress and in the app's logs.
#[derive(Clone)]
pub struct PrepareLog(Arc<dyn Fn(&str) + Send + Sync>);

impl PrepareLog {
    /// Lines go to `f`.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Lines go nowhere.
    pub fn discard() -> Self {
        Self::new(|_| {})
    }

    /// Says one line.
    pub fn line(&self, text: &str) {
        (self.0)(text)
    }
}

impl std::fmt::Debug for PrepareLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrepareLog")
    }
}

/// An uploaded app directory: a tar archive, content-addressed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Artifact {
    /// The archive's digest.
    pub digest: Digest,
    /// Where the archive is.
    pub path: PathBuf,
}

/// What a collection keeps: the versions still running or kept to roll back to, and
/// the code they use. Anything a runtime keeps for another version (unpacked code, a
/// built image) may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retained {
    /// Versions kept.
    pub versions: BTreeSet<VersionId>,
    /// The artifacts they and the existing pools use.
    pub digests: BTreeSet<Digest>,
    /// Disks to delete now: (app, disk) of destroyed addons that no pool uses.
    pub retired_disks: BTreeSet<(String, String)>,
}

/// Everything needed to start one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    /// Its id (container name, process record, log tag).
    pub id: SandboxId,
    /// The app.
    pub app: String,
    /// The version that starts it.
    pub version: VersionId,
    /// Its pool; `None` for a task run, which belongs to none.
    pub pool: Option<PoolId>,
    /// What it runs.
    pub spec: PoolSpec,
    /// Labels to attach where the backend supports them (`dev.miren.app`, …).
    pub labels: BTreeMap<String, String>,
}

impl SandboxSpec {
    /// The labels every backend attaches: app, service, pool (or task), sandbox,
    /// version.
    pub fn standard_labels(
        id: &SandboxId,
        app: &str,
        version: &VersionId,
        pool: &PoolId,
        service: &str,
    ) -> BTreeMap<String, String> {
        let mut labels = Self::labels(id, app, version, service);
        labels.insert(LABEL_POOL.to_string(), pool.to_string());
        labels
    }

    /// The labels of a task run: app, service, task, sandbox, version.
    pub fn task_labels(
        id: &SandboxId,
        app: &str,
        version: &VersionId,
        task: &str,
        service: &str,
    ) -> BTreeMap<String, String> {
        let mut labels = Self::labels(id, app, version, service);
        labels.insert(LABEL_TASK.to_string(), task.to_string());
        labels
    }

    /// The labels of any sandbox: app, service, sandbox, version (a one-off command's).
    pub fn labels(
        id: &SandboxId,
        app: &str,
        version: &VersionId,
        service: &str,
    ) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_APP.to_string(), app.to_string()),
            (LABEL_SERVICE.to_string(), service.to_string()),
            (LABEL_SANDBOX.to_string(), id.to_string()),
            (LABEL_VERSION.to_string(), version.to_string()),
        ])
    }
}

/// Label naming the app.
pub const LABEL_APP: &str = "dev.miren.app";
/// Label naming the service.
pub const LABEL_SERVICE: &str = "dev.miren.service";
/// Label naming the pool.
pub const LABEL_POOL: &str = "dev.miren.pool";
/// Label naming the task of a task run.
pub const LABEL_TASK: &str = "dev.miren.task";
/// Label naming the sandbox.
pub const LABEL_SANDBOX: &str = "dev.miren.sandbox";
/// Label naming the version.
pub const LABEL_VERSION: &str = "dev.miren.version";

/// What `start` tells the controller at once; readiness comes later as an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Started {
    /// Where it will listen, when known now.
    pub address: Option<Address>,
    /// Where it listens for each extra named port of its spec (`ports`).
    pub ports: BTreeMap<String, u16>,
    /// Which backend runs it, when this runtime is several (`None`: this one).
    pub runtime: Option<String>,
    /// Which node of a cluster runs it (`None`: this machine, not in a cluster).
    pub node: Option<String>,
}

/// A sandbox the backend knows about, for adoption after a server restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its id.
    pub id: SandboxId,
    /// Where it listens, when known.
    pub address: Option<Address>,
    /// Which backend runs it, when this runtime is several (`None`: this one).
    pub runtime: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// What a running sandbox uses, as its backend measures it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// The sandbox.
    pub sandbox: SandboxId,
    /// CPU time its processes have used, user and system, theirs and their waited-for
    /// children's (seconds).
    pub cpu_seconds: f64,
    /// Memory its processes hold now (resident set, bytes).
    pub memory_bytes: u64,
}

/// Runs file system (and other blocking) work on tokio's blocking threads, off the
/// async ones; a task that panicked is a backend error.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Backend(format!("a blocking task failed: {e}")))?
}

/// Why a runtime call failed. Messages are written for the person deploying.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No such sandbox (already gone).
    #[error("no sandbox `{0}`")]
    NotFound(SandboxId),
    /// This backend can't run what the spec asks for.
    #[error("{0}")]
    Unsupported(String),
    /// The code could not be prepared (unpack, image build, pull).
    #[error("{0}")]
    Prepare(String),
    /// The sandbox could not be started.
    #[error("{0}")]
    Start(String),
    /// The backend itself failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The backend itself failed (not an I/O error).
    #[error("{0}")]
    Backend(String),
}

impl RuntimeError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A backend that runs sandboxes: processes, containers, VMs.
///
/// Object safe; the controller holds an `Arc<dyn Runtime>`. Every method may be called
/// concurrently for different sandboxes.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// A short name for messages (`process`, `docker`).
    fn name(&self) -> &str;

    /// Gets a version ready to start sandboxes: unpack or build its code, create the
    /// app's network. Called once per deploy, before any of its sandboxes start;
    /// must be idempotent. What it does worth telling (build output, pull progress)
    /// goes to `log`. A spec this backend can't run fails here, with a message that
    /// says what to do instead.
    async fn prepare(&self, app: &PrepareApp, log: &PrepareLog) -> Result<(), RuntimeError>;

    /// Starts a sandbox and returns once it is launched. Readiness, log lines and the
    /// exit are reported through `events`, exactly one `Exited` at the end.
    async fn start(&self, spec: &SandboxSpec, events: EventSink) -> Result<Started, RuntimeError>;

    /// Stops a sandbox: a polite signal, then after `grace` a forced kill. Returns when
    /// it is gone. [`RuntimeError::NotFound`] when it already was.
    async fn stop(&self, sandbox: &SandboxId, grace: Duration) -> Result<(), RuntimeError>;

    /// The sandboxes this backend runs now, including ones started by an earlier
    /// server process.
    async fn list(&self) -> Result<Vec<Listed>, RuntimeError>;

    /// Resumes watching a listed sandbox after a server restart: its readiness, logs
    /// and exit go to `events` from now on. Backends that can't (the process runtime
    /// stops leftovers instead) return [`RuntimeError::NotFound`].
    async fn adopt(&self, sandbox: &SandboxId, events: EventSink) -> Result<(), RuntimeError>;

    /// Forgets an app once its sandboxes are stopped: its network, its code, and with
    /// `purge_disks` its disks.
    async fn remove_app(&self, app: &str, purge_disks: bool) -> Result<(), RuntimeError>;

    /// Runs a command in a running sandbox's environment (its code, env, image),
    /// attached to the caller; returns its exit code (128 + the signal when killed by
    /// one). The default: this backend can't.
    async fn exec(&self, sandbox: &SandboxId, attach: Attach) -> Result<i32, RuntimeError> {
        let _ = (sandbox, attach);
        Err(RuntimeError::Unsupported(format!(
            "the {} runtime can't run commands in its sandboxes",
            self.name()
        )))
    }

    /// Copies the directory `dir` of a prepared version's built code (`/app` is the
    /// app directory; `[static]`'s `dir`) to `dest` on this machine, which doesn't
    /// exist yet, for the proxy to serve. The default: this backend can't.
    async fn export_dir(
        &self,
        app: &PrepareApp,
        dir: &str,
        dest: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        let _ = (app, dir, dest);
        Err(RuntimeError::Unsupported(format!(
            "the {} runtime can't export files of an app's code (`[static]`)",
            self.name()
        )))
    }

    /// Runs a one-off sandbox of `spec` (its command replaced by `attach.argv`),
    /// attached to the caller, and removes it when the command ends; returns its exit
    /// code. Nothing routes to it. The default: this backend can't.
    async fn run_attached(&self, spec: &SandboxSpec, attach: Attach) -> Result<i32, RuntimeError> {
        let _ = (spec, attach);
        Err(RuntimeError::Unsupported(format!(
            "the {} runtime can't run one-off commands",
            self.name()
        )))
    }

    /// CPU and memory of each sandbox it runs, where it can tell (`/metrics`). The
    /// default: it can't, and says nothing.
    async fn usage(&self) -> Result<Vec<Usage>, RuntimeError> {
        Ok(Vec::new())
    }

    /// Removes what it keeps for versions not in `retained` (unpacked code, built
    /// images), so deploys don't fill the disk. Called after deploys settle and apps
    /// are deleted, never while a version is being prepared. The default keeps
    /// everything.
    async fn collect(&self, retained: &Retained) -> Result<(), RuntimeError> {
        let _ = retained;
        Ok(())
    }
}

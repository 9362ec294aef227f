//! miren-runtime-process: Miren's embedded runtime. Each sandbox is a child process
//! group on this machine.
//!
//! - The code of a version is its artifact, unpacked once per digest under
//!   `<data>/code/`; a sandbox runs `/bin/sh -c <command>` there (`exec`ing a command
//!   that is one program), in its own process group, with stdout and stderr captured
//!   line by line.
//! - A stop is SIGTERM to the group and to the sandbox's processes outside it (found
//!   by `MIREN_SANDBOX` in their environment), the grace period for every one of them
//!   to exit, then SIGKILL; the exit is reported once nothing of the sandbox is left.
//! - Every sandbox gets its own free `PORT`; it is ready when that port accepts a TCP
//!   connection (polled from 2 ms, doubling to 50 ms). A service without a port is
//!   ready once started. A command that binds the service's own port by itself
//!   (`--bind 0.0.0.0:8000` for a service on 8000) gets `$PORT` in its place.
//! - Every service with a port also gets a stable loopback address for the app's
//!   lifetime (`127.77.x.y:<port>`), balancing over the instances the store says
//!   serve (whichever runtime runs them); env values naming `<svc>.app.miren` are
//!   rewritten to it.
//! - Disks are directories under `<data>/disks/<app>/<disk>`, given as
//!   `MIREN_DISK_<NAME>`; they outlive deploys and restarts. A disk's mount path in
//!   an env value is its directory here (`mounts`).
//! - Leader pids and start times are recorded under `<data>/pids/`; a new runtime on
//!   the same data dir kills what an earlier, crashed server left running.
//! - With a [`SandboxUser`], sandboxes run as that user and reach only their code and
//!   disks.
//!
//!
//! # Layout
//! - `lib.rs`: the [`Runtime`] implementation: prepare, start, stop, list, adopt.
//! - `attach`: commands attached to a caller (`app run`, `sandbox exec`).
//! - `addresses`: the stable per-service loopback IPs (persisted) and the rewriting of
//!   `<svc>.app.miren` in env values and command lines.
//! - `net`: the listeners of each stable address, one per declared port
//!   (`balancer`: TCP; `udp`: UDP flows; `listen`: what they share).
//! - `node_ports`: ports published on the node (`node_port`), for every runtime.
//! - `command`: the line `/bin/sh -c` runs.
//! - `build_secrets`: `[[build.secrets]]` for the `onbuild` commands.
//! - `export`: `[static]`'s directory copied out of the built code.
//! - `members`: which processes are a sandbox's (its group, its marker).
//! - `mounts`: a disk's mount path in env values, as its directory.
//! - `user`: the sandbox user, and the directories it may reach.
//! - `serving`: which instances serve each service, as a projection of the store.
//! - `records`: pid + start-time records, and the `/proc` reading behind them.
//!
//! ```no_run
//! use std::sync::Arc;
//! use miren_core::runtime::Runtime;
//! use miren_core::store::MemoryStore;
//! use miren_runtime_process::ProcessRuntime;
//!
//! # async fn demo() -> Result<(), miren_core::runtime::RuntimeError> {
//! let store = Arc::new(MemoryStore::new());
//! let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::new("/var/lib/miren/process", store).await?);
//! # Ok(()) }
//! ```

mod addresses;
mod attach;
mod balancer;
mod build_secrets;
mod command;
mod export;
mod listen;
mod members;
mod mounts;
mod net;
mod node_ports;
mod records;
mod serving;
mod udp;
mod user;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use miren_core::artifact;
use miren_core::config::command::listen_on_port_vars;
use miren_core::model::{Address, CodeSource, Digest, PoolSpec, SandboxId};
use miren_core::runtime::{
    Attach, EventSink, Listed, PrepareApp, PrepareLog, Retained, Runtime, RuntimeError,
    SandboxSpec, Started, Stream, blocking,
};
use miren_core::store::{Reflector, Store};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;

use addresses::Addresses;
use net::AppNet;
use records::{Record, Records};
use serving::{Serving, ServingSandboxes};

pub use listen::Target;
pub use members::group_members;
pub use net::{DeclaredPort, declared_ports};
pub use node_ports::{NodePortState, NodePorts};
pub use user::SandboxUser;

/// How the process runtime runs sandboxes.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    /// Run every sandbox as this user instead of the server's (which must be root):
    /// sandboxes then reach their code and disks and nothing else of the data dir.
    pub user: Option<SandboxUser>,
    /// The address other machines reach this one at (a cluster's `--node-addr`):
    /// instances' ports are found free there, probed there and recorded there, and
    /// every sandbox is told it as `$MIREN_NODE_ADDR` (bind it, or 0.0.0.0). Default:
    /// 127.0.0.1, this machine only.
    pub node_addr: Option<std::net::IpAddr>,
}

/// Variables passed through from the server's environment; everything else a
/// sandbox sees comes from app.toml and the platform.
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// How long what a leader left behind when it exited on its own (not stopped) has
/// between SIGTERM and SIGKILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(10);

/// Readiness polling: first delay and the longest.
const PROBE_FIRST: Duration = Duration::from_millis(2);
const PROBE_MAX: Duration = Duration::from_millis(50);

/// The process runtime. Clones share state.
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    user: Option<SandboxUser>,
    /// Where instances listen for others to reach them.
    host: std::net::IpAddr,
    /// Which instances serve each service, following the store.
    serving: Reflector<Serving>,
    records: Records,
    addresses: Mutex<Addresses>,
    apps: Mutex<HashMap<String, AppNet>>,
    running: Mutex<HashMap<SandboxId, Proc>>,
    ports: Mutex<HashSet<u16>>,
    /// Process groups of attached commands (`app run`, `sandbox exec`), killed when
    /// the runtime closes.
    attached: attach::Groups,
}

struct Proc {
    pgid: u32,
    /// Set by a stop: when its grace ends.
    stop_by: Arc<Mutex<Option<tokio::time::Instant>>>,
    port: Option<u16>,
    labels: BTreeMap<String, String>,
    sink: Arc<Mutex<EventSink>>,
    exited: watch::Receiver<bool>,
    ready: watch::Receiver<bool>,
    /// Its code directory and environment, for `sandbox exec`.
    cwd: PathBuf,
    env: Vec<(String, String)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ProcessRuntime {
    /// A runtime keeping its state in `dir`, with service addresses that balance over
    /// the instances `store` says serve. Kills whatever an earlier server on the same
    /// dir left running (its sandboxes are restarted by the controller).
    pub async fn new(dir: impl Into<PathBuf>, store: Arc<dyn Store>) -> Result<Self, RuntimeError> {
        Self::with_options(dir, store, ProcessOptions::default()).await
    }

    /// [`new`](Self::new), with options. With a sandbox user, fails unless that user
    /// can reach `dir` (saying which directory stops it).
    pub async fn with_options(
        dir: impl Into<PathBuf>,
        store: Arc<dyn Store>,
        options: ProcessOptions,
    ) -> Result<Self, RuntimeError> {
        let dir = dir.into();
        let d = dir.clone();
        let user = options.user.clone();
        let (records, addresses) = blocking(move || {
            let io = |what: &str| {
                let what = what.to_string();
                move |e| RuntimeError::io(what, e)
            };
            std::fs::create_dir_all(&d).map_err(io("creating the process runtime's directory"))?;
            // Sandboxes walk through these to their code and disks.
            let open = if user.is_some() { 0o711 } else { 0o755 };
            if user.is_some() {
                std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(open))
                    .map_err(io("making the process runtime's directory reachable"))?;
            }
            for sub in ["code", "disks"] {
                user::ensure_dir(&d.join(sub), open, None)
                    .map_err(io("creating code and disk directories"))?;
            }
            if let Some(u) = &user {
                u.check_reaches(&d.join("code"))?;
            }
            artifact::remove_unpack_leftovers(&d.join("code"))
                .map_err(io("removing half-unpacked code"))?;
            let records = Records::open(d.join("pids")).map_err(io("opening pid records"))?;
            let killed = records
                .kill_leftovers()
                .map_err(io("stopping leftover processes"))?;
            if !killed.is_empty() {
                tracing::info!(
                    "stopped {} leftover process group(s) of an earlier server",
                    killed.len()
                );
            }
            let addresses =
                Addresses::load(d.join("addresses.json")).map_err(io("reading addresses.json"))?;
            Ok((records, addresses))
        })
        .await?;
        let serving = Reflector::start(store, ServingSandboxes::default())
            .await
            .map_err(|e| RuntimeError::Backend(format!("following the store: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                user: options.user,
                host: options
                    .node_addr
                    .unwrap_or(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)),
                serving,
                records,
                addresses: Mutex::new(addresses),
                apps: Mutex::new(HashMap::new()),
                running: Mutex::new(HashMap::new()),
                ports: Mutex::new(HashSet::new()),
                attached: attach::Groups::default(),
            }),
        })
    }

    /// Closes every service address; returns once they are free. For a server that
    /// is shutting down (after its sandboxes stopped) or handing over to another.
    pub async fn close(&self) {
        self.inner.attached.kill_all();
        let nets: Vec<AppNet> = lock(&self.inner.apps).drain().map(|(_, n)| n).collect();
        for net in nets {
            net.close().await;
        }
    }

    /// Kills every sandbox's process group at once, without waiting (SIGKILL). For
    /// emergencies and test teardown, where nothing can be awaited; a clean stop goes
    /// through the controller.
    pub fn kill_all(&self) {
        self.inner.attached.kill_all();
        let sandboxes: Vec<members::Sandbox> = lock(&self.inner.running)
            .iter()
            .map(|(id, p)| {
                let _ = killpg(Pid::from_raw(p.pgid as i32), Signal::SIGKILL);
                members::Sandbox {
                    pgid: Some(p.pgid),
                    id: id.to_string(),
                }
            })
            .collect();
        for pids in members::of_each(&sandboxes).values() {
            members::signal(pids, Signal::SIGKILL);
        }
    }

    /// The stable address of an app's service (its listener of the port `PORT`
    /// names, or of its first port), once prepared.
    pub fn service_address(&self, app: &str, service: &str) -> Option<SocketAddr> {
        let apps = lock(&self.inner.apps);
        let at = apps.get(app)?.services.get(service)?;
        at.ports.values().next().copied()
    }

    /// Where the stable address of an app's service listens for `port` (declared).
    pub fn service_port(&self, app: &str, service: &str, port: u16) -> Option<SocketAddr> {
        lock(&self.inner.apps)
            .get(app)?
            .services
            .get(service)?
            .ports
            .get(&port)
            .copied()
    }

    /// The process group of a running sandbox.
    pub fn pgid(&self, sandbox: &SandboxId) -> Option<u32> {
        lock(&self.inner.running).get(sandbox).map(|p| p.pgid)
    }

    /// Where a disk of an app lives.
    pub fn disk_dir(&self, app: &str, disk: &str) -> PathBuf {
        self.inner.dir.join("disks").join(app).join(disk)
    }

    fn code_dir(&self, digest: &Digest) -> PathBuf {
        self.inner.dir.join("code").join(digest.hex())
    }

    /// The code dir of an artifact built with `onbuild`: its own, so versions of the
    /// same code with other commands don't share what those commands made.
    fn code_dir_for(&self, digest: &Digest, onbuild: &[String]) -> PathBuf {
        if onbuild.is_empty() {
            return self.code_dir(digest);
        }
        let all = onbuild.join("\n");
        let tag = &Digest::of(all.as_bytes()).hex().to_string()[..12];
        self.inner
            .dir
            .join("code")
            .join(format!("{}-{tag}", digest.hex()))
    }

    /// Runs `build.onbuild` in freshly unpacked code, each command by `/bin/sh -c`, its
    /// output in the deploy's progress; the first failure fails the prepare.
    async fn run_onbuild(
        &self,
        dir: &std::path::Path,
        commands: &[String],
        secrets: &[miren_core::runtime::BuildSecret],
        log: &PrepareLog,
    ) -> Result<(), RuntimeError> {
        // The build's secrets, outside the code, gone when the build is.
        let (s, owner) = (secrets.to_vec(), self.inner.user.clone());
        let given = blocking(move || build_secrets::give(&s, owner.as_ref())).await?;
        for cmd in commands {
            log.line(&format!("onbuild: {cmd}"));
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c")
                .arg(cmd)
                .current_dir(dir)
                .env_clear()
                .envs(
                    INHERITED_ENV
                        .iter()
                        .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
                )
                .envs(given.env())
                .stdin(Stdio::null())
                .kill_on_drop(true);
            if let Some(u) = &self.inner.user {
                c.uid(u.uid).gid(u.gid);
            }
            let out = c
                .output()
                .await
                .map_err(|e| RuntimeError::Prepare(format!("running onbuild `{cmd}`: {e}")))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            for l in &lines {
                log.line(l);
            }
            if !out.status.success() {
                let (_, why) = exit_reason(out.status);
                let mut msg = format!("onbuild `{cmd}` {why}");
                let last = &lines[lines.len().saturating_sub(10)..];
                if !last.is_empty() {
                    msg.push_str("\nits last output:");
                    for l in last {
                        msg.push_str("\n  | ");
                        msg.push_str(l);
                    }
                }
                return Err(RuntimeError::Prepare(msg));
            }
        }
        Ok(())
    }

    fn free_port(&self) -> Result<u16, RuntimeError> {
        let mut ports = lock(&self.inner.ports);
        for _ in 0..64 {
            let l = std::net::TcpListener::bind((self.inner.host, 0))
                .map_err(|e| RuntimeError::io("finding a free port", e))?;
            let port = l
                .local_addr()
                .map_err(|e| RuntimeError::io("finding a free port", e))?
                .port();
            if ports.insert(port) {
                return Ok(port);
            }
        }
        Err(RuntimeError::Start("no free port found".to_string()))
    }

    /// Publishes every app's node ports on `ip`, following `store`'s pools and
    /// balancing over the instances of any runtime (see [`NodePorts`]).
    pub async fn node_ports(
        &self,
        ip: std::net::IpAddr,
        store: Arc<dyn Store>,
    ) -> Result<NodePorts, RuntimeError> {
        NodePorts::start(ip, store, self.inner.serving.reader())
            .await
            .map_err(|e| RuntimeError::Backend(format!("following the store: {e}")))
    }

    /// Frees the ports an instance was given.
    fn release_ports(&self, port: Option<u16>, extra: &BTreeMap<String, u16>) {
        let mut ports = lock(&self.inner.ports);
        for p in port.iter().chain(extra.values()) {
            ports.remove(p);
        }
    }

    /// Gives services this runtime does not run (an `image` service in a container,
    /// under `--runtime auto`) a stable address too, so this runtime's sandboxes reach
    /// them as `<svc>.app.miren:<port>`; it balances over whatever the store says
    /// serves them. `services`: each service and the ports it listens on
    /// ([`declared_ports`]).
    pub async fn serve_addresses(
        &self,
        app: &str,
        services: &[(String, Vec<DeclaredPort>)],
    ) -> Result<(), RuntimeError> {
        self.ensure_net(app, services).await
    }

    fn env_for(&self, spec: &SandboxSpec, port: Option<u16>) -> Vec<(String, String)> {
        let services = lock(&self.inner.apps)
            .get(&spec.app)
            .map(|n| n.services.clone())
            .unwrap_or_default();
        let mut env: Vec<(String, String)> = INHERITED_ENV
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        if let Some(u) = &self.inner.user {
            env.retain(|(k, _)| !matches!(k.as_str(), "HOME" | "USER" | "LOGNAME"));
            env.push(("HOME".into(), u.home.display().to_string()));
            env.push(("USER".into(), u.name.clone()));
            env.push(("LOGNAME".into(), u.name.clone()));
        }
        // Python buffers a pipe's output; logs should show up as they are written.
        if !spec.spec.env.contains_key("PYTHONUNBUFFERED") {
            env.push(("PYTHONUNBUFFERED".into(), "1".into()));
        }
        let disk_dirs: Vec<PathBuf> = spec
            .spec
            .disks
            .iter()
            .map(|d| self.disk_dir(&spec.app, &d.name))
            .collect();
        let mounted: Vec<(String, &std::path::Path)> = spec
            .spec
            .disks
            .iter()
            .zip(&disk_dirs)
            .map(|(d, dir)| (d.mount_path.clone(), dir.as_path()))
            .collect();
        for (k, v) in &spec.spec.env {
            let v = mounts::rewrite(v, &mounted);
            env.push((k.clone(), addresses::rewrite(&v, &spec.app, &services)));
        }
        env.push(("MIREN_APP".into(), spec.app.clone()));
        env.push(("MIREN_SERVICE".into(), spec.spec.service.clone()));
        env.push(("MIREN_SANDBOX".into(), spec.id.to_string()));
        env.push(("MIREN_VERSION".into(), spec.version.to_string()));
        env.push(("MIREN_NODE_ADDR".into(), self.inner.host.to_string()));
        if let Some(p) = port {
            env.push(("PORT".into(), p.to_string()));
        }
        for d in &spec.spec.disks {
            let name = d.name.to_ascii_uppercase().replace('-', "_");
            let dir = self.disk_dir(&spec.app, &d.name);
            env.push((format!("MIREN_DISK_{name}"), dir.display().to_string()));
        }
        env
    }
}

/// The app's `onbuild` commands: every service of its code shares them.
fn onbuild_of(app: &PrepareApp) -> Vec<String> {
    app.services
        .iter()
        .find(|s| matches!(s.source, CodeSource::Artifact(_)) && !s.onbuild.is_empty())
        .map(|s| s.onbuild.clone())
        .unwrap_or_default()
}

/// Why a service can't run on this runtime, if it can't.
fn unsupported(s: &PoolSpec) -> Option<String> {
    match (&s.source, &s.command) {
        (CodeSource::Image(image), _) => Some(format!(
            "service `{}` runs the image `{image}`, which the process runtime can't run: \
             start the server with `--runtime docker` (or give the service a `command` \
             instead of an `image`)",
            s.service
        )),
        (CodeSource::Artifact(_), None) if s.args.is_empty() => Some(format!(
            "service `{}` has no `command`: the process runtime runs each service's command \
             with /bin/sh -c",
            s.service
        )),
        _ => None,
    }
}

fn exit_reason(status: std::process::ExitStatus) -> (Option<i32>, String) {
    match (status.code(), status.signal()) {
        (Some(c), _) => (Some(c), format!("exited with code {c}")),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("?");
            (None, format!("killed by signal {sig} ({name})"))
        }
        _ => (None, "exited".to_string()),
    }
}

fn current(sink: &Arc<Mutex<EventSink>>) -> EventSink {
    lock(sink).clone()
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &str {
        "process"
    }

    async fn prepare(&self, app: &PrepareApp, log: &PrepareLog) -> Result<(), RuntimeError> {
        let problems: Vec<String> = app.services.iter().filter_map(unsupported).collect();
        if !problems.is_empty() {
            return Err(RuntimeError::Unsupported(problems.join("\n")));
        }
        let onbuild = onbuild_of(app);
        let dest = self.code_dir_for(&app.artifact.digest, &onbuild);
        let archive = app.artifact.clone();
        let version = app.version.clone();
        // With `onbuild`: unpacked beside, built there, then renamed into place, so a
        // code dir that exists is always a finished one.
        let building = dest.with_extension("building");
        let (d, b) = (dest.clone(), building.clone());
        let built = !onbuild.is_empty();
        let fresh = blocking(move || {
            if d.is_dir() {
                return Ok(false);
            }
            if !archive.path.is_file() {
                return Err(RuntimeError::Prepare(format!(
                    "the code of {version} ({}) is no longer stored: deploy it again",
                    archive.digest
                )));
            }
            let target = if built { &b } else { &d };
            if target.exists() {
                std::fs::remove_dir_all(target)
                    .map_err(|e| RuntimeError::io("removing a half-built code dir", e))?;
            }
            artifact::unpack(&archive.path, target)
                .map_err(|e| RuntimeError::Prepare(format!("unpacking the app's code: {e}")))?;
            Ok(true)
        })
        .await?;
        if fresh && !onbuild.is_empty() {
            if let Err(e) = self
                .run_onbuild(&building, &onbuild, &app.build_secrets, log)
                .await
            {
                let b = building.clone();
                let _ = blocking(move || {
                    let _ = std::fs::remove_dir_all(&b);
                    Ok(())
                })
                .await;
                return Err(e);
            }
            let (b, d) = (building, dest);
            blocking(move || {
                std::fs::rename(&b, &d)
                    .map_err(|e| RuntimeError::io("publishing the built code", e))
            })
            .await?;
        }
        let with_ports: Vec<(String, Vec<DeclaredPort>)> = app
            .services
            .iter()
            .map(|s| (s.service.clone(), declared_ports(s, s.port)))
            .filter(|(_, ports)| !ports.is_empty())
            .collect();
        self.ensure_net(&app.app, &with_ports).await
    }

    async fn start(&self, spec: &SandboxSpec, events: EventSink) -> Result<Started, RuntimeError> {
        if let Some(why) = unsupported(&spec.spec) {
            return Err(RuntimeError::Unsupported(why));
        }
        let CodeSource::Artifact(digest) = &spec.spec.source else {
            return Err(RuntimeError::Unsupported("image".into()));
        };
        let code = self.code_dir_for(digest, &spec.spec.onbuild);
        let disks: Vec<(String, PathBuf, Option<(u32, u32)>)> = spec
            .spec
            .disks
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    self.disk_dir(&spec.app, &d.name),
                    d.owner_ids(),
                )
            })
            .collect();
        let (c, version) = (code.clone(), spec.version.clone());
        let owner = self.inner.user.clone();
        blocking(move || {
            if !c.is_dir() {
                return Err(RuntimeError::Start(format!(
                    "the code of version {version} is not unpacked (was it prepared?)"
                )));
            }
            for (name, dir, ids) in disks {
                let io = |e| RuntimeError::io(format!("creating disk `{name}`"), e);
                if let Some(app_dir) = dir.parent() {
                    let open = if owner.is_some() { 0o711 } else { 0o755 };
                    user::ensure_dir(app_dir, open, None).map_err(io)?;
                }
                // Only when new: an existing disk keeps the rights it was given.
                let fresh = !dir.exists();
                user::ensure_dir(&dir, 0o700, owner.as_ref()).map_err(io)?;
                // `owner = "uid[:gid]"`: the mount path is theirs (readable by them).
                if let (true, Some((uid, gid))) = (fresh, ids) {
                    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| {
                        let _ = std::fs::remove_dir(&dir);
                        RuntimeError::Start(format!(
                            "giving disk `{name}` to {uid}:{gid} (its `owner`): {e}; the server must run as root for that"
                        ))
                    })?;
                }
            }
            Ok(())
        })
        .await?;
        let services = lock(&self.inner.apps)
            .get(&spec.app)
            .map(|n| n.services.clone())
            .unwrap_or_default();
        // `args` without a command: the program and its arguments, each word quoted.
        let from_args = (spec.spec.command.is_none() && !spec.spec.args.is_empty())
            .then(|| command::quoted(&spec.spec.args));
        let command = from_args
            .as_deref()
            .or(spec.spec.command.as_deref())
            .unwrap_or_default();
        let port = match spec.spec.port {
            Some(_) => Some(self.free_port()?),
            None => None,
        };
        // Each extra named port gets its own too, as `$PORT_<NAME>`.
        let mut extra: BTreeMap<String, u16> = BTreeMap::new();
        for p in &spec.spec.extra_ports {
            match self.free_port() {
                Ok(free) => {
                    extra.insert(p.name.clone(), free);
                }
                Err(e) => {
                    self.release_ports(port, &extra);
                    return Err(e);
                }
            }
        }
        // `--bind 0.0.0.0:8000` for a service on 8000: each instance listens on its own.
        let declared: Vec<(u16, String)> = spec
            .spec
            .port
            .map(|p| (p, "PORT".to_string()))
            .into_iter()
            .chain(spec.spec.extra_ports.iter().map(|p| (p.port, p.var())))
            .collect();
        let command =
            listen_on_port_vars(command, &declared).map_or(Cow::Borrowed(command), Cow::Owned);
        let command = command::shell_line(&addresses::rewrite(&command, &spec.app, &services));
        let mut env = self.env_for(spec, port);
        for p in &spec.spec.extra_ports {
            if let Some(free) = extra.get(&p.name) {
                env.push((p.var(), free.to_string()));
            }
        }
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&command)
            .current_dir(&code)
            .env_clear()
            .envs(env.clone())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(u) = &self.inner.user {
            // std drops the root's supplementary groups when it switches the uid.
            cmd.uid(u.uid).gid(u.gid);
        }
        let release_port = |rt: &Self| rt.release_ports(port, &extra);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                release_port(self);
                return Err(RuntimeError::Start(format!("running /bin/sh: {e}")));
            }
        };
        let pgid = child.id().unwrap_or_default();
        let records = self.inner.records.clone();
        let sandbox = spec.id.to_string();
        let recorded = blocking(move || {
            let record = Record {
                sandbox,
                pid: pgid,
                start_time: records::start_time(pgid).unwrap_or_default(),
            };
            records
                .write(&record)
                .map_err(|e| RuntimeError::io("recording the process", e))
        })
        .await;
        if let Err(e) = recorded {
            let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
            let _ = child.wait().await;
            release_port(self);
            return Err(e);
        }

        let sink = Arc::new(Mutex::new(events));
        let (exited_tx, exited_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = watch::channel(false);
        let stop_by = Arc::new(Mutex::new(None));
        lock(&self.inner.running).insert(
            spec.id.clone(),
            Proc {
                pgid,
                stop_by: stop_by.clone(),
                port,
                labels: spec.labels.clone(),
                sink: sink.clone(),
                exited: exited_rx.clone(),
                ready: ready_rx.clone(),
                cwd: code.clone(),
                env,
            },
        );

        let mut readers = Vec::new();
        for (pipe, stream) in [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                Stream::Stdout,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                Stream::Stderr,
            ),
        ] {
            if let Some(pipe) = pipe {
                let sink = sink.clone();
                readers.push(tokio::spawn(async move {
                    miren_core::runtime::read_lines(pipe, stream, |l| current(&sink).log(l)).await;
                }));
            }
        }

        // Readiness.
        let address = port.map(|p| SocketAddr::from((self.inner.host, p)));
        // A UDP port accepts no connection: ready once it runs.
        let probed = address.filter(|_| !spec.spec.udp_only());
        {
            let sink = sink.clone();
            let mut exited = exited_rx.clone();
            tokio::spawn(async move {
                if let Some(addr) = probed {
                    let mut delay = PROBE_FIRST;
                    loop {
                        if *exited.borrow() {
                            return;
                        }
                        if tokio::net::TcpStream::connect(addr).await.is_ok() {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = exited.changed() => return,
                        }
                        delay = (delay * 2).min(PROBE_MAX);
                    }
                }
                let _ = ready_tx.send(true);
                current(&sink).ready(address.map(Address::from));
            });
        }

        // Exit.
        {
            let me = self.clone();
            let id = spec.id.clone();
            let ports = extra.clone();
            tokio::spawn(async move {
                let status = child.wait().await;
                // The sandbox is gone once every process of it is: what the leader
                // left in its group or outside it (a daemon) goes too. A stop already
                // signalled them and set the deadline; a leader that exited on its own
                // ends the sandbox, and what it left is told to go now.
                let sandbox = members::Sandbox {
                    pgid: Some(pgid),
                    id: id.to_string(),
                };
                if lock(&stop_by).is_none() {
                    let s = sandbox.clone();
                    let _ = blocking(move || {
                        members::signal(&members::of(&s), Signal::SIGTERM);
                        Ok(())
                    })
                    .await;
                }
                let leftover_by = tokio::time::Instant::now() + LEFTOVER_GRACE;
                let mut killed_at = None;
                let mut delay = PROBE_FIRST;
                loop {
                    let s = sandbox.clone();
                    let left = blocking(move || Ok(members::of(&s)))
                        .await
                        .unwrap_or_default();
                    if left.is_empty() {
                        break;
                    }
                    let now = tokio::time::Instant::now();
                    let deadline = lock(&stop_by).unwrap_or(leftover_by);
                    match killed_at {
                        None if now >= deadline => {
                            members::signal(&left, Signal::SIGKILL);
                            killed_at = Some(now);
                        }
                        Some(t) if now.duration_since(t) > Duration::from_secs(10) => {
                            tracing::warn!(
                                "{id}: {} process(es) survive SIGKILL: {left:?}",
                                left.len()
                            );
                            break;
                        }
                        Some(_) => members::signal(&left, Signal::SIGKILL),
                        None => {}
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(PROBE_MAX);
                }
                for r in readers {
                    let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
                }
                lock(&me.inner.running).remove(&id);
                me.release_ports(port, &ports);
                let (records, sandbox) = (me.inner.records.clone(), id.to_string());
                let _ = blocking(move || {
                    records.remove(&sandbox);
                    Ok(())
                })
                .await;
                let (code, reason) = match status {
                    Ok(s) => exit_reason(s),
                    Err(e) => (None, format!("lost track of the process: {e}")),
                };
                current(&sink).exited(code, reason);
                let _ = exited_tx.send(true);
            });
        }

        Ok(Started {
            address: address.map(Address::from),
            ports: extra,
            runtime: None,
            node: None,
        })
    }

    /// SIGTERM to the sandbox's process group and to its processes outside it; it is
    /// stopped when every one of them is gone; whatever is left when `grace` ends is
    /// SIGKILLed.
    async fn stop(&self, sandbox: &SandboxId, grace: Duration) -> Result<(), RuntimeError> {
        let (pgid, mut exited, stop_by) = {
            let running = lock(&self.inner.running);
            let p = running
                .get(sandbox)
                .ok_or_else(|| RuntimeError::NotFound(sandbox.clone()))?;
            (p.pgid, p.exited.clone(), p.stop_by.clone())
        };
        *lock(&stop_by) = Some(tokio::time::Instant::now() + grace);
        let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGTERM);
        let members = members::Sandbox {
            pgid: Some(pgid),
            id: sandbox.to_string(),
        };
        let _ = blocking(move || {
            members::signal(&members::strays(&members), Signal::SIGTERM);
            Ok(())
        })
        .await;
        if tokio::time::timeout(grace, exited.wait_for(|e| *e))
            .await
            .is_err()
        {
            // The leader is still there (the exit watcher SIGKILLs what outlives a
            // leader that is gone).
            let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
            let members = members::Sandbox {
                pgid: Some(pgid),
                id: sandbox.to_string(),
            };
            let _ = blocking(move || {
                members::signal(&members::strays(&members), Signal::SIGKILL);
                Ok(())
            })
            .await;
            let _ = tokio::time::timeout(Duration::from_secs(15), exited.wait_for(|e| *e)).await;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        Ok(lock(&self.inner.running)
            .iter()
            .map(|(id, p)| Listed {
                id: id.clone(),
                runtime: None,
                address: p
                    .port
                    .map(|port| SocketAddr::from((self.inner.host, port)).into()),
                labels: p.labels.clone(),
            })
            .collect())
    }

    async fn usage(&self) -> Result<Vec<miren_core::runtime::Usage>, RuntimeError> {
        let sandboxes: Vec<members::Sandbox> = lock(&self.inner.running)
            .iter()
            .map(|(id, p)| members::Sandbox {
                pgid: Some(p.pgid),
                id: id.to_string(),
            })
            .collect();
        let ids: Vec<SandboxId> = lock(&self.inner.running).keys().cloned().collect();
        blocking(move || {
            let pids = members::of_each(&sandboxes);
            Ok(ids
                .into_iter()
                .map(|id| {
                    let (cpu_seconds, memory_bytes) = pids
                        .get(id.as_str())
                        .map_or((0.0, 0), |p| members::usage_of(p));
                    miren_core::runtime::Usage {
                        sandbox: id,
                        cpu_seconds,
                        memory_bytes,
                    }
                })
                .collect())
        })
        .await
    }

    async fn adopt(&self, sandbox: &SandboxId, events: EventSink) -> Result<(), RuntimeError> {
        let running = lock(&self.inner.running);
        let p = running
            .get(sandbox)
            .ok_or_else(|| RuntimeError::NotFound(sandbox.clone()))?;
        *lock(&p.sink) = events.clone();
        if *p.ready.borrow() {
            events.ready(
                p.port
                    .map(|port| SocketAddr::from((self.inner.host, port)).into()),
            );
        }
        Ok(())
    }

    async fn export_dir(
        &self,
        app: &PrepareApp,
        dir: &str,
        dest: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        let code = self.code_dir_for(&app.artifact.digest, &onbuild_of(app));
        let from = export::source(&code, dir)?;
        let (dir, dest) = (dir.to_string(), dest.to_path_buf());
        blocking(move || {
            if !from.is_dir() {
                return Err(RuntimeError::Prepare(format!(
                    "`static.dir = \"{dir}\"`: the built app has no such directory"
                )));
            }
            let skipped = export::copy_tree(&from, &dest, &code)
                .map_err(|e| RuntimeError::io(format!("copying {dir}"), e))?;
            if skipped > 0 {
                tracing::warn!(
                    "{dir}: {skipped} link(s) pointing out of the app were not published"
                );
            }
            Ok(())
        })
        .await
    }

    async fn collect(&self, retained: &Retained) -> Result<(), RuntimeError> {
        // Destroyed addons' disks: their data goes with them.
        let retired: Vec<PathBuf> = retained
            .retired_disks
            .iter()
            .map(|(app, disk)| self.disk_dir(app, disk))
            .collect();
        blocking(move || {
            for dir in retired {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => tracing::info!("deleted the retired disk {}", dir.display()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(RuntimeError::io(format!("deleting {}", dir.display()), e));
                    }
                }
            }
            Ok(())
        })
        .await?;
        let code = self.inner.dir.join("code");
        let keep: HashSet<String> = retained
            .digests
            .iter()
            .map(|d| d.hex().to_string())
            .collect();
        blocking(move || {
            let entries = match std::fs::read_dir(&code) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                other => {
                    other.map_err(|e| RuntimeError::io(format!("listing {}", code.display()), e))?
                }
            };
            let mut removed = 0;
            for entry in entries {
                let entry = entry.map_err(|e| RuntimeError::io("listing unpacked code", e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // `<hex>` or, built with onbuild, `<hex>-<commands>`.
                let hex = name.split('-').next().unwrap_or_default();
                if keep.contains(hex) || name.starts_with('.') {
                    continue;
                }
                let path = entry.path();
                std::fs::remove_dir_all(&path)
                    .map_err(|e| RuntimeError::io(format!("removing {}", path.display()), e))?;
                removed += 1;
            }
            if removed > 0 {
                tracing::info!(
                    "removed the unpacked code of {removed} artifact(s) no version keeps"
                );
            }
            Ok(())
        })
        .await
    }

    async fn exec(&self, sandbox: &SandboxId, a: Attach) -> Result<i32, RuntimeError> {
        let place = {
            let running = lock(&self.inner.running);
            let p = running
                .get(sandbox)
                .ok_or_else(|| RuntimeError::NotFound(sandbox.clone()))?;
            attach::Place {
                cwd: p.cwd.clone(),
                env: p.env.clone(),
            }
        };
        attach::run(place, self.inner.user.as_ref(), &self.inner.attached, a).await
    }

    async fn run_attached(&self, spec: &SandboxSpec, mut a: Attach) -> Result<i32, RuntimeError> {
        if let CodeSource::Image(image) = &spec.spec.source {
            return Err(RuntimeError::Unsupported(format!(
                "service `{}` runs the image `{image}`, which the process runtime can't run",
                spec.spec.service
            )));
        }
        let CodeSource::Artifact(digest) = &spec.spec.source else {
            return Err(RuntimeError::Unsupported("no code to run".into()));
        };
        let cwd = self.code_dir_for(digest, &spec.spec.onbuild);
        let dir = cwd.clone();
        let version = spec.version.clone();
        blocking(move || {
            if dir.is_dir() {
                Ok(())
            } else {
                Err(RuntimeError::Start(format!(
                    "the code of version {version} is not unpacked (was it prepared?)"
                )))
            }
        })
        .await?;
        let services = lock(&self.inner.apps)
            .get(&spec.app)
            .map(|n| n.services.clone())
            .unwrap_or_default();
        a.argv = a
            .argv
            .iter()
            .map(|w| addresses::rewrite(w, &spec.app, &services))
            .collect();
        let place = attach::Place {
            cwd,
            env: self.env_for(spec, None),
        };
        attach::run(place, self.inner.user.as_ref(), &self.inner.attached, a).await
    }

    async fn remove_app(&self, app: &str, purge_disks: bool) -> Result<(), RuntimeError> {
        lock(&self.inner.apps).remove(app);
        lock(&self.inner.addresses)
            .remove_app(app)
            .map_err(|e| RuntimeError::io("forgetting the app's addresses", e))?;
        if purge_disks {
            let dir = self.inner.dir.join("disks").join(app);
            blocking(move || match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(RuntimeError::io(format!("removing {}", dir.display()), e))
                }
                _ => Ok(()),
            })
            .await?;
        }
        Ok(())
    }
}

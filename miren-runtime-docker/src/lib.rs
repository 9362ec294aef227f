//! miren-runtime-docker: Miren's container runtime (SPEC §8 "docker"). Each sandbox is
//! a container of a Docker Engine, reached through bollard (API version negotiated:
//! Docker 20.10 / API 1.41 and newer).
//!
//! - Each app gets a bridge network (`miren-<app>`): its containers reach each other
//!   and the host, no other app's containers. With service DNS on (see
//!   [`DockerRuntime::connect`]) each network's gateway address is also the
//!   containers' resolver, searching `app.miren`, so `postgres` and
//!   `postgres.app.miren` are the app's own database.
//! - The app's image is built by the Engine from the version's code with its
//!   Dockerfile (`miren/<app>:<version>`); `image` services use the Engine's image,
//!   pulled when missing. Build and pull output goes to the deploy's progress.
//! - A container runs with an init as PID 1 (so SIGTERM stops it at once), never
//!   privileged, never on the host's network; `PORT` is the service's port (declared,
//!   else the image's first exposed TCP port); readiness is a TCP connect to the
//!   container's own address after it started, never a published port.
//! - Disks are named volumes (`miren-<app>-<disk>`), kept across deploys, restarts and
//!   app deletion; only a purge removes them.
//! - Output streams into the sandbox's sink line by line with its stream; an exit is
//!   reported with its code and what it means; a stop is the image's stop signal
//!   (SIGTERM by default), the grace period, then SIGKILL.
//! - Containers carry the standard `dev.miren.*` labels and their server's: a
//!   restarted server lists its own, adopts the running ones it knows and removes
//!   the rest, and never touches another server's.
//!
//! # Layout
//! - `lib.rs`: the [`Runtime`] implementation.
//! - `engine`: connecting to the Engine; what its errors mean.
//! - `names`: what the platform's objects are called in the Engine.
//! - `network`: the per-app bridge networks.
//! - `image`: building the app's image, pulling `image` services', exposed ports.
//! - `container`: a container's configuration, and watching one that runs.
//! - `attach`: commands attached to a caller: an exec, a one-off container.
//! - `export`: `[static]`'s directory copied out of the built image.
//! - `secrets`: builds with `[[build.secrets]]`, through the Engine's BuildKit.
//! - `usage`: containers' CPU and memory from the Engine's stats.
//!
//! ```no_run
//! use std::sync::Arc;
//! use miren_core::runtime::Runtime;
//! use miren_runtime_docker::DockerRuntime;
//!
//! # async fn demo() -> Result<(), miren_core::runtime::RuntimeError> {
//! let socket = miren_runtime_docker::socket_path();
//! let options = miren_runtime_docker::DockerOptions {
//!     owner: "my-server".into(),
//!     dns: None,
//!     dir: "/var/lib/miren/docker".into(),
//! };
//! let runtime: Arc<dyn Runtime> = Arc::new(DockerRuntime::connect(&socket, options).await?);
//! # Ok(()) }
//! ```

mod attach;
mod container;
mod engine;
mod export;
mod image;
mod names;
mod network;
mod secrets;
mod usage;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListVolumesOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use miren_core::model::{Address, CodeSource, PoolSpec, SandboxId, VersionId};
use miren_core::runtime::{
    Attach, EventSink, LABEL_APP, LABEL_SANDBOX, Listed, PrepareApp, PrepareLog, Retained, Runtime,
    RuntimeError, SandboxSpec, Started,
};

use container::{LABEL_PORT, Plan, SharedSink};
pub use engine::{DEFAULT_SOCKET, socket_path};
use engine::{failed, is_conflict, is_not_found};
pub use network::AppNetwork;

/// Called with each app network the runtime makes or finds, to serve DNS on its
/// gateway address; an error says why it can't.
pub type ServiceDns = Arc<dyn Fn(&AppNetwork) -> Result<(), String> + Send + Sync>;

/// How the runtime is set up.
#[derive(Clone)]
pub struct DockerOptions {
    /// Which server this is, as its containers are labelled: one server lists, adopts
    /// and removes only its own (e.g. derived from its data dir).
    pub owner: String,
    /// Service DNS on every app network's gateway, made the containers' resolver
    /// (searching `app.miren`); without, containers resolve as the Engine sets up.
    pub dns: Option<ServiceDns>,
    /// Where the runtime keeps files of its own (each app's resolver file).
    pub dir: PathBuf,
}

/// The Docker runtime. Clones share state.
#[derive(Clone)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    /// Each app's network, once made or found.
    networks: Mutex<HashMap<String, AppNetwork>>,
    /// Each image's first exposed TCP port, once inspected.
    exposed: Mutex<HashMap<String, Option<u16>>>,
    /// The sinks of the containers being watched, by sandbox; re-pointed on adoption.
    watched: Mutex<HashMap<SandboxId, Watched>>,
    /// Service DNS on the app networks' gateways, when the composer provides it.
    dns: Option<ServiceDns>,
    /// This server's containers carry it.
    owner: String,
    /// Each app's `/etc/resolv.conf` for its containers is kept here.
    dir: PathBuf,
}

struct Watched {
    sink: SharedSink,
    /// Where it listens, once ready.
    ready: Arc<Mutex<Option<Address>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DockerRuntime {
    /// Connects to the Engine at `socket` (see [`socket_path`]); fails with a message
    /// that says how to start one when none answers.
    pub async fn connect(socket: &Path, options: DockerOptions) -> Result<Self, RuntimeError> {
        let docker = engine::connect(socket).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                docker,
                networks: Mutex::new(HashMap::new()),
                exposed: Mutex::new(HashMap::new()),
                watched: Mutex::new(HashMap::new()),
                dns: options.dns,
                owner: options.owner,
                dir: options.dir,
            }),
        })
    }

    /// The Engine connection, for tests and tools.
    pub fn engine(&self) -> &Docker {
        &self.inner.docker
    }

    /// The app's network, made when missing, with service DNS on its gateway.
    pub async fn network(&self, app: &str) -> Result<AppNetwork, RuntimeError> {
        if let Some(n) = lock(&self.inner.networks).get(app) {
            return Ok(n.clone());
        }
        let n = network::ensure(&self.inner.docker, app).await?;
        if let Some(dns) = &self.inner.dns {
            dns(&n).map_err(|why| {
                RuntimeError::Prepare(format!(
                    "service DNS can't answer the containers of `{app}` on {}: {why}",
                    n.gateway
                ))
            })?;
            let file = self.resolv_conf(app);
            let text = container::resolv_conf(n.gateway);
            let write = async {
                tokio::fs::create_dir_all(self.inner.dir.join("resolv")).await?;
                tokio::fs::write(&file, text).await
            };
            write
                .await
                .map_err(|e| RuntimeError::io(format!("writing {}", file.display()), e))?;
        }
        lock(&self.inner.networks).insert(app.to_string(), n.clone());
        Ok(n)
    }

    /// The app's containers' `/etc/resolv.conf` (written when service DNS is on).
    fn resolv_conf(&self, app: &str) -> PathBuf {
        self.inner.dir.join("resolv").join(format!("{app}.conf"))
    }

    /// The image a sandbox runs.
    fn image_of(spec: &SandboxSpec) -> String {
        Self::image_for(&spec.app, &spec.version, &spec.spec)
    }

    fn image_for(app: &str, version: &VersionId, spec: &PoolSpec) -> String {
        match &spec.source {
            CodeSource::Image(i) => i.clone(),
            CodeSource::Artifact(_) => names::built_image(app, version),
        }
    }

    /// Where a service of a prepared version listens in its containers: its declared
    /// port, else its image's first exposed TCP port.
    pub async fn listening_port(
        &self,
        app: &str,
        version: &VersionId,
        spec: &PoolSpec,
    ) -> Result<Option<u16>, RuntimeError> {
        let image = Self::image_for(app, version, spec);
        self.port_of(spec, &image).await
    }

    /// Where a service listens: its declared port; else, for an `image` service, its
    /// image's first exposed one (the app's own code listens where app.toml says: an
    /// EXPOSE its base image inherited is not the app's).
    async fn port_of(&self, spec: &PoolSpec, image: &str) -> Result<Option<u16>, RuntimeError> {
        if spec.port.is_some() || matches!(spec.source, CodeSource::Artifact(_)) {
            return Ok(spec.port);
        }
        if let Some(p) = lock(&self.inner.exposed).get(image) {
            return Ok(*p);
        }
        let p = image::exposed_port(&self.inner.docker, image).await?;
        lock(&self.inner.exposed).insert(image.to_string(), p);
        Ok(p)
    }

    /// Makes the disk's volume unless it exists; whether it was made now.
    async fn ensure_volume(
        &self,
        app: &str,
        disk: &miren_core::config::Disk,
    ) -> Result<bool, RuntimeError> {
        let name = names::volume(app, &disk.name);
        match self.inner.docker.inspect_volume(&name).await {
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(failed(format!("looking for the volume {name}"), e)),
        }
        let request = VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(HashMap::from([
                (LABEL_APP.to_string(), app.to_string()),
                (names::LABEL_DISK.to_string(), disk.name.clone()),
                (names::LABEL_SIZE_GB.to_string(), disk.size_gb.to_string()),
            ])),
            ..Default::default()
        };
        self.inner
            .docker
            .create_volume(request)
            .await
            .map(|_| true)
            .map_err(|e| failed(format!("creating the volume {name}"), e))
    }

    /// A disk's `owner = "uid[:gid]"`: the volume's files, on this machine, given to
    /// it (the server must be root, beside its Engine).
    async fn own_volume(&self, volume: &str, uid: u32, gid: u32) -> Result<(), RuntimeError> {
        let v = self
            .inner
            .docker
            .inspect_volume(volume)
            .await
            .map_err(|e| failed(format!("looking at the volume {volume}"), e))?;
        let root = std::path::PathBuf::from(&v.mountpoint);
        let what = format!("giving the volume {volume} to {uid}:{gid} (its disk's `owner`)");
        miren_core::runtime::blocking(move || {
            fn own(p: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
                std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
                if p.is_dir() && !p.is_symlink() {
                    for e in std::fs::read_dir(p)? {
                        own(&e?.path(), uid, gid)?;
                    }
                }
                Ok(())
            }
            own(&root, uid, gid).map_err(|e| {
                RuntimeError::Start(format!(
                    "{what}: {e} (at {}; the server must run as root on the Engine's machine)",
                    root.display()
                ))
            })
        })
        .await
    }

    /// Starts watching a container; `since`: its output from then (Unix seconds, 0:
    /// all of it).
    fn watch(
        &self,
        id: &SandboxId,
        address: Option<Address>,
        udp: bool,
        since: i32,
        events: EventSink,
    ) {
        let sink = Arc::new(Mutex::new(events));
        let ready = Arc::new(Mutex::new(None));
        lock(&self.inner.watched).insert(
            id.clone(),
            Watched {
                sink: sink.clone(),
                ready: ready.clone(),
            },
        );
        let (me, gone_id) = (self.clone(), id.clone());
        container::watch(
            self.inner.docker.clone(),
            id.to_string(),
            address,
            udp,
            since,
            sink,
            ready,
            move || {
                lock(&me.inner.watched).remove(&gone_id);
            },
        );
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &str {
        "docker"
    }

    async fn prepare(&self, app: &PrepareApp, log: &PrepareLog) -> Result<(), RuntimeError> {
        self.network(&app.app).await?;
        let docker = &self.inner.docker;
        // Each image once, the app's own built when a service runs its code.
        let mut images: Vec<&str> = Vec::new();
        let mut build = false;
        for s in &app.services {
            match &s.source {
                CodeSource::Image(i) if !images.contains(&i.as_str()) => images.push(i),
                CodeSource::Image(_) => {}
                CodeSource::Artifact(_) => build = true,
            }
        }
        for i in images {
            image::ensure(docker, i, log).await?;
        }
        if build {
            let (archive, dockerfile) = (app.artifact.path.clone(), app.dockerfile.clone());
            let has = miren_core::runtime::blocking(move || {
                miren_core::artifact::contains_file(&archive, &dockerfile)
                    .map_err(|e| RuntimeError::Prepare(format!("reading the app's code: {e}")))
            })
            .await?;
            if !has {
                let code: Vec<&str> = app
                    .services
                    .iter()
                    .filter(|s| matches!(s.source, CodeSource::Artifact(_)))
                    .map(|s| s.service.as_str())
                    .collect();
                return Err(RuntimeError::Unsupported(format!(
                    "{} the app's code in a container, and the app has no `{}` to build its                      image from: add one, or run the server with `--runtime auto` to run                      code without one as local processes",
                    match code.as_slice() {
                        [one] => format!("service `{one}` runs"),
                        more => format!("services `{}` run", more.join("`, `")),
                    },
                    app.dockerfile
                )));
            }
            let tag = names::built_image(&app.app, &app.version);
            let owner = &self.inner.owner;
            if app.build_secrets.is_empty() {
                image::build(
                    docker,
                    &app.app,
                    owner,
                    &app.artifact,
                    &app.dockerfile,
                    &tag,
                    log,
                )
                .await?;
            } else {
                secrets::build(
                    docker,
                    &app.app,
                    owner,
                    &app.artifact,
                    &app.dockerfile,
                    &tag,
                    &app.build_secrets,
                    log,
                )
                .await?;
            }
            if let Some(s) = app
                .services
                .iter()
                .find(|s| matches!(s.source, CodeSource::Artifact(_)) && !s.onbuild.is_empty())
            {
                image::onbuild(docker, &app.app, owner, &tag, &s.onbuild, log).await?;
            }
        }
        Ok(())
    }

    async fn start(&self, spec: &SandboxSpec, events: EventSink) -> Result<Started, RuntimeError> {
        let docker = &self.inner.docker;
        let net = self.network(&spec.app).await?;
        let image = Self::image_of(spec);
        let port = self.port_of(&spec.spec, &image).await?;
        // Volumes made now, whose `owner` is a uid: given to it once the container
        // exists (the Engine fills a new volume from the image when it creates one).
        let mut to_own = Vec::new();
        for d in &spec.spec.disks {
            let fresh = self.ensure_volume(&spec.app, d).await?;
            if let (true, Some(ids)) = (fresh, d.owner_ids()) {
                to_own.push((names::volume(&spec.app, &d.name), ids));
            }
        }
        let resolv = self.resolv_conf(&spec.app);
        let plan = Plan {
            spec,
            image: &image,
            port,
            network: &net.name,
            resolv_conf: self.inner.dns.as_ref().map(|_| resolv.as_path()),
            owner: &self.inner.owner,
        };
        let name = spec.id.to_string();
        let create = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        docker
            .create_container(Some(create), container::config(&plan))
            .await
            .map_err(|e| {
                RuntimeError::Start(format!(
                    "creating the container of {}: {}",
                    spec.spec.service,
                    engine::message(&e)
                ))
            })?;
        for (volume, (uid, gid)) in &to_own {
            if let Err(e) = self.own_volume(volume, *uid, *gid).await {
                let remove = RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                };
                let _ = docker.remove_container(&name, Some(remove)).await;
                return Err(e);
            }
        }
        if let Err(e) = docker.start_container(&name, None).await {
            let remove = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            let _ = docker.remove_container(&name, Some(remove)).await;
            return Err(RuntimeError::Start(format!(
                "starting the container of {}: {}",
                spec.spec.service,
                engine::message(&e)
            )));
        }
        // A container that exited at once has no address any more: it is watched all
        // the same, for its output and its exit code.
        let address = docker
            .inspect_container(&name, None)
            .await
            .ok()
            .and_then(|i| container::address_on(&i, &net.name))
            .map(|ip| Address { ip, port });
        self.watch(&spec.id, address, spec.spec.udp_only(), 0, events);
        Ok(Started {
            address,
            ports: spec.spec.declared_extra_ports(),
            runtime: None,
            node: None,
        })
    }

    async fn export_dir(
        &self,
        app: &PrepareApp,
        dir: &str,
        dest: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        let image = names::built_image(&app.app, &app.version);
        export::export(
            &self.inner.docker,
            &self.inner.owner,
            &app.app,
            &image,
            dir,
            dest,
        )
        .await
    }

    async fn exec(&self, sandbox: &SandboxId, a: Attach) -> Result<i32, RuntimeError> {
        attach::exec(&self.inner.docker, sandbox, a).await
    }

    async fn run_attached(&self, spec: &SandboxSpec, a: Attach) -> Result<i32, RuntimeError> {
        let net = self.network(&spec.app).await?;
        let image = Self::image_of(spec);
        let resolv = self.resolv_conf(&spec.app);
        let plan = Plan {
            spec,
            image: &image,
            port: None,
            network: &net.name,
            resolv_conf: self.inner.dns.as_ref().map(|_| resolv.as_path()),
            owner: &self.inner.owner,
        };
        let config = container::config(&plan);
        attach::one_off(&self.inner.docker, spec.id.as_str(), config, a).await
    }

    async fn stop(&self, sandbox: &SandboxId, grace: Duration) -> Result<(), RuntimeError> {
        let secs = grace.as_secs_f64().ceil() as i32;
        let options = StopContainerOptions {
            t: Some(secs),
            signal: None,
        };
        let docker = &self.inner.docker;
        match docker.stop_container(sandbox.as_str(), Some(options)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Err(RuntimeError::NotFound(sandbox.clone())),
            // Not running any more: stopped already.
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(failed(format!("stopping {sandbox}"), e)),
        }
        // A container nobody watches (a leftover of an earlier server) is removed here;
        // a watched one by its watcher, after it reported the exit.
        if !lock(&self.inner.watched).contains_key(sandbox) {
            let remove = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match docker
                .remove_container(sandbox.as_str(), Some(remove))
                .await
            {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(failed(format!("removing {sandbox}"), e)),
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let docker = &self.inner.docker;
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![
                    LABEL_SANDBOX.to_string(),
                    format!("{}={}", names::LABEL_OWNER, self.inner.owner),
                ],
            )])),
            ..Default::default()
        };
        let containers = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| failed("listing containers", e))?;
        let mut out = Vec::new();
        for c in containers {
            let labels: std::collections::BTreeMap<String, String> =
                c.labels.clone().unwrap_or_default().into_iter().collect();
            let Some(id) = labels
                .get(LABEL_SANDBOX)
                .and_then(|s| s.parse::<SandboxId>().ok())
            else {
                continue;
            };
            let running = c.state.is_some_and(|s| s.to_string() == "running");
            if !running {
                // Exited while no server watched it: nothing to adopt.
                let remove = RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                };
                let _ = docker.remove_container(id.as_str(), Some(remove)).await;
                continue;
            }
            let app = labels.get(LABEL_APP).cloned().unwrap_or_default();
            let ip = c
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|n| n.get(&names::network(&app)).cloned())
                .and_then(|e| e.ip_address)
                .and_then(|ip| ip.parse::<IpAddr>().ok());
            let port = labels.get(LABEL_PORT).and_then(|p| p.parse().ok());
            out.push(Listed {
                id,
                address: ip.map(|ip| Address { ip, port }),
                runtime: None,
                labels,
            });
        }
        Ok(out)
    }

    async fn usage(&self) -> Result<Vec<miren_core::runtime::Usage>, RuntimeError> {
        usage::of_running(&self.inner.docker, &self.inner.owner).await
    }

    async fn adopt(&self, sandbox: &SandboxId, events: EventSink) -> Result<(), RuntimeError> {
        // Watched by this very server (a controller restarted on the same runtime).
        let known = lock(&self.inner.watched)
            .get(sandbox)
            .map(|w| (w.sink.clone(), *lock(&w.ready)));
        if let Some((sink, ready)) = known {
            *lock(&sink) = events.clone();
            if let Some(a) = ready {
                events.ready(Some(a));
            }
            return Ok(());
        }
        let docker = &self.inner.docker;
        let inspect = match docker.inspect_container(sandbox.as_str(), None).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => return Err(RuntimeError::NotFound(sandbox.clone())),
            Err(e) => return Err(failed(format!("inspecting {sandbox}"), e)),
        };
        let running = inspect
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        let labels = inspect
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let app = labels.get(LABEL_APP).cloned().unwrap_or_default();
        let net = names::network(&app);
        let ip = container::address_on(&inspect, &net);
        let (true, Some(ip)) = (running, ip) else {
            return Err(RuntimeError::NotFound(sandbox.clone()));
        };
        if let Ok(n) = self.network(&app).await {
            lock(&self.inner.networks).insert(app.clone(), n);
        }
        let port = labels.get(LABEL_PORT).and_then(|p| p.parse().ok());
        // Only what it writes from now on: the log store has the rest.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i32)
            .unwrap_or(0);
        let udp = labels.contains_key(container::LABEL_UDP);
        self.watch(sandbox, Some(Address { ip, port }), udp, now, events);
        Ok(())
    }

    async fn collect(&self, retained: &Retained) -> Result<(), RuntimeError> {
        let n =
            image::remove_built_except(&self.inner.docker, &self.inner.owner, &retained.versions)
                .await?;
        if n > 0 {
            tracing::info!("removed {n} app image(s) no version keeps");
        }
        // Destroyed addons' disks: their data goes with them.
        for (app, disk) in &retained.retired_disks {
            let name = names::volume(app, disk);
            match self
                .inner
                .docker
                .remove_volume(
                    &name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
            {
                Ok(()) => tracing::info!("deleted the retired volume {name}"),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(failed(format!("removing the volume {name}"), e)),
            }
        }
        Ok(())
    }

    async fn remove_app(&self, app: &str, purge_disks: bool) -> Result<(), RuntimeError> {
        let docker = &self.inner.docker;
        lock(&self.inner.networks).remove(app);
        network::remove(docker, app).await?;
        if purge_disks {
            let options = ListVolumesOptions {
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("{LABEL_APP}={app}")],
                )])),
            };
            let volumes = docker
                .list_volumes(Some(options))
                .await
                .map_err(|e| failed("listing volumes", e))?;
            for v in volumes.volumes.unwrap_or_default() {
                match docker
                    .remove_volume(
                        &v.name,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await
                {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(failed(format!("removing the volume {}", v.name), e)),
                }
            }
        }
        Ok(())
    }
}

//! `miren server`: the store, the process runtime, the controller, the log store, the
//! control API and the HTTP proxy, composed in one process (SPEC §10).

pub mod access_log;
mod api;
mod cluster;
pub mod dashboard;
mod data_dir;
mod decisions;
pub mod logs;
mod node_api;
pub mod rollout;
mod runtimes;
pub mod status;
pub mod traffic;
mod usage;
mod visible;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use miren_core::artifact::ArtifactStore;
use miren_core::controller::{Controller, ControllerConfig};
use miren_core::runtime::Runtime;
use miren_core::store::{RedbStore, Store, StoreError};
use miren_runtime_process::ProcessRuntime;
use tokio::task::JoinHandle;

use logs::{LogStore, Retention};
pub use visible::Visibility;

/// Which runtime runs sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// Child processes on this machine.
    Process,
    /// Docker containers.
    Docker,
    /// Docker when a Docker Engine answers, else process.
    Auto,
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where state lives.
    pub data_dir: PathBuf,
    /// The runtime.
    pub runtime: RuntimeChoice,
    /// The proxy's address.
    pub http_addr: SocketAddr,
    /// The control API's Unix socket.
    pub api_socket: PathBuf,
    /// The control API on TCP too (bearer token required).
    pub api_addr: Option<SocketAddr>,
    /// Where service DNS listens, if it does.
    pub dns_addr: Option<SocketAddr>,
    /// Where it forwards sandboxes' out-of-zone questions.
    pub dns_upstream: Option<SocketAddr>,
    /// The user process sandboxes run as, when not the server's.
    pub sandbox_user: Option<String>,
    /// Clients whose `X-Forwarded-For` the proxy keeps.
    pub trust_forwarded_from: Vec<miren_proxy::Cidr>,
    /// The cluster state in etcd (`None`: the embedded store in the data dir).
    pub cluster: Option<ClusterOptions>,
    /// Where other nodes reach this one's process instances (`None`: 127.0.0.1).
    pub node_addr: Option<std::net::IpAddr>,
    /// Where `/metrics` is served without a token, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the web dashboard is served.
    pub ui: UiListen,
}

/// Where the web dashboard listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiListen {
    /// Nowhere.
    Off,
    /// At the default address: when it is taken, the server goes on without (and says
    /// so).
    Default(SocketAddr),
    /// Where the operator asked: when it is taken, the server does not start.
    At(SocketAddr),
}

/// Where a cluster's state lives and who this node is.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The etcd members and the key prefix.
    pub store: miren_store_etcd::EtcdAddress,
    /// This node's name.
    pub node: String,
}

/// A running server.
pub struct Server {
    /// The controller.
    pub controller: Controller,
    /// Sandbox output.
    pub logs: LogStore,
    /// Uploaded code.
    pub artifacts: ArtifactStore,
    /// Where the proxy listens.
    pub http_addr: SocketAddr,
    /// Where the TCP API listens, if it does.
    pub api_addr: Option<SocketAddr>,
    /// Where service DNS listens, if it does.
    pub dns_addr: Option<SocketAddr>,
    /// Where `/metrics` is served without a token, if it is.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the dashboard is served, if it is.
    pub ui_addr: Option<SocketAddr>,
    /// Waits until the proxy and DNS show the store as it is.
    pub visible: Visibility,
    /// Its stable service addresses close at shutdown.
    process: ProcessRuntime,
    /// Services' ports published on the node (`node_port`).
    pub node_ports: miren_runtime_process::NodePorts,
    socket: PathBuf,
    tasks: Vec<JoinHandle<()>>,
    /// Where the proxy and DNS run.
    data_plane: DataPlane,
    /// This node's lead of the cluster, on the etcd store.
    leadership: Option<miren_store_etcd::Leadership>,
    /// Its record and heartbeat in the cluster.
    _presence: Option<cluster::Presence>,
    /// In a cluster, what runs the sandboxes placed on this node.
    agent: Option<miren_core::placement::Agent>,
}

/// The threads the proxy and DNS run on, apart from the API's and the controller's.
struct DataPlane(Option<tokio::runtime::Runtime>);

impl DataPlane {
    fn start() -> anyhow::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("miren-data")
            .enable_all()
            .build()
            .context("starting the proxy's threads")?;
        Ok(Self(Some(rt)))
    }

    fn spawn<F>(&self, f: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.0 {
            Some(rt) => rt.spawn(f),
            None => tokio::spawn(f),
        }
    }
}

impl Drop for DataPlane {
    /// Its tasks stop with it; never blocks (a runtime dropped on async threads
    /// would).
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// `$MIREN_DATA_DIR`, else `$XDG_DATA_HOME/miren`, else `~/.local/share/miren`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MIREN_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("miren");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/miren")
}

/// The API socket of a data dir.
pub fn socket_in(data_dir: &Path) -> PathBuf {
    data_dir.join("miren.sock")
}

/// A node: what runs on every machine of a cluster (or the one machine) whether it
/// leads or not — the store, the proxy and DNS following it, the local runtimes, the
/// code and the logs, and in a cluster its presence and agent, running the sandboxes
/// placed on it. [`Node::serve`] adds what the leading node runs.
pub struct Node {
    opts: Options,
    store: Arc<dyn Store>,
    etcd: Option<Arc<miren_store_etcd::EtcdStore>>,
    secret_key: miren_core::secret::SecretKey,
    data_plane: DataPlane,
    static_root: PathBuf,
    proxy_controller: miren_proxy::ControllerSlot,
    proxy_table: miren_proxy::table::Shared,
    visible: Visibility,
    tasks: Vec<JoinHandle<()>>,
    dns_stats: Option<Arc<miren_dns::stats::QueryStats>>,
    http_addr: SocketAddr,
    dns_addr: Option<SocketAddr>,
    presence: Option<cluster::Presence>,
    process: ProcessRuntime,
    /// This machine's runtime (the auto runtime's processes and containers).
    runtime: Arc<dyn Runtime>,
    artifacts: ArtifactStore,
    logs: LogStore,
    agent: Option<miren_core::placement::Agent>,
}

impl Server {
    /// Opens everything and starts serving (in a cluster, once this node leads).
    /// Fails clearly when another server holds the data dir or an address is taken.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        let node = Node::start(opts).await?;
        let leadership = node.lead().await;
        node.serve(leadership).await
    }
}

impl Node {
    /// Opens what every node runs: on the embedded store, everything but the
    /// controller and the API; in a cluster, also this node's record, heartbeat and
    /// agent, so it runs what is placed on it while it stands by.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        let data = &opts.data_dir;
        let sandbox_user = match &opts.sandbox_user {
            None => None,
            Some(name) => Some(
                miren_runtime_process::SandboxUser::lookup(name)
                    .with_context(|| format!("--sandbox-user {name}"))?,
            ),
        };
        // Sandboxes running as their own user walk through it to their code.
        let mode = if sandbox_user.is_some() { 0o711 } else { 0o700 };
        data_dir::prepare(data, mode)?;
        let key_path = data.join("secrets.key");
        let secret_key = load_or_create_secret_key(&key_path)?;
        let (store, etcd): (Arc<dyn Store>, _) = match &opts.cluster {
            None => (open_embedded_store(data)?, None),
            Some(cluster) => {
                let etcd = Arc::new(cluster::connect(cluster, &secret_key, &key_path).await?);
                (etcd.clone(), Some(etcd))
            }
        };

        // The proxy and DNS answer on threads of their own: no deploy, API call or
        // controller work can hold them up. They follow the store from the start: a
        // node standing by serves the cluster's apps too.
        let data_plane = DataPlane::start()?;

        // Service DNS before the runtimes: the Docker runtime serves it on every app
        // network's gateway, for the containers there.
        let wants_docker = opts.runtime != RuntimeChoice::Process;
        let mut dns = None;
        if opts.dns_addr.is_some() || wants_docker {
            let addr = opts
                .dns_addr
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            let config = miren_dns::DnsConfig {
                upstream: opts.dns_upstream,
                ..miren_dns::DnsConfig::default()
            };
            let st = store.clone();
            let d = data_plane
                .spawn(async move { miren_dns::Dns::bind(addr, st, config).await })
                .await?
                .with_context(|| {
                    format!("listening on {addr} for DNS (UDP and TCP; --dns-addr changes it)")
                })?;
            dns = Some(d);
        }
        let dns_addr = opts
            .dns_addr
            .and_then(|_| dns.as_ref().map(miren_dns::Dns::local_addr));
        // `[static]` files, exported per version, served by the proxy.
        let static_root = data.join("static");
        let proxy_config = miren_proxy::ProxyConfig {
            trust_forwarded_from: opts.trust_forwarded_from.clone(),
            static_root: Some(static_root.clone()),
            // A thread per core, each keeping its connections: a fifth less CPU per
            // request than sharing the data plane's threads (benches/README.md).
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 16)),
            ..miren_proxy::ProxyConfig::default()
        };
        let (http, st) = (opts.http_addr, store.clone());
        let proxy = data_plane
            .spawn(async move { miren_proxy::Proxy::bind(http, st, None, proxy_config).await })
            .await?
            .with_context(|| {
                format!(
                    "listening on {} for HTTP (--http-addr changes it)",
                    opts.http_addr
                )
            })?;
        let http_addr = proxy.local_addr();
        let proxy_controller = proxy.controller_slot();
        let proxy_table = proxy.table();
        let mut visible = Visibility::default();
        visible.add("the proxy", proxy.progress());
        let mut tasks = vec![data_plane.spawn(proxy.run())];
        let dns_listeners = dns.as_ref().map(miren_dns::Dns::listeners);
        let dns_stats = dns.as_ref().map(miren_dns::Dns::stats);
        if let Some(dns) = dns {
            visible.add("service DNS", dns.progress());
            tasks.push(data_plane.spawn(dns.run()));
        }

        let process_options = miren_runtime_process::ProcessOptions {
            user: sandbox_user,
            node_addr: opts.node_addr,
        };
        let process =
            ProcessRuntime::with_options(data.join("process"), store.clone(), process_options)
                .await
                .context("starting the process runtime")?;
        let docker = match wants_docker {
            false => None,
            true => Some(connect_docker(data, dns_listeners).await),
        };
        let runtime: Arc<dyn Runtime> = match (opts.runtime, docker) {
            (RuntimeChoice::Docker, Some(Err(e))) => bail!("--runtime docker: {e}"),
            (RuntimeChoice::Docker, Some(Ok(d))) => Arc::new(d),
            (RuntimeChoice::Auto, Some(d)) => {
                let auto = runtimes::Auto::new(process.clone(), d);
                if auto.has_docker() {
                    tracing::info!(
                        "runtime: auto (Docker containers for images and Dockerfile apps, processes for the rest)"
                    );
                } else {
                    tracing::info!(
                        "runtime: auto without Docker (no Engine answers): processes; image services fail to deploy"
                    );
                }
                Arc::new(auto)
            }
            _ => Arc::new(process.clone()),
        };
        for private in ["artifacts", "logs"] {
            data_dir::private_dir(&data.join(private))?;
        }
        let artifacts =
            ArtifactStore::open(data.join("artifacts")).context("opening the artifact store")?;
        let logs = LogStore::open(data.join("logs"), Retention::default())
            .context("opening the log store")?;
        // In a cluster: this node's record and heartbeat, with where it serves the
        // lines of what it runs (to the leader, behind a token sealed in the record).
        let mut tasks = tasks;
        let presence = match (&opts.cluster, &etcd) {
            (Some(cluster), Some(etcd)) => {
                let ip = opts
                    .node_addr
                    .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
                let (served, task) = node_api::serve(ip, logs.clone(), runtime.clone()).await?;
                tasks.push(task);
                let sealed = secret_key
                    .seal(served.token.as_bytes())
                    .context("sealing this node's log token")?;
                let logs_at = (served.addr.to_string(), sealed);
                Some(cluster::announce(etcd, cluster, http_addr, dns_addr, logs_at).await?)
            }
            _ => None,
        };
        // In a cluster, this node runs what the leader places on it from now on.
        let agent = match &opts.cluster {
            Some(c) => Some(
                miren_core::placement::Agent::start(miren_core::placement::AgentParts {
                    store: store.clone(),
                    key: Arc::new(secret_key.clone()),
                    node: c.node.clone(),
                    local: runtime.clone(),
                    artifacts: artifacts.clone(),
                    logs: logs.sink(),
                })
                .await
                .context("starting this node's agent")?,
            ),
            None => None,
        };
        Ok(Node {
            store,
            etcd,
            secret_key,
            data_plane,
            static_root,
            proxy_controller,
            proxy_table,
            visible,
            tasks,
            dns_stats,
            http_addr,
            dns_addr,
            presence,
            process,
            runtime,
            artifacts,
            logs,
            agent,
            opts,
        })
    }

    /// Waits until this node leads its cluster (at once on the embedded store: `None`).
    pub async fn lead(&self) -> Option<miren_store_etcd::Leadership> {
        match (&self.opts.cluster, &self.etcd) {
            (Some(cluster), Some(etcd)) => {
                Some(cluster::lead(etcd, cluster, self.http_addr, self.dns_addr).await)
            }
            _ => None,
        }
    }

    /// Leaves the cluster without having led: the sandboxes placed here stop (the
    /// leader places them elsewhere).
    pub async fn leave(self) {
        if let Some(agent) = &self.agent {
            agent.stop_all(Duration::from_secs(10)).await;
        }
        self.process.close().await;
        self.logs.flush().await;
    }

    /// Runs what the leading node runs: the controller (in a cluster, placing
    /// sandboxes on every node) and the API.
    pub async fn serve(
        self,
        leadership: Option<miren_store_etcd::Leadership>,
    ) -> anyhow::Result<Server> {
        let Node {
            opts,
            store,
            etcd,
            secret_key,
            data_plane,
            static_root,
            proxy_controller,
            proxy_table,
            visible,
            mut tasks,
            dns_stats,
            http_addr,
            dns_addr,
            mut presence,
            process,
            runtime: local,
            artifacts,
            logs,
            agent,
        } = self;
        let data = &opts.data_dir;
        if let (Some(p), Some(etcd)) = (&mut presence, &etcd) {
            p.leading(etcd).await?;
            cluster::fetch_code(store.as_ref(), &artifacts).await?;
        }
        // In a cluster: its key (placements, peers' tokens), and the controller's
        // sandboxes run where they are placed.
        let cluster_key = opts.cluster.is_some().then(|| Arc::new(secret_key.clone()));
        let runtime: Arc<dyn Runtime> = match (&opts.cluster, &cluster_key) {
            (Some(c), Some(key)) => Arc::new(miren_core::placement::PlacementRuntime::start(
                store.clone(),
                key.clone(),
                &c.node,
                local.clone(),
            )),
            _ => local.clone(),
        };
        let mut cfg = ControllerConfig::new(artifacts.clone());
        cfg.logs = logs.sink();
        cfg.secret_key = Some(secret_key.clone());
        cfg.code_in_store = opts.cluster.is_some();
        cfg.static_root = Some(static_root);
        let controller = Controller::start(store.clone(), runtime.clone(), cfg)
            .await
            .context("starting the controller")?;
        // The proxy asks it for capacity and reports demand from now on.
        let _ = proxy_controller.set(controller.clone());

        // Node ports on the address the proxy takes public traffic on.
        let node_ports = process
            .node_ports(http_addr.ip(), store.clone())
            .await
            .context("publishing node ports")?;

        // The dashboard's address is in the login links the API hands out.
        let ui_listener = match opts.ui {
            UiListen::Off => None,
            UiListen::At(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(
                || format!("listening on {addr} for the dashboard (--ui-addr changes it, --ui-addr off turns it off)"),
            )?),
            UiListen::Default(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(
                        "no dashboard: {addr} is not free ({e}); --ui-addr serves it elsewhere"
                    );
                    None
                }
            },
        };
        let dashboard = match &ui_listener {
            Some(l) => Some(dashboard::Dashboard {
                sessions: Arc::default(),
                addr: l.local_addr()?,
            }),
            None => None,
        };
        // Sandboxes' usage: this node's, and in a cluster every live node's.
        let usage = usage::Measure::new(
            local.clone(),
            opts.cluster
                .as_ref()
                .zip(cluster_key.clone())
                .map(|(c, key)| (store.clone(), key, c.node.clone())),
        );
        let state = Arc::new(api::State {
            controller: controller.clone(),
            logs: logs.clone(),
            artifacts: artifacts.clone(),
            visible: visible.clone(),
            token: None,
            cluster_store: opts.cluster.is_some().then(|| store.clone()),
            node: match &opts.cluster {
                Some(c) => c.node.clone(),
                None => nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "this server".into()),
            },
            http: http_addr.to_string(),
            traffic: traffic::Traffic::start(proxy_table.clone(), usage.clone()),
            usage,
            decisions: decisions::Decisions::start(&controller),
            cluster_key,
            dns_stats,
            dashboard: dashboard.clone(),
            proxy_table,
        });

        // The control API on the Unix socket (0600: the file mode is the auth).
        let socket = opts.api_socket.clone();
        if let Ok(meta) = std::fs::symlink_metadata(&socket) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                bail!(
                    "--api-socket {} exists and is not a socket: choose another path (nothing was removed)",
                    socket.display()
                );
            }
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                bail!("a miren server already answers on {}", socket.display());
            }
            std::fs::remove_file(&socket)
                .with_context(|| format!("removing the stale socket {}", socket.display()))?;
        }
        let listener = tokio::net::UnixListener::bind(&socket)
            .with_context(|| format!("listening on {}", socket.display()))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        let app = api::router(state.clone());
        tasks.push(tokio::spawn(api::serve_unix(listener, app)));

        // On TCP only with the bearer token.
        let mut api_addr = None;
        if let Some(addr) = opts.api_addr {
            let token = load_or_create_token(&data.join("api-token"))?;
            let state = Arc::new(api::State {
                token: Some(token),
                ..api::State::clone(&state)
            });
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("listening on {addr} for the API (--api-addr changes it)")
            })?;
            api_addr = Some(listener.local_addr()?);
            let app = api::router(state);
            tasks.push(tokio::spawn(api::serve_tcp(listener, app)));
        }

        // `/metrics` without a token, where asked.
        let mut metrics_addr = None;
        if let Some(addr) = opts.metrics_addr {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("listening on {addr} for metrics (--metrics-addr changes it)")
            })?;
            metrics_addr = Some(listener.local_addr()?);
            let app = api::metrics_router(state.clone());
            tasks.push(tokio::spawn(api::serve_tcp(listener, app)));
        }

        // The dashboard, over the API without its token: the session is the key.
        let mut ui_addr = None;
        if let (Some(listener), Some(d)) = (ui_listener, dashboard) {
            ui_addr = Some(d.addr);
            let api = api::router(Arc::new(api::State {
                token: None,
                ..api::State::clone(&state)
            }));
            let app = dashboard::router(api, d.sessions);
            tasks.push(tokio::spawn(api::serve_tcp(listener, app)));
        }

        Ok(Server {
            metrics_addr,
            ui_addr,
            controller,
            logs,
            artifacts,
            http_addr,
            api_addr,
            dns_addr,
            visible,
            process,
            node_ports,
            socket,
            tasks,
            data_plane,
            leadership,
            _presence: presence,
            agent,
        })
    }
}

impl Server {
    /// Resolves, saying why, when this node no longer leads its cluster (then it must
    /// stop at once: another node runs the controller); never on the embedded store.
    pub async fn lost_leadership(&mut self) -> String {
        match &mut self.leadership {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
    }

    /// Stops every sandbox (with its grace period), then everything else. A cluster's
    /// leader stops deciding and stops only the sandboxes on its own node: the others
    /// run on, for the node that leads next to adopt.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let result = match &self.agent {
            Some(agent) => {
                let stepped = self.controller.step_down().await;
                agent.stop_all(Duration::from_secs(10)).await;
                stepped
            }
            None => self.controller.shutdown().await,
        };
        for t in &self.tasks {
            t.abort();
        }
        drop(self.data_plane);
        self.node_ports.close().await;
        self.process.close().await;
        self.logs.flush().await;
        let _ = std::fs::remove_file(&self.socket);
        result.context("stopping sandboxes")
    }
}

/// The embedded store in the data dir (one server per data dir).
fn open_embedded_store(data: &Path) -> anyhow::Result<Arc<dyn Store>> {
    match RedbStore::open(&data.join("state.redb")) {
        Ok(s) => {
            data_dir::private_file(&data.join("state.redb"))?;
            Ok(Arc::new(s))
        }
        Err(StoreError::Locked { .. }) => bail!(
            "another miren server is already using {} (its API: {})",
            data.display(),
            socket_in(data).display()
        ),
        Err(e) => Err(e).context("opening the state store"),
    }
}

/// The Docker runtime on this machine's Engine, its containers labelled as this data
/// dir's server's, with service DNS (when it runs) on each app network's gateway.
async fn connect_docker(
    data: &Path,
    dns: Option<miren_dns::Listeners>,
) -> Result<miren_runtime_docker::DockerRuntime, miren_core::runtime::RuntimeError> {
    let owner = data.canonicalize().unwrap_or_else(|_| data.to_path_buf());
    // FNV-1a of the data dir: stable across restarts, distinct per server.
    let owner = owner
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let dns = dns.map(|l| {
        Arc::new(move |n: &miren_runtime_docker::AppNetwork| {
            let subnet = miren_dns::AppSubnet {
                app: n.app.clone(),
                addr: n.subnet.0,
                prefix: n.subnet.1,
            };
            l.listen(SocketAddr::new(n.gateway, 53), Some(subnet))
                .map(|_| ())
                .map_err(|e| e.to_string())
        }) as miren_runtime_docker::ServiceDns
    });
    let options = miren_runtime_docker::DockerOptions {
        owner: format!("{owner:016x}"),
        dns,
        dir: data.join("docker"),
    };
    miren_runtime_docker::DockerRuntime::connect(&miren_runtime_docker::socket_path(), options)
        .await
}

/// The API token: 32 random bytes as hex, created on first start, mode 0600. One
/// found readable by others is made private again, with a warning to replace it.
/// The key of the server's secret store: made once, kept beside the data (mode
/// 0600). Lost, every stored secret is lost with it.
fn load_or_create_secret_key(path: &Path) -> anyhow::Result<miren_core::secret::SecretKey> {
    use std::io::Write;
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                anyhow::anyhow!(
                    "{} is not a secret store key (32 bytes); without its own key no stored secret can be read: restore it from a backup",
                    path.display()
                )
            })?;
            data_dir::private_file(path)?;
            Ok(miren_core::secret::SecretKey::from_bytes(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = miren_core::secret::SecretKey::generate();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("writing {}", path.display()))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            Ok(miren_core::secret::SecretKey::from_bytes(&bytes))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// 32 random bytes in hex: tokens, login codes, session ids.
pub fn random_hex() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    if let Ok(t) = std::fs::read_to_string(path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            if data_dir::private_file(path)? {
                tracing::warn!(
                    "{} was readable by other users: it is mode 0600 now; if they may have read it, delete it and restart to get a new token",
                    path.display()
                );
            }
            return Ok(t);
        }
    }
    let token = random_hex().context("reading /dev/urandom for the API token")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    use std::io::Write;
    f.write_all(token.as_bytes())?;
    Ok(token)
}

use std::os::unix::fs::OpenOptionsExt;

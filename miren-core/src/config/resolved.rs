//! The resolved config: what the controller consumes. Every default is filled in and
//! env is merged, so nothing downstream needs to know app.toml's rules.

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::app_config::{
    AppConfig, ConcurrencyConfig, DiskProvider, Mode, PortType, TaskConfig, Trigger,
};
use super::{defaults, duration};

/// An app, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedApp {
    /// The app's name.
    pub name: String,
    /// The file has no `name`: it is the app directory's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred_name: bool,
    /// Services in file order (an implied `web` when the file has none).
    pub services: IndexMap<String, ResolvedService>,
    /// The Dockerfile, relative to the app directory.
    pub dockerfile: String,
    /// Whether the app has a web service to route to (`web = false`: none is
    /// implied).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub web: bool,
    /// Tasks in file order.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tasks: IndexMap<String, ResolvedTask>,
    /// The app-wide `[[env]]`, for tasks that run with no service's env.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// Commands run in the built code after the build (`build.onbuild`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub onbuild: Vec<String>,
    /// CLI shortcuts (`[aliases]`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub aliases: IndexMap<String, String>,
    /// Patterns added back into the upload (`include`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Env keys marked `sensitive` anywhere in the file: secrets, wherever they are.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub sensitive_env: std::collections::BTreeSet<String>,
    /// Addons declared in the file (`[addons.<name>]`), in file order.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub addons: IndexMap<String, DeclaredAddon>,
    /// Files the proxy serves itself (`[static]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_files: Option<StaticFiles>,
    /// Secrets given to the build only (`[[build.secrets]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_secrets: Vec<BuildSecretRef>,
}

/// A `[[build.secrets]]`, resolved: which secret, and where the build finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSecretRef {
    /// Its id: `RUN --mount=type=secret,id=<id>` in a Dockerfile.
    pub id: String,
    /// Its backend (`cluster`: this server's store).
    pub backend: String,
    /// The secret (`path` or `path@version`).
    pub reference: String,
    /// For `onbuild` commands: the variable that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// For `onbuild` commands: the file (`~/…`) that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// `[static]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticFiles {
    /// The directory of the built app (`/app/…`) whose files are served.
    pub dir: String,
    /// The page, relative to `dir`, the proxy's own errors for the app answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_page: Option<String>,
}

/// An addon as app.toml declares it, defaults filled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredAddon {
    /// Its variant (the addon's default when not written).
    pub variant: String,
    /// The version asked for; `None`: the addon's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The services it attaches to; empty: every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

impl ResolvedApp {
    /// Itself as it may be shown: `sensitive` values replaced.
    pub fn redacted(mut self, shown: &str) -> Self {
        let keys = self.sensitive_env.clone();
        let hide = |env: &mut IndexMap<String, String>| {
            for k in &keys {
                if let Some(v) = env.get_mut(k) {
                    *v = shown.to_string();
                }
            }
        };
        hide(&mut self.env);
        for s in self.services.values_mut() {
            hide(&mut s.env);
        }
        for t in self.tasks.values_mut() {
            hide(&mut t.env);
        }
        self
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A task, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedTask {
    /// Run by `/bin/sh -c`.
    pub command: String,
    /// When it runs.
    pub trigger: Trigger,
    /// When a scheduled task runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// How long a run may take; `None`: no limit.
    #[serde(default, with = "duration::serde_opt")]
    pub timeout: Option<Duration>,
    /// Runs again after a failure, this many times.
    pub retries: u32,
    /// Runs at once, at most.
    pub max_concurrent: u32,
    /// Its own env, over its service's.
    pub env: IndexMap<String, String>,
    /// Whose code, image and env; `None`: the app's built code, no service's env.
    pub service: Option<String>,
}

/// When a scheduled task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// At each multiple of it since midnight UTC.
    Every(#[serde(with = "duration::serde_str")] Duration),
    /// A systemd calendar event, UTC.
    Calendar(String),
}

impl Schedule {
    /// The first time it comes round strictly after `after_ms` (Unix milliseconds);
    /// `None` when it never does again.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match self {
            Schedule::Every(d) => {
                let step = u64::try_from(d.as_millis()).ok().filter(|s| *s > 0)?;
                Some((after_ms / step + 1) * step)
            }
            Schedule::Calendar(expr) => {
                let cal = super::calendar::parse(expr).ok()?;
                let secs = cal.next_after(i64::try_from(after_ms / 1000).ok()?)?;
                u64::try_from(secs).ok().map(|s| s * 1000)
            }
        }
    }
}

/// A service, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedService {
    /// Run by `/bin/sh -c`; `None` runs the image's own entrypoint/cmd.
    pub command: Option<String>,
    /// Exec-form arguments for the image's entrypoint (the program and its arguments
    /// on the process runtime).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// A container image; `None` means the app's own built image.
    pub image: Option<String>,
    /// The port it listens on; `None` for services that take no connections (or,
    /// on Docker, whatever the image exposes).
    pub port: Option<u16>,
    /// The port's DNS name (`_<name>._<proto>`), when not the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// What the port speaks, when not HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_type: Option<PortType>,
    /// Where the node publishes that port too (`node_port` of `ports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
    /// Its other ports (`ports` beyond the one `PORT` names), in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ports: Vec<NamedPort>,
    /// App env, then the service's own on top. The platform's variables (`PORT`,
    /// `MIREN_*`) are added per sandbox by the runtime.
    pub env: IndexMap<String, String>,
    /// How many instances run.
    pub concurrency: Concurrency,
    /// Persistent disks.
    pub disks: Vec<Disk>,
    /// How long an instance may take to be ready.
    #[serde(default = "port_timeout", with = "duration::serde_str")]
    pub port_timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    #[serde(default = "shutdown_timeout", with = "duration::serde_str")]
    pub shutdown_timeout: Duration,
    /// Its HTTP health check, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Env keys a deploy needs a value for (`required = true`), with their
    /// `description`s.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub required_env: IndexMap<String, Option<String>>,
    /// The addon whose server this service is (see [`super::addons`]); `None` for
    /// the app's own services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<String>,
    /// Env keys whose value is a secret of a backend (`backend` + `ref`): key →
    /// (backend, reference).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secret_refs: IndexMap<String, (String, String)>,
}

/// One more port of a service: reached as `_<name>._<tcp|udp>` in DNS, and on the
/// process runtime listened on at `$PORT_<NAME>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NamedPort {
    /// Its name (SRV `_<name>`).
    pub name: String,
    /// The port the service listens on.
    pub port: u16,
    /// What it speaks.
    #[serde(rename = "type")]
    pub kind: PortType,
    /// Where the node publishes it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

impl NamedPort {
    /// The variable an instance finds its port of this name in (`PORT_<NAME>`).
    pub fn var(&self) -> String {
        super::names::port_var(&self.name)
    }
}

fn port_timeout() -> Duration {
    defaults::PORT_TIMEOUT
}

fn shutdown_timeout() -> Duration {
    defaults::SHUTDOWN_TIMEOUT
}

/// A service's health check, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Health {
    /// GET this on the instance's port.
    pub path: String,
    /// How often, once it runs.
    #[serde(with = "duration::serde_str")]
    pub interval: Duration,
    /// How long one check may take.
    #[serde(with = "duration::serde_str")]
    pub timeout: Duration,
    /// Failures in a row that make it unhealthy.
    pub unhealthy_after: u32,
}

/// How many instances of a service run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Concurrency {
    /// Scaled on in-flight requests (SPEC §5).
    Auto(AutoScale),
    /// A set number.
    Fixed {
        /// How many.
        num_instances: u32,
    },
}

impl Concurrency {
    /// The mode.
    pub fn mode(&self) -> Mode {
        match self {
            Concurrency::Auto(_) => Mode::Auto,
            Concurrency::Fixed { .. } => Mode::Fixed,
        }
    }
}

/// Auto mode's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoScale {
    /// In-flight requests one instance takes.
    pub requests_per_instance: u32,
    /// How long demand must stay lower before instances stop.
    #[serde(with = "duration::serde_str")]
    pub scale_down_delay: Duration,
    /// Never fewer.
    pub min_instances: u32,
    /// Never more.
    pub max_instances: u32,
}

/// A disk, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Unique within the app.
    pub name: String,
    /// Where it is mounted.
    pub mount_path: String,
    /// Size in GB (0: a local disk, which has none).
    pub size_gb: u32,
    /// Mounted read-only.
    pub read_only: bool,
    /// Who provides it.
    #[serde(default, skip_serializing_if = "is_miren")]
    pub provider: DiskProvider,
    /// The filesystem asked for, recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<String>,
    /// Who owns the mount path when it is made: `None` the user the service runs as,
    /// `keep`, or `uid[:gid]` (`owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

fn is_miren(p: &DiskProvider) -> bool {
    *p == DiskProvider::Miren
}

impl Disk {
    /// The `uid[:gid]` its mount path is given, when `owner` names one (the gid
    /// defaults to the uid).
    pub fn owner_ids(&self) -> Option<(u32, u32)> {
        let o = self.owner.as_deref()?;
        let (u, g) = o.split_once(':').unwrap_or((o, o));
        Some((u.parse().ok()?, g.parse().ok()?))
    }

    /// Mounted by one instance at a time (a platform disk), so old and new instances
    /// take turns; a local disk is shared.
    pub fn exclusive(&self) -> bool {
        self.provider == DiskProvider::Miren
    }
}

/// Fills defaults and merges env. Call it only on a config without errors: values
/// that fail their rules are replaced by defaults here rather than reported.
pub(crate) fn resolve(c: &AppConfig) -> ResolvedApp {
    let web = c.web != Some(false);
    let mut services = IndexMap::with_capacity(c.services.len().max(1));
    // `[static]` opts out of the implied web: a static-only app runs nothing.
    if c.services.is_empty() && web && c.static_site.is_none() {
        services.insert(
            defaults::WEB.to_string(),
            service(c, defaults::WEB, &Default::default()),
        );
    }
    for (name, svc) in &c.services {
        services.insert(name.clone(), service(c, name, svc));
    }
    ResolvedApp {
        name: c.name.clone(),
        inferred_name: false,
        dockerfile: c
            .build
            .as_ref()
            .and_then(|b| b.dockerfile.clone())
            .unwrap_or_else(|| defaults::DOCKERFILE.to_string()),
        tasks: c
            .tasks
            .iter()
            .map(|(name, t)| (name.clone(), task(t, &services)))
            .collect(),
        web,
        services,
        env: c
            .env
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect(),
        include: c.include.clone(),
        aliases: c.aliases.clone(),
        onbuild: c
            .build
            .as_ref()
            .map(|b| b.onbuild.clone())
            .unwrap_or_default(),
        build_secrets: c
            .build
            .iter()
            .flat_map(|b| &b.secrets)
            .map(|s| BuildSecretRef {
                id: s.id.clone(),
                backend: s.backend.clone().unwrap_or_else(|| "cluster".into()),
                reference: s.reference.clone().unwrap_or_default(),
                env: s.env.clone(),
                file: s.file.clone(),
            })
            .collect(),
        static_files: c.static_site.as_ref().map(|st| {
            let dir = st.dir.trim_end_matches('/');
            StaticFiles {
                dir: if dir.is_empty() { "/" } else { dir }.to_string(),
                error_page: st.error_page.clone(),
            }
        }),
        addons: c
            .addons
            .iter()
            .map(|(name, a)| {
                let variant = a.variant.clone().unwrap_or_else(|| {
                    super::addons::addon(name)
                        .map_or("", |d| d.default_variant())
                        .to_string()
                });
                (
                    name.clone(),
                    DeclaredAddon {
                        variant,
                        version: a.version.clone(),
                        services: a.services.clone(),
                    },
                )
            })
            .collect(),
        sensitive_env: c
            .env
            .iter()
            .chain(c.services.values().flat_map(|s| &s.env))
            .chain(c.tasks.values().flat_map(|t| &t.env))
            .filter(|v| v.sensitive == Some(true) || v.backend.is_some())
            .map(|v| v.key.clone())
            .collect(),
    }
}

fn task(t: &TaskConfig, services: &IndexMap<String, ResolvedService>) -> ResolvedTask {
    let trigger = t.trigger.unwrap_or(Trigger::Manual);
    let schedule = match (&t.every, &t.schedule) {
        (Some(e), _) => duration::parse(e).ok().map(Schedule::Every),
        (None, Some(s)) => Some(Schedule::Calendar(s.clone())),
        (None, None) => None,
    };
    let service = t.service.clone().or_else(|| {
        services
            .contains_key(defaults::WEB)
            .then(|| defaults::WEB.to_string())
    });
    ResolvedTask {
        command: t.command.clone(),
        trigger,
        schedule: schedule.filter(|_| trigger == Trigger::Schedule),
        timeout: match t.timeout.as_deref() {
            Some("0") => None,
            written => Some(time_or(written, defaults::TASK_TIMEOUT)).filter(|d| !d.is_zero()),
        },
        retries: t.retries.unwrap_or(0),
        max_concurrent: t.max_concurrent.unwrap_or(1),
        env: t
            .env
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect(),
        service,
    }
}

fn service(app: &AppConfig, name: &str, s: &super::ServiceConfig) -> ResolvedService {
    let mut env: IndexMap<String, String> = IndexMap::with_capacity(app.env.len() + s.env.len());
    for var in app.env.iter().chain(&s.env) {
        // A secret of a backend has no value here: it is opened when an instance
        // starts (`secret_refs`).
        if var.backend.is_some() && var.reference.is_some() {
            env.shift_remove(&var.key);
        } else {
            env.insert(var.key.clone(), var.value.clone());
        }
    }
    // `ports`: the first HTTP one (else the first) is `PORT`, the rest are extra.
    let primary = s.primary_port();
    let (port_name, port_type) = match primary {
        Some(p) => (Some(p.name.clone()), p.kind),
        None => (s.port_name.clone(), s.port_type),
    };
    ResolvedService {
        command: s.command.clone(),
        args: s.args.clone(),
        image: s.image.clone(),
        port: defaults::declared_port(name, s),
        port_name: port_name.filter(|n| n != name),
        port_type: port_type.filter(|t| *t != PortType::Http),
        node_port: primary.and_then(|p| p.node_port),
        extra_ports: s
            .ports
            .iter()
            .filter(|p| Some(*p) != primary)
            .map(|p| NamedPort {
                name: p.name.clone(),
                port: p.port,
                kind: p.kind.unwrap_or_default(),
                node_port: p.node_port,
            })
            .collect(),
        env,
        concurrency: concurrency(name, s.concurrency.as_ref()),
        disks: s
            .disks
            .iter()
            .map(|d| Disk {
                name: d.name.clone(),
                mount_path: d.mount_path.clone(),
                size_gb: d.size_gb.unwrap_or(0),
                read_only: d.read_only.unwrap_or(false),
                provider: d.provider.unwrap_or_default(),
                filesystem: d.filesystem.clone(),
                owner: d.owner.clone().filter(|o| !o.is_empty()),
            })
            .collect(),
        port_timeout: time_or(s.port_timeout.as_deref(), defaults::PORT_TIMEOUT),
        shutdown_timeout: time_or(
            s.concurrency
                .as_ref()
                .and_then(|c| c.shutdown_timeout.as_deref()),
            defaults::SHUTDOWN_TIMEOUT,
        ),
        required_env: {
            // The service's own entry of a key decides, as its value does.
            let mut req = IndexMap::new();
            for v in app.env.iter().chain(&s.env) {
                if v.required == Some(true) && v.backend.is_none() {
                    req.insert(v.key.clone(), v.description.clone());
                } else {
                    req.shift_remove(&v.key);
                }
            }
            req
        },
        secret_refs: {
            let mut refs = IndexMap::new();
            for v in app.env.iter().chain(&s.env) {
                match (&v.backend, &v.reference) {
                    (Some(b), Some(r)) => {
                        refs.insert(v.key.clone(), (b.clone(), r.clone()));
                    }
                    _ => {
                        refs.shift_remove(&v.key);
                    }
                }
            }
            refs
        },
        health: s.health.as_ref().map(|h| Health {
            path: h.path.clone(),
            interval: time_or(h.interval.as_deref(), defaults::HEALTH_INTERVAL),
            timeout: time_or(h.timeout.as_deref(), defaults::HEALTH_TIMEOUT),
            unhealthy_after: h.unhealthy_after.unwrap_or(defaults::UNHEALTHY_AFTER),
        }),
        addon: None,
    }
}

/// A duration as written, or the default.
fn time_or(written: Option<&str>, default: Duration) -> Duration {
    written
        .and_then(|d| duration::parse(d).ok())
        .unwrap_or(default)
}

fn concurrency(service: &str, c: Option<&ConcurrencyConfig>) -> Concurrency {
    let none = ConcurrencyConfig::default();
    let c = c.unwrap_or(&none);
    match c.mode.unwrap_or_else(|| defaults::mode(service)) {
        Mode::Fixed => Concurrency::Fixed {
            num_instances: c.num_instances.unwrap_or(defaults::NUM_INSTANCES),
        },
        Mode::Auto => Concurrency::Auto(AutoScale {
            requests_per_instance: c
                .requests_per_instance
                .unwrap_or(defaults::REQUESTS_PER_INSTANCE),
            scale_down_delay: c
                .scale_down_delay
                .as_deref()
                .and_then(|d| duration::parse(d).ok())
                .unwrap_or(defaults::SCALE_DOWN_DELAY),
            min_instances: c.min_instances.unwrap_or(defaults::MIN_INSTANCES),
            max_instances: c.max_instances.unwrap_or(defaults::MAX_INSTANCES),
        }),
    }
}

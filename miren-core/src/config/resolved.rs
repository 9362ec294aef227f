//! The resolved config: what the controller consumes. Every default is filled in and
//! env is merged, so nothing downstream needs to know app.toml's rules.

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::app_config::{AppConfig, ConcurrencyConfig, Mode};
use super::{defaults, duration};

/// An app, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedApp {
    /// The app's name.
    pub name: String,
    /// Services in file order (an implied `web` when the file has none).
    pub services: IndexMap<String, ResolvedService>,
    /// The Dockerfile, relative to the app directory.
    pub dockerfile: String,
}

/// A service, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedService {
    /// Run by `/bin/sh -c`; `None` runs the image's own entrypoint/cmd.
    pub command: Option<String>,
    /// A container image; `None` means the app's own built image.
    pub image: Option<String>,
    /// The port it listens on; `None` for services that take no connections (or,
    /// on Docker, whatever the image exposes).
    pub port: Option<u16>,
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
    /// Size in GB.
    pub size_gb: u32,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Fills defaults and merges env. Call it only on a config without errors: values
/// that fail their rules are replaced by defaults here rather than reported.
pub(crate) fn resolve(c: &AppConfig) -> ResolvedApp {
    let mut services = IndexMap::with_capacity(c.services.len().max(1));
    if c.services.is_empty() {
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
        services,
        dockerfile: c
            .build
            .as_ref()
            .and_then(|b| b.dockerfile.clone())
            .unwrap_or_else(|| defaults::DOCKERFILE.to_string()),
    }
}

fn service(app: &AppConfig, name: &str, s: &super::ServiceConfig) -> ResolvedService {
    let mut env: IndexMap<String, String> = IndexMap::with_capacity(app.env.len() + s.env.len());
    for var in app.env.iter().chain(&s.env) {
        env.insert(var.key.clone(), var.value.clone());
    }
    ResolvedService {
        command: s.command.clone(),
        image: s.image.clone(),
        port: s.port.or_else(|| defaults::port(name)),
        env,
        concurrency: concurrency(name, s.concurrency.as_ref()),
        disks: s
            .disks
            .iter()
            .map(|d| Disk {
                name: d.name.clone(),
                mount_path: d.mount_path.clone(),
                size_gb: d.size_gb,
                read_only: d.read_only.unwrap_or(false),
            })
            .collect(),
        port_timeout: time_or(s.port_timeout.as_deref(), defaults::PORT_TIMEOUT),
        shutdown_timeout: time_or(
            s.concurrency
                .as_ref()
                .and_then(|c| c.shutdown_timeout.as_deref()),
            defaults::SHUTDOWN_TIMEOUT,
        ),
        health: s.health.as_ref().map(|h| Health {
            path: h.path.clone(),
            interval: time_or(h.interval.as_deref(), defaults::HEALTH_INTERVAL),
            timeout: time_or(h.timeout.as_deref(), defaults::HEALTH_TIMEOUT),
            unhealthy_after: h.unhealthy_after.unwrap_or(defaults::UNHEALTHY_AFTER),
        }),
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

//! What a pool's sandboxes run, and the hash that decides pool reuse.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::Digest;
use std::time::Duration;

use crate::config::{Disk, Health, NamedPort, ResolvedApp, defaults};

/// What a pool runs: exactly the fields whose change must restart its sandboxes
/// (SPEC §3). Scaling settings are not here: changing them resizes the pool in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// The service.
    pub service: String,
    /// Where the code comes from.
    pub source: CodeSource,
    /// The command; `None` runs the image's own.
    pub command: Option<String>,
    /// Exec-form arguments for the image's entrypoint (`args`), when no command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The service's env, sorted, without the platform's (`PORT`, `MIREN_*`), which
    /// differ per sandbox and version and must not defeat reuse.
    pub env: BTreeMap<String, String>,
    /// The port it listens on.
    pub port: Option<u16>,
    /// The port's DNS name, when not the service's (SRV `_<name>._<proto>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// What the port speaks, when not HTTP (a UDP one is ready when started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_type: Option<crate::config::PortType>,
    /// Where the node publishes that port too (`node_port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
    /// Its other named ports (`ports`), each in DNS as `_<name>._<proto>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ports: Vec<NamedPort>,
    /// Its disks.
    pub disks: Vec<Disk>,
    /// Commands run in the app's built code after the build (`build.onbuild`), for
    /// a service that runs that code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub onbuild: Vec<String>,
    /// Its HTTP health check: readiness waits for it, failing ones are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// How long an instance may take to be ready; `None`: the default (30s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::serde_opt"
    )]
    pub port_timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL; `None`: the server's default (10s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::serde_opt"
    )]
    pub shutdown_timeout: Option<Duration>,
    /// Keys of `env` whose values are secrets: shown as `(secret)` outside the server.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub secret_env: BTreeSet<String>,
    /// Env keys whose values are secrets of the server's store, as references
    /// (`payments/stripe@x1A`, pinned by the deploy): opened only when a sandbox
    /// starts, so no value is in the pool. A new pinned version is a new pool.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_refs: BTreeMap<String, String>,
    /// When `miren app restart` last asked for new instances (a new pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted: Option<u64>,
}

/// The code a pool runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeSource {
    /// The app's own code, by the digest of the uploaded artifact.
    Artifact(Digest),
    /// A container image reference.
    Image(String),
}

/// A pool spec's hash: equal hashes, same sandboxes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpecHash(pub String);

impl fmt::Display for SpecHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PoolSpec {
    /// The spec of `service` in `app`, deployed with the artifact `artifact_digest`.
    /// `None` when the app has no such service.
    pub fn of(app: &ResolvedApp, service: &str, artifact_digest: &Digest) -> Option<Self> {
        let s = app.services.get(service)?;
        Some(Self {
            service: service.to_string(),
            source: match &s.image {
                Some(image) => CodeSource::Image(image.clone()),
                None => CodeSource::Artifact(artifact_digest.clone()),
            },
            command: s.command.clone(),
            args: s.args.clone(),
            env: s
                .env
                .iter()
                .filter(|(k, _)| k.as_str() != "PORT" && !k.starts_with("MIREN_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            port: s.port,
            port_name: s.port_name.clone(),
            port_type: s.port_type,
            node_port: s.node_port,
            extra_ports: s.extra_ports.clone(),
            disks: s.disks.clone(),
            onbuild: match &s.image {
                Some(_) => Vec::new(),
                None => app.onbuild.clone(),
            },
            health: s.health.clone(),
            // Defaults stay unwritten, so pools made before these keys existed are
            // reused by a deploy that doesn't set them.
            port_timeout: (s.port_timeout != defaults::PORT_TIMEOUT).then_some(s.port_timeout),
            shutdown_timeout: (s.shutdown_timeout != defaults::SHUTDOWN_TIMEOUT)
                .then_some(s.shutdown_timeout),
            // `sensitive` in the file: a secret like one set with `env set --secret`.
            secret_env: s
                .env
                .keys()
                .filter(|k| app.sensitive_env.contains(*k))
                .cloned()
                .collect(),
            secret_refs: s
                .secret_refs
                .iter()
                .map(|(k, (_, r))| (k.clone(), r.clone()))
                .collect(),
            restarted: None,
        })
    }

    /// Itself as it may leave the server: secret env values replaced.
    pub fn redacted(mut self) -> Self {
        for k in &self.secret_env {
            if let Some(v) = self.env.get_mut(k) {
                *v = super::SECRET_SHOWN.to_string();
            }
        }
        self
    }

    /// The SRV name of its port: (`port_name` or the service, `tcp`/`udp`).
    pub fn srv_name(&self) -> (String, &'static str) {
        (
            self.port_name
                .clone()
                .unwrap_or_else(|| self.service.clone()),
            self.port_type.unwrap_or_default().proto(),
        )
    }

    /// Every SRV name of its ports: (port name, `tcp`/`udp`, the extra port's name or
    /// `None` for the one `PORT` names), that one first.
    pub fn srv_names(&self) -> Vec<(String, &'static str, Option<String>)> {
        let (name, proto) = self.srv_name();
        let mut out = vec![(name, proto, None)];
        for p in &self.extra_ports {
            out.push((p.name.clone(), p.kind.proto(), Some(p.name.clone())));
        }
        out
    }

    /// Each extra named port where the spec declares it: where a container (or any
    /// instance with a network of its own) listens for it.
    pub fn declared_extra_ports(&self) -> BTreeMap<String, u16> {
        self.extra_ports
            .iter()
            .map(|p| (p.name.clone(), p.port))
            .collect()
    }

    /// Whether its port speaks UDP only (nothing accepts a connection).
    pub fn udp_only(&self) -> bool {
        self.port_type == Some(crate::config::PortType::Udp)
    }

    /// Whether the proxy may send it HTTP.
    pub fn speaks_http(&self) -> bool {
        self.port_type
            .is_none_or(|t| t == crate::config::PortType::Http)
    }

    /// Whether its instances take turns on a disk (a platform disk is mounted by one
    /// instance at a time).
    pub fn exclusive_disks(&self) -> bool {
        self.disks.iter().any(Disk::exclusive)
    }

    /// How long an instance may take to be ready.
    pub fn port_timeout(&self) -> Duration {
        self.port_timeout.unwrap_or(defaults::PORT_TIMEOUT)
    }

    /// SHA-256 of the canonical JSON form, as 32 hex digits.
    pub fn hash(&self) -> SpecHash {
        // The store's encoding (plain serde JSON): the same bytes, without the model
        // depending on the store.
        #[allow(clippy::expect_used)] // plain data with string keys always serializes
        let json = serde_json::to_vec(self).expect("a pool spec serializes to JSON");
        let digest = Sha256::digest(&json);
        SpecHash(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resolve;

    const APP: &str = r#"
name = "shop"
[[env]]
key = "A"
value = "1"
[services.web]
command = "node server.js"
[services.postgres]
image = "postgres:16"
[[services.postgres.disks]]
name = "pg"
mount_path = "/data"
size_gb = 1
"#;

    fn hash(src: &str, service: &str, code: &str) -> SpecHash {
        let app = resolve(src).unwrap_or_else(|e| panic!("{e}"));
        PoolSpec::of(&app, service, &Digest::of(code.as_bytes()))
            .map(|s| s.hash())
            .unwrap_or_else(|| panic!("no {service}"))
    }

    #[test]
    fn a_new_artifact_changes_built_services_but_not_image_services() {
        assert_ne!(hash(APP, "web", "sha256:1"), hash(APP, "web", "sha256:2"));
        assert_eq!(
            hash(APP, "postgres", "sha256:1"),
            hash(APP, "postgres", "sha256:2")
        );
    }

    #[test]
    fn changing_web_command_leaves_postgres_alone() {
        let changed = APP.replace("node server.js", "node server2.js");
        assert_ne!(hash(APP, "web", "d"), hash(&changed, "web", "d"));
        assert_eq!(hash(APP, "postgres", "d"), hash(&changed, "postgres", "d"));
    }

    #[test]
    fn scaling_changes_do_not_change_the_spec() {
        let scaled = format!("{APP}[services.web.concurrency]\nrequests_per_instance = 50\n");
        assert_eq!(hash(APP, "web", "d"), hash(&scaled, "web", "d"));
    }

    #[test]
    fn env_changes_do_and_env_order_does_not() {
        let more = APP.replace("value = \"1\"", "value = \"2\"");
        assert_ne!(hash(APP, "web", "d"), hash(&more, "web", "d"));
        let a = "name = \"x\"\n[[services.web.env]]\nkey = \"A\"\nvalue = \"1\"\n[[services.web.env]]\nkey = \"B\"\nvalue = \"2\"\n";
        let b = "name = \"x\"\n[[services.web.env]]\nkey = \"B\"\nvalue = \"2\"\n[[services.web.env]]\nkey = \"A\"\nvalue = \"1\"\n";
        assert_eq!(hash(a, "web", "d"), hash(b, "web", "d"));
    }
}

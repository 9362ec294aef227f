//! `.miren/app.toml` as the user wrote it: plain data, no defaults filled in.
//!
//! These types are the single source of the file's shape: the JSON Schema
//! (`miren schema`) is derived from them, and the decoder's lists of known keys are
//! checked against that schema by a test, so the three cannot drift apart.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Miren app.toml",
    description = "The services of a Miren app: `.miren/app.toml`."
)]
pub struct AppConfig {
    /// The app's name: a DNS label (lowercase letters, digits and `-`, at most 63).
    /// Default: the app directory's name, made a DNS label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub name: String,
    /// Environment variables for every service of the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// The services of the app, by name. Without any, a `web` service with all
    /// defaults is implied.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$" }))]
    pub services: IndexMap<String, ServiceConfig>,
    /// How the app's image is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildConfig>,
    /// CLI shortcuts: `miren <alias> [more…]` runs `miren <target> [more…]`
    /// (`console = "app run -it -- rails console"`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub aliases: IndexMap<String, String>,
    /// Files `.gitignore` leaves out that the upload needs after all (gitignore
    /// patterns from the app directory: `["dist/", "*.generated.js"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// `false`: the app has no web service (workers or tasks only), so none is
    /// implied and nothing is routed to it. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<bool>,
    /// Commands run on a deploy, on a schedule or by hand, each run a sandbox of its
    /// own, by name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$" }))]
    pub tasks: IndexMap<String, TaskConfig>,
    /// Managed backing services by addon name (`[addons.miren-postgresql]`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub addons: IndexMap<String, AddonConfig>,
    /// Upstream's role for in-cluster API access from the app's sandboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_role: Option<String>,
    /// Files the proxy serves itself, before the web service (`[static]`).
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_site: Option<StaticConfig>,
}

/// `[static]`: a directory of the built app the proxy serves as files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// The directory in the built app (`/app` is the app directory): `/app/public`,
    /// `/app/dist`.
    #[schemars(regex(pattern = r"^/"))]
    pub dir: String,
    /// A page of it (relative to `dir`, at most 128 KiB) the proxy answers its own
    /// errors for the app with (404 of a static-only app, 502, 503, 504).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_page: Option<String>,
}

/// `[addons.<name>]`: a managed backing service (upstream's addons).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddonConfig {
    /// The addon's variant (`small`, `shared`, `standard`). Default the addon's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Software version tag, or a whole image reference when it contains `:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The services it attaches to. Default every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// What a port speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// HTTP over TCP: the proxy routes `web`'s.
    #[default]
    Http,
    /// Plain TCP.
    Tcp,
    /// UDP: ready when started (nothing to connect to).
    Udp,
}

impl PortType {
    /// How it is written.
    pub fn as_str(self) -> &'static str {
        match self {
            PortType::Http => "http",
            PortType::Tcp => "tcp",
            PortType::Udp => "udp",
        }
    }

    /// The SRV protocol label: `tcp` or `udp`.
    pub fn proto(self) -> &'static str {
        match self {
            PortType::Udp => "udp",
            _ => "tcp",
        }
    }
}

/// `[[services.<name>.ports]]`: one of a service's ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// The port the service listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Unique within the service; names SRV records `_<name>._<tcp|udp>`.
    #[schemars(regex(pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub name: String,
    /// `http` (default), `tcp` or `udp`. `PORT` is the first `http` port (else the
    /// first port); the proxy routes `web`'s.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<PortType>,
    /// Also reachable on this port of the node, balanced over the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub node_port: Option<u16>,
}

/// When a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Once per deploy, before the new code serves: a failure fails the deploy.
    Deploy,
    /// On `every` or `schedule`.
    Schedule,
    /// With `miren task run`.
    Manual,
}

impl Trigger {
    /// The name as written in app.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Deploy => "deploy",
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
        }
    }
}

/// `[tasks.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// The command, run by `/bin/sh -c` with the service's code and env.
    #[schemars(length(min = 1))]
    pub command: String,
    /// `deploy`, `schedule` or `manual`. Default `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// schedule: run at every multiple of this since midnight UTC (`"15m"`); it must
    /// divide a day evenly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub every: Option<String>,
    /// schedule: a systemd calendar event in UTC (`"daily"`, `"Mon *-*-* 03:00:00"`,
    /// `"*:0/15"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// A run still going after this is stopped and failed (`"10m"`; `"0"`: never).
    /// Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Deploy and scheduled tasks: runs again after a failure, this many times.
    /// Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Runs of this task at once, at most. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent: Option<u32>,
    /// Environment variables of the task, over its service's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// The service whose code, image and env it runs with. Default `web` (or, without
    /// one, the app's built image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// One environment variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// The variable's name. `MIREN_*` is reserved for the platform.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub key: String,
    /// Its value. `<service>.app.miren` in it reaches that service of the app.
    /// Default `""`.
    #[serde(default)]
    pub value: String,
    /// A deploy fails unless it has a value (here, or from `miren env set`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// A secret: its value never leaves the server, shown as `(secret)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    /// What it is for (shown when a required one is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The secret backend its value comes from (upstream's `cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The secret's name in `backend` (needs `backend`; not with `value`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// `[build]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// The Dockerfile, relative to the app directory. Default `Dockerfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Commands run in the built code after the build (`npm run build`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub onbuild: Vec<String>,
    /// Upstream's language version for its detected stack (accepted: no stack is
    /// detected here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Upstream's Alpine base image for its detected stack (accepted: no stack is
    /// detected here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpine_image: Option<String>,
    /// Secrets for the build only (`[[build.secrets]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<BuildSecret>,
}

/// `[[build.secrets]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildSecret {
    /// Its id in the build (`RUN --mount=type=secret,id=…`); unique.
    pub id: String,
    /// Where its value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Its name in the backend (needs `backend`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Given as this env variable to the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Given as this file to the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// `[services.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The command, run by `/bin/sh -c`. Default: the image's own entrypoint and cmd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub command: Option<String>,
    /// Arguments in exec form, keeping the image's ENTRYPOINT (upstream's `args`; not
    /// with `command`). On the process runtime, the program and its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// A container image (`name[:tag][@sha256:…]`) instead of the app's built image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The port the service listens on. Default 3000 for `web`, none for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// The port's name in DNS: SRV `_<port_name>._<tcp|udp>`. Default the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub port_name: Option<String>,
    /// `http` (default: routed by the proxy when it is `web`'s), `tcp` or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_type: Option<PortType>,
    /// Several ports (`[[services.<name>.ports]]`), instead of `port`, `port_name`
    /// and `port_type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
    /// Environment variables of this service; they win over the app's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// How many instances run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyConfig>,
    /// Persistent disks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskConfig>,
    /// How long an instance may take to listen on its port (and, with `[health]`, to
    /// answer healthy) before it counts as failed (`"30s"`; at least 1s). Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub port_timeout: Option<String>,
    /// An HTTP health check: ready only once it answers, replaced when it stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthConfig>,
    /// Prometheus metrics the platform scrapes from the instances (upstream's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
}

impl ServiceConfig {
    /// Of `ports`, the one `PORT` names: the first `http` one, else the first.
    pub fn primary_port(&self) -> Option<&PortConfig> {
        self.ports
            .iter()
            .find(|p| p.kind.is_none_or(|k| k == PortType::Http))
            .or_else(|| self.ports.first())
    }
}

/// `[services.<name>.metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Scrape them. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The path on the instance. Default `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: Option<String>,
    /// The port, when not the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// How often (at least 30s). Default `"60s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Also on the server's public `/metrics`. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
}

/// `[services.<name>.health]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// The path to GET on the instance's port (`/health`); 2xx and 3xx are healthy.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// How often a running instance is checked. Default `"10s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// How long one check may take. Default `"2s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Failed checks in a row that make an instance unhealthy (it is replaced).
    /// Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub unhealthy_after: Option<u32>,
}

/// `fixed` runs a set number of instances; `auto` follows the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Scale with in-flight requests, down to zero.
    Auto,
    /// Always `num_instances`.
    Fixed,
}

impl Mode {
    /// The name as written in app.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Fixed => "fixed",
        }
    }
}

/// `[services.<name>.concurrency]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// Default `auto` for `web`, `fixed` for every other service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// fixed: how many instances. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub num_instances: Option<u32>,
    /// auto: in-flight requests one instance takes before another starts. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_instance: Option<u32>,
    /// auto: how long demand must stay lower before instances stop (`"30s"`,
    /// `"10m"`, `"1h30m"`; at least 1s). Default `"15m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub scale_down_delay: Option<String>,
    /// auto: never fewer instances than this. Default 0 (scale to zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    /// auto: never more instances than this. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_instances: Option<u32>,
    /// Between SIGTERM and SIGKILL when an instance stops (`"10s"`). Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub shutdown_timeout: Option<String>,
}

/// `[[services.<name>.disks]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// `size_gb` is required unless the disk is local.
#[schemars(extend(
    "if" = { "not": { "properties": { "provider": { "const": "local" } }, "required": ["provider"] } },
    "then" = { "required": ["size_gb"] }
))]
pub struct DiskConfig {
    /// Unique within the app: two services can't share a disk.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: String,
    /// Where the disk appears: absolute, normalized, not `/`.
    #[schemars(regex(pattern = r"^/"))]
    pub mount_path: String,
    /// Size in GB. Required unless `provider = "local"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub size_gb: Option<u32>,
    /// Mount read-only. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// `miren` (default): the platform's disk, one instance at a time; `local`: a
    /// directory of the node, shared by the service's instances there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<DiskProvider>,
    /// `ext4`, `xfs` or `btrfs`, where the platform makes the filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<String>,
    /// Who owns the mount path: `""` (default) the user the service runs as, `keep`
    /// whoever owns it already, or `uid[:gid]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(|keep|[0-9]+(:[0-9]+)?)$"))]
    pub owner: Option<String>,
    /// How long the disk waits for its previous holder to let go (`"2m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub lease_timeout: Option<String>,
}

/// Who provides a disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskProvider {
    /// The platform's: mounted by one instance at a time.
    #[default]
    Miren,
    /// A directory of the node the instance runs on, shared by the service's
    /// instances there.
    Local,
}

/// The JSON Schema (draft 2020-12) of app.toml.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(AppConfig).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            serde_json::Value::String("https://miren.dev/schema/app.toml.json".into()),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::json_schema;
    use crate::config::decode::{
        ADDON_KEYS, APP_KEYS, BUILD_KEYS, BUILD_SECRET_KEYS, CONCURRENCY_KEYS, DISK_KEYS, ENV_KEYS,
        HEALTH_KEYS, METRICS_KEYS, PORT_KEYS, SERVICE_KEYS, STATIC_KEYS, TASK_KEYS,
    };

    fn properties(schema: &serde_json::Value, def: Option<&str>) -> Vec<String> {
        let node = match def {
            Some(d) => &schema["$defs"][d],
            None => schema,
        };
        let mut keys: Vec<String> = node["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    fn sorted(keys: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    /// The decoder's key lists and the types (hence the schema) must name the same keys.
    #[test]
    fn decoder_keys_match_the_schema() {
        let s = json_schema();
        assert_eq!(properties(&s, None), sorted(APP_KEYS));
        assert_eq!(properties(&s, Some("ServiceConfig")), sorted(SERVICE_KEYS));
        assert_eq!(
            properties(&s, Some("ConcurrencyConfig")),
            sorted(CONCURRENCY_KEYS)
        );
        assert_eq!(properties(&s, Some("DiskConfig")), sorted(DISK_KEYS));
        assert_eq!(properties(&s, Some("EnvVar")), sorted(ENV_KEYS));
        assert_eq!(properties(&s, Some("BuildConfig")), sorted(BUILD_KEYS));
        assert_eq!(properties(&s, Some("HealthConfig")), sorted(HEALTH_KEYS));
        assert_eq!(properties(&s, Some("TaskConfig")), sorted(TASK_KEYS));
        assert_eq!(properties(&s, Some("MetricsConfig")), sorted(METRICS_KEYS));
        assert_eq!(properties(&s, Some("AddonConfig")), sorted(ADDON_KEYS));
        assert_eq!(properties(&s, Some("PortConfig")), sorted(PORT_KEYS));
        assert_eq!(properties(&s, Some("StaticConfig")), sorted(STATIC_KEYS));
        assert_eq!(
            properties(&s, Some("BuildSecret")),
            sorted(BUILD_SECRET_KEYS)
        );
    }
}

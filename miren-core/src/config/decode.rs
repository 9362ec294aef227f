//! TOML text → [`AppConfig`], keeping going after every problem.
//!
//! serde stops at the first error; users want all of them at once. So the file is
//! parsed into toml's spanned document tree (with recovery from syntax errors) and
//! walked by hand: each key is checked against the known keys of its table, each
//! value against its type, and every well-typed value lands both in the typed config
//! and in a [`SpanIndex`] that the rules use to point back into the source.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use indexmap::IndexMap;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::app_config::{
    AddonConfig, AppConfig, BuildConfig, BuildSecret, ConcurrencyConfig, DiskConfig, DiskProvider,
    EnvVar, HealthConfig, MetricsConfig, Mode, PortConfig, PortType, ServiceConfig, StaticConfig,
    TaskConfig, Trigger,
};
use super::diagnostic::Diagnostic;
use super::suggest::closest;

/// Keys of the top level.
pub(crate) const APP_KEYS: &[&str] = &[
    "name",
    "env",
    "services",
    "build",
    "web",
    "tasks",
    "include",
    "aliases",
    "addons",
    "workload_role",
    "static",
];
/// Keys of `[static]`.
pub(crate) const STATIC_KEYS: &[&str] = &["dir", "error_page"];
/// Keys of `[addons.<name>]`.
pub(crate) const ADDON_KEYS: &[&str] = &["variant", "version", "services"];
/// Keys of `[tasks.<name>]`.
pub(crate) const TASK_KEYS: &[&str] = &[
    "command",
    "trigger",
    "every",
    "schedule",
    "timeout",
    "retries",
    "max_concurrent",
    "env",
    "service",
];
/// Keys of `[services.<name>]`.
pub(crate) const SERVICE_KEYS: &[&str] = &[
    "command",
    "args",
    "image",
    "port",
    "port_name",
    "port_type",
    "ports",
    "env",
    "concurrency",
    "disks",
    "port_timeout",
    "health",
    "metrics",
];
/// Keys of `[[services.<name>.ports]]`.
pub(crate) const PORT_KEYS: &[&str] = &["port", "name", "type", "node_port"];
/// Keys of `[services.<name>.metrics]`.
pub(crate) const METRICS_KEYS: &[&str] = &["enabled", "path", "port", "interval", "public"];
/// Keys of `[services.<name>.concurrency]`.
pub(crate) const CONCURRENCY_KEYS: &[&str] = &[
    "mode",
    "num_instances",
    "requests_per_instance",
    "scale_down_delay",
    "min_instances",
    "max_instances",
    "shutdown_timeout",
];
/// Keys of `[services.<name>.health]`.
pub(crate) const HEALTH_KEYS: &[&str] = &["path", "interval", "timeout", "unhealthy_after"];
/// Keys of `[[services.<name>.disks]]`.
pub(crate) const DISK_KEYS: &[&str] = &[
    "name",
    "mount_path",
    "size_gb",
    "read_only",
    "provider",
    "filesystem",
    "lease_timeout",
    "owner",
];
/// Keys of `[[env]]`.
pub(crate) const ENV_KEYS: &[&str] = &[
    "key",
    "value",
    "required",
    "sensitive",
    "description",
    "backend",
    "ref",
];
/// Keys of `[build]`.
pub(crate) const BUILD_KEYS: &[&str] = &[
    "dockerfile",
    "onbuild",
    "version",
    "alpine_image",
    "secrets",
];
/// Keys of `[[build.secrets]]`.
pub(crate) const BUILD_SECRET_KEYS: &[&str] = &["id", "backend", "ref", "env", "file"];

/// Words other platforms use, mapped to ours (Compose, Heroku, Fly users type these).
const SYNONYMS: &[(&str, &str)] = &[
    ("cmd", "command"),
    ("entrypoint", "command"),
    ("run", "command"),
    ("environment", "env"),
    ("environ", "env"),
    ("volumes", "disks"),
    ("volume", "disks"),
    ("mounts", "disks"),
    ("scaling", "concurrency"),
    ("scale", "concurrency"),
    ("replicas", "num_instances"),
    ("instances", "num_instances"),
    ("count", "num_instances"),
    ("min", "min_instances"),
    ("max", "max_instances"),
    ("path", "mount_path"),
    ("mount", "mount_path"),
    ("target", "mount_path"),
    ("size", "size_gb"),
    ("readonly", "read_only"),
];

/// Where each decoded value sits in the source, by key path.
///
/// A path is present exactly when its value decoded with the right type, so a rule
/// that finds a span knows the typed value beside it is what the user wrote.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    entries: HashMap<String, KeySpans>,
    failed: HashSet<String>,
}

/// The key and value spans of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpans {
    /// The key as written (the last segment of a dotted key or header).
    pub key: Range<usize>,
    /// The value.
    pub value: Range<usize>,
}

impl SpanIndex {
    /// Spans of `path`, when its value decoded.
    pub fn get(&self, path: &str) -> Option<&KeySpans> {
        self.entries.get(path)
    }

    /// The value span of `path`, when its value decoded.
    pub fn value(&self, path: &str) -> Option<Range<usize>> {
        self.entries.get(path).map(|s| s.value.clone())
    }

    /// The key span of `path`, when its value decoded.
    pub fn key(&self, path: &str) -> Option<Range<usize>> {
        self.entries.get(path).map(|s| s.key.clone())
    }

    /// Whether `path` was written but could not be decoded (already reported), so
    /// rules that depend on it should stay quiet rather than guess.
    pub fn failed(&self, path: &str) -> bool {
        self.failed.contains(path)
    }
}

/// What [`decode`] found.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub config: AppConfig,
    pub spans: SpanIndex,
    pub diagnostics: Vec<Diagnostic>,
    /// Where the first syntax error is, if any: the tree after it is a guess.
    pub syntax_error_at: Option<usize>,
}

/// Decodes `source`, reporting every syntax, unknown-key and type problem.
pub(crate) fn decode(source: &str) -> Decoded {
    let (doc, errors) = DeTable::parse_recoverable(source);
    let mut d = Decoder {
        source,
        spans: SpanIndex::default(),
        diagnostics: Vec::new(),
        syntax_ok: errors.is_empty(),
    };
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        d.diagnostics
            .push(Diagnostic::error("", span, first_line(e.message())).with_label("invalid TOML"));
    }
    let root_span = doc.span();
    let config = d.app(doc.get_ref(), root_span);
    Decoded {
        config,
        spans: d.spans,
        diagnostics: d.diagnostics,
        syntax_error_at: errors.iter().map(|e| e.span().map_or(0, |s| s.start)).min(),
    }
}

fn first_line(msg: &str) -> String {
    msg.lines().next().unwrap_or(msg).trim().to_string()
}

/// A path segment for a table key: bare when TOML would take it bare.
pub(crate) fn segment(key: &str) -> Cow<'_, str> {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("{key:?}"))
    }
}

/// `parent.key`, or `key` at the top.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        segment(key).into_owned()
    } else {
        format!("{parent}.{}", segment(key))
    }
}

/// What kind of table is being decoded, for messages and hints.
#[derive(Clone, Copy)]
enum Scope<'a> {
    App,
    Service(&'a str),
    Concurrency(&'a str),
    Disk,
    Env,
    Build,
    Health,
    Task,
    Metrics,
    BuildSecret,
    Addon,
    Port,
    Static,
}

impl Scope<'_> {
    fn known(self) -> &'static [&'static str] {
        match self {
            Scope::App => APP_KEYS,
            Scope::Service(_) => SERVICE_KEYS,
            Scope::Concurrency(_) => CONCURRENCY_KEYS,
            Scope::Disk => DISK_KEYS,
            Scope::Env => ENV_KEYS,
            Scope::Build => BUILD_KEYS,
            Scope::Health => HEALTH_KEYS,
            Scope::Task => TASK_KEYS,
            Scope::Metrics => METRICS_KEYS,
            Scope::BuildSecret => BUILD_SECRET_KEYS,
            Scope::Addon => ADDON_KEYS,
            Scope::Port => PORT_KEYS,
            Scope::Static => STATIC_KEYS,
        }
    }

    /// Where `key` belongs when it is a real key of another table.
    fn elsewhere(self, key: &str) -> Option<String> {
        let svc = match self {
            Scope::Service(s) | Scope::Concurrency(s) => segment(s).into_owned(),
            _ => "web".to_string(),
        };
        let in_table = |keys: &[&str]| keys.contains(&key);
        match self {
            Scope::App if in_table(SERVICE_KEYS) => Some(format!(
                "`{key}` is a setting of a service: put it under `[services.{svc}]`"
            )),
            Scope::App if in_table(CONCURRENCY_KEYS) => Some(format!(
                "`{key}` is a scaling setting: put it under `[services.{svc}.concurrency]`"
            )),
            Scope::Service(_) if in_table(CONCURRENCY_KEYS) => Some(format!(
                "`{key}` is a scaling setting: put it under `[services.{svc}.concurrency]`"
            )),
            Scope::Service(_) if in_table(DISK_KEYS) => Some(format!(
                "`{key}` is a disk setting: put it under `[[services.{svc}.disks]]`"
            )),
            Scope::Concurrency(_) if in_table(SERVICE_KEYS) => Some(format!(
                "`{key}` is a setting of the service itself: put it under `[services.{svc}]`"
            )),
            _ => None,
        }
    }
}

struct Decoder<'s> {
    source: &'s str,
    spans: SpanIndex,
    diagnostics: Vec<Diagnostic>,
    /// With syntax errors the tree is partial, so "missing key" would mostly repeat
    /// what the syntax error said: stay quiet about missing keys then.
    syntax_ok: bool,
}

type Entry<'t, 's> = (&'t Spanned<Cow<'s, str>>, &'t Spanned<DeValue<'s>>);

impl<'s> Decoder<'s> {
    fn app(&mut self, root: &DeTable<'s>, root_span: Range<usize>) -> AppConfig {
        self.check_keys(root, "", Scope::App);
        // Optional: without it the app is named after its directory (see
        // `config::validate_in`), which says so.
        let _ = root_span;
        let name = self.optional(root, "", "name", |d, e, p| d.string(e, p));
        let env = self.optional(root, "", "env", |d, e, p| d.env_list(e, p));
        let services = self
            .optional(root, "", "services", |d, e, p| d.services(e, p))
            .unwrap_or_default();
        let build = self.optional(root, "", "build", |d, (_, v), p| {
            let table = d.table(v, &p, "a table like `[build]`")?;
            d.check_keys(table, &p, Scope::Build);
            let dockerfile = d.optional(table, &p, "dockerfile", |d, e, p| d.string(e, p));
            let onbuild = d
                .optional(table, &p, "onbuild", |d, e, p| d.strings(e, p))
                .unwrap_or_default();
            let version = d.optional(table, &p, "version", |d, e, p| d.string(e, p));
            let alpine_image = d.optional(table, &p, "alpine_image", |d, e, p| d.string(e, p));
            let secrets = d
                .optional(table, &p, "secrets", |d, (_, v), p| d.build_secrets(v, &p))
                .unwrap_or_default();
            Some(BuildConfig {
                dockerfile,
                onbuild,
                version,
                alpine_image,
                secrets,
            })
        });
        let web = self.optional(root, "", "web", |d, (k, v), p| {
            if looks_like_service(v.get_ref()) {
                // `[web]` with a command: a service written at the top level.
                let d2 = d
                    .type_error(&p, k.span(), "`true` or `false`", v.get_ref())
                    .with_help("services are tables under `services`: write `[services.web]`");
                d.diagnostics.push(d2);
                return None;
            }
            d.boolean((k, v), p)
        });
        let tasks = self
            .optional(root, "", "tasks", |d, e, p| d.tasks(e, p))
            .unwrap_or_default();
        let include = self
            .optional(root, "", "include", |d, e, p| d.strings(e, p))
            .unwrap_or_default();
        let aliases = self
            .optional(root, "", "aliases", |d, (_, v), p| {
                let t = d.table(v, &p, "a table of shortcuts, like `[aliases]`")?;
                let mut out = IndexMap::new();
                for (k, v) in t.iter() {
                    let kpath = join(&p, k.get_ref());
                    if let Some(target) = d.string((k, v), kpath.clone()) {
                        d.record(&kpath, k.span(), v.span());
                        out.insert(k.get_ref().to_string(), target);
                    }
                }
                Some(out)
            })
            .unwrap_or_default();
        let addons = self
            .optional(root, "", "addons", |d, (_, v), p| {
                let t = d.table(v, &p, "a table of addons, like `[addons.miren-postgresql]`")?;
                let mut out = IndexMap::new();
                for (k, v) in t.iter() {
                    let apath = join(&p, k.get_ref());
                    let Some(at) = d.table(v, &apath, "a table, like `[addons.miren-postgresql]`")
                    else {
                        continue;
                    };
                    d.record(&apath, k.span(), v.span());
                    d.check_keys(at, &apath, Scope::Addon);
                    let addon = AddonConfig {
                        variant: d.optional(at, &apath, "variant", |d, e, p| d.string(e, p)),
                        version: d.optional(at, &apath, "version", |d, e, p| d.string(e, p)),
                        services: d
                            .optional(at, &apath, "services", |d, e, p| d.strings(e, p))
                            .unwrap_or_default(),
                    };
                    out.insert(k.get_ref().to_string(), addon);
                }
                Some(out)
            })
            .unwrap_or_default();
        let workload_role = self.optional(root, "", "workload_role", |d, e, p| d.string(e, p));
        let static_site = self.optional(root, "", "static", |d, (_, v), p| {
            let t = d.table(
                v,
                &p,
                "a table like `[static]` with `dir = \"/app/public\"`",
            )?;
            d.check_keys(t, &p, Scope::Static);
            let here = header_span(d.source, v.span());
            let dir = d.required(t, &p, "dir", here, |d, e, p| d.string(e, p));
            Some(StaticConfig {
                dir: dir.unwrap_or_default(),
                error_page: d.optional(t, &p, "error_page", |d, e, p| d.string(e, p)),
            })
        });
        AppConfig {
            static_site,
            addons,
            workload_role,
            name: name.unwrap_or_default(),
            env: env.unwrap_or_default(),
            services,
            build,
            include,
            aliases,
            web,
            tasks,
        }
    }

    fn tasks(
        &mut self,
        (_, value): Entry<'_, 's>,
        path: String,
    ) -> Option<IndexMap<String, TaskConfig>> {
        let table = self.table(value, &path, "a table of tasks, like `[tasks.migrate]`")?;
        let mut out = IndexMap::with_capacity(table.len());
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let tpath = join(&path, name);
            let Some(t) = self.table(value, &tpath, "a table, like `[tasks.migrate]`") else {
                continue;
            };
            self.record(&tpath, key.span(), value.span());
            self.check_keys(t, &tpath, Scope::Task);
            let here = header_span(self.source, value.span());
            let command = self.required(t, &tpath, "command", here, |d, e, p| d.string(e, p));
            let count = |min: i64| {
                move |d: &mut Self, e: Entry<'_, 's>, p: String| {
                    d.integer(e, p, min, i64::from(u32::MAX))
                        .and_then(|n| u32::try_from(n).ok())
                }
            };
            let task = TaskConfig {
                command: command.unwrap_or_default(),
                trigger: self.optional(t, &tpath, "trigger", |d, e, p| d.trigger(e, p)),
                every: self.optional(t, &tpath, "every", |d, e, p| d.duration_string(e, p)),
                schedule: self.optional(t, &tpath, "schedule", |d, e, p| d.string(e, p)),
                timeout: self.optional(t, &tpath, "timeout", |d, e, p| d.duration_string(e, p)),
                retries: self.optional(t, &tpath, "retries", count(0)),
                max_concurrent: self.optional(t, &tpath, "max_concurrent", count(1)),
                env: self
                    .optional(t, &tpath, "env", |d, e, p| d.env_list(e, p))
                    .unwrap_or_default(),
                service: self.optional(t, &tpath, "service", |d, e, p| d.string(e, p)),
            };
            out.insert(name.to_string(), task);
        }
        Some(out)
    }

    fn port_type(&mut self, e: Entry<'_, 's>, path: String) -> Option<PortType> {
        let span = e.1.span();
        let s = self.string(e, path.clone())?;
        let all = [PortType::Http, PortType::Tcp, PortType::Udp];
        if let Some(t) = all.into_iter().find(|t| t.as_str() == s) {
            return Some(t);
        }
        let mut d = Diagnostic::error(
            &path,
            span.clone(),
            format!("unknown port type `{s}`: expected `http`, `tcp` or `udp`"),
        )
        .with_label("expected \"http\", \"tcp\" or \"udp\"");
        let lower = s.to_ascii_lowercase();
        let synonym = match lower.as_str() {
            "https" | "http2" | "grpc" | "h2" => Some("http"),
            _ => None,
        };
        if let Some(best) = all
            .iter()
            .map(|t| t.as_str())
            .find(|t| *t == lower)
            .or(synonym)
            .or_else(|| closest(&s, all.iter().map(|t| t.as_str())))
        {
            d = d
                .with_help(format!("did you mean `{best}`?"))
                .with_suggestion(span, format!("\"{best}\""));
        }
        self.diagnostics.push(d);
        None
    }

    fn provider(&mut self, e: Entry<'_, 's>, path: String) -> Option<DiskProvider> {
        let span = e.1.span();
        let s = self.string(e, path.clone())?;
        match s.as_str() {
            "miren" => return Some(DiskProvider::Miren),
            "local" => return Some(DiskProvider::Local),
            _ => {}
        }
        let mut d = Diagnostic::error(
            &path,
            span.clone(),
            format!("unknown disk provider `{s}`: expected `miren` or `local`"),
        )
        .with_label("expected \"miren\" or \"local\"");
        d = match closest(&s, ["miren", "local"]) {
            Some(best) => d
                .with_help(format!("did you mean `{best}`?"))
                .with_suggestion(span, format!("\"{best}\"")),
            None => d.with_help("`miren` disks are mounted by one instance at a time; `local` ones are a directory of the node, shared"),
        };
        self.diagnostics.push(d);
        None
    }

    fn trigger(&mut self, e: Entry<'_, 's>, path: String) -> Option<Trigger> {
        let span = e.1.span();
        let s = self.string(e, path.clone())?;
        let all = [Trigger::Deploy, Trigger::Schedule, Trigger::Manual];
        if let Some(t) = all.into_iter().find(|t| t.as_str() == s) {
            return Some(t);
        }
        let mut d = Diagnostic::error(
            &path,
            span.clone(),
            format!("unknown trigger `{s}`: expected `deploy`, `schedule` or `manual`"),
        )
        .with_label("expected \"deploy\", \"schedule\" or \"manual\"");
        let synonym = match s.as_str() {
            "cron" | "scheduled" | "timer" | "periodic" => Some("schedule"),
            "release" | "predeploy" | "pre-deploy" | "migrate" => Some("deploy"),
            "once" | "manually" | "oneoff" | "one-off" => Some("manual"),
            _ => None,
        };
        match closest(&s, all.iter().map(|t| t.as_str())).or(synonym) {
            Some(best) => {
                d = d
                    .with_help(format!("did you mean `{best}`?"))
                    .with_suggestion(span, format!("\"{best}\""));
            }
            None => {
                d = d.with_help(
                    "`deploy` runs before each deploy's new code serves, `schedule` on `every` or `schedule`, `manual` with `miren task run`",
                );
            }
        }
        self.diagnostics.push(d);
        None
    }

    fn services(
        &mut self,
        (_, value): Entry<'_, 's>,
        path: String,
    ) -> Option<IndexMap<String, ServiceConfig>> {
        let table = self.table(value, &path, "a table of services, like `[services.web]`")?;
        let mut out = IndexMap::with_capacity(table.len());
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let spath = join(&path, name);
            let Some(t) = self.table(value, &spath, "a table, like `[services.web]`") else {
                continue;
            };
            self.record(&spath, key.span(), value.span());
            let svc = self.service(t, &spath, name);
            out.insert(name.to_string(), svc);
        }
        Some(out)
    }

    fn service(&mut self, table: &DeTable<'s>, path: &str, name: &str) -> ServiceConfig {
        self.check_keys(table, path, Scope::Service(name));
        ServiceConfig {
            command: self.optional(table, path, "command", |d, e, p| d.string(e, p)),
            args: self
                .optional(table, path, "args", |d, e, p| d.strings(e, p))
                .unwrap_or_default(),
            image: self.optional(table, path, "image", |d, e, p| d.string(e, p)),
            port: self
                .optional(table, path, "port", |d, e, p| d.integer(e, p, 1, 65535))
                .and_then(|p| u16::try_from(p).ok()),
            port_name: self.optional(table, path, "port_name", |d, e, p| d.string(e, p)),
            port_type: self.optional(table, path, "port_type", |d, e, p| d.port_type(e, p)),
            ports: self
                .optional(table, path, "ports", |d, (_, v), p| d.ports(v, &p, name))
                .unwrap_or_default(),
            env: self
                .optional(table, path, "env", |d, e, p| d.env_list(e, p))
                .unwrap_or_default(),
            concurrency: self.optional(table, path, "concurrency", |d, (_, v), p| {
                let t = d.table(v, &p, "a table, like `[services.web.concurrency]`")?;
                Some(d.concurrency(t, &p, name))
            }),
            disks: self
                .optional(table, path, "disks", |d, (_, v), p| d.disks(v, &p))
                .unwrap_or_default(),
            port_timeout: self.optional(table, path, "port_timeout", |d, e, p| {
                d.duration_string(e, p)
            }),
            metrics: self.optional(table, path, "metrics", |d, (_, v), p| {
                let t = d.table(v, &p, "a table, like `[services.web.metrics]`")?;
                d.check_keys(t, &p, Scope::Metrics);
                Some(MetricsConfig {
                    enabled: d.optional(t, &p, "enabled", |d, e, p| d.boolean(e, p)),
                    path: d.optional(t, &p, "path", |d, e, p| d.string(e, p)),
                    port: d
                        .optional(t, &p, "port", |d, e, p| d.integer(e, p, 1, 65535))
                        .and_then(|n| u16::try_from(n).ok()),
                    interval: d.optional(t, &p, "interval", |d, e, p| d.duration_string(e, p)),
                    public: d.optional(t, &p, "public", |d, e, p| d.boolean(e, p)),
                })
            }),
            health: self.optional(table, path, "health", |d, (_, v), p| {
                let t = d.table(v, &p, "a table, like `[services.web.health]`")?;
                let here = header_span(d.source, v.span());
                d.health(t, &p, here)
            }),
        }
    }

    fn health(&mut self, t: &DeTable<'s>, path: &str, here: Range<usize>) -> Option<HealthConfig> {
        self.check_keys(t, path, Scope::Health);
        let hpath = self.required(t, path, "path", here, |d, e, p| d.string(e, p));
        Some(HealthConfig {
            path: hpath.unwrap_or_default(),
            interval: self.optional(t, path, "interval", |d, e, p| d.duration_string(e, p)),
            timeout: self.optional(t, path, "timeout", |d, e, p| d.duration_string(e, p)),
            unhealthy_after: self
                .optional(t, path, "unhealthy_after", |d, e, p| {
                    d.integer(e, p, 1, i64::from(u32::MAX))
                })
                .and_then(|n| u32::try_from(n).ok()),
        })
    }

    fn concurrency(&mut self, t: &DeTable<'s>, path: &str, service: &str) -> ConcurrencyConfig {
        self.check_keys(t, path, Scope::Concurrency(service));
        let count = |min: i64| {
            move |d: &mut Self, e: Entry<'_, 's>, p: String| {
                d.integer(e, p, min, i64::from(u32::MAX))
                    .and_then(|n| u32::try_from(n).ok())
            }
        };
        ConcurrencyConfig {
            mode: self.optional(t, path, "mode", |d, e, p| d.mode(e, p)),
            num_instances: self.optional(t, path, "num_instances", count(1)),
            requests_per_instance: self.optional(t, path, "requests_per_instance", count(1)),
            scale_down_delay: self.optional(t, path, "scale_down_delay", |d, e, p| {
                d.duration_string(e, p)
            }),
            min_instances: self.optional(t, path, "min_instances", count(0)),
            max_instances: self.optional(t, path, "max_instances", count(1)),
            shutdown_timeout: self.optional(t, path, "shutdown_timeout", |d, e, p| {
                d.duration_string(e, p)
            }),
        }
    }

    fn disks(&mut self, value: &Spanned<DeValue<'s>>, path: &str) -> Option<Vec<DiskConfig>> {
        let items = self.array_of_tables(
            value,
            path,
            "disks",
            "[[services.web.disks]]\nname = \"data\"\nmount_path = \"/data\"\nsize_gb = 10",
        )?;
        Some(
            self.tables_of(items, path, Scope::Disk, "a table", |d, t, ipath, here| {
                let name = d.required(t, ipath, "name", here.clone(), |d, e, p| d.string(e, p));
                let mount_path = d.required(t, ipath, "mount_path", here.clone(), |d, e, p| {
                    d.string(e, p)
                });
                let provider = d.optional(t, ipath, "provider", |d, e, p| d.provider(e, p));
                let size = |d: &mut Self, e: Entry<'_, 's>, p: String| {
                    d.integer(e, p, 1, 65536)
                        .and_then(|n| u32::try_from(n).ok())
                };
                // A local disk is a directory of the node: it has no size of its own.
                let size_gb = if provider == Some(DiskProvider::Local)
                    || d.spans.failed(&format!("{ipath}.provider"))
                {
                    d.optional(t, ipath, "size_gb", size)
                } else {
                    d.required(t, ipath, "size_gb", here, size)
                };
                let read_only = d.optional(t, ipath, "read_only", |d, e, p| d.boolean(e, p));
                DiskConfig {
                    name: name.unwrap_or_default(),
                    mount_path: mount_path.unwrap_or_default(),
                    size_gb,
                    read_only,
                    provider,
                    filesystem: d.optional(t, ipath, "filesystem", |d, e, p| d.string(e, p)),
                    owner: d.optional(t, ipath, "owner", |d, e, p| d.string(e, p)),
                    lease_timeout: d
                        .optional(t, ipath, "lease_timeout", |d, e, p| d.duration_string(e, p)),
                }
            }),
        )
    }

    fn ports(
        &mut self,
        value: &Spanned<DeValue<'s>>,
        path: &str,
        service: &str,
    ) -> Option<Vec<PortConfig>> {
        let svc = segment(service);
        let example = format!(
            "[[services.{svc}.ports]]\nport = 3000\nname = \"http\"\n\n[[services.{svc}.ports]]\nport = 7000\nname = \"data\"\ntype = \"tcp\""
        );
        let items = self.array_of_tables(value, path, "ports", &example)?;
        // Compose's `ports = ["8080:80"]`: say what this key is here.
        if let Some(item) = items
            .iter()
            .find(|i| matches!(i.get_ref(), DeValue::String(_) | DeValue::Integer(_)))
        {
            let d = self
                .type_error(path, item.span(), "a table", item.get_ref())
                .with_help(format!(
                    "`ports` lists tables here, each with `port` and `name`:\n{example}\n\nfor a single port write `port = …`; publishing on the node is `node_port = …`"
                ));
            self.diagnostics.push(d);
            return None;
        }
        Some(
            self.tables_of(items, path, Scope::Port, "a table", |d, t, ipath, here| {
                let port = d
                    .required(t, ipath, "port", here.clone(), |d, e, p| {
                        d.integer(e, p, 1, 65535)
                    })
                    .and_then(|n| u16::try_from(n).ok());
                let name = d.required(t, ipath, "name", here, |d, e, p| d.string(e, p));
                PortConfig {
                    port: port.unwrap_or_default(),
                    name: name.unwrap_or_default(),
                    kind: d.optional(t, ipath, "type", |d, e, p| d.port_type(e, p)),
                    node_port: d
                        .optional(t, ipath, "node_port", |d, e, p| d.integer(e, p, 1, 65535))
                        .and_then(|n| u16::try_from(n).ok()),
                }
            }),
        )
    }

    fn build_secrets(
        &mut self,
        value: &Spanned<DeValue<'s>>,
        path: &str,
    ) -> Option<Vec<BuildSecret>> {
        let items = self.array_of_tables(
            value,
            path,
            "secrets",
            "[[build.secrets]]\nid = \"npm-token\"\nenv = \"NPM_TOKEN\"",
        )?;
        Some(self.tables_of(
            items,
            path,
            Scope::BuildSecret,
            "a table",
            |d, t, ipath, here| {
                let id = d.required(t, ipath, "id", here, |d, e, p| d.string(e, p));
                BuildSecret {
                    id: id.unwrap_or_default(),
                    backend: d.optional(t, ipath, "backend", |d, e, p| d.string(e, p)),
                    reference: d.optional(t, ipath, "ref", |d, e, p| d.string(e, p)),
                    env: d.optional(t, ipath, "env", |d, e, p| d.string(e, p)),
                    file: d.optional(t, ipath, "file", |d, e, p| d.string(e, p)),
                }
            },
        ))
    }

    fn env_list(&mut self, (_, value): Entry<'_, 's>, path: String) -> Option<Vec<EnvVar>> {
        let header = if path == "env" {
            "[[env]]".to_string()
        } else {
            format!("[[{path}]]")
        };
        let example = format!("{header}\nkey = \"LOG_LEVEL\"\nvalue = \"info\"");
        let items = self.array_of_tables(value, &path, "env", &example)?;
        Some(self.tables_of(
            items,
            &path,
            Scope::Env,
            "a table with `key` and `value`",
            |d, t, ipath, here| {
                let key = d.required(t, ipath, "key", here, |d, e, p| d.string(e, p));
                let value = d.optional(t, ipath, "value", |d, e, p| d.string(e, p));
                EnvVar {
                    key: key.unwrap_or_default(),
                    value: value.unwrap_or_default(),
                    required: d.optional(t, ipath, "required", |d, e, p| d.boolean(e, p)),
                    sensitive: d.optional(t, ipath, "sensitive", |d, e, p| d.boolean(e, p)),
                    description: d.optional(t, ipath, "description", |d, e, p| d.string(e, p)),
                    backend: d.optional(t, ipath, "backend", |d, e, p| d.string(e, p)),
                    reference: d.optional(t, ipath, "ref", |d, e, p| d.string(e, p)),
                }
            },
        ))
    }

    // ---- table plumbing ---------------------------------------------------------

    /// Each table of an array of tables (`[[…]]`), its keys checked against `scope`,
    /// handed to `each` with its path (`disks[0]`) and header span.
    fn tables_of<T>(
        &mut self,
        items: &DeArray<'s>,
        path: &str,
        scope: Scope<'_>,
        expected: &str,
        mut each: impl FnMut(&mut Self, &DeTable<'s>, &str, Range<usize>) -> T,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let Some(t) = self.table(item, &ipath, expected) else {
                continue;
            };
            self.record(&ipath, item.span(), item.span());
            self.check_keys(t, &ipath, scope);
            let here = header_span(self.source, item.span());
            out.push(each(self, t, &ipath, here));
        }
        out
    }

    /// Reports every key of `table` that `scope` doesn't know.
    fn check_keys(&mut self, table: &DeTable<'s>, path: &str, scope: Scope<'_>) {
        let known = scope.known();
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            if known.contains(&k) {
                continue;
            }
            let where_ = if path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in `{path}`")
            };
            let mut d = Diagnostic::error(
                join(path, k),
                key.span(),
                format!("unknown key `{k}` {where_}"),
            )
            .with_label("unknown key");
            let synonym = SYNONYMS
                .iter()
                .find(|(s, _)| s.eq_ignore_ascii_case(k))
                .map(|&(_, ours)| ours);
            if let Some(hint) = scope.elsewhere(k) {
                d = d.with_help(hint);
            } else if let Some(best) =
                closest(k, known.iter().copied()).or_else(|| synonym.filter(|s| known.contains(s)))
            {
                d = d
                    .with_help(format!("did you mean `{best}`?"))
                    .with_suggestion(key.span(), best);
            } else if let Some(other) = synonym.and_then(|s| scope.elsewhere(s)) {
                d = d.with_help(format!(
                    "Miren calls this `{}`; {other}",
                    synonym.unwrap_or(k)
                ));
            } else if matches!(scope, Scope::App) && looks_like_service(value.get_ref()) {
                d = d.with_help(format!(
                    "services are tables under `services`: write `[services.{}]`",
                    segment(k)
                ));
            } else {
                d = d.with_help(format!("the keys here are: {}", known.join(", ")));
            }
            self.diagnostics.push(d);
        }
    }

    fn record(&mut self, path: &str, key: Range<usize>, value: Range<usize>) {
        self.spans
            .entries
            .insert(path.to_string(), KeySpans { key, value });
    }

    /// Decodes `key` of `table` with `f` when present.
    fn optional<T>(
        &mut self,
        table: &DeTable<'s>,
        parent: &str,
        key: &str,
        f: impl FnOnce(&mut Self, Entry<'_, 's>, String) -> Option<T>,
    ) -> Option<T> {
        let entry = table.get_key_value(key)?;
        let path = join(parent, key);
        if entry.1.span().is_empty() {
            // A placeholder the parser put in for a value it could not read; the
            // syntax error already says so.
            self.spans.failed.insert(path);
            return None;
        }
        let out = f(self, entry, path.clone());
        if out.is_some() {
            self.record(&path, entry.0.span(), entry.1.span());
        } else {
            self.spans.failed.insert(path);
        }
        out
    }

    /// Like [`Self::optional`], and reports the key missing at `here`.
    fn required<T>(
        &mut self,
        table: &DeTable<'s>,
        parent: &str,
        key: &str,
        here: Range<usize>,
        f: impl FnOnce(&mut Self, Entry<'_, 's>, String) -> Option<T>,
    ) -> Option<T> {
        if table.get_key_value(key).is_none() {
            if self.syntax_ok {
                let what = if parent.is_empty() {
                    "the file".to_string()
                } else {
                    format!("`{parent}`")
                };
                self.diagnostics.push(
                    Diagnostic::error(
                        join(parent, key),
                        here,
                        format!("missing key `{key}` in {what}"),
                    )
                    .with_label(format!("`{key}` is required")),
                );
            }
            return None;
        }
        self.optional(table, parent, key, f)
    }

    fn type_error(
        &mut self,
        path: &str,
        span: Range<usize>,
        expected: &str,
        found: &DeValue<'_>,
    ) -> Diagnostic {
        Diagnostic::error(
            path,
            span,
            format!("`{path}` must be {expected}, found {}", kind(found)),
        )
        .with_label(format!("expected {expected}"))
    }

    fn table<'t>(
        &mut self,
        v: &'t Spanned<DeValue<'s>>,
        path: &str,
        expected: &str,
    ) -> Option<&'t DeTable<'s>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                let d = self.type_error(path, v.span(), expected, other);
                self.diagnostics.push(d);
                self.spans.failed.insert(path.to_string());
                None
            }
        }
    }

    /// An array of tables (`[[x]]`, or `x = [{…}]`). A plain table in its place is
    /// the classic mistake (`[env]` with `KEY = "v"` lines), so its help shows the
    /// right form built from what was written.
    fn array_of_tables<'t>(
        &mut self,
        v: &'t Spanned<DeValue<'s>>,
        path: &str,
        what: &str,
        example: &str,
    ) -> Option<&'t DeArray<'s>> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            other => {
                let mut d = self.type_error(path, v.span(), "an array of tables", other);
                let help = match (what, other) {
                    ("env", DeValue::Table(t)) => {
                        let (k, value) = match t.iter().next() {
                            Some((k, v)) => (
                                k.get_ref().to_string(),
                                match v.get_ref() {
                                    DeValue::String(s) => s.to_string(),
                                    _ => "…".into(),
                                },
                            ),
                            None => ("LOG_LEVEL".into(), "info".into()),
                        };
                        let header = example.lines().next().unwrap_or("[[env]]");
                        format!(
                            "each variable is its own `{{key, value}}` table:\n{header}\nkey = \"{k}\"\nvalue = \"{value}\""
                        )
                    }
                    _ => format!("write it with double brackets, one table per entry:\n{example}"),
                };
                d = d.with_help(help);
                self.diagnostics.push(d);
                None
            }
        }
    }

    fn string(&mut self, (_, v): Entry<'_, 's>, path: String) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                let mut d = self.type_error(&path, v.span(), "a string", other);
                if let DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) = other {
                    let text = &self.source[v.span()];
                    d = d
                        .with_help("quote it to make it a string")
                        .with_suggestion(v.span(), format!("\"{text}\""));
                }
                self.diagnostics.push(d);
                None
            }
        }
    }

    /// An array of strings (`["--port", "8080"]`); a single string gets a help that
    /// shows the array.
    fn strings(&mut self, (_, v): Entry<'_, 's>, path: String) -> Option<Vec<String>> {
        let DeValue::Array(items) = v.get_ref() else {
            let mut d = self.type_error(&path, v.span(), "an array of strings", v.get_ref());
            if let DeValue::String(s) = v.get_ref() {
                let words: Vec<String> = s.split_whitespace().map(|w| format!("{w:?}")).collect();
                d = d
                    .with_help("each argument is its own string")
                    .with_suggestion(v.span(), format!("[{}]", words.join(", ")));
            }
            self.diagnostics.push(d);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.to_string()),
                other => {
                    let ipath = format!("{path}[{i}]");
                    let d = self.type_error(&ipath, item.span(), "a string", other);
                    self.diagnostics.push(d);
                    return None;
                }
            }
        }
        Some(out)
    }

    fn boolean(&mut self, (_, v): Entry<'_, 's>, path: String) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                let mut d = self.type_error(&path, v.span(), "`true` or `false`", other);
                if let DeValue::String(s) = other
                    && let Ok(b) = s.parse::<bool>()
                {
                    d = d
                        .with_help("remove the quotes")
                        .with_suggestion(v.span(), b.to_string());
                }
                self.diagnostics.push(d);
                None
            }
        }
    }

    fn integer(&mut self, (_, v): Entry<'_, 's>, path: String, min: i64, max: i64) -> Option<i64> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            other => {
                let mut d = self.type_error(&path, v.span(), "an integer", other);
                match other {
                    DeValue::String(s) if s.trim().parse::<i64>().is_ok() => {
                        d = d
                            .with_help("remove the quotes to make it a number")
                            .with_suggestion(v.span(), s.trim().to_string());
                    }
                    DeValue::Float(_) => d = d.with_help("use a whole number"),
                    _ => {}
                }
                self.diagnostics.push(d);
                return None;
            }
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let rule = if max >= i64::from(u32::MAX) {
                    format!("at least {min}")
                } else {
                    format!("between {min} and {max}")
                };
                let written = &self.source[v.span()];
                self.diagnostics.push(
                    Diagnostic::error(
                        &path,
                        v.span(),
                        format!("`{path}` must be {rule}, found {written}"),
                    )
                    .with_label(format!("must be {rule}")),
                );
                None
            }
        }
    }

    fn mode(&mut self, e: Entry<'_, 's>, path: String) -> Option<Mode> {
        let span = e.1.span();
        let s = self.string(e, path.clone())?;
        match s.as_str() {
            "auto" => Some(Mode::Auto),
            "fixed" => Some(Mode::Fixed),
            other => {
                let mut d = Diagnostic::error(
                    &path,
                    span.clone(),
                    format!("unknown mode `{other}`: expected `auto` or `fixed`"),
                )
                .with_label("expected \"auto\" or \"fixed\"");
                if let Some(best) = closest(other, ["auto", "fixed"]) {
                    d = d
                        .with_help(format!("did you mean `{best}`?"))
                        .with_suggestion(span, format!("\"{best}\""));
                } else {
                    d = d.with_help(
                        "`fixed` runs `num_instances` instances; `auto` scales with requests",
                    );
                }
                self.diagnostics.push(d);
                None
            }
        }
    }

    /// A duration must be a string; a bare number gets a help that shows the unit.
    fn duration_string(&mut self, (k, v): Entry<'_, 's>, path: String) -> Option<String> {
        if let DeValue::Integer(i) = v.get_ref() {
            let n = i.as_str();
            let d = self
                .type_error(&path, v.span(), "a duration string", v.get_ref())
                .with_help(format!(
                    "durations need a unit: \"{n}s\" is {n} seconds, \"{n}m\" {n} minutes"
                ))
                .with_suggestion(v.span(), format!("\"{n}s\""));
            self.diagnostics.push(d);
            return None;
        }
        self.string((k, v), path)
    }
}

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A top-level table that has service keys was meant to be a service.
fn looks_like_service(v: &DeValue<'_>) -> bool {
    matches!(v, DeValue::Table(t) if t.keys().any(|k| SERVICE_KEYS.contains(&k.get_ref().as_ref())))
}

/// The first line of a table's span: its `[[header]]`, or `{ … }` for an inline one.
fn header_span(source: &str, span: Range<usize>) -> Range<usize> {
    let start = span.start.min(source.len());
    let end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i)
        .min(span.end.max(start));
    start..end
}

//! The rules of SPEC §2 that types alone can't express.
//!
//! Rules read the typed config and ask the [`SpanIndex`] where a value was written.
//! A value with no span was not written (a default) or failed to decode (already
//! reported), so rules check only what the user actually wrote and never pile a
//! second error onto a first one.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use super::app_config::{
    AppConfig, ConcurrencyConfig, DiskConfig, DiskProvider, EnvVar, HealthConfig, MetricsConfig,
    Mode, PortType, ServiceConfig,
};
use super::decode::{SpanIndex, join};
use super::diagnostic::Diagnostic;
use super::{command, defaults, duration, names};

/// The `miren` commands and their subcommands: an alias can't take their names (the
/// CLI checks this list against its own).
pub const COMMANDS: &[(&str, &[&str])] = &[
    ("validate", &[]),
    ("schema", &[]),
    ("init", &[]),
    ("up", &[]),
    ("server", &[]),
    ("deploy", &[]),
    (
        "app",
        &[
            "list", "status", "history", "rollback", "restart", "run", "delete",
        ],
    ),
    ("sandbox-pool", &["list", "set-desired"]),
    ("sandbox", &["list", "stop", "exec"]),
    ("logs", &[]),
    ("node", &["list", "drain", "undrain"]),
    ("top", &[]),
    ("dashboard", &[]),
    ("env", &["set", "unset", "list"]),
    ("task", &["list", "run", "history"]),
    (
        "addon",
        &["list", "create", "destroy", "list-available", "variants"],
    ),
    ("route", &["add", "set", "list", "remove", "set-default"]),
    (
        "secret",
        &["set", "list", "versions", "disable", "enable", "destroy"],
    ),
    ("completion", &[]),
    ("help", &[]),
];

/// Whether `words` name a built-in command (`["app", "list"]`, `["logs"]`).
fn is_command(words: &[&str]) -> bool {
    match words {
        [first] => COMMANDS.iter().any(|(c, _)| c == first),
        [first, second, ..] => COMMANDS
            .iter()
            .any(|(c, subs)| c == first && (subs.is_empty() || subs.contains(second))),
        [] => false,
    }
}

/// Runs every rule; returns what they found.
pub(crate) fn check(config: &AppConfig, spans: &SpanIndex) -> Vec<Diagnostic> {
    let mut r = Rules {
        spans,
        out: Vec::new(),
    };
    r.app(config);
    r.out
}

pub(super) struct Rules<'a> {
    pub(super) spans: &'a SpanIndex,
    out: Vec<Diagnostic>,
}

impl Rules<'_> {
    pub(super) fn push(&mut self, d: Diagnostic) {
        self.out.push(d);
    }

    fn app(&mut self, c: &AppConfig) {
        if let Some(span) = self.spans.value("name")
            && let Err(p) = names::dns_label(&c.name)
        {
            let mut d = Diagnostic::error(
                "name",
                span.clone(),
                format!("app name `{}` {}", c.name, p.reason),
            )
            .with_label("not a valid app name");
            d = match p.fixed {
                    Some(f) => d
                        .with_help("an app name becomes part of host names: lowercase letters, digits and `-`")
                        .with_suggestion(span, format!("\"{f}\"")),
                    None => d.with_help("an app name becomes part of host names: lowercase letters, digits and `-`, starting with a letter"),
                };
            self.push(d);
        }
        self.env_list(&c.env, "env");

        let no_web = c.web == Some(false);
        if no_web
            && c.services.contains_key(defaults::WEB)
            && let Some(web) = self.spans.value("web")
        {
            let mut d =
                Diagnostic::error("web", web, "`web = false`, but the app has a `web` service")
                    .with_label("no web service")
                    .with_help(
                        "remove `web = false` to route to `[services.web]`, or rename that service",
                    );
            if let Some(at) = self.spans.key(&join("services", defaults::WEB)) {
                d = d.with_related(at, "`web` defined here");
            }
            self.push(d);
        }
        if c.services.is_empty() && no_web && c.tasks.is_empty() && !self.spans.failed("tasks") {
            let span = self.spans.value("web").unwrap_or(0..0);
            self.push(
                Diagnostic::warning("web", span, "`web = false` and no services or tasks: this app runs nothing")
                    .with_help("add `[services.<name>]` for a worker, or `[tasks.<name>]` for a command to run"),
            );
        }
        if c.services.is_empty()
            && !no_web
            && c.static_site.is_none()
            && !self.spans.failed("services")
        {
            let span = self.spans.key("name").unwrap_or(0..0);
            self.push(
                Diagnostic::warning("services", span, "no services defined: a `web` service with all defaults is implied")
                    .with_help("it runs the app image's own command and gets traffic on port 3000; add `[services.web]` to set its command"),
            );
        }

        let mut disks = Vec::new();
        for (name, svc) in &c.services {
            let path = join("services", name);
            self.service(name, svc, &path);
            for (i, disk) in svc.disks.iter().enumerate() {
                let dpath = format!("{path}.disks[{i}].name");
                if let Some(span) = self.spans.value(&dpath) {
                    disks.push((span, dpath, name, disk.name.as_str()));
                }
            }
        }
        // Disk names are unique across the app: a disk belongs to one service. The
        // first one in the file owns the name.
        disks.sort_by_key(|(span, ..)| span.start);
        let mut disk_owner: HashMap<&str, (&String, Range<usize>)> = HashMap::new();
        for (span, dpath, name, disk) in disks {
            match disk_owner.get(disk) {
                Some((owner, first)) if *owner != name => {
                    let d = Diagnostic::error(
                            &dpath,
                            span,
                            format!("disk `{disk}` is already used by service `{owner}`"),
                        )
                        .with_label("second use")
                        .with_related(first.clone(), format!("first used by `{owner}` here"))
                        .with_help("only one process can mount a disk at a time: give this service its own disk");
                    self.push(d);
                }
                Some(_) => {} // same service: reported by the per-service check
                None => {
                    disk_owner.insert(disk, (name, span));
                }
            }
        }

        self.node_ports(c);
        self.tasks(c);
        self.addons(c);
        self.aliases(c);
        if let Some(span) = self.spans.value("include")
            && c.include.iter().any(|p| p.trim().is_empty())
        {
            self.push(
                Diagnostic::error("include", span, "`include` has an empty pattern")
                    .with_label("matches nothing")
                    .with_help("patterns are gitignore lines from the app directory, e.g. \"dist/\" or \"*.generated.js\""),
            );
        }

        if let Some(build) = &c.build {
            self.build_extras(build);
        }
        if let Some(st) = &c.static_site {
            self.static_site(st);
        }
        if let Some(build) = &c.build
            && let (Some(df), Some(span)) =
                (&build.dockerfile, self.spans.value("build.dockerfile"))
        {
            let problem = if df.trim().is_empty() {
                Some("must not be empty")
            } else if df.starts_with('/') {
                Some("must be relative to the app directory")
            } else if df.split(['/', '\\']).any(|seg| seg == "..") {
                Some("must stay inside the app directory (no `..`)")
            } else {
                None
            };
            if let Some(p) = problem {
                self.push(
                        Diagnostic::error("build.dockerfile", span, format!("`build.dockerfile` {p}"))
                            .with_label("outside the app directory")
                            .with_help("give the Dockerfile's path relative to the app directory, e.g. \"Dockerfile\" or \"docker/web.Dockerfile\""),
                    );
            }
        }
    }

    /// `[static]`: `dir` an absolute path of the built app, `error_page` a file in it.
    fn static_site(&mut self, st: &super::app_config::StaticConfig) {
        if let Some(span) = self.spans.value("static.dir") {
            let problem = if !st.dir.starts_with('/') {
                Some("must be an absolute path of the built app, like \"/app/public\"")
            } else if st.dir.split('/').any(|seg| seg == "..") {
                Some("must not go up with `..`")
            } else {
                None
            };
            if let Some(p) = problem {
                self.push(
                    Diagnostic::error("static.dir", span, format!("`static.dir` {p}"))
                        .with_label("not a directory of the app")
                        .with_help("`/app` is the app directory: `dir = \"/app/public\"` serves its `public/`"),
                );
            }
        }
        if let (Some(page), Some(span)) = (&st.error_page, self.spans.value("static.error_page")) {
            let problem = if page.trim().is_empty() {
                Some("must name a file")
            } else if page.starts_with('/') {
                Some("is relative to `static.dir`")
            } else if page.split('/').any(|seg| seg == "..") {
                Some("must stay inside `static.dir` (no `..`)")
            } else {
                None
            };
            if let Some(p) = problem {
                self.push(
                    Diagnostic::error(
                        "static.error_page",
                        span,
                        format!("`static.error_page` {p}"),
                    )
                    .with_label("not a file of `static.dir`")
                    .with_help(
                        "give the page's path inside `static.dir`, e.g. \"errors/error.html\"",
                    ),
                );
            }
        }
    }

    /// A disk's `filesystem` and `lease_timeout`: checked, and said plainly what this
    /// platform does with them.
    fn disk_extras(&mut self, disk: &DiskConfig, dpath: &str) {
        let fs_path = format!("{dpath}.filesystem");
        if let (Some(fs), Some(span)) = (&disk.filesystem, self.spans.value(&fs_path)) {
            const KINDS: [&str; 3] = ["ext4", "xfs", "btrfs"];
            if KINDS.contains(&fs.as_str()) {
                self.push(
                    Diagnostic::warning(&fs_path, span, format!("`filesystem = \"{fs}\"` is recorded but not applied here"))
                        .with_label("not applied")
                        .with_help("disks here are directories (process runtime) or volumes (Docker) on the host's own filesystem: no filesystem is made for them"),
                );
            } else {
                let mut d = Diagnostic::error(
                    &fs_path,
                    span.clone(),
                    format!("unknown filesystem `{fs}`: expected ext4, xfs or btrfs"),
                )
                .with_label("expected \"ext4\", \"xfs\" or \"btrfs\"");
                if let Some(best) = super::suggest::closest(fs, KINDS) {
                    d = d
                        .with_help(format!("did you mean `{best}`?"))
                        .with_suggestion(span, format!("\"{best}\""));
                }
                self.push(d);
            }
        }
        let owner_path = format!("{dpath}.owner");
        if let (Some(o), Some(span)) = (&disk.owner, self.spans.value(&owner_path)) {
            let ids = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let ok = o.is_empty()
                || o == "keep"
                || match o.split_once(':') {
                    Some((u, g)) => ids(u) && ids(g),
                    None => ids(o),
                };
            if !ok {
                self.push(
                    Diagnostic::error(
                        &owner_path,
                        span.clone(),
                        format!("disk owner `{o}` is not \"\", \"keep\" or uid[:gid]"),
                    )
                    .with_label("expected \"\", \"keep\" or \"1000:1000\"")
                    .with_help("numeric ids: names differ between the host and the image"),
                );
            }
        }
        let lease_path = format!("{dpath}.lease_timeout");
        self.duration(
            disk.lease_timeout.as_deref(),
            &lease_path,
            Duration::ZERO,
            "\"2m\"",
        );
        if let (Some(l), Some(span)) = (&disk.lease_timeout, self.spans.value(&lease_path))
            && duration::parse(l).is_ok()
        {
            self.push(
                Diagnostic::warning(&lease_path, span, "`lease_timeout` is not needed here")
                    .with_label("not used")
                    .with_help("on one machine a disk's previous holder always lets go within its `shutdown_timeout` (SIGKILL then), and the next one starts at once"),
            );
        }
    }

    /// `[build]` beyond `dockerfile`: `onbuild` commands that say something, and plain
    /// words about what upstream's stack keys and build secrets do here.
    fn build_extras(&mut self, b: &super::app_config::BuildConfig) {
        if let Some(span) = self.spans.value("build.onbuild")
            && b.onbuild.iter().any(|c| c.trim().is_empty())
        {
            self.push(
                Diagnostic::error("build.onbuild", span, "`onbuild` has an empty command")
                    .with_label("nothing to run")
                    .with_help(
                        "each entry is a command run after the build, e.g. \"npm run build\"",
                    ),
            );
        }
        for key in ["version", "alpine_image"] {
            let path = format!("build.{key}");
            if let Some(span) = self.spans.value(&path) {
                self.push(
                    Diagnostic::warning(&path, span, format!("`build.{key}` is accepted but not used here"))
                        .with_label("no stack detection")
                        .with_help("upstream picks a base image for the stack it detects; here the Dockerfile (Docker) or the commands you run (processes) decide the language version"),
                );
            }
        }
        let mut ids: HashMap<&str, Range<usize>> = HashMap::new();
        for (i, secret) in b.secrets.iter().enumerate() {
            let spath = format!("build.secrets[{i}]");
            let id_path = format!("{spath}.id");
            if let Some(span) = self.spans.value(&id_path) {
                if let Some(first) = ids.get(secret.id.as_str()) {
                    self.push(
                        Diagnostic::error(
                            &id_path,
                            span,
                            format!("build secret `{}` is defined twice", secret.id),
                        )
                        .with_label("second definition")
                        .with_related(first.clone(), "first defined here")
                        .with_help("give each build secret its own id"),
                    );
                } else {
                    ids.insert(secret.id.as_str(), span);
                }
            }
            // Upstream: `ref` is required, `backend` defaults to `cluster`.
            let ref_path = format!("{spath}.ref");
            let at = self.spans.get(&spath).map(|s| s.key.clone());
            match (&secret.reference, self.spans.value(&ref_path), at) {
                (None, _, Some(at)) if !self.spans.failed(&ref_path) => self.push(
                    Diagnostic::error(
                        &spath,
                        at,
                        format!("build secret `{}` has no `ref`", secret.id),
                    )
                    .with_label("which secret?")
                    .with_help("`ref` names the secret in the server's store: `ref = \"registry/npm-token\"` (set it with `miren secret set registry/npm-token`)"),
                ),
                (Some(r), Some(span), _) => {
                    if let Err(why) = super::secret_ref::SecretRef::parse(r) {
                        self.push(
                            Diagnostic::error(&ref_path, span, why)
                                .with_label("not a secret's path"),
                        );
                    }
                }
                _ => {}
            }
            let bpath = format!("{spath}.backend");
            if let (Some(b), Some(span)) = (&secret.backend, self.spans.value(&bpath))
                && b != "cluster"
            {
                self.push(
                    Diagnostic::warning(&bpath, span, format!("this server has no secret backend `{b}`: a deploy fails until build secret `{}` names a `cluster` secret", secret.id))
                        .with_label("not a backend here")
                        .with_help("this server's own store is `backend = \"cluster\"` (the default)"),
                );
            }
        }
    }

    /// `port_name` and `port_type`: a DNS label, a port to describe, and what the
    /// proxy does with a `web` that doesn't speak HTTP.
    fn port_meta(&mut self, name: &str, svc: &ServiceConfig, path: &str) {
        let has_port = defaults::declared_port(name, svc).is_some();
        for key in ["port_name", "port_type"] {
            let kpath = format!("{path}.{key}");
            if let Some(span) = self.spans.key(&kpath)
                && !has_port
                && svc.image.is_none()
            {
                self.push(
                    Diagnostic::error(
                        &kpath,
                        span,
                        format!("`{key}` describes the service's port, and `{name}` has none"),
                    )
                    .with_label("no port")
                    .with_help("add `port = …` (the port it listens on), or remove this"),
                );
            }
        }
        let npath = format!("{path}.port_name");
        if let (Some(n), Some(span)) = (&svc.port_name, self.spans.value(&npath))
            && let Err(p) = names::dns_label(n)
        {
            let mut d = Diagnostic::error(
                &npath,
                span.clone(),
                format!("port name `{n}` {}", p.reason),
            )
            .with_label("not a DNS label");
            if let Some(f) = p.fixed {
                d = d
                    .with_help(format!("it names SRV records (`_{f}._tcp`): use `{f}`"))
                    .with_suggestion(span, format!("\"{f}\""));
            }
            self.push(d);
        }
        let tpath = format!("{path}.port_type");
        if name == defaults::WEB
            && let (Some(t @ (PortType::Tcp | PortType::Udp)), Some(span)) =
                (svc.port_type, self.spans.value(&tpath))
        {
            self.push(
                Diagnostic::warning(&tpath, span, format!("`web`'s port is {}: the proxy routes HTTP only, so no request reaches it", t.as_str()))
                    .with_label("not routed")
                    .with_help("other services reach it as `web.app.miren`; for HTTP traffic from outside, leave `port_type` at \"http\""),
            );
        }
    }

    /// `[[services.<name>.ports]]`: not mixed with the single-port keys, names that
    /// are DNS labels and unique, each (port, transport) once.
    fn ports(&mut self, name: &str, svc: &ServiceConfig, path: &str) {
        let ppath = format!("{path}.ports");
        let Some(ports_at) = self.spans.key(&ppath) else {
            return;
        };
        for key in ["port", "port_name", "port_type"] {
            let kpath = format!("{path}.{key}");
            if let Some(span) = self.spans.key(&kpath) {
                self.push(
                    Diagnostic::error(&kpath, span, format!("`{name}` has both `ports` and `{key}`"))
                        .with_label("single-port form")
                        .with_related(ports_at.clone(), "every port is listed here")
                        .with_help("`ports` lists each of the service's ports with its name and type: describe this one there, or drop `ports`"),
                );
            }
        }
        let mut names: HashMap<&str, Range<usize>> = HashMap::new();
        let mut taken: HashMap<(u16, &str), Range<usize>> = HashMap::new();
        for (i, p) in svc.ports.iter().enumerate() {
            let ipath = format!("{ppath}[{i}]");
            let npath = format!("{ipath}.name");
            if let Some(span) = self.spans.value(&npath) {
                if let Err(problem) = names::dns_label(&p.name) {
                    let mut d = Diagnostic::error(
                        &npath,
                        span.clone(),
                        format!("port name `{}` {}", p.name, problem.reason),
                    )
                    .with_label("not a DNS label");
                    if let Some(f) = problem.fixed {
                        d = d
                            .with_help(format!("it names SRV records (`_{f}._tcp`): use `{f}`"))
                            .with_suggestion(span.clone(), format!("\"{f}\""));
                    }
                    self.push(d);
                } else if let Some(first) = names.get(p.name.as_str()) {
                    self.push(
                        Diagnostic::error(&npath, span, format!("`{name}` has two ports named `{}`", p.name))
                            .with_label("second port of this name")
                            .with_related(first.clone(), "first named here")
                            .with_help("a port's name is its SRV record (`_<name>._tcp`): give each port its own"),
                    );
                } else {
                    names.insert(&p.name, span);
                }
            }
            let port_path = format!("{ipath}.port");
            if let Some(span) = self.spans.value(&port_path) {
                let proto = p.kind.unwrap_or_default().proto();
                if let Some(first) = taken.get(&(p.port, proto)) {
                    self.push(
                        Diagnostic::error(&port_path, span, format!("`{name}` lists port {} ({proto}) twice", p.port))
                            .with_label("second time")
                            .with_related(first.clone(), "first listed here")
                            .with_help("`http` and `tcp` ports share TCP; one number can be both TCP and UDP (`type = \"udp\"`), each once"),
                    );
                } else {
                    taken.insert((p.port, proto), span);
                }
            }
        }
        if name == defaults::WEB
            && !svc
                .ports
                .iter()
                .any(|p| p.kind.is_none_or(|k| k == PortType::Http))
        {
            self.push(
                Diagnostic::warning(&ppath, ports_at, "`web` has no `http` port: the proxy routes HTTP only, so no request reaches it")
                    .with_label("not routed")
                    .with_help("give one of its ports `type = \"http\"` (the default) for traffic from outside"),
            );
        }
    }

    /// Node ports are the node's: one service of the app each.
    fn node_ports(&mut self, c: &AppConfig) {
        let mut seen: HashMap<(u16, &str), (String, Range<usize>)> = HashMap::new();
        for (name, svc) in &c.services {
            for (i, p) in svc.ports.iter().enumerate() {
                let npath = format!("{}.ports[{i}].node_port", join("services", name));
                let (Some(node_port), Some(span)) = (p.node_port, self.spans.value(&npath)) else {
                    continue;
                };
                let proto = p.kind.unwrap_or_default().proto();
                match seen.get(&(node_port, proto)) {
                    Some((owner, first)) => self.push(
                        Diagnostic::error(
                            &npath,
                            span,
                            format!("node port {node_port} ({proto}) is already `{owner}`'s"),
                        )
                        .with_label("second use")
                        .with_related(first.clone(), "first used here")
                        .with_help(
                            "a node port reaches one port of one service: pick another number",
                        ),
                    ),
                    None => {
                        seen.insert((node_port, proto), (format!("{name}.{}", p.name), span));
                    }
                }
            }
        }
    }

    /// `[services.<name>.metrics]`: checked as upstream does, and said plainly that
    /// nothing scrapes them yet.
    fn metrics(&mut self, name: &str, m: &MetricsConfig, path: &str) {
        let ipath = format!("{path}.interval");
        self.duration(
            m.interval.as_deref(),
            &ipath,
            Duration::from_secs(30),
            "\"60s\"",
        );
        let ppath = format!("{path}.path");
        if let (Some(p), Some(span)) = (&m.path, self.spans.value(&ppath))
            && !p.starts_with('/')
        {
            self.push(
                Diagnostic::error(
                    &ppath,
                    span.clone(),
                    format!("metrics `path` must start with `/`, found \"{p}\""),
                )
                .with_label("not a path")
                .with_suggestion(span, format!("\"/{p}\"")),
            );
        }
        if m.enabled != Some(false)
            && let Some(span) = self.spans.key(path)
        {
            self.push(
                Diagnostic::warning(path, span, format!("`{name}`'s metrics are not scraped: this server has no metrics pipeline yet"))
                    .with_label("accepted, not used")
                    .with_help("the settings are checked and kept; scraping into the server's `/metrics` comes with the metrics and dashboard work"),
            );
        }
    }

    /// `[aliases]`: names that don't shadow a command, targets that say something.
    fn aliases(&mut self, c: &AppConfig) {
        for (name, target) in &c.aliases {
            let path = join("aliases", name);
            let Some(spans) = self.spans.get(&path).cloned() else {
                continue;
            };
            let words: Vec<&str> = name.split_whitespace().collect();
            let typable = !words.is_empty()
                && words.iter().all(|w| {
                    w.starts_with(|c: char| c.is_ascii_lowercase())
                        && w.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                        })
                });
            if !typable {
                self.push(
                    Diagnostic::error(
                        &path,
                        spans.key,
                        format!("alias `{name}` can't be typed as a command"),
                    )
                    .with_label("not a command name")
                    .with_help("each word starts with a lowercase letter, then lowercase letters, digits, `-` and `_` (`console`, `x tail`)"),
                );
            } else if is_command(&words) {
                self.push(
                    Diagnostic::error(
                        &path,
                        spans.key,
                        format!(
                            "alias `{name}` would hide the `miren {}` command",
                            words.join(" ")
                        ),
                    )
                    .with_label("a built-in command")
                    .with_help("give the shortcut another name"),
                );
            }
            if target.trim().is_empty() {
                self.push(
                    Diagnostic::error(&path, spans.value, format!("alias `{name}` runs nothing"))
                        .with_label("empty")
                        .with_help(
                            "write the miren command it stands for, e.g. \"app run -it -- bash\"",
                        ),
                );
            }
        }
    }

    fn service(&mut self, name: &str, svc: &ServiceConfig, path: &str) {
        if let Some(span) = self.spans.key(path)
            && let Err(p) = names::dns_label(name)
        {
            let mut d = Diagnostic::error(
                path,
                span.clone(),
                format!("service name `{name}` {}", p.reason),
            )
            .with_label("not a valid service name");
            d = match p.fixed {
                    Some(f) => d
                        .with_help(format!("services are reached as `<service>.app.miren`, so the name must be a DNS label: `{f}`"))
                        .with_suggestion(span, f),
                    None => d.with_help("services are reached as `<service>.app.miren`, so the name must be a DNS label"),
                };
            self.push(d);
        }

        let cmd_path = format!("{path}.command");
        if let (Some(cmd), Some(span)) = (&svc.command, self.spans.value(&cmd_path)) {
            if cmd.trim().is_empty() {
                self.push(
                    Diagnostic::error(&cmd_path, span, "`command` is empty")
                        .with_label("nothing to run")
                        .with_help("remove `command` to run the image's own entrypoint, or write the command to run"),
                );
            } else {
                self.fixed_port(cmd, span, &cmd_path, name, svc);
            }
        }

        self.port_meta(name, svc, path);
        self.ports(name, svc, path);
        let args_path = format!("{path}.args");
        if let Some(span) = self.spans.value(&args_path) {
            if svc.args.is_empty() {
                self.push(
                    Diagnostic::error(&args_path, span, "`args` is empty")
                        .with_label("no arguments")
                        .with_help(
                            "remove `args` to run the image's own command, or list the arguments",
                        ),
                );
            } else if let Some(cmd) = self.spans.value(&cmd_path) {
                self.push(
                    Diagnostic::error(&args_path, span, format!("`{name}` has both `command` and `args`"))
                        .with_label("args for the image's entrypoint")
                        .with_related(cmd, "`command` replaces the entrypoint here")
                        .with_help("`args` keeps the image's ENTRYPOINT and gives it these arguments; `command` runs a shell line instead: keep one"),
                );
            }
        }

        let image_path = format!("{path}.image");
        if let (Some(image), Some(span)) = (&svc.image, self.spans.value(&image_path))
            && let Err(p) = names::image_ref(image)
        {
            let mut d = Diagnostic::error(
                &image_path,
                span.clone(),
                format!("image `{image}` {}", p.reason),
            )
            .with_label("not an image reference");
            d = match p.fixed {
                    Some(f) => d.with_help(format!("did you mean `{f}`?")).with_suggestion(span, format!("\"{f}\"")),
                    None => d.with_help("an image is `name[:tag][@sha256:digest]`, like `postgres:16` or `ghcr.io/org/app:1.2`"),
                };
            self.push(d);
        }

        self.env_list(&svc.env, &format!("{path}.env"));
        self.duration(
            svc.port_timeout.as_deref(),
            &format!("{path}.port_timeout"),
            Duration::from_secs(1),
            "\"30s\"",
        );
        if let Some(c) = &svc.concurrency {
            self.duration(
                c.shutdown_timeout.as_deref(),
                &format!("{path}.concurrency.shutdown_timeout"),
                Duration::ZERO,
                "\"10s\"",
            );
        }
        if let Some(h) = &svc.health {
            self.health(name, svc, h, &format!("{path}.health"));
        }
        if let Some(m) = &svc.metrics {
            self.metrics(name, m, &format!("{path}.metrics"));
        }
        let mode = self.concurrency(name, svc.concurrency.as_ref(), path);
        self.disks(name, svc, path, mode);
    }

    /// Warns when a command binds a port it chose itself: on the process runtime
    /// every instance gets its own `$PORT` (put in place of the service's own port), and
    /// a port that isn't the service's gets no traffic.
    fn fixed_port(
        &mut self,
        cmd: &str,
        span: Range<usize>,
        path: &str,
        name: &str,
        svc: &ServiceConfig,
    ) {
        let Some(fixed) = command::fixed_port(cmd) else {
            return;
        };
        // Point at the port itself when the string is written plainly (no escapes).
        let inner = span.start + 1..span.end.saturating_sub(1);
        let at = if span.len() == cmd.len() + 2 {
            inner.start + fixed.at.start..inner.start + fixed.at.end
        } else {
            span
        };
        let port = fixed.port;
        let with_var = format!("{}$PORT{}", &cmd[..fixed.at.start], &cmd[fixed.at.end..]);
        if let Some(named) = svc
            .ports
            .iter()
            .find(|p| p.port == port && Some(*p) != svc.primary_port())
        {
            let var = super::names::port_var(&named.name);
            let with_var = format!("{}${var}{}", &cmd[..fixed.at.start], &cmd[fixed.at.end..]);
            self.push(
                Diagnostic::warning(path, at, format!("`{name}` binds the fixed port {port} (its `{}` port): on the process runtime each instance listens on its own ${var} in its place", named.name))
                    .with_label("fixed port")
                    .with_help(format!("write ${var}, which Miren sets for every instance, to say so: `{with_var}`")),
            );
            return;
        }
        let d = match defaults::declared_port(name, svc) {
            Some(p) if p == port => Diagnostic::warning(path, at, format!("`{name}` binds the fixed port {port}: on the process runtime each instance listens on its own $PORT in its place"))
                .with_label("fixed port")
                .with_help(format!("write $PORT, which Miren sets for every instance, to say so: `{with_var}`")),
            Some(p) => Diagnostic::warning(path, at, format!("`{name}` binds the fixed port {port}, but its `port` is {p}: requests and readiness checks go to {p}"))
                .with_label("not the service's port")
                .with_help(format!("listen on $PORT, which Miren sets for every instance: `{with_var}`, or set `port = {port}`")),
            None => Diagnostic::warning(path, at, format!("`{name}` binds the fixed port {port} but has no `port`: only one instance of it can run on the process runtime"))
                .with_label("fixed port")
                .with_help(format!("set `port = {port}`, or listen on $PORT: `{with_var}`")),
        };
        self.push(d);
    }

    pub(super) fn env_list(&mut self, env: &[EnvVar], path: &str) {
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        for (i, var) in env.iter().enumerate() {
            let kpath = format!("{path}[{i}].key");
            let Some(span) = self.spans.value(&kpath) else {
                continue;
            };
            self.env_backend(var, &format!("{path}[{i}]"));
            if let Err(p) = names::env_key(&var.key) {
                let mut d = Diagnostic::error(
                    &kpath,
                    span.clone(),
                    format!("environment variable name `{}` {}", var.key, p.reason),
                )
                .with_label("not a valid variable name");
                d = match p.fixed {
                    Some(f) => d
                        .with_help(format!("use `{f}`"))
                        .with_suggestion(span.clone(), format!("\"{f}\"")),
                    None => {
                        d.with_help("names are letters, digits and `_`, not starting with a digit")
                    }
                };
                self.push(d);
                continue;
            }
            if var.key.starts_with("MIREN_") {
                self.push(
                    Diagnostic::error(&kpath, span.clone(), format!("`{}` is reserved: names starting with `MIREN_` are set by the platform", var.key))
                        .with_label("reserved prefix")
                        .with_help("choose a name without the `MIREN_` prefix"),
                );
            } else if var.key == "PORT" {
                self.push(
                    Diagnostic::warning(
                        &kpath,
                        span.clone(),
                        "`PORT` is set by the platform for each instance; this value is overridden",
                    )
                    .with_label("overridden at run time")
                    .with_help(
                        "to choose the port a service listens on, set `port` on the service",
                    ),
                );
            }
            match seen.get(var.key.as_str()) {
                Some(first) => {
                    let d = Diagnostic::error(
                        &kpath,
                        span,
                        format!(
                            "environment variable `{}` is set twice in `{path}`",
                            var.key
                        ),
                    )
                    .with_label("set again here")
                    .with_related(first.clone(), "first set here")
                    .with_help("remove one of them");
                    self.push(d);
                }
                None => {
                    seen.insert(var.key.as_str(), span);
                }
            }
        }
    }

    /// A duration-valued key: a duration, and at least `min`.
    pub(super) fn duration(
        &mut self,
        value: Option<&str>,
        path: &str,
        min: Duration,
        example: &str,
    ) {
        let (Some(v), Some(span)) = (value, self.spans.value(path)) else {
            return;
        };
        let key = path.rsplit('.').next().unwrap_or(path);
        match duration::parse(v) {
            Ok(d) if d < min => self.push(
                Diagnostic::error(
                    path,
                    span,
                    format!(
                        "`{key}` must be at least {}, found \"{v}\"",
                        duration::Display(min)
                    ),
                )
                .with_label("too short")
                .with_help(format!("for example {key} = {example}")),
            ),
            Ok(_) => {}
            Err(e) => self.push(
                Diagnostic::error(path, span, format!("`{key}` is not a duration: {e}"))
                    .with_label(format!("expected a duration like {example}"))
                    .with_help(e.help()),
            ),
        }
    }

    /// `[services.<name>.health]`: a path on a port, sensible timings.
    fn health(&mut self, name: &str, svc: &ServiceConfig, h: &HealthConfig, path: &str) {
        let ppath = format!("{path}.path");
        if let Some(span) = self.spans.value(&ppath)
            && !h.path.starts_with('/')
        {
            self.push(
                Diagnostic::error(
                    &ppath,
                    span.clone(),
                    format!(
                        "the health check's path must start with `/`, found \"{}\"",
                        h.path
                    ),
                )
                .with_label("not a path")
                .with_help("it is requested on the instance's own port")
                .with_suggestion(span, format!("\"/{}\"", h.path.trim_start_matches('/'))),
            );
        }
        if defaults::declared_port(name, svc).is_none()
            && svc.image.is_none()
            && let Some(span) = self.spans.key(path)
        {
            self.push(
                Diagnostic::error(
                    path,
                    span,
                    format!("`{name}` has a health check but no `port` to check it on"),
                )
                .with_label("no port")
                .with_help(format!(
                    "set `port` in `[services.{name}]` to the port its command listens on ($PORT)"
                )),
            );
        }
        let ipath = format!("{path}.interval");
        let tpath = format!("{path}.timeout");
        self.duration(
            h.interval.as_deref(),
            &ipath,
            Duration::from_secs(1),
            "\"10s\"",
        );
        self.duration(
            h.timeout.as_deref(),
            &tpath,
            Duration::from_millis(10),
            "\"2s\"",
        );
        let interval = h.interval.as_deref().and_then(|d| duration::parse(d).ok());
        let timeout = h.timeout.as_deref().and_then(|d| duration::parse(d).ok());
        if let (Some(t), Some(span)) = (timeout, self.spans.value(&tpath))
            && t > interval.unwrap_or(defaults::HEALTH_INTERVAL)
        {
            self.push(
                Diagnostic::warning(
                    &tpath,
                    span,
                    "the health check's `timeout` is longer than its `interval`",
                )
                .with_label("longer than the interval")
                .with_help(
                    "checks would overlap; a timeout of a fraction of the interval is usual",
                ),
            );
        }
    }

    /// Checks the concurrency table; returns the effective mode.
    fn concurrency(&mut self, service: &str, c: Option<&ConcurrencyConfig>, path: &str) -> Mode {
        let cpath = format!("{path}.concurrency");
        let default_mode = defaults::mode(service);
        let Some(c) = c else { return default_mode };
        let mode_path = format!("{cpath}.mode");
        let mode = c.mode.unwrap_or(default_mode);
        if self.spans.failed(&mode_path) {
            // A bad mode was reported; which keys fit it is anybody's guess, but the
            // values themselves can still be checked.
            self.auto_values(c, &cpath);
            return mode;
        }
        let written_mode = c.mode.is_some();
        let other = match mode {
            Mode::Auto => Mode::Fixed,
            Mode::Fixed => Mode::Auto,
        };
        let misplaced: &[&str] = match mode {
            Mode::Auto => &["num_instances"],
            Mode::Fixed => &[
                "requests_per_instance",
                "scale_down_delay",
                "min_instances",
                "max_instances",
            ],
        };
        for key in misplaced {
            let kpath = format!("{cpath}.{key}");
            let Some(span) = self.spans.key(&kpath) else {
                continue;
            };
            let why = if written_mode {
                format!("`{service}` runs in {} mode", mode.as_str())
            } else if service == defaults::WEB {
                "`web` autoscales by default".to_string()
            } else {
                format!("`{service}` runs in fixed mode by default (only `web` autoscales)")
            };
            let help = match mode {
                Mode::Auto => "for a fixed number of instances set `mode = \"fixed\"`; to keep some instances warm use `min_instances`".to_string(),
                Mode::Fixed => "to scale with requests set `mode = \"auto\"`".to_string(),
            };
            let mut d = Diagnostic::error(
                &kpath,
                span,
                format!("`{key}` only applies in {} mode, but {why}", other.as_str()),
            )
            .with_label(format!("{} mode only", other.as_str()))
            .with_help(help);
            if let Some(ms) = self.spans.value(&mode_path) {
                d = d.with_related(ms, format!("mode set to {} here", mode.as_str()));
            }
            self.push(d);
        }
        if mode == Mode::Fixed {
            return mode;
        }

        if service != defaults::WEB
            && let Some(span) = self.spans.value(&mode_path)
        {
            self.push(
                    Diagnostic::warning(&mode_path, span, format!("`{service}` autoscales on requests, but only `web` receives requests"))
                        .with_label("no traffic reaches this service")
                        .with_help("it will run `min_instances` instances (at least 1 at each deploy); use `mode = \"fixed\"` to say how many"),
                );
        }

        self.auto_values(c, &cpath);
        mode
    }

    /// Checks the values of auto mode's settings.
    fn auto_values(&mut self, c: &ConcurrencyConfig, cpath: &str) {
        let delay_path = format!("{cpath}.scale_down_delay");
        if let (Some(delay), Some(span)) = (&c.scale_down_delay, self.spans.value(&delay_path)) {
            match duration::parse(delay) {
                Ok(d) if d.as_secs() < 1 => self.push(
                    Diagnostic::error(
                        &delay_path,
                        span,
                        format!("`scale_down_delay` must be at least 1s, found \"{delay}\""),
                    )
                    .with_label("too short")
                    .with_help("instances would stop between two requests; use \"30s\" or more"),
                ),
                Ok(_) => {}
                Err(e) => self.push(
                    Diagnostic::error(
                        &delay_path,
                        span,
                        format!("`scale_down_delay` is not a duration: {e}"),
                    )
                    .with_label("expected a duration like \"15m\"")
                    .with_help(e.help()),
                ),
            }
        }

        let min_path = format!("{cpath}.min_instances");
        let max_path = format!("{cpath}.max_instances");
        let min = c.min_instances.unwrap_or(defaults::MIN_INSTANCES);
        let max = c.max_instances.unwrap_or(defaults::MAX_INSTANCES);
        if min > max && !self.spans.failed(&min_path) && !self.spans.failed(&max_path) {
            let (at, related) = match (self.spans.value(&min_path), self.spans.value(&max_path)) {
                (Some(m), Some(x)) => (m, Some(x)),
                (Some(m), None) => (m, None),
                (None, Some(x)) => (x, None),
                (None, None) => return,
            };
            let mut d = Diagnostic::error(
                &min_path,
                at,
                format!("`min_instances` ({min}) is greater than `max_instances` ({max})"),
            )
            .with_label("more than the maximum");
            d = match related {
                Some(x) => d
                    .with_related(x, "maximum set here")
                    .with_help("raise `max_instances` or lower `min_instances`"),
                None => d.with_help(format!(
                    "`max_instances` defaults to {}; set it to at least {min}",
                    defaults::MAX_INSTANCES
                )),
            };
            self.push(d);
        }
    }

    fn disks(&mut self, service: &str, svc: &ServiceConfig, path: &str, mode: Mode) {
        let mut mounts: HashMap<&str, Range<usize>> = HashMap::new();
        let mut names_seen: HashMap<&str, Range<usize>> = HashMap::new();
        for (i, disk) in svc.disks.iter().enumerate() {
            let dpath = format!("{path}.disks[{i}]");
            self.disk_extras(disk, &dpath);
            let name_path = format!("{dpath}.name");
            if let Some(span) = self.spans.value(&name_path) {
                if let Err(p) = names::disk_name(&disk.name) {
                    let mut d = Diagnostic::error(
                        &name_path,
                        span.clone(),
                        format!("disk name `{}` {}", disk.name, p.reason),
                    )
                    .with_label("not a valid disk name");
                    d = match p.fixed {
                        Some(f) => d
                            .with_help(format!("use `{f}`"))
                            .with_suggestion(span.clone(), format!("\"{f}\"")),
                        None => {
                            d.with_help("disk names are lowercase letters, digits, `-` and `_`")
                        }
                    };
                    self.push(d);
                }
                if let Some(first) = names_seen.get(disk.name.as_str()) {
                    self.push(
                        Diagnostic::error(
                            &name_path,
                            span.clone(),
                            format!("`{service}` has two disks named `{}`", disk.name),
                        )
                        .with_label("second disk with this name")
                        .with_related(first.clone(), "first disk here")
                        .with_help("give each disk its own name"),
                    );
                } else {
                    names_seen.insert(disk.name.as_str(), span);
                }
            }

            let mount_path = format!("{dpath}.mount_path");
            if let Some(span) = self.spans.value(&mount_path) {
                if let Some((problem, fixed)) = mount_problem(&disk.mount_path) {
                    let mut d = Diagnostic::error(
                        &mount_path,
                        span.clone(),
                        format!("mount path `{}` {problem}", disk.mount_path),
                    )
                    .with_label("invalid mount path");
                    d = match fixed {
                        Some(f) => d.with_help(format!("use `{f}`")).with_suggestion(span.clone(), format!("\"{f}\"")),
                        None => d.with_help("a mount path is an absolute directory like \"/var/lib/postgresql/data\""),
                    };
                    self.push(d);
                } else if let Some(first) = mounts.get(disk.mount_path.as_str()) {
                    self.push(
                        Diagnostic::error(
                            &mount_path,
                            span.clone(),
                            format!("two disks of `{service}` mount at `{}`", disk.mount_path),
                        )
                        .with_label("second disk here")
                        .with_related(first.clone(), "first disk mounted here")
                        .with_help("mount each disk at its own path"),
                    );
                } else {
                    mounts.insert(disk.mount_path.as_str(), span);
                }
            }
        }

        // A platform disk is mounted by one process at a time: exactly one fixed
        // instance. (A local one is a directory of the node, shared.)
        let Some((first, first_disk)) = svc
            .disks
            .iter()
            .enumerate()
            .find(|(_, d)| d.provider != Some(DiskProvider::Local))
        else {
            return;
        };
        let cpath = format!("{path}.concurrency");
        if self.spans.failed(&cpath)
            || self.spans.failed(&format!("{cpath}.mode"))
            || self.spans.failed(&format!("{cpath}.num_instances"))
        {
            return;
        }
        let at = self
            .spans
            .value(&format!("{path}.disks[{first}].name"))
            .or_else(|| self.spans.value(&format!("{path}.disks[{first}]")))
            .unwrap_or(0..0);
        let fix = format!("[services.{service}.concurrency]\nmode = \"fixed\"\nnum_instances = 1");
        let n = svc
            .concurrency
            .as_ref()
            .and_then(|c| c.num_instances)
            .unwrap_or(1);
        let disk = &first_disk.name;
        if mode == Mode::Auto {
            let mode_span = self.spans.value(&format!("{cpath}.mode"));
            let why = if mode_span.is_some() {
                format!("`{service}` autoscales (`mode = \"auto\"`)")
            } else {
                format!("`{service}` autoscales by default")
            };
            let mut d = Diagnostic::error(
                format!("{path}.disks[{first}]"),
                at,
                format!("disk `{disk}` needs exactly one instance, but {why}"),
            )
            .with_label("a disk can be mounted by one instance at a time")
            .with_help(format!(
                "run `{service}` as a single fixed instance:\n{fix}"
            ));
            if let Some(ms) = mode_span {
                d = d.with_related(ms, "autoscaling set here");
            }
            self.push(d);
        } else if n != 1 {
            let npath = format!("{cpath}.num_instances");
            let mut d = Diagnostic::error(
                format!("{path}.disks[0]"),
                at,
                format!("disk `{disk}` needs exactly one instance, but `{service}` runs {n} (`num_instances = {n}`)"),
            )
            .with_label("a disk can be mounted by one instance at a time");
            if let Some(ns) = self.spans.value(&npath) {
                d = d
                    .with_related(ns.clone(), format!("{n} instances set here"))
                    .with_help(
                        "set `num_instances = 1`: only one process can mount a disk at a time",
                    )
                    .with_suggestion(ns, "1");
            }
            self.push(d);
        }
    }
}

/// Why a mount path is invalid, and its normalized form when that would be valid.
fn mount_problem(p: &str) -> Option<(&'static str, Option<String>)> {
    if !p.starts_with('/') {
        let fixed = format!("/{}", p.trim_start_matches("./"));
        return Some(("must be absolute", normalized(&fixed)));
    }
    if p.split('/').any(|s| s == "..") {
        return Some(("must not contain `..`", None));
    }
    let norm = normalized(p);
    match norm {
        None => Some(("must not be `/`", None)),
        Some(n) if n != p => Some(("must be normalized", Some(n))),
        Some(_) => None,
    }
}

/// `p` without empty and `.` segments or a trailing slash; `None` for the root.
fn normalized(p: &str) -> Option<String> {
    let segs: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if segs.is_empty() || segs.contains(&"..") {
        return None;
    }
    Some(format!("/{}", segs.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_must_be_absolute_normalized_and_not_root() {
        assert_eq!(mount_problem("/var/lib/data"), None);
        assert_eq!(
            mount_problem("data"),
            Some(("must be absolute", Some("/data".into())))
        );
        assert_eq!(
            mount_problem("/data/"),
            Some(("must be normalized", Some("/data".into())))
        );
        assert_eq!(
            mount_problem("/a//b/./c"),
            Some(("must be normalized", Some("/a/b/c".into())))
        );
        assert_eq!(mount_problem("/"), Some(("must not be `/`", None)));
        assert_eq!(
            mount_problem("/a/../b"),
            Some(("must not contain `..`", None))
        );
    }
}

//! The rules of upstream's `[addons.<name>]`, env `backend`/`ref` and
//! `workload_role` (SPEC §17). Each is checked as upstream checks it; where this
//! platform does something else than upstream (a `shared` database server, a secret
//! backend other than its own, an in-cluster API), a warning says plainly what
//! happens here instead.

use super::addons::{ADDONS, Kind, addon};
use super::app_config::{AppConfig, EnvVar, Mode};
use super::decode::join;
use super::defaults;
use super::diagnostic::Diagnostic;
use super::rules::Rules;
use super::suggest::closest;

impl Rules<'_> {
    pub(super) fn addons(&mut self, c: &AppConfig) {
        for (name, addon_cfg) in &c.addons {
            let path = join("addons", name);
            let Some(key) = self.spans.key(&path) else {
                continue;
            };
            match addon(name) {
                Some(a) => {
                    let vpath = format!("{path}.variant");
                    if let (Some(v), Some(span)) = (&addon_cfg.variant, self.spans.value(&vpath)) {
                        if !a.has_variant(v) {
                            let variants: Vec<&str> = a.variants.iter().map(|(v, _)| *v).collect();
                            let list: Vec<String> =
                                variants.iter().map(|v| format!("`{v}`")).collect();
                            let mut d = Diagnostic::error(
                                &vpath,
                                span.clone(),
                                format!(
                                    "`{name}` has no variant `{v}`: it has {}",
                                    list.join(" and ")
                                ),
                            )
                            .with_label("unknown variant");
                            if let Some(best) = closest(v, variants.iter().copied()) {
                                d = d
                                    .with_help(format!("did you mean `{best}`?"))
                                    .with_suggestion(span, format!("\"{best}\""));
                            }
                            self.push(d);
                        } else if v == "shared" {
                            self.push(
                                Diagnostic::warning(&vpath, span, format!("`{name}` is not shared between apps here: the app gets a server of its own"))
                                    .with_label("a dedicated server")
                                    .with_help("upstream's `shared` variant puts apps on one server; this server runs one per app, as `small` does"),
                            );
                        }
                    }
                    self.addon_targets(c, name, a.kind, &path, key.clone());
                }
                None => {
                    let known: Vec<&str> = ADDONS.iter().map(|a| a.name).collect();
                    let mut d = Diagnostic::warning(
                        &path,
                        key.clone(),
                        format!(
                            "this platform knows no addon `{name}`: a deploy of this file fails"
                        ),
                    )
                    .with_label("unknown addon");
                    d = match closest(name, known.iter().copied()) {
                        Some(best) => d.with_help(format!("did you mean `{best}`?")),
                        None => d.with_help(format!("the addons here are {}", known.join(", "))),
                    };
                    self.push(d);
                }
            }
            let spath = format!("{path}.services");
            if let Some(span) = self.spans.value(&spath) {
                for s in &addon_cfg.services {
                    let implied_web = c.services.is_empty() && s == "web";
                    if !c.services.contains_key(s) && !implied_web {
                        let mut d = Diagnostic::error(
                            &spath,
                            span.clone(),
                            format!(
                                "addon `{name}` names service `{s}`, which the app doesn't have"
                            ),
                        )
                        .with_label("no such service");
                        if let Some(best) = closest(s, c.services.keys().map(String::as_str)) {
                            d = d.with_help(format!("did you mean `{best}`?"));
                        }
                        self.push(d);
                    }
                }
            }
        }
        if let (Some(role), Some(span)) = (&c.workload_role, self.spans.value("workload_role")) {
            self.push(
                Diagnostic::warning(
                    "workload_role",
                    span,
                    format!("`workload_role = \"{role}\"` grants nothing here: this platform has no in-cluster API for sandboxes"),
                )
                .with_label("accepted, not used")
                .with_help("sandboxes reach the server only through their app's services; remove it, or keep it for upstream"),
            );
        }
    }

    /// What an addon asks of the services it attaches to: its server's name is free,
    /// a single-writer database's services run one fixed instance, and a variable
    /// app.toml sets itself is said to win over the addon's.
    fn addon_targets(
        &mut self,
        c: &AppConfig,
        name: &str,
        kind: Kind,
        path: &str,
        key: std::ops::Range<usize>,
    ) {
        let Some(a) = addon(name) else { return };
        let implied = c.services.is_empty() && c.web != Some(false);
        let declared = &c.addons[name].services;
        let targets: Vec<String> = if !declared.is_empty() {
            declared.clone()
        } else if implied {
            vec![defaults::WEB.to_string()]
        } else {
            c.services.keys().cloned().collect()
        };
        if a.has_server()
            && let Some(at) = self.spans.key(&join("services", name))
        {
            self.push(
                Diagnostic::error(
                    join("services", name),
                    at,
                    format!("service `{name}` has the name addon `{name}`'s server runs as"),
                )
                .with_label("taken by the addon")
                .with_related(key.clone(), "the addon")
                .with_help(format!(
                    "rename the service, or remove `[addons.{name}]` to run it yourself"
                )),
            );
        }
        if a.single_writer() {
            for t in &targets {
                let svc = c.services.get(t);
                let conc = svc.and_then(|s| s.concurrency.as_ref());
                let mode = conc
                    .and_then(|c| c.mode)
                    .unwrap_or_else(|| defaults::mode(t));
                let n = conc
                    .and_then(|c| c.num_instances)
                    .unwrap_or(defaults::NUM_INSTANCES);
                let why = match mode {
                    Mode::Auto => Some("autoscales".to_string()),
                    Mode::Fixed if n != 1 => Some(format!("runs {n} instances")),
                    Mode::Fixed => None,
                };
                if let Some(why) = why {
                    let at = self.spans.key(&join("services", t)).unwrap_or(key.clone());
                    self.push(
                        Diagnostic::error(path, key.clone(), format!("`{name}` allows one writer, and service `{t}` {why}"))
                            .with_label("one writer")
                            .with_related(at, format!("`{t}`"))
                            .with_help(format!("give `{t}` `mode = \"fixed\"` and `num_instances = 1` in `[services.{t}.concurrency]`, or name other services in `services = [...]`")),
                    );
                }
                if let Some(svc) = svc {
                    for (i, d) in svc.disks.iter().enumerate() {
                        let dpath = format!("{}.disks[{i}].name", join("services", t));
                        if d.name == super::addons::catalog::SQLITE_DISK
                            && let Some(span) = self.spans.value(&dpath)
                        {
                            self.push(
                                Diagnostic::error(&dpath, span, format!("`{name}` mounts its disk `sqlite` into `{t}`, which has a disk of that name"))
                                    .with_label("taken by the addon")
                                    .with_help("rename this disk"),
                            );
                        }
                    }
                }
            }
        }
        // Variables app.toml sets itself are kept: say so.
        let dummy = super::addons::AddonInstance {
            name: name.to_string(),
            variant: String::new(),
            version: None,
            services: Vec::new(),
            from_file: true,
            user: String::new(),
            password: String::new(),
            database: String::new(),
            disk: None,
            created: 0,
        };
        let keys: Vec<String> = super::addons::client_env(kind, "", a.port, &dummy)
            .into_iter()
            .map(|(k, _, _)| k)
            .collect();
        let mut lists: Vec<(String, &[EnvVar])> = vec![("env".to_string(), &c.env)];
        for t in &targets {
            if let Some(s) = c.services.get(t) {
                lists.push((format!("{}.env", join("services", t)), &s.env));
            }
        }
        for (lpath, list) in lists {
            for (i, v) in list.iter().enumerate() {
                let kpath = format!("{lpath}[{i}].key");
                if keys.contains(&v.key)
                    && let Some(span) = self.spans.value(&kpath)
                {
                    self.push(
                        Diagnostic::warning(
                            &kpath,
                            span,
                            format!(
                                "`{}` is set here and by addon `{name}`: this value wins",
                                v.key
                            ),
                        )
                        .with_label("app.toml's value")
                        .with_help(format!(
                            "remove it to use `{name}`'s, which the addon keeps up to date"
                        )),
                    );
                }
            }
        }
    }

    /// An env var's `backend` and `ref`, with upstream's checks: `ref` needs
    /// `backend` and is not written with `value`.
    pub(super) fn env_backend(&mut self, var: &EnvVar, ipath: &str) {
        let rpath = format!("{ipath}.ref");
        let vpath = format!("{ipath}.value");
        if var.reference.is_some()
            && var.backend.is_none()
            && let Some(span) = self.spans.key(&rpath)
        {
            self.push(
                Diagnostic::error(
                    &rpath,
                    span,
                    format!("`{}` has `ref` but no `backend`", var.key),
                )
                .with_label("a reference into no backend")
                .with_help(
                    "add `backend = \"cluster\"`, or write the value with `miren env set --secret`",
                ),
            );
        }
        if let (Some(_), Some(span), Some(value)) = (
            &var.reference,
            self.spans.key(&vpath),
            self.spans.key(&rpath),
        ) {
            self.push(
                Diagnostic::error(
                    &vpath,
                    span,
                    format!("`{}` has both `value` and `ref`", var.key),
                )
                .with_label("a value")
                .with_related(value, "and a reference")
                .with_help("keep one: `value` for a plain value, `backend` + `ref` for a secret"),
            );
        }
        let bpath = format!("{ipath}.backend");
        if let (Some(b), Some(span)) = (&var.backend, self.spans.value(&bpath))
            && b != "cluster"
        {
            self.push(
                Diagnostic::warning(&bpath, span, format!("this server has no secret backend `{b}`: a deploy fails until `{}` names a `cluster` secret", var.key))
                    .with_label("not a backend here")
                    .with_help("this server's own store is `backend = \"cluster\"`: put the value there with `miren secret set <path>`"),
            );
        }
        if let (Some(r), Some(span)) = (&var.reference, self.spans.value(&rpath))
            && let Err(why) = super::secret_ref::SecretRef::parse(r)
        {
            self.push(
                Diagnostic::error(&rpath, span, why)
                    .with_label("not a secret's path")
                    .with_help("a path like `payments/stripe-key`, or `payments/stripe-key@x1A` for one version"),
            );
        }
    }
}

//! The rules of upstream keys this platform checks but does not carry out yet:
//! `[addons.<name>]`, env `backend`/`ref` and `workload_role` (SPEC §17). Each is
//! checked as upstream checks it, and a warning says plainly what happens here
//! instead, so a file upstream accepts is accepted and nobody is misled.

use super::app_config::{AppConfig, EnvVar};
use super::decode::join;
use super::diagnostic::Diagnostic;
use super::rules::Rules;
use super::suggest::closest;

/// Upstream's addons and their variants (the first is the default).
const ADDONS: &[(&str, &[&str])] = &[
    ("miren-postgresql", &["small", "shared"]),
    ("miren-mysql", &["small", "shared"]),
    ("miren-valkey", &["small"]),
    ("miren-rabbitmq", &["small"]),
    ("miren-memcache", &["small"]),
    ("miren-sqlite", &["standard"]),
];

impl Rules<'_> {
    pub(super) fn addons(&mut self, c: &AppConfig) {
        for (name, addon) in &c.addons {
            let path = join("addons", name);
            let Some(key) = self.spans.key(&path) else {
                continue;
            };
            match ADDONS.iter().find(|(n, _)| n == name) {
                Some((_, variants)) => {
                    let vpath = format!("{path}.variant");
                    if let (Some(v), Some(span)) = (&addon.variant, self.spans.value(&vpath))
                        && !variants.contains(&v.as_str())
                    {
                        let list: Vec<String> = variants.iter().map(|v| format!("`{v}`")).collect();
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
                    }
                }
                None => {
                    let known: Vec<&str> = ADDONS.iter().map(|(n, _)| *n).collect();
                    let mut d = Diagnostic::warning(
                        &path,
                        key.clone(),
                        format!("this platform knows no addon `{name}`"),
                    )
                    .with_label("unknown addon");
                    d = match closest(name, known.iter().copied()) {
                        Some(best) => d.with_help(format!("did you mean `{best}`?")),
                        None => d.with_help(format!("upstream's addons are {}", known.join(", "))),
                    };
                    self.push(d);
                }
            }
            let spath = format!("{path}.services");
            if let Some(span) = self.spans.value(&spath) {
                for s in &addon.services {
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
            self.push(
                Diagnostic::warning(
                    &path,
                    key,
                    format!("addon `{name}` is not provisioned here yet: nothing runs for it and no credentials are injected"),
                )
                .with_label("accepted, not provisioned")
                .with_help("run it as a service instead (`[services.db]` with `image = \"postgres:16\"` and a disk) and set its URL with `[[env]]` or `miren env set --secret`"),
            );
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
        if let Some(span) = self.spans.value(&bpath) {
            self.push(
                Diagnostic::warning(&bpath, span, format!("`{}` is not read from a secret backend here: a deploy fails unless `miren env set --secret {}=…` gives it a value", var.key, var.key))
                    .with_label("accepted, not read")
                    .with_help("this server's secret store is `miren env set --secret`; its values reach the sandboxes like any env"),
            );
        }
    }
}

//! The routing table as a projection of the store: routes, apps, and the web
//! service's pools and sandboxes, kept in memory as events arrive, so a change costs
//! work for the app it touches, not for every app. The reflector in `miren_core`
//! does the following; this says what the events mean for the table.

use std::collections::{HashMap, HashSet};

use miren_core::config::StaticFiles;
use miren_core::model::{App, Route, Sandbox, SandboxPool, Version};
use miren_core::store::Revision;
use miren_core::store::keys::{Key, Kind, Undecodable};
use miren_core::store::reflector::{Projection, Put};

use super::Table;

/// The store's routing state.
#[derive(Debug, Default)]
pub struct Mirror {
    /// By host.
    pub routes: HashMap<String, Route>,
    /// By name.
    pub apps: HashMap<String, App>,
    /// Web pools, by app, by pool id.
    pub pools: HashMap<String, HashMap<String, SandboxPool>>,
    /// Web sandboxes, by app, by sandbox id.
    pub sandboxes: HashMap<String, HashMap<String, Sandbox>>,
    /// `[static]` of versions that have it, by app, by version id.
    pub statics: HashMap<String, HashMap<String, StaticFiles>>,
    /// Where versions' static files are (`None`: none are served).
    pub static_root: Option<std::path::PathBuf>,
}

/// What changes since the last table touched.
#[derive(Debug, Default)]
pub struct Changed {
    /// Some route.
    pub routes: bool,
    /// These apps (their app object, web pools or web sandboxes).
    pub apps: HashSet<String>,
}

impl Changed {
    /// Nothing the table depends on.
    pub fn is_empty(&self) -> bool {
        !self.routes && self.apps.is_empty()
    }
}

/// The proxy's projection: the mirror, and what changed in it since the last table.
#[derive(Debug)]
pub struct Routing {
    mirror: Mirror,
    changed: Changed,
    /// The mirror was listed afresh: the next table is built whole.
    rebuild: bool,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            mirror: Mirror::default(),
            changed: Changed::default(),
            rebuild: true,
        }
    }
}

impl Routing {
    /// A projection whose apps' `[static]` files are under `static_root`.
    pub fn serving_files_from(static_root: Option<std::path::PathBuf>) -> Self {
        let mut r = Self::default();
        r.mirror.static_root = static_root;
        r
    }
}

impl Projection for Routing {
    type View = Table;
    const KINDS: &'static [Kind] = &[
        Kind::Route,
        Kind::App,
        Kind::Version,
        Kind::Pool,
        Kind::Sandbox,
    ];

    fn put(&mut self, put: Put<'_>) -> Result<(), Undecodable> {
        let (m, changed) = (&mut self.mirror, &mut self.changed);
        match put.key {
            Key::Route(_) => {
                let r: Route = put.decode()?;
                changed.routes = true;
                m.routes.insert(r.host.clone(), r);
            }
            Key::App(_) => {
                let a: App = put.decode()?;
                changed.apps.insert(a.name.clone());
                m.apps.insert(a.name.clone(), a);
            }
            Key::Pool { app, id } => {
                let p: SandboxPool = put.decode()?;
                // Only an HTTP port is routed (`port_type = "tcp"|"udp"` isn't).
                if p.service == "web" && p.spec.speaks_http() {
                    changed.apps.insert(app.to_string());
                    m.pools
                        .entry(app.to_string())
                        .or_default()
                        .insert(id.to_string(), p);
                }
            }
            Key::Sandbox { app, id } => {
                let s: Sandbox = put.decode()?;
                if s.service == "web" {
                    changed.apps.insert(app.to_string());
                    m.sandboxes
                        .entry(app.to_string())
                        .or_default()
                        .insert(id.to_string(), s);
                }
            }
            Key::Version { app, id } => {
                // Only a version's `[static]` matters here.
                if m.static_root.is_some() {
                    let v: Version = put.decode()?;
                    let before = match v.config.static_files {
                        Some(st) => m
                            .statics
                            .entry(app.to_string())
                            .or_default()
                            .insert(id.to_string(), st.clone())
                            .is_none_or(|b| b != st),
                        None => remove_from(&mut m.statics, app, id),
                    };
                    if before {
                        changed.apps.insert(app.to_string());
                    }
                }
            }
            Key::Run { .. } | Key::Secret(_) => {}
        }
        Ok(())
    }

    fn delete(&mut self, key: Key<'_>) {
        let (m, changed) = (&mut self.mirror, &mut self.changed);
        match key {
            Key::Route(host) => changed.routes |= m.routes.remove(host).is_some(),
            Key::App(app) => {
                if m.apps.remove(app).is_some() {
                    changed.apps.insert(app.to_string());
                }
            }
            Key::Pool { app, id } => {
                if remove_from(&mut m.pools, app, id) {
                    changed.apps.insert(app.to_string());
                }
            }
            Key::Sandbox { app, id } => {
                if remove_from(&mut m.sandboxes, app, id) {
                    changed.apps.insert(app.to_string());
                }
            }
            Key::Version { app, id } => {
                if remove_from(&mut m.statics, app, id) {
                    changed.apps.insert(app.to_string());
                }
            }
            Key::Run { .. } | Key::Secret(_) => {}
        }
    }

    fn publish(&mut self, previous: &Table, _: Revision) -> Option<Table> {
        let changed = std::mem::take(&mut self.changed);
        if std::mem::take(&mut self.rebuild) {
            return Some(Table::build(&self.mirror, previous));
        }
        (!changed.is_empty()).then(|| previous.update(&self.mirror, &changed))
    }

    fn reset(&mut self) {
        *self = Routing::serving_files_from(self.mirror.static_root.take());
    }
}

/// Removes `app`'s `id`, and the app's map when it empties; whether it was there.
fn remove_from<T>(by_app: &mut HashMap<String, HashMap<String, T>>, app: &str, id: &str) -> bool {
    let Some(items) = by_app.get_mut(app) else {
        return false;
    };
    let removed = items.remove(id).is_some();
    if items.is_empty() {
        by_app.remove(app);
    }
    removed
}

//! The part of the store the proxy routes by — routes, apps, and the web service's
//! pools and sandboxes — kept in memory and updated from the store's watch events, so
//! a change costs work for the app it touches, not for every app.

use std::collections::{HashMap, HashSet};

use miren_core::controller::keys;
use miren_core::model::{App, Route, Sandbox, SandboxPool};
use miren_core::store::{Revision, Store, StoreError, WatchEvent};
use serde::de::DeserializeOwned;

/// The store's routing state.
#[derive(Debug, Default)]
pub struct Mirror {
    /// By host.
    pub routes: HashMap<String, Route>,
    /// By name.
    pub apps: HashMap<String, App>,
    /// Web pools, by app.
    pub pools: HashMap<String, HashMap<String, SandboxPool>>,
    /// Web sandboxes, by app, by sandbox id.
    pub sandboxes: HashMap<String, HashMap<String, Sandbox>>,
    /// Per prefix, the revision the last full listing reflected: older events are
    /// already in it.
    floors: [Revision; 4],
    /// Every change up to this revision is in the mirror.
    seen: Revision,
}

/// What a batch of events touched.
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

const PREFIXES: [&str; 4] = [keys::ROUTES, keys::APPS, keys::POOLS, keys::SANDBOXES];

/// The watch fell behind, or a value did not decode: list everything again.
#[derive(Debug)]
pub struct Relist;

impl Mirror {
    /// Lists everything.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let mut m = Mirror::default();
        for (i, prefix) in PREFIXES.iter().enumerate() {
            let (items, revision) = store.list(prefix).await?;
            m.floors[i] = revision;
            for (key, v) in items {
                m.put(&key, &v.value, &mut Changed::default())
                    .map_err(|_| StoreError::Backend(format!("`{key}` does not decode").into()))?;
            }
        }
        // The prefixes were listed one after the other: changes after the first
        // listing may still be on their way through the watch.
        m.seen = m.floors.iter().copied().min().unwrap_or_default();
        Ok(m)
    }

    /// Every change up to this revision is in the mirror (the watch has delivered the
    /// events after it, and only those, since it was listed).
    pub fn seen(&self) -> Revision {
        self.seen
    }

    /// Applies one watch event, noting what it touched.
    pub fn apply(&mut self, ev: &WatchEvent, changed: &mut Changed) -> Result<(), Relist> {
        let (key, revision) = match ev {
            WatchEvent::Put { key, revision, .. } | WatchEvent::Delete { key, revision } => {
                (key, *revision)
            }
            WatchEvent::Lagged => return Err(Relist),
        };
        self.seen = self.seen.max(revision);
        let Some(i) = PREFIXES.iter().position(|p| key.starts_with(p)) else {
            return Ok(());
        };
        if revision <= self.floors[i] {
            return Ok(());
        }
        match ev {
            WatchEvent::Put { value, .. } => self.put(key, value, changed),
            _ => {
                self.delete(key, changed);
                Ok(())
            }
        }
    }

    fn put(&mut self, key: &str, value: &[u8], changed: &mut Changed) -> Result<(), Relist> {
        if key.starts_with(keys::ROUTES) {
            let r: Route = decode(value)?;
            changed.routes = true;
            self.routes.insert(r.host.clone(), r);
        } else if key.starts_with(keys::APPS) {
            let a: App = decode(value)?;
            changed.apps.insert(a.name.clone());
            self.apps.insert(a.name.clone(), a);
        } else if key.starts_with(keys::POOLS) {
            let p: SandboxPool = decode(value)?;
            if p.service == "web" {
                changed.apps.insert(p.app.clone());
                self.pools
                    .entry(p.app.clone())
                    .or_default()
                    .insert(p.id.to_string(), p);
            }
        } else if key.starts_with(keys::SANDBOXES) {
            let s: Sandbox = decode(value)?;
            if s.service == "web"
                && let Some((app, _)) = split_app(key, keys::SANDBOXES)
            {
                changed.apps.insert(app.to_string());
                self.sandboxes
                    .entry(app.to_string())
                    .or_default()
                    .insert(s.id.to_string(), s);
            }
        }
        Ok(())
    }

    fn delete(&mut self, key: &str, changed: &mut Changed) {
        if let Some(host) = key.strip_prefix(keys::ROUTES) {
            changed.routes |= self.routes.remove(host).is_some();
        } else if let Some(app) = key.strip_prefix(keys::APPS) {
            if self.apps.remove(app).is_some() {
                changed.apps.insert(app.to_string());
            }
        } else if let Some((app, id)) = split_app(key, keys::POOLS) {
            if let Some(pools) = self.pools.get_mut(app)
                && pools.remove(id).is_some()
            {
                if pools.is_empty() {
                    self.pools.remove(app);
                }
                changed.apps.insert(app.to_string());
            }
        } else if let Some((app, id)) = split_app(key, keys::SANDBOXES)
            && let Some(sandboxes) = self.sandboxes.get_mut(app)
            && sandboxes.remove(id).is_some()
        {
            if sandboxes.is_empty() {
                self.sandboxes.remove(app);
            }
            changed.apps.insert(app.to_string());
        }
    }
}

fn decode<T: DeserializeOwned>(value: &[u8]) -> Result<T, Relist> {
    serde_json::from_slice(value).map_err(|_| Relist)
}

/// `<prefix><app>/<id>` → (app, id).
fn split_app<'a>(key: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(prefix)?.split_once('/')
}

//! The part of the store the DNS answers from — every app's pools (for the names of
//! its services) and sandboxes — kept in memory and updated from the store's watch, so
//! a change rebuilds the zone of the app it touches, not every app's.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use miren_core::controller::keys;
use miren_core::model::{Sandbox, SandboxPool};
use miren_core::store::{Revision, Store, StoreError, WatchEvent};

use super::{AppZone, Zone};

/// One app's objects.
#[derive(Debug, Default)]
struct AppObjects {
    /// Pool id → its service.
    pools: HashMap<String, String>,
    /// Sandbox id → sandbox.
    sandboxes: HashMap<String, Sandbox>,
}

const PREFIXES: [&str; 2] = [keys::POOLS, keys::SANDBOXES];

/// The watch fell behind, or a value did not decode: list everything again.
#[derive(Debug)]
pub struct Relist;

/// The store's pools and sandboxes, by app, and the zone built from them.
#[derive(Debug, Default)]
pub struct Mirror {
    apps: HashMap<String, AppObjects>,
    zones: HashMap<Arc<str>, Arc<AppZone>>,
    /// Per prefix, the revision the last listing reflected: older events are in it.
    floors: [Revision; 2],
    serial: u32,
}

impl Mirror {
    /// Lists every pool and sandbox.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let mut m = Mirror::default();
        let mut touched = HashSet::new();
        for (i, prefix) in PREFIXES.iter().enumerate() {
            let (items, revision) = store.list(prefix).await?;
            m.floors[i] = revision;
            for (key, v) in items {
                m.put(&key, &v.value, &mut touched)
                    .map_err(|_| StoreError::Backend(format!("`{key}` does not decode").into()))?;
            }
        }
        m.serial = m.floors[1] as u32;
        m.rebuild(touched);
        Ok(m)
    }

    /// Applies a burst of watch events; true when the zone changed.
    pub fn apply(&mut self, events: &[WatchEvent]) -> Result<bool, Relist> {
        let mut touched = HashSet::new();
        let mut newest = 0;
        for ev in events {
            let (key, revision) = match ev {
                WatchEvent::Put { key, revision, .. } | WatchEvent::Delete { key, revision } => {
                    (key, *revision)
                }
                WatchEvent::Lagged => return Err(Relist),
            };
            let Some(i) = PREFIXES.iter().position(|p| key.starts_with(p)) else {
                continue;
            };
            if revision <= self.floors[i] {
                continue;
            }
            newest = newest.max(revision);
            match ev {
                WatchEvent::Put { value, .. } => self.put(key, value, &mut touched)?,
                _ => self.delete(key, &mut touched),
            }
        }
        if touched.is_empty() {
            return Ok(false);
        }
        // The serial follows the store's revision (truncated: RFC 1982 arithmetic wraps).
        self.serial = (newest as u32).max(self.serial.wrapping_add(1));
        Ok(self.rebuild(touched))
    }

    /// The zone as it stands.
    pub fn zone(&self) -> Zone {
        Zone::new(self.zones.clone(), self.serial)
    }

    fn put(
        &mut self,
        key: &str,
        value: &[u8],
        touched: &mut HashSet<String>,
    ) -> Result<(), Relist> {
        if let Some((app, id)) = split_app(key, keys::POOLS) {
            let p: SandboxPool = serde_json::from_slice(value).map_err(|_| Relist)?;
            touched.insert(app.to_string());
            let objs = self.apps.entry(app.to_string()).or_default();
            objs.pools.insert(id.to_string(), p.service);
        } else if let Some((app, id)) = split_app(key, keys::SANDBOXES) {
            let s: Sandbox = serde_json::from_slice(value).map_err(|_| Relist)?;
            touched.insert(app.to_string());
            let objs = self.apps.entry(app.to_string()).or_default();
            objs.sandboxes.insert(id.to_string(), s);
        }
        Ok(())
    }

    fn delete(&mut self, key: &str, touched: &mut HashSet<String>) {
        let (app, id, pool) = match (split_app(key, keys::POOLS), split_app(key, keys::SANDBOXES)) {
            (Some((app, id)), _) => (app, id, true),
            (None, Some((app, id))) => (app, id, false),
            _ => return,
        };
        let Some(objs) = self.apps.get_mut(app) else {
            return;
        };
        let removed = if pool {
            objs.pools.remove(id).is_some()
        } else {
            objs.sandboxes.remove(id).is_some()
        };
        if removed {
            touched.insert(app.to_string());
            if objs.pools.is_empty() && objs.sandboxes.is_empty() {
                self.apps.remove(app);
            }
        }
    }

    /// Rebuilds the zones of these apps; true when one of them changed.
    fn rebuild(&mut self, touched: HashSet<String>) -> bool {
        let mut changed = false;
        for app in touched {
            let built = self.apps.get(&app).map(|objs| {
                let services: BTreeSet<&str> = objs.pools.values().map(String::as_str).collect();
                AppZone::build(services, objs.sandboxes.values())
            });
            let key: Arc<str> = app.into();
            match built {
                Some(z) if self.zones.get(&key).is_some_and(|old| **old == z) => {}
                Some(z) => {
                    self.zones.insert(key, Arc::new(z));
                    changed = true;
                }
                None => changed |= self.zones.remove(&key).is_some(),
            }
        }
        changed
    }
}

/// `<prefix><app>/<id>` → (app, id).
fn split_app<'a>(key: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(prefix)?.split_once('/')
}

#[cfg(test)]
mod tests {
    use miren_core::model::SandboxStatus;
    use miren_core::store::{MemoryStore, Op};

    use super::*;
    use crate::zone::sandbox;

    async fn next_burst(w: &mut miren_core::store::Watch) -> Vec<WatchEvent> {
        let mut v = vec![w.next().await.expect("an event")];
        while let Ok(Some(e)) = tokio::time::timeout(std::time::Duration::ZERO, w.next()).await {
            v.push(e);
        }
        v
    }

    #[tokio::test]
    async fn events_give_the_zone_a_full_listing_gives_and_touch_only_their_app() {
        let store = MemoryStore::new();
        let p = miren_core::testing::pool("shop", "db");
        let db = sandbox("shop", "db", "10.0.0.4:5432", SandboxStatus::Running);
        let blog = sandbox("blog", "web", "10.1.0.2:80", SandboxStatus::Running);
        store
            .txn(vec![Op::put(
                keys::sandbox("blog", &blog.id),
                keys::encode(&blog),
            )])
            .await
            .expect("write");
        let mut watch = store.watch("");
        let mut m = Mirror::load(&store).await.expect("listing");
        let blog_zone = m.zone().apps["blog"].clone();

        store
            .txn(vec![
                Op::put(keys::pool("shop", &p.id), keys::encode(&p)),
                Op::put(keys::sandbox("shop", &db.id), keys::encode(&db)),
            ])
            .await
            .expect("write");
        assert!(m.apply(&next_burst(&mut watch).await).expect("applies"));
        let fresh = Mirror::load(&store).await.expect("listing");
        assert_eq!(m.zone().apps, fresh.zone().apps);
        assert!(
            Arc::ptr_eq(&blog_zone, &m.zone().apps["blog"]),
            "blog untouched"
        );

        // A stop, then the sandbox's removal: gone, and the pool keeps the name.
        let mut stopped = db.clone();
        stopped.status = SandboxStatus::Stopped;
        store
            .txn(vec![Op::put(
                keys::sandbox("shop", &db.id),
                keys::encode(&stopped),
            )])
            .await
            .expect("write");
        store
            .txn(vec![Op::delete(keys::sandbox("shop", &db.id))])
            .await
            .expect("write");
        let events = next_burst(&mut watch).await;
        assert!(m.apply(&events).expect("applies"));
        assert_eq!(m.zone().apps["shop"].services["db"], []);
        assert_eq!(
            m.zone().apps,
            Mirror::load(&store).await.expect("listing").zone().apps
        );
        // Replayed (stale) events change nothing; a lag asks for a listing.
        let before = m.zone().apps;
        let _ = m.apply(&events);
        assert_eq!(m.zone().apps, before);
        assert!(m.apply(&[WatchEvent::Lagged]).is_err());
        // The last object of an app gone: the app is gone.
        store
            .txn(vec![Op::delete(keys::pool("shop", &p.id))])
            .await
            .expect("write");
        assert!(m.apply(&next_burst(&mut watch).await).expect("applies"));
        assert!(!m.zone().apps.contains_key("shop"));
    }
}

//! The zone as a projection of the store: every app's pools (for the names of its
//! services) and sandboxes, kept in memory as events arrive, so a change rebuilds the
//! zone of the app it touches, not every app's. The reflector in `miren_core` does
//! the following; this says what the events mean for the zone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use miren_core::model::{Sandbox, SandboxPool};
use miren_core::store::Revision;
use miren_core::store::keys::{Key, Kind, Undecodable};
use miren_core::store::reflector::{Projection, Put};

use super::{AppZone, SrvNames, Zone};

/// One app's objects.
#[derive(Debug, Default)]
struct AppObjects {
    /// Pool id → its service and the SRV names of its ports.
    pools: HashMap<String, (String, SrvNames)>,
    /// Sandbox id → sandbox.
    sandboxes: HashMap<String, Sandbox>,
}

/// The store's pools and sandboxes, by app, and the zone built from them.
#[derive(Debug)]
pub struct ZoneProjection {
    apps: HashMap<String, AppObjects>,
    zones: HashMap<Arc<str>, Arc<AppZone>>,
    /// Apps changed since the last zone.
    touched: HashSet<String>,
    /// Listed afresh: the next zone is published whatever changed.
    fresh: bool,
    serial: u32,
}

impl Default for ZoneProjection {
    fn default() -> Self {
        Self {
            apps: HashMap::new(),
            zones: HashMap::new(),
            touched: HashSet::new(),
            fresh: true,
            serial: 0,
        }
    }
}

impl Projection for ZoneProjection {
    type View = Zone;
    const KINDS: &'static [Kind] = &[Kind::Pool, Kind::Sandbox];

    fn put(&mut self, put: Put<'_>) -> Result<(), Undecodable> {
        match put.key {
            Key::Pool { app, id } => {
                let p: SandboxPool = put.decode()?;
                let objs = self.apps.entry(app.to_string()).or_default();
                let srv = p
                    .spec
                    .srv_names()
                    .into_iter()
                    .map(|(name, proto, extra)| (name, proto.to_string(), extra))
                    .collect();
                objs.pools.insert(id.to_string(), (p.service, srv));
            }
            Key::Sandbox { app, id } => {
                let s: Sandbox = put.decode()?;
                let objs = self.apps.entry(app.to_string()).or_default();
                objs.sandboxes.insert(id.to_string(), s);
            }
            _ => return Ok(()),
        }
        if let Some(app) = put.key.app() {
            self.touched.insert(app.to_string());
        }
        Ok(())
    }

    fn delete(&mut self, key: Key<'_>) {
        let (app, id, pool) = match key {
            Key::Pool { app, id } => (app, id, true),
            Key::Sandbox { app, id } => (app, id, false),
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
            self.touched.insert(app.to_string());
            if objs.pools.is_empty() && objs.sandboxes.is_empty() {
                self.apps.remove(app);
            }
        }
    }

    fn publish(&mut self, _: &Zone, revision: Revision) -> Option<Zone> {
        let fresh = std::mem::take(&mut self.fresh);
        let touched = std::mem::take(&mut self.touched);
        if !self.rebuild(touched) && !fresh {
            return None;
        }
        // The SOA serial follows the store's revision (truncated: RFC 1982 arithmetic
        // wraps), and grows with every change.
        self.serial = (revision as u32).max(self.serial.wrapping_add(1));
        Some(Zone::new(self.zones.clone(), self.serial))
    }

    fn reset(&mut self) {
        let serial = self.serial;
        *self = ZoneProjection {
            serial,
            ..ZoneProjection::default()
        };
    }
}

impl ZoneProjection {
    /// Rebuilds the zones of these apps; true when one of them changed.
    fn rebuild(&mut self, touched: HashSet<String>) -> bool {
        let mut changed = false;
        for app in touched {
            let built = self.apps.get(&app).map(|objs| {
                let services: BTreeSet<&str> =
                    objs.pools.values().map(|(s, _)| s.as_str()).collect();
                let ports = objs
                    .pools
                    .values()
                    .map(|(s, names)| (s.clone(), names.clone()));
                AppZone::build(services, objs.sandboxes.values()).with_ports(ports)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use miren_core::model::SandboxStatus;
    use miren_core::store::{MemoryStore, Op, Reader, Reflector, Store, keys};

    use super::*;
    use crate::zone::sandbox;

    async fn follow(store: &Arc<dyn Store>) -> (Reflector<Zone>, Reader<Zone>) {
        let r = Reflector::start(store.clone(), ZoneProjection::default())
            .await
            .expect("listing");
        let reader = r.reader();
        (r, reader)
    }

    async fn write(store: &Arc<dyn Store>, r: &Reader<Zone>, ops: Vec<Op>) {
        let rev = store.txn(ops).await.expect("write");
        assert!(r.progress().wait_for(rev, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn events_give_the_zone_a_full_listing_gives_and_touch_only_their_app() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
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
        let (_following, zone) = follow(&store).await;
        let blog_zone = zone.load().apps["blog"].clone();
        let serial = zone.load().serial;

        write(
            &store,
            &zone,
            vec![
                Op::put(keys::pool("shop", &p.id), keys::encode(&p)),
                Op::put(keys::sandbox("shop", &db.id), keys::encode(&db)),
            ],
        )
        .await;
        let (_f, fresh) = follow(&store).await;
        assert_eq!(zone.load().apps, fresh.load().apps);
        assert!(zone.load().serial > serial, "the serial grows");
        assert!(
            Arc::ptr_eq(&blog_zone, &zone.load().apps["blog"]),
            "blog untouched"
        );

        // A drain, a stop, then the sandbox's removal: gone at the drain, and the
        // pool keeps the name.
        for status in [SandboxStatus::Stopping, SandboxStatus::Stopped] {
            let mut s = db.clone();
            s.status = status;
            write(
                &store,
                &zone,
                vec![Op::put(keys::sandbox("shop", &db.id), keys::encode(&s))],
            )
            .await;
            assert_eq!(zone.load().apps["shop"].services["db"], [], "{status:?}");
        }
        write(
            &store,
            &zone,
            vec![Op::delete(keys::sandbox("shop", &db.id))],
        )
        .await;
        let (_f, fresh) = follow(&store).await;
        assert_eq!(zone.load().apps, fresh.load().apps);
        // The last object of an app gone: the app is gone.
        write(&store, &zone, vec![Op::delete(keys::pool("shop", &p.id))]).await;
        assert!(!zone.load().apps.contains_key("shop"));
    }
}

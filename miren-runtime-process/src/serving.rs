//! Which instances serve each service, as a projection of the store: every sandbox
//! the store says is serving (ready, not draining) with an address, whichever runtime
//! runs it. The stable service addresses and node ports balance over this, so they
//! reach instances of any runtime, and an instance leaves them the moment the
//! controller records it draining — before it is signalled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use miren_core::model::Sandbox;
use miren_core::store::Revision;
use miren_core::store::keys::{Key, Kind, Undecodable};
use miren_core::store::reflector::{Projection, Put};

/// A service's port: `None` the one `PORT` names, else an extra port's name.
type PortKey = (String, Option<String>);

/// Per app, per service port, the addresses of its serving instances (sorted).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Serving {
    apps: HashMap<String, Arc<HashMap<PortKey, Vec<SocketAddr>>>>,
}

impl Serving {
    /// The serving instances of an app's service, at the port `PORT` names.
    pub fn of(&self, app: &str, service: &str) -> &[SocketAddr] {
        self.at(app, service, None)
    }

    /// The serving instances of an app's service at one of its ports (`None`: the
    /// one `PORT` names; else an extra port by name).
    pub fn at(&self, app: &str, service: &str, port: Option<&str>) -> &[SocketAddr] {
        self.apps
            .get(app)
            .and_then(|s| s.get(&(service.to_string(), port.map(str::to_string))))
            .map_or(&[], Vec::as_slice)
    }
}

/// One serving sandbox: its service, where it listens, and its extra ports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    service: String,
    addr: SocketAddr,
    extra: BTreeMap<String, u16>,
}

/// The projection: each app's serving sandboxes, and which apps changed.
#[derive(Debug, Default)]
pub struct ServingSandboxes {
    /// Per app, per sandbox id.
    apps: HashMap<String, HashMap<String, Member>>,
    touched: HashSet<String>,
    fresh: bool,
}

impl Projection for ServingSandboxes {
    type View = Serving;
    const KINDS: &'static [Kind] = &[Kind::Sandbox];

    fn put(&mut self, put: Put<'_>) -> Result<(), Undecodable> {
        let Key::Sandbox { app, id } = put.key else {
            return Ok(());
        };
        let s: Sandbox = put.decode()?;
        let serving = s
            .address
            .and_then(|a| a.socket())
            .filter(|_| s.is_serving());
        let sandboxes = self.apps.entry(app.to_string()).or_default();
        let changed = match serving {
            Some(addr) => {
                let entry = Member {
                    service: s.service,
                    addr,
                    extra: s.ports,
                };
                if sandboxes.get(id) == Some(&entry) {
                    false
                } else {
                    sandboxes.insert(id.to_string(), entry);
                    true
                }
            }
            None => sandboxes.remove(id).is_some(),
        };
        if sandboxes.is_empty() {
            self.apps.remove(app);
        }
        if changed {
            self.touched.insert(app.to_string());
        }
        Ok(())
    }

    fn delete(&mut self, key: Key<'_>) {
        let Key::Sandbox { app, id } = key else {
            return;
        };
        if let Some(sandboxes) = self.apps.get_mut(app)
            && sandboxes.remove(id).is_some()
        {
            if sandboxes.is_empty() {
                self.apps.remove(app);
            }
            self.touched.insert(app.to_string());
        }
    }

    fn publish(&mut self, previous: &Serving, _: Revision) -> Option<Serving> {
        let touched = std::mem::take(&mut self.touched);
        let fresh = std::mem::take(&mut self.fresh);
        if touched.is_empty() && !fresh {
            return None;
        }
        let mut next = if fresh {
            Serving::default()
        } else {
            previous.clone()
        };
        let apps: Vec<String> = if fresh {
            self.apps.keys().cloned().collect()
        } else {
            touched.into_iter().collect()
        };
        for app in apps {
            match self.apps.get(&app) {
                Some(sandboxes) => {
                    let mut services: HashMap<PortKey, Vec<SocketAddr>> = HashMap::new();
                    for m in sandboxes.values() {
                        services
                            .entry((m.service.clone(), None))
                            .or_default()
                            .push(m.addr);
                        for (name, port) in &m.extra {
                            services
                                .entry((m.service.clone(), Some(name.clone())))
                                .or_default()
                                .push(SocketAddr::new(m.addr.ip(), *port));
                        }
                    }
                    for addrs in services.values_mut() {
                        addrs.sort_unstable();
                    }
                    next.apps.insert(app, Arc::new(services));
                }
                None => {
                    next.apps.remove(&app);
                }
            }
        }
        Some(next)
    }

    fn reset(&mut self) {
        *self = ServingSandboxes {
            fresh: true,
            ..Default::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use miren_core::model::SandboxStatus;
    use miren_core::store::{MemoryStore, Op, Reflector, Store, keys};

    use super::*;

    #[tokio::test]
    async fn only_serving_instances_with_a_port_are_balanced_over() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let sb = |svc, addr: &str, status| {
            miren_core::testing::sandbox("shop", svc, (!addr.is_empty()).then_some(addr), status)
        };
        let pg = sb("postgres", "10.0.0.2:5432", SandboxStatus::Running);
        let mut more = [
            pg.clone(),
            sb("postgres", "10.0.0.3:5432", SandboxStatus::Pending),
            sb("postgres", "10.0.0.4:5432", SandboxStatus::Stopping),
            sb("worker", "10.0.0.5", SandboxStatus::Running),
            sb("web", "127.0.0.1:4001", SandboxStatus::Running),
        ];
        let ops = more
            .iter()
            .map(|s| Op::put(keys::sandbox("shop", &s.id), keys::encode(s)))
            .collect();
        store.txn(ops).await.expect("write");
        let r = Reflector::start(store.clone(), ServingSandboxes::default())
            .await
            .expect("listing");
        let view = r.reader();
        let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(view.load().of("shop", "postgres"), [addr("10.0.0.2:5432")]);
        assert_eq!(view.load().of("shop", "web"), [addr("127.0.0.1:4001")]);
        assert!(view.load().of("shop", "worker").is_empty(), "no port");
        assert!(view.load().of("blog", "web").is_empty());

        // The first postgres drains, the second gets ready.
        let mut draining = pg;
        draining.status = SandboxStatus::Stopping;
        more[1].status = SandboxStatus::Running;
        let rev = store
            .txn(vec![
                Op::put(keys::sandbox("shop", &draining.id), keys::encode(&draining)),
                Op::put(keys::sandbox("shop", &more[1].id), keys::encode(&more[1])),
            ])
            .await
            .expect("write");
        assert!(view.progress().wait_for(rev, Duration::from_secs(5)).await);
        assert_eq!(view.load().of("shop", "postgres"), [addr("10.0.0.3:5432")]);
        // Gone from the store: gone.
        let rev = store
            .txn(vec![Op::delete(keys::sandbox("shop", &more[4].id))])
            .await
            .expect("write");
        assert!(view.progress().wait_for(rev, Duration::from_secs(5)).await);
        assert!(view.load().of("shop", "web").is_empty());
    }
}

//! Node ports: a service port published on the node (`node_port` in app.toml),
//! balanced over the instances serving it, whichever runtime runs them. Which ports
//! are published follows the store's pools (those a version still uses), so a deploy
//! that adds, moves or drops a node port is followed without a restart. The
//! controller refuses a deploy whose node port another app has; a port this machine
//! won't give (another program has it, or it is privileged) is logged and tried
//! again.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use miren_core::config::PortType;
use miren_core::model::SandboxPool;
use miren_core::store::keys::{Key, Kind, Undecodable};
use miren_core::store::reflector::{Projection, Put, Reader};
use miren_core::store::{Reflector, Revision, Store, StoreError};
use tokio::task::JoinHandle;

use crate::balancer::Balancer;
use crate::listen::Target;
use crate::lock;
use crate::net::Listener;
use crate::serving::Serving;
use crate::udp::UdpForwarder;

/// A published port: its number and whether it is UDP.
pub type NodePort = (u16, bool);

/// How soon a port the machine refused is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// The node ports of the pools some version uses: (port, UDP) → what it reaches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published(BTreeMap<NodePort, Target>);

/// The projection: each pool's node ports.
#[derive(Debug, Default)]
struct PoolPorts {
    /// Pool key → its node ports and targets.
    pools: HashMap<String, Vec<(NodePort, Target)>>,
    changed: bool,
}

impl Projection for PoolPorts {
    type View = Published;
    const KINDS: &'static [Kind] = &[Kind::Pool];

    fn put(&mut self, put: Put<'_>) -> Result<(), Undecodable> {
        let Key::Pool { app, id } = put.key else {
            return Ok(());
        };
        let p: SandboxPool = put.decode()?;
        let target = |port: Option<&str>| Target {
            app: app.to_string(),
            service: p.service.clone(),
            port: port.map(str::to_string),
        };
        let mut ports = Vec::new();
        if !p.versions.is_empty() {
            if let Some(n) = p.spec.node_port {
                ports.push(((n, p.spec.udp_only()), target(None)));
            }
            for e in &p.spec.extra_ports {
                if let Some(n) = e.node_port {
                    ports.push(((n, e.kind == PortType::Udp), target(Some(&e.name))));
                }
            }
        }
        let key = format!("{app}/{id}");
        let before = if ports.is_empty() {
            self.pools.remove(&key)
        } else {
            self.pools.insert(key, ports.clone())
        };
        self.changed |= before.unwrap_or_default() != ports;
        Ok(())
    }

    fn delete(&mut self, key: Key<'_>) {
        if let Key::Pool { app, id } = key {
            self.changed |= self.pools.remove(&format!("{app}/{id}")).is_some();
        }
    }

    fn publish(&mut self, _: &Published, _: Revision) -> Option<Published> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        let mut out = BTreeMap::new();
        // Pool keys in order: the oldest pool of a port keeps it (the controller
        // refuses a second app's, so this only orders one app's old and new pools).
        let mut keys: Vec<&String> = self.pools.keys().collect();
        keys.sort();
        for k in keys {
            for (port, target) in &self.pools[k] {
                out.entry(*port).or_insert_with(|| target.clone());
            }
        }
        Some(Published(out))
    }

    fn reset(&mut self) {
        *self = PoolPorts {
            changed: true,
            ..Default::default()
        };
    }
}

/// What is published now, for `status` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePortState {
    /// The port and whether it is UDP.
    pub port: NodePort,
    /// What it reaches.
    pub target: Target,
    /// Where it listens, or why it doesn't.
    pub listening: Result<SocketAddr, String>,
}

/// The node ports of every app, published on one IP.
pub struct NodePorts {
    task: JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    state: Arc<Mutex<Vec<NodePortState>>>,
    _pools: Reflector<Published>,
}

impl NodePorts {
    /// Publishes every pool's node ports on `ip`, balancing over what `serving`
    /// says serves, and keeps following the store.
    pub(crate) async fn start(
        ip: IpAddr,
        store: Arc<dyn Store>,
        serving: Reader<Serving>,
    ) -> Result<Self, StoreError> {
        let pools = Reflector::start(store, PoolPorts::default()).await?;
        let state = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(follow(ip, pools.reader(), serving, state.clone(), stopped));
        Ok(Self {
            task,
            stop,
            state,
            _pools: pools,
        })
    }

    /// Each published port and where it listens (or why it doesn't).
    pub fn state(&self) -> Vec<NodePortState> {
        lock(&self.state).clone()
    }

    /// Stops publishing; returns once every port is free again.
    pub async fn close(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn follow(
    ip: IpAddr,
    pools: Reader<Published>,
    serving: Reader<Serving>,
    state: Arc<Mutex<Vec<NodePortState>>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut bound: HashMap<NodePort, (Target, Listener)> = HashMap::new();
    let mut failed: HashMap<NodePort, String> = HashMap::new();
    let mut changes = pools.published();
    loop {
        changes.borrow_and_update();
        let want = pools.load_full();
        // Gone or moved: closed first, so a moved port can be bound again.
        let stale: Vec<NodePort> = bound
            .iter()
            .filter(|(port, (t, _))| want.0.get(*port) != Some(t))
            .map(|(port, _)| *port)
            .collect();
        for port in stale {
            if let Some((_, b)) = bound.remove(&port) {
                b.close().await;
            }
        }
        failed.retain(|port, _| want.0.contains_key(port));
        for (port @ &(number, udp), target) in &want.0 {
            if bound.contains_key(port) {
                continue;
            }
            let addr = SocketAddr::new(ip, number);
            let made = if udp {
                UdpForwarder::bind(addr, target.clone(), serving.clone())
                    .await
                    .map(Listener::Udp)
            } else {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => {
                        Balancer::listen(l, target.clone(), serving.clone()).map(Listener::Tcp)
                    }
                    Err(e) => Err(e),
                }
            };
            match made {
                Ok(b) => {
                    failed.remove(port);
                    bound.insert(*port, (target.clone(), b));
                }
                Err(e) => {
                    let proto = if udp { "udp" } else { "tcp" };
                    let why = format!("{addr}/{proto}: {e}");
                    if failed.get(port) != Some(&why) {
                        tracing::warn!(
                            "node port {number}/{proto} of {target} is not published: {why}"
                        );
                    }
                    failed.insert(*port, why);
                }
            }
        }
        *lock(&state) = want
            .0
            .iter()
            .map(|(port, target)| NodePortState {
                port: *port,
                target: target.clone(),
                listening: match bound.get(port) {
                    Some((_, Listener::Tcp(b))) => Ok(b.addr()),
                    Some((_, Listener::Udp(u))) => Ok(u.addr()),
                    None => Err(failed.get(port).cloned().unwrap_or_default()),
                },
            })
            .collect();
        // A refused port is tried again after a while, or at the next change.
        let retry = !failed.is_empty();
        tokio::select! {
            r = changes.changed() => if r.is_err() { break; },
            _ = tokio::time::sleep(RETRY), if retry => {}
            _ = &mut stopped => break,
        }
    }
    for (_, (_, b)) in bound.drain() {
        b.close().await;
    }
}

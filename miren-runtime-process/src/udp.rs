//! A UDP port's listener: the stable address of a UDP service port, or a node port.
//! Each client (source address) is a flow pinned to one serving instance (the one
//! with the fewest flows when it starts); the instance's answers go back to the
//! client from the address it wrote to. A flow ends after [`IDLE`] without a
//! datagram either way, or when its instance stops serving; a datagram that finds no
//! serving instance is dropped, as a lost datagram is (UDP clients retry).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use miren_core::store::Reader;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::listen::{ListenTask, Target};
use crate::serving::Serving;

/// A flow with no datagram either way for this long ends.
const IDLE: Duration = Duration::from_secs(60);
/// Flows at once per listener; past it, the idlest go first.
const MAX_FLOWS: usize = 4096;
/// Bigger than any datagram (64 KiB less the headers).
const DATAGRAM: usize = 65536;

/// A running UDP listener; stops when dropped (or, awaitably, on
/// [`close`](UdpForwarder::close)).
pub struct UdpForwarder(ListenTask);

/// One client's flow.
struct Flow {
    instance: SocketAddr,
    upstream: Arc<UdpSocket>,
    /// Milliseconds since the listener started, at the last datagram either way.
    last: Arc<AtomicU64>,
    pump: JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl UdpForwarder {
    /// Listens on `addr` for `target`.
    pub async fn bind(
        addr: SocketAddr,
        target: Target,
        serving: Reader<Serving>,
    ) -> io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let addr = socket.local_addr()?;
        Ok(Self(ListenTask::new(
            addr,
            tokio::spawn(run(socket, target, serving)),
        )))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Stops listening; returns once the address is free again.
    pub async fn close(&self) {
        self.0.close().await;
    }
}

async fn run(socket: Arc<UdpSocket>, target: Target, serving: Reader<Serving>) {
    let started = tokio::time::Instant::now();
    let now = move || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        let (n, client) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            // ICMP errors reported on the socket, out of buffers: go on.
            Err(_) => {
                tokio::task::yield_now().await;
                continue;
            }
        };
        let view = serving.load();
        let instances = target.instances(&view);
        // A flow whose instance left (draining, gone) or whose pump ended starts over.
        let stale = flows
            .get(&client)
            .is_some_and(|f| f.pump.is_finished() || !instances.contains(&f.instance));
        if stale {
            flows.remove(&client);
        }
        if !flows.contains_key(&client) {
            if flows.len() >= MAX_FLOWS {
                flows.retain(|_, f| !f.pump.is_finished());
                if flows.len() >= MAX_FLOWS
                    && let Some(idlest) = flows
                        .iter()
                        .min_by_key(|(_, f)| f.last.load(Ordering::Relaxed))
                        .map(|(c, _)| *c)
                {
                    flows.remove(&idlest);
                }
            }
            let mut load: HashMap<SocketAddr, usize> = HashMap::new();
            for f in flows.values() {
                *load.entry(f.instance).or_default() += 1;
            }
            let Some(instance) = instances
                .iter()
                .min_by_key(|a| load.get(*a).copied().unwrap_or(0))
                .copied()
            else {
                continue; // nobody serves: dropped
            };
            let Ok(flow) = open(&socket, client, instance, now).await else {
                continue;
            };
            flows.insert(client, flow);
        }
        if let Some(f) = flows.get(&client) {
            f.last.store(now(), Ordering::Relaxed);
            let _ = f.upstream.send(&buf[..n]).await;
        }
    }
}

/// A flow from `client` to `instance`: a socket connected to the instance, and a
/// task sending its answers back to the client until the flow idles out.
async fn open(
    listener: &Arc<UdpSocket>,
    client: SocketAddr,
    instance: SocketAddr,
    now: impl Fn() -> u64 + Send + 'static,
) -> io::Result<Flow> {
    let any: IpAddr = match instance {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let upstream = Arc::new(UdpSocket::bind((any, 0)).await?);
    upstream.connect(instance).await?;
    let last = Arc::new(AtomicU64::new(now()));
    let (up, back, seen) = (upstream.clone(), listener.clone(), last.clone());
    let pump = tokio::spawn(async move {
        let mut buf = vec![0u8; DATAGRAM];
        loop {
            match tokio::time::timeout(IDLE, up.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    seen.store(now(), Ordering::Relaxed);
                    let _ = back.send_to(&buf[..n], client).await;
                }
                // The instance refused (ICMP port unreachable): the flow is over.
                Ok(Err(_)) => return,
                Err(_) => {
                    let idle = now().saturating_sub(seen.load(Ordering::Relaxed));
                    if u128::from(idle) >= IDLE.as_millis() {
                        return;
                    }
                }
            }
        }
    });
    Ok(Flow {
        instance,
        upstream,
        last,
        pump,
    })
}

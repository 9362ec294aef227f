//! A service's stable address: a TCP listener that spreads connections over the
//! service's serving instances (least connections), waiting briefly when none is
//! ready (a restart, a deploy) instead of refusing. Which instances serve comes from
//! the store ([`Serving`]), so they may run on any runtime.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use miren_core::store::Reader;
use tokio::net::{TcpListener, TcpStream};

use crate::listen::{ListenTask, Target};
use crate::serving::Serving;

/// How long a connection waits for a ready instance.
const WAIT_FOR_BACKEND: Duration = Duration::from_secs(30);
/// Instances tried per connection.
const ATTEMPTS: usize = 3;

/// What the accept loop's connections share.
struct Shared {
    target: Target,
    serving: Reader<Serving>,
    /// Connections open to each instance (least connections); entries of instances
    /// that left are dropped as the map is rebuilt.
    active: Mutex<HashMap<SocketAddr, Arc<AtomicUsize>>>,
}

/// A running balancer; stops listening when dropped (or, awaitably, on
/// [`close`](Balancer::close)).
pub struct Balancer(ListenTask);

impl Balancer {
    /// Listens on `ip:port` for `target`; when that port is privileged here, on a
    /// free port of `ip` instead (env rewriting maps the declared port to it).
    pub async fn bind(
        ip: IpAddr,
        port: u16,
        target: Target,
        serving: Reader<Serving>,
    ) -> io::Result<Self> {
        let listener = match TcpListener::bind((ip, port)).await {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                TcpListener::bind((ip, 0)).await?
            }
            Err(e) => return Err(e),
        };
        Self::listen(listener, target, serving)
    }

    /// Balances the connections `listener` accepts over `target`'s instances.
    pub fn listen(
        listener: TcpListener,
        target: Target,
        serving: Reader<Serving>,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            serving,
            active: Mutex::new(HashMap::new()),
        });
        Ok(Self(ListenTask::new(
            addr,
            tokio::spawn(accept_loop(listener, shared)),
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

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = forward(client, &shared).await;
                });
            }
            // Out of file descriptors and the like: back off, don't spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The serving instance with the fewest connections, of those not tried yet.
fn pick(shared: &Shared, tried: &[SocketAddr]) -> Option<(SocketAddr, Arc<AtomicUsize>)> {
    let view = shared.serving.load();
    let serving = shared.target.instances(&view);
    let mut active = shared.active.lock().unwrap_or_else(|e| e.into_inner());
    if active.len() > 2 * serving.len() + 8 {
        active.retain(|a, _| serving.contains(a));
    }
    serving
        .iter()
        .filter(|a| !tried.contains(a))
        .map(|a| (*a, active.entry(*a).or_default().clone()))
        .min_by_key(|(_, n)| n.load(Ordering::Relaxed))
}

async fn forward(mut client: TcpStream, shared: &Shared) -> io::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_BACKEND;
    let mut published = shared.serving.published();
    let mut tried = Vec::new();
    loop {
        published.borrow_and_update();
        let Some((addr, active)) = pick(shared, &tried) else {
            let changed = tokio::time::timeout_at(deadline, published.changed());
            if tried.len() >= ATTEMPTS || !matches!(changed.await, Ok(Ok(()))) {
                return Ok(());
            }
            tried.clear();
            continue;
        };
        match TcpStream::connect(addr).await {
            Ok(mut upstream) => {
                let _ = upstream.set_nodelay(true);
                let _ = client.set_nodelay(true);
                active.fetch_add(1, Ordering::Relaxed);
                let r = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                active.fetch_sub(1, Ordering::Relaxed);
                return r.map(|_| ());
            }
            Err(_) => {
                tried.push(addr);
                if tried.len() >= ATTEMPTS {
                    return Ok(());
                }
            }
        }
    }
}

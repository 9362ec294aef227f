//! A service's stable address: a TCP listener that spreads connections over the
//! service's ready instances (least connections), waiting briefly when none is ready
//! (a restart, a deploy) instead of refusing.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long a connection waits for a ready instance.
const WAIT_FOR_BACKEND: Duration = Duration::from_secs(30);
/// Instances tried per connection.
const ATTEMPTS: usize = 3;

struct Backend {
    id: String,
    addr: SocketAddr,
    active: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Shared {
    backends: Mutex<Vec<Backend>>,
    changed: Notify,
}

/// A running balancer; stops listening when dropped (or, awaitably, on [`close`]).
///
/// [`close`]: Balancer::close
pub struct Balancer {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
    addr: SocketAddr,
}

impl Balancer {
    /// Listens on `ip:port`; when that port is privileged here, on a free port of `ip`
    /// instead (env rewriting maps the declared port to it).
    pub async fn bind(ip: IpAddr, port: u16) -> io::Result<Self> {
        let listener = match TcpListener::bind((ip, port)).await {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                TcpListener::bind((ip, 0)).await?
            }
            Err(e) => return Err(e),
        };
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let task = Mutex::new(Some(tokio::spawn(accept_loop(listener, shared.clone()))));
        Ok(Self { shared, task, addr })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An instance became ready.
    pub fn add(&self, id: &str, addr: SocketAddr) {
        if let Ok(mut b) = self.shared.backends.lock() {
            b.retain(|x| x.id != id);
            b.push(Backend {
                id: id.to_string(),
                addr,
                active: Arc::new(AtomicUsize::new(0)),
            });
        }
        self.shared.changed.notify_waiters();
    }

    /// An instance is stopping or gone: no new connections go to it.
    pub fn remove(&self, id: &str) {
        if let Ok(mut b) = self.shared.backends.lock() {
            b.retain(|x| x.id != id);
        }
    }

    /// Stops listening; returns once the address is free again.
    pub async fn close(&self) {
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
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

fn pick(shared: &Shared, tried: &[SocketAddr]) -> Option<(SocketAddr, Arc<AtomicUsize>)> {
    let b = shared.backends.lock().ok()?;
    b.iter()
        .filter(|x| !tried.contains(&x.addr))
        .min_by_key(|x| x.active.load(Ordering::Relaxed))
        .map(|x| (x.addr, x.active.clone()))
}

async fn forward(mut client: TcpStream, shared: &Shared) -> io::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_BACKEND;
    let mut tried = Vec::new();
    loop {
        let notified = shared.changed.notified();
        let Some((addr, active)) = pick(shared, &tried) else {
            if tried.len() >= ATTEMPTS || tokio::time::timeout_at(deadline, notified).await.is_err()
            {
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

//! miren-proxy: routes HTTP requests by host name to the web service of each app's
//! active version (SPEC §6).
//!
//! The routing [`Table`](table::Table) is rebuilt from the store whenever routes,
//! apps, pools or sandboxes change and swapped in atomically (arc-swap), so requests
//! never wait on a lock. Requests go to the ready instance with the fewest requests
//! in flight (power of two choices); a connection refused before anything was sent
//! is retried on another instance.
//!
//! ```no_run
//! # async fn f(store: std::sync::Arc<dyn miren_core::store::Store>) -> std::io::Result<()> {
//! let proxy = miren_proxy::Proxy::bind("127.0.0.1:8080".parse().unwrap(), store).await?;
//! tokio::spawn(proxy.run());
//! # Ok(()) }
//! ```

mod forward;
pub mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use miren_core::store::{Store, WatchEvent};
use tokio::net::TcpListener;

use table::{Shared, Table};

/// A bound proxy; [`run`](Proxy::run) serves.
pub struct Proxy {
    listener: TcpListener,
    reloader: Reloader,
}

/// Rebuilds the proxy's table from the store. Cheap to clone. Reloads are serialized,
/// so the last one to finish read the newest state.
#[derive(Clone)]
pub struct Reloader {
    store: Arc<dyn Store>,
    table: Shared,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Reloader {
    /// Reloads now; returns once requests see the store as it is.
    pub async fn reload(&self) {
        let _one_at_a_time = self.lock.lock().await;
        let previous = self.table.load_full();
        match Table::load(self.store.as_ref(), &previous).await {
            Ok(t) => self.table.store(Arc::new(t)),
            Err(e) => tracing::warn!("proxy: reloading routes failed: {e}"),
        }
    }
}

impl Proxy {
    /// Binds `addr` and loads the table.
    pub async fn bind(addr: SocketAddr, store: Arc<dyn Store>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let table = Table::load(store.as_ref(), &Table::default())
            .await
            .map_err(std::io::Error::other)?;
        Ok(Self {
            listener,
            reloader: Reloader {
                store,
                table: Arc::new(arc_swap::ArcSwap::from_pointee(table)),
                lock: Arc::new(tokio::sync::Mutex::new(())),
            },
        })
    }

    /// A handle to make route changes take effect before answering.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until the task is dropped (which also stops following the store).
    pub async fn run(self) {
        let fresh = keep_table_fresh(self.reloader.clone());
        tokio::select! {
            _ = fresh => {}
            _ = self.accept_loop() => {}
        }
    }

    async fn accept_loop(&self) {
        let forwarder = Arc::new(forward::Forwarder::new(self.reloader.table.clone()));
        loop {
            let (conn, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = conn.set_nodelay(true);
            let f = forwarder.clone();
            tokio::spawn(async move { f.serve_connection(conn, peer).await });
        }
    }
}

/// Rebuilds the table after every burst of store changes.
async fn keep_table_fresh(reloader: Reloader) {
    let mut watch = reloader.store.watch("");
    loop {
        let Some(ev) = watch.next().await else { return };
        // A burst (a deploy writes many keys) becomes one reload.
        let mut burst = vec![ev];
        while let Ok(Some(more)) = tokio::time::timeout(Duration::ZERO, watch.next()).await {
            burst.push(more);
        }
        let relevant = |k: &str| {
            k.starts_with(miren_core::controller::keys::ROUTES)
                || k.starts_with(miren_core::controller::keys::APPS)
                || k.starts_with(miren_core::controller::keys::POOLS)
                || k.starts_with(miren_core::controller::keys::SANDBOXES)
        };
        let changed = burst.iter().any(|ev| match ev {
            WatchEvent::Put { key, .. } | WatchEvent::Delete { key, .. } => relevant(key),
            WatchEvent::Lagged => true,
        });
        if changed {
            reloader.reload().await;
        }
    }
}

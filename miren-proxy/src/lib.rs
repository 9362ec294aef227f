//! miren-proxy: routes HTTP requests by host name to the web service of each app's
//! active version (SPEC §6).
//!
//! The routing [`Table`](table::Table) follows the store's watch: a change rebuilds
//! the apps it touches, and the new table is swapped in atomically (arc-swap), so
//! requests never wait on a lock. Requests go to the ready instance with the fewest requests
//! in flight (power of two choices); a connection refused before anything was sent
//! is retried on another instance.
//!
//! Requests for a pool with no ready instance are held while the controller starts
//! one (scale from zero) and released the moment the table shows it ready.
//!
//! ```no_run
//! # async fn f(store: std::sync::Arc<dyn miren_core::store::Store>) -> std::io::Result<()> {
//! let addr = "127.0.0.1:8080".parse().unwrap();
//! let proxy = miren_proxy::Proxy::bind(addr, store, None, Default::default()).await?;
//! tokio::spawn(proxy.run());
//! # Ok(()) }
//! ```

mod forward;
mod h1;
mod h2;
pub mod table;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use miren_core::controller::Controller;
use miren_core::store::{Store, WatchEvent};
use tokio::net::TcpListener;
use tokio::sync::watch;

use table::{Changed, Mirror, Shared, Table};

pub use forward::HEALTH_PATH;

/// Limits and timings (SPEC §6 defaults).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// How long a request waits for an instance of a pool at zero (then 503).
    pub hold_timeout: Duration,
    /// Requests held per app at most (beyond: 503 at once).
    pub max_held_per_app: usize,
    /// How long the upstream may take to start answering (then 504).
    pub upstream_timeout: Duration,
    /// How long a client may take to send its headers (then the connection closes).
    pub header_timeout: Duration,
    /// How often demand goes to the autoscaler.
    pub report_every: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            hold_timeout: Duration::from_secs(60),
            max_held_per_app: 1024,
            upstream_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
            report_every: Duration::from_millis(100),
        }
    }
}

/// A bound proxy; [`run`](Proxy::run) serves.
pub struct Proxy {
    listener: TcpListener,
    /// The store's changes since the table was built.
    changes: Option<miren_core::store::Watch>,
    reloader: Reloader,
    controller: Option<Controller>,
    config: ProxyConfig,
}

/// Keeps the proxy's table in step with the store. Cheap to clone. Updates are
/// serialized, so the last one to finish saw the newest state.
#[derive(Clone)]
pub struct Reloader {
    store: Arc<dyn Store>,
    table: Shared,
    /// The store's routing state, as of the table in `table`.
    mirror: Arc<tokio::sync::Mutex<Mirror>>,
    /// Bumped after every swap: held requests wait on it.
    version: Arc<watch::Sender<u64>>,
}

impl Reloader {
    /// Reads everything again now; returns once requests see the store as it is.
    pub async fn reload(&self) {
        let mut mirror = self.mirror.lock().await;
        self.relist(&mut mirror).await;
    }

    async fn relist(&self, mirror: &mut Mirror) {
        match Mirror::load(self.store.as_ref()).await {
            Ok(m) => {
                *mirror = m;
                let previous = self.table.load_full();
                self.swap(Table::build(mirror, &previous));
            }
            Err(e) => tracing::warn!("proxy: reloading routes failed: {e}"),
        }
    }

    /// Applies a burst of watch events: only the apps they touch are rebuilt.
    async fn apply(&self, events: &[WatchEvent]) {
        let mut mirror = self.mirror.lock().await;
        let mut changed = Changed::default();
        for ev in events {
            if mirror.apply(ev, &mut changed).is_err() {
                return self.relist(&mut mirror).await;
            }
        }
        if !changed.is_empty() {
            let next = self.table.load().update(&mirror, &changed);
            self.swap(next);
        }
    }

    fn swap(&self, table: Table) {
        self.table.store(Arc::new(table));
        self.version.send_modify(|v| *v += 1);
    }
}

impl Proxy {
    /// Binds `addr` and loads the table. With a controller, demand is reported to its
    /// autoscaler and requests for a pool at zero ask it for capacity.
    pub async fn bind(
        addr: SocketAddr,
        store: Arc<dyn Store>,
        controller: Option<Controller>,
        config: ProxyConfig,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        // Watching from before the listing: nothing falls between the two (events the
        // listing already reflects are skipped by revision).
        let changes = store.watch("");
        let mirror = Mirror::load(store.as_ref())
            .await
            .map_err(std::io::Error::other)?;
        let table = Table::build(&mirror, &Table::default());
        Ok(Self {
            listener,
            changes: Some(changes),
            reloader: Reloader {
                store,
                table: Arc::new(arc_swap::ArcSwap::from_pointee(table)),
                mirror: Arc::new(tokio::sync::Mutex::new(mirror)),
                version: Arc::new(watch::channel(0).0),
            },
            controller,
            config,
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

    /// Serves until the task is dropped (which also stops following the store and
    /// reporting demand).
    pub async fn run(mut self) {
        let changes = self.changes.take();
        let fresh = keep_table_fresh(self.reloader.clone(), changes);
        let report = report_load(
            self.reloader.table.clone(),
            self.controller.clone(),
            self.config.report_every,
        );
        tokio::select! {
            _ = fresh => {}
            _ = report => {}
            _ = self.accept_loop() => {}
        }
    }

    async fn accept_loop(&self) {
        let forwarder = Arc::new(forward::Forwarder::new(
            self.reloader.table.clone(),
            self.reloader.version.subscribe(),
            self.controller.clone(),
            self.config.clone(),
        ));
        loop {
            let (conn, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = conn.set_nodelay(true);
            tokio::spawn(h1::serve(forwarder.clone(), conn, peer));
        }
    }
}

/// Sends each pool's peak demand to the autoscaler, every `every` while there is any.
async fn report_load(table: Shared, controller: Option<Controller>, every: Duration) {
    let Some(controller) = controller else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t = table.load();
        let loads: Vec<_> = t
            .targets()
            .filter_map(|target| {
                let pool = target.pool.clone()?;
                let now = target.load.in_flight.load(Ordering::Relaxed);
                let peak = target.load.peak.swap(now, Ordering::Relaxed).max(now);
                (peak > 0).then_some((pool, peak))
            })
            .collect();
        if !loads.is_empty() {
            controller.report_load(loads);
        }
    }
}

/// Applies the store's changes to the table, a burst at a time.
async fn keep_table_fresh(reloader: Reloader, changes: Option<miren_core::store::Watch>) {
    let mut watch = match changes {
        Some(w) => w,
        None => return std::future::pending().await,
    };
    loop {
        let Some(ev) = watch.next().await else { return };
        // A burst (a deploy writes many keys) becomes one swap.
        let mut burst = vec![ev];
        while let Ok(Some(more)) = tokio::time::timeout(Duration::ZERO, watch.next()).await {
            burst.push(more);
        }
        reloader.apply(&burst).await;
    }
}

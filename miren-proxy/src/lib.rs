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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use miren_core::controller::Controller;
use miren_core::store::{Revision, Store, WatchEvent};
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
    /// The store revision the table reflects.
    applied: Arc<watch::Sender<Revision>>,
    /// Whether the watch is being followed (the proxy runs).
    following: Arc<AtomicBool>,
}

/// How long [`Reloader::reload`] waits for the watch before listing everything.
const CATCH_UP: Duration = Duration::from_secs(5);

impl Reloader {
    /// Returns once requests see the store as it is now: when the watch has brought
    /// the table to the store's current revision (no listing: cheap at any size), or
    /// after listing everything when the proxy is not following the store.
    pub async fn reload(&self) {
        if self.following.load(Ordering::Relaxed)
            && let Ok(now) = self.store.revision().await
        {
            let mut applied = self.applied.subscribe();
            let caught_up = tokio::time::timeout(CATCH_UP, applied.wait_for(|a| *a >= now));
            if let Ok(Ok(_)) = caught_up.await {
                return;
            }
            tracing::warn!("proxy: the store's watch is behind; listing everything");
        }
        let mut mirror = self.mirror.lock().await;
        self.relist(&mut mirror).await;
    }

    async fn relist(&self, mirror: &mut Mirror) {
        match Mirror::load(self.store.as_ref()).await {
            Ok(m) => {
                *mirror = m;
                let previous = self.table.load_full();
                self.swap(Table::build(mirror, &previous));
                self.applied.send_replace(mirror.seen());
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
        let seen = mirror.seen();
        self.applied.send_if_modified(|a| {
            let newer = seen > *a;
            *a = (*a).max(seen);
            newer
        });
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
        let seen = mirror.seen();
        Ok(Self {
            listener,
            changes: Some(changes),
            reloader: Reloader {
                store,
                table: Arc::new(arc_swap::ArcSwap::from_pointee(table)),
                mirror: Arc::new(tokio::sync::Mutex::new(mirror)),
                version: Arc::new(watch::channel(0).0),
                applied: Arc::new(watch::channel(seen).0),
                following: Arc::new(AtomicBool::new(false)),
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
    /// Clears `following` however the loop ends (the proxy's task dropped included).
    struct Following(Arc<AtomicBool>);
    impl Drop for Following {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Relaxed);
        }
    }
    reloader.following.store(true, Ordering::Relaxed);
    let _following = Following(reloader.following.clone());
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use miren_core::controller::keys;
    use miren_core::model::Route;
    use miren_core::store::{MemoryStore, Op, StoreError, Versioned, Watch};

    use super::*;
    use crate::table::Lookup;

    /// A store that counts listings.
    #[derive(Default)]
    struct Counting {
        inner: MemoryStore,
        lists: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Store for Counting {
        async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
            self.inner.get(key).await
        }
        async fn list(
            &self,
            prefix: &str,
        ) -> Result<(Vec<(String, Versioned)>, Revision), StoreError> {
            self.lists.fetch_add(1, Ordering::Relaxed);
            self.inner.list(prefix).await
        }
        async fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
            self.inner.txn(ops).await
        }
        fn watch(&self, prefix: &str) -> Watch {
            self.inner.watch(prefix)
        }
        async fn revision(&self) -> Result<Revision, StoreError> {
            self.inner.revision().await
        }
    }

    fn default_route(app: &str) -> Op {
        let r = Route {
            host: "*".into(),
            app: app.into(),
            default: true,
        };
        Op::put(keys::route("*"), keys::encode(&r))
    }

    fn routed_to(r: &Reloader) -> String {
        match r.table.load().lookup("any.example") {
            Lookup::NotDeployed(app) => app.to_string(),
            _ => "-".into(),
        }
    }

    #[tokio::test]
    async fn reload_catches_up_through_the_watch_without_listing() {
        let store = Arc::new(Counting::default());
        let addr = "127.0.0.1:0".parse().expect("addr");
        let proxy = Proxy::bind(addr, store.clone(), None, ProxyConfig::default())
            .await
            .expect("bind");
        let reloader = proxy.reloader();
        // Not following the store yet: a reload lists.
        store.txn(vec![default_route("one")]).await.expect("txn");
        let before = store.lists.load(Ordering::Relaxed);
        reloader.reload().await;
        assert!(store.lists.load(Ordering::Relaxed) > before);
        assert_eq!(routed_to(&reloader), "one");

        let running = tokio::spawn(proxy.run());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !reloader.following.load(Ordering::Relaxed) {
            assert!(std::time::Instant::now() < deadline, "never followed");
            tokio::task::yield_now().await;
        }
        // Following: a write is in effect when reload returns, and nothing is listed.
        let before = store.lists.load(Ordering::Relaxed);
        for app in ["two", "three"] {
            store.txn(vec![default_route(app)]).await.expect("txn");
            reloader.reload().await;
            assert_eq!(routed_to(&reloader), app);
        }
        assert_eq!(store.lists.load(Ordering::Relaxed), before);
        running.abort();
    }
}

//! miren-proxy: routes HTTP requests by host name to the web service of each app's
//! active version (SPEC §6).
//!
//! The routing [`Table`] is a projection of the store that
//! `miren_core`'s reflector keeps current: a change rebuilds the apps it touches, and
//! the new table is swapped in atomically, so requests never wait on a lock. Requests
//! go to the ready instance with the fewest requests in flight (power of two
//! choices); when and where a failed request is sent again is one policy for both
//! protocols.
//!
//! Requests for a pool with no ready instance are held while the controller starts
//! one (scale from zero) and released the moment the table shows it ready.
//!
//! # Layout
//! - [`table`]: host → app → ready web instances, and the projection that builds it.
//! - `forwarder`: what every connection shares, and the activator (holding requests
//!   for a pool at zero).
//! - `policy`: which instance, and after a failed try whether and where to send again.
//! - `h1/`: the HTTP/1.1 path (nearly all traffic), heads parsed and rewritten in
//!   place; `h2`: HTTP/2 clients through hyper, with `upstream` as its client.
//! - `headers`: the header rules both protocols follow; `reply`: the proxy's own
//!   answers; `access`: the access log; `conns`: kept-alive connections per instance.
//! - [`metrics`]: what is measured of every request, and its Prometheus text;
//!   `counted`: HTTP/2 response bodies counted as they stream.
//! - `trust`: whose `X-Forwarded-For` is believed.
//! - `workers`: threads of the proxy's own, each serving the connections handed to it.
//! - `statics`: `[static]` files an app's version has, served before its web.
//!
//! ```no_run
//! # async fn f(store: std::sync::Arc<dyn miren_core::store::Store>) -> std::io::Result<()> {
//! let addr = "127.0.0.1:8080".parse().unwrap();
//! let proxy = miren_proxy::Proxy::bind(addr, store, None, Default::default()).await?;
//! tokio::spawn(proxy.run());
//! # Ok(()) }
//! ```

mod access;
mod conns;
mod counted;
mod forwarder;
mod h1;
mod h2;
mod headers;
pub mod metrics;
mod policy;
mod reply;
mod statics;
pub mod table;
mod trust;
mod upstream;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use miren_core::controller::Controller;
use miren_core::store::{Progress, Reader, Reflector, Store};
use tokio::net::TcpListener;

use table::{Routing, Shared, Table};

pub use access::ACCESS_TARGET;
pub use forwarder::HEALTH_PATH;
pub use trust::{BadCidr, Cidr};

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
    /// How long a request body may go without a byte (then 408 and the instance's
    /// connection is let go).
    pub body_idle_timeout: Duration,
    /// Clients whose `X-Forwarded-For` is kept and extended (a load balancer in
    /// front); anyone else's is replaced by their own address.
    pub trust_forwarded_from: Vec<Cidr>,
    /// How often demand goes to the autoscaler.
    pub report_every: Duration,
    /// Where versions' `[static]` files are (`None`: none are served).
    pub static_root: Option<std::path::PathBuf>,
    /// Threads of its own serving connections, each a current-thread runtime (0:
    /// connections are served on the runtime that runs the proxy).
    pub threads: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            hold_timeout: Duration::from_secs(60),
            max_held_per_app: 1024,
            upstream_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            trust_forwarded_from: Vec::new(),
            report_every: Duration::from_millis(100),
            static_root: None,
            threads: 0,
        }
    }
}

/// The controller the proxy reports demand to and asks for capacity, once there is
/// one: a node of a cluster that stands by serves requests before it runs a
/// controller (requests for a pool at zero then wait for the node that leads).
pub type ControllerSlot = Arc<std::sync::OnceLock<Controller>>;

/// A bound proxy; [`run`](Proxy::run) serves.
pub struct Proxy {
    listener: TcpListener,
    /// Keeps the table in step with the store while the proxy lives.
    table: Reflector<Table>,
    controller: ControllerSlot,
    config: ProxyConfig,
}

impl Proxy {
    /// Binds `addr` and loads the table, which follows the store from then on. With a
    /// controller, demand is reported to its autoscaler and requests for a pool at
    /// zero ask it for capacity.
    pub async fn bind(
        addr: SocketAddr,
        store: Arc<dyn Store>,
        controller: Option<Controller>,
        config: ProxyConfig,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let table = Reflector::start(
            store,
            Routing::serving_files_from(config.static_root.clone()),
        )
        .await
        .map_err(std::io::Error::other)?;
        let slot = ControllerSlot::default();
        if let Some(c) = controller {
            let _ = slot.set(c);
        }
        Ok(Self {
            listener,
            table,
            controller: slot,
            config,
        })
    }

    /// Where to put the controller when it starts after the proxy (set once).
    pub fn controller_slot(&self) -> ControllerSlot {
        self.controller.clone()
    }

    /// Which store revision the table reflects: the API waits on it so a change is in
    /// effect before it answers.
    pub fn progress(&self) -> Progress {
        self.table.reader().progress()
    }

    /// The routing table as it is now, for [`metrics::render`] (its targets carry the
    /// request metrics).
    pub fn table(&self) -> Shared {
        self.table.reader().cell()
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until the task is dropped (which also stops following the store and
    /// reporting demand).
    pub async fn run(self) {
        let reader = self.table.reader();
        let report = report_load(
            reader.cell(),
            self.controller.clone(),
            self.config.report_every,
        );
        tokio::select! {
            _ = report => {}
            _ = self.accept_loop(&reader) => {}
        }
    }

    async fn accept_loop(&self, reader: &Reader<Table>) {
        let forwarder = Arc::new(forwarder::Forwarder::new(
            reader.cell(),
            reader.published(),
            self.controller.clone(),
            self.config.clone(),
        ));
        let workers = match self.config.threads {
            0 => None,
            n => match workers::Workers::start(n, &forwarder) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(
                        "the proxy's {n} threads did not start ({e}); serving on the shared runtime"
                    );
                    None
                }
            },
        };
        loop {
            let (conn, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = conn.set_nodelay(true);
            match &workers {
                Some(w) => w.hand(conn, peer),
                None => {
                    tokio::spawn(h1::serve(forwarder.clone(), conn, peer));
                }
            }
        }
    }
}

/// Sends each pool's peak demand to the autoscaler, every `every` while there is any
/// (once there is a controller).
async fn report_load(table: Shared, controller: ControllerSlot, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(controller) = controller.get() else {
            continue;
        };
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

#[cfg(test)]
mod tests {
    use miren_core::model::Route;
    use miren_core::store::Op;
    use miren_core::store::keys;
    use miren_core::testing::CountingStore;

    use super::*;
    use crate::table::Lookup;

    fn default_route(app: &str) -> Op {
        let r = Route {
            host: "*".into(),
            app: app.into(),
            default: true,
        };
        Op::put(keys::route("*"), keys::encode(&r))
    }

    fn routed_to(p: &Proxy) -> String {
        match p.table.reader().load().lookup("any.example") {
            Lookup::NotDeployed(app) => app.to_string(),
            _ => "-".into(),
        }
    }

    #[tokio::test]
    async fn a_route_change_is_in_effect_when_progress_catches_up_without_a_listing() {
        let store = Arc::new(CountingStore::default());
        let addr = "127.0.0.1:0".parse().expect("addr");
        let proxy = Proxy::bind(addr, store.clone(), None, ProxyConfig::default())
            .await
            .expect("bind");
        let listed = store.lists();
        for app in ["one", "two", "three"] {
            store.txn(vec![default_route(app)]).await.expect("txn");
            let caught_up = proxy.progress().caught_up(Duration::from_secs(5)).await;
            assert!(caught_up.expect("revision"));
            assert_eq!(routed_to(&proxy), app);
        }
        assert_eq!(store.lists(), listed, "no listing");
    }
}

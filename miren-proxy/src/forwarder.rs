//! What every connection shares, and the activator: find the app by host, count the
//! request as demand, hold it while a pool at zero starts one instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use crate::ProxyConfig;
use crate::reply::{LocalReply, show};
use crate::table::{AppTarget, Backend, Lookup, PoolLoad, Shared};

/// Where the proxy answers for itself.
pub const HEALTH_PATH: &str = "/.well-known/miren/health";

/// State shared by every connection.
pub struct Forwarder {
    pub table: Shared,
    version: watch::Receiver<u64>,
    controller: crate::ControllerSlot,
    pub config: ProxyConfig,
    /// Request ids and balancing draw from it.
    seed: AtomicUsize,
    /// Requests held per app.
    held: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    /// Connections to instances for HTTP/2 clients (the HTTP/1 path keeps its own
    /// with each backend).
    pub h2_upstreams: crate::upstream::Upstreams,
}

/// A routed request: where it goes, counted as demand on its pool until dropped.
pub struct Routed {
    pub target: Arc<AppTarget>,
    _demand: InFlight,
    released: Option<Released>,
}

impl Routed {
    /// The instance a held request was given, if it was.
    pub fn given(&self) -> Option<&Backend> {
        self.released.as_ref().map(|r| &*r.backend)
    }
}

/// A place on one ready instance, taken by a request that was held.
struct Released {
    backend: Arc<Backend>,
    load: Arc<PoolLoad>,
}

impl Drop for Released {
    fn drop(&mut self) {
        self.backend.released.fetch_sub(1, Ordering::AcqRel);
        self.load.slot_freed.notify_waiters();
    }
}

/// Counts a request in its pool's demand while it lives.
pub struct InFlight(Arc<PoolLoad>);

impl InFlight {
    fn new(load: Arc<PoolLoad>) -> Self {
        let now = load.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        load.peak.fetch_max(now, Ordering::Relaxed);
        Self(load)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a request on one instance while it is there (for least-outstanding).
pub struct OnBackend<'a>(&'a AtomicUsize);

impl<'a> OnBackend<'a> {
    pub fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for OnBackend<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a held request against its app's cap while it waits.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Forwarder {
    pub fn new(
        table: Shared,
        version: watch::Receiver<u64>,
        controller: crate::ControllerSlot,
        config: ProxyConfig,
    ) -> Self {
        Self {
            table,
            version,
            controller,
            config,
            seed: AtomicUsize::new(0),
            held: Mutex::new(HashMap::new()),
            h2_upstreams: Default::default(),
        }
    }

    /// A fresh draw for balancing.
    pub fn seed(&self) -> usize {
        self.seed
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(2654435761)
    }

    /// The app `host` is routed to, when it serves `[static]` files.
    pub fn site(&self, host: &str) -> Option<Arc<crate::table::AppTarget>> {
        self.table.load().site(host).cloned()
    }

    /// Resolves the host to an app with a ready instance, holding the request while
    /// its pool starts one (scale from zero). The request counts as demand from here.
    pub async fn route(&self, host: &str) -> Result<Routed, LocalReply> {
        // The common case, without a watch subscription or a clone of the table.
        if let Lookup::App(t) = self.table.load().lookup(host)
            && !t.backends.is_empty()
        {
            return Ok(Routed {
                target: t.clone(),
                _demand: InFlight::new(t.load.clone()),
                released: None,
            });
        }
        let mut table = self.table.load_full();
        let mut version = self.version.clone();
        let mut hold: Option<(Held, Instant, u64)> = None;
        let mut demand: Option<InFlight> = None;
        loop {
            version.borrow_and_update();
            let target = match table.lookup(host) {
                Lookup::NoRoute => {
                    return Err(LocalReply::new(404, format!("no route for host {host}\n")));
                }
                Lookup::NoWeb(app) => {
                    return Err(LocalReply::new(
                        503,
                        format!("app {app} has no web service running\n"),
                    ));
                }
                Lookup::NotDeployed(app) => {
                    return Err(LocalReply::retry_later(format!(
                        "app {app} has no active version yet (is it still deploying?)\n"
                    )));
                }
                Lookup::App(t) => t.clone(),
            };
            let app = &*target.name;
            // Counted from the first lookup, on the pool it is for now (a deploy may
            // have changed it while the request waited).
            if demand
                .as_ref()
                .is_none_or(|d| !Arc::ptr_eq(&d.0, &target.load))
            {
                demand = Some(InFlight::new(target.load.clone()));
            }
            // Told when a released request ends; asked for before looking.
            let load = target.load.clone();
            let freed = load.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if !target.backends.is_empty() {
                // A held request takes its share of the ready instances while more
                // are on the way (starting, or about to be for this demand): at most
                // `requests_per_instance` each; the rest wait for the next instance
                // or a free slot, not all on the first one.
                let released = match (&hold, &target.scale) {
                    (Some(_), Some(scale)) => {
                        let per = scale.requests_per_instance.max(1) as usize;
                        match give_place(&target, per) {
                            Some(place) => Some(Some(place)),
                            // Every place taken: wait for the instances on the way,
                            // or, when none is, go over the target like any request.
                            None if more_coming(&target, scale) => None,
                            None => Some(None),
                        }
                    }
                    _ => Some(None),
                };
                if let Some(released) = released
                    && let Some(d) = demand.take()
                {
                    return Ok(Routed {
                        target,
                        _demand: d,
                        released,
                    });
                }
            }
            let (since, since_ms) = match &hold {
                Some((_, since, since_ms)) => (*since, *since_ms),
                None => {
                    let counter = self.held_counter(app);
                    if counter.fetch_add(1, Ordering::Relaxed) >= self.config.max_held_per_app {
                        counter.fetch_sub(1, Ordering::Relaxed);
                        return Err(LocalReply::retry_later(format!(
                            "app {app} is starting and already has {} requests waiting; try again shortly\n",
                            self.config.max_held_per_app
                        )));
                    }
                    if let (Some(c), Some(pool)) = (self.controller.get(), &target.pool) {
                        c.want_capacity(pool);
                    }
                    let now_ms = miren_core::runtime::now_millis();
                    hold = Some((Held(counter), Instant::now(), now_ms));
                    (Instant::now(), now_ms)
                }
            };
            if let Some((at, why)) = &target.last_death
                && *at >= since_ms
            {
                return Err(LocalReply::new(
                    502,
                    format!(
                        "app {app}: its web instance died while starting ({why}); see `miren logs -a {app}`\n"
                    ),
                ));
            }
            let deadline = since + self.config.hold_timeout;
            let left = deadline.saturating_duration_since(Instant::now());
            let woken = tokio::time::timeout(left, async {
                tokio::select! {
                    changed = version.changed() => changed.is_ok(),
                    () = &mut freed => true,
                }
            });
            match woken.await {
                Ok(true) => table = self.table.load_full(),
                _ => {
                    return Err(LocalReply::retry_later(format!(
                        "app {app} did not start within {}; try again shortly\n",
                        show(self.config.hold_timeout)
                    )));
                }
            }
        }
    }

    fn held_counter(&self, app: &str) -> Arc<AtomicUsize> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.entry(app.to_string()).or_default().clone()
    }
}

/// A place for a held request on the ready instance with the most room, if any has.
fn give_place(target: &AppTarget, per_instance: usize) -> Option<Released> {
    let mut order: Vec<&Arc<Backend>> = target.backends.iter().collect();
    order.sort_by_key(|b| b.released.load(Ordering::Acquire));
    order
        .into_iter()
        .find(|b| b.try_release(per_instance))
        .map(|b| Released {
            backend: b.clone(),
            load: target.load.clone(),
        })
}

/// Whether instances beyond the ready ones are coming for this pool: some are
/// starting, or the demand now (held requests included) wants more than are ready
/// (the autoscaler's own rule).
fn more_coming(target: &AppTarget, scale: &miren_core::config::AutoScale) -> bool {
    let demand = target.load.in_flight.load(Ordering::Relaxed);
    let wanted = miren_core::autoscale::decide(scale, demand).desired as usize;
    target.starting > 0 || wanted > target.backends.len()
}

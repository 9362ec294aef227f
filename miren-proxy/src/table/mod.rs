//! The routing table: host → app → ready web instances of its active version. A
//! change in the store rebuilds the apps it touched ([`Routing`] is the table as a
//! projection of the store, which `miren_core`'s reflector keeps current); the new
//! table is swapped in whole, so the request path never takes a lock.

mod projection;
pub mod stats;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use miren_core::model::{PoolId, SandboxStatus, UnixMillis};

pub use projection::{Changed, Mirror, Routing};

/// The host that stands for "every host without a route of its own".
pub const DEFAULT_HOST: &str = "*";

/// Where a request goes.
#[derive(Debug, Default)]
pub struct Table {
    /// Shared between tables until a route changes.
    routes: Arc<HashMap<String, String>>,
    default_app: Option<String>,
    /// Keyed by the target's own name: copying the map for an update copies pointers.
    apps: HashMap<Arc<str>, Arc<AppTarget>>,
    /// Apps serving `[static]` files, by name: most tables have none, and a request
    /// then pays nothing for them.
    sites: usize,
}

/// One app's web instances.
#[derive(Debug, Default)]
pub struct AppTarget {
    /// The app.
    pub name: Arc<str>,
    /// Whether the active version has a web service at all.
    pub has_web: bool,
    /// The active version's web pool.
    pub pool: Option<PoolId>,
    /// Requests in flight to the pool, and their peak since the last report; carried
    /// across reloads.
    pub load: Arc<PoolLoad>,
    /// Ready instances.
    pub backends: Vec<Arc<Backend>>,
    /// The latest instance of the pool that died on its own: when, and why.
    pub last_death: Option<(UnixMillis, String)>,
    /// Instances of the pool starting (not ready yet).
    pub starting: usize,
    /// How the pool scales, when on demand.
    pub scale: Option<miren_core::config::AutoScale>,
    /// The active version's `[static]` files.
    pub site: Option<Arc<crate::statics::Site>>,
    /// Its requests (`metrics`), carried across rebuilds while the app is routed.
    pub stats: Arc<stats::RequestStats>,
}

/// Demand on a pool, as the autoscaler wants it.
#[derive(Debug, Default)]
pub struct PoolLoad {
    /// Requests in flight now (held ones included: they are demand too).
    pub in_flight: std::sync::atomic::AtomicU32,
    /// The most in flight since the last report.
    pub peak: std::sync::atomic::AtomicU32,
    /// Told when a request that was held ends: another may take its place.
    pub slot_freed: tokio::sync::Notify,
}

/// One ready instance.
#[derive(Debug)]
pub struct Backend {
    /// The sandbox id.
    pub sandbox: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests in flight to it.
    pub in_flight: AtomicUsize,
    /// Its kept-alive connections, which go when it leaves the table.
    pub idle: crate::conns::IdleConns,
    /// Requests that were held for an instance and were given this one.
    pub released: AtomicUsize,
    /// Requests it answered (`metrics`).
    pub served: std::sync::atomic::AtomicU64,
}

impl Backend {
    /// A ready instance that has served nothing yet.
    pub fn new(sandbox: String, addr: SocketAddr) -> Self {
        Self {
            sandbox,
            addr,
            in_flight: AtomicUsize::new(0),
            idle: Default::default(),
            released: AtomicUsize::new(0),
            served: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Takes one of its `per_instance` places for a held request.
    pub fn try_release(&self, per_instance: usize) -> bool {
        self.released
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < per_instance).then_some(n + 1)
            })
            .is_ok()
    }
}

/// What a host resolves to.
pub enum Lookup<'a> {
    /// No route and no default.
    NoRoute,
    /// Routed to an app that doesn't exist (any more) or has no active web.
    NoWeb(&'a str),
    /// Routed to an app with no active version (its first deploy, or none yet).
    NotDeployed(&'a str),
    /// Routed; these are its instances (maybe none ready).
    App(&'a Arc<AppTarget>),
}

impl Table {
    /// The app a host is routed to, when it serves `[static]` files.
    pub fn site(&self, host: &str) -> Option<&Arc<AppTarget>> {
        if self.sites == 0 {
            return None;
        }
        let app = self.app_of(host)?;
        self.apps.get(app.as_str()).filter(|t| t.site.is_some())
    }

    /// The app a Host header value (case and port ignored) is routed to.
    fn app_of(&self, host: &str) -> Option<&String> {
        let host = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let host = host.trim_end_matches('.');
        // Lowercase only when needed: most Host headers already are.
        let found = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.routes.get(&host.to_ascii_lowercase())
        } else {
            self.routes.get(host)
        };
        found.or(self.default_app.as_ref())
    }

    /// Resolves a Host header value (case and port ignored).
    pub fn lookup(&self, host: &str) -> Lookup<'_> {
        let Some(app) = self.app_of(host) else {
            return Lookup::NoRoute;
        };
        match self.apps.get(app.as_str()) {
            Some(t) if t.has_web => Lookup::App(t),
            Some(_) => Lookup::NoWeb(app),
            None => Lookup::NotDeployed(app),
        }
    }

    /// Every app's target, for the load reporter.
    pub fn targets(&self) -> impl Iterator<Item = &AppTarget> {
        self.apps.values().map(|t| t.as_ref())
    }

    /// The table for `mirror`. Instances still there keep their counts and kept-alive
    /// connections from `previous`.
    pub fn build(mirror: &Mirror, previous: &Table) -> Self {
        let mut t = Table::default();
        t.set_routes(mirror);
        for name in mirror.apps.keys() {
            if let Some(target) = build_target(name, mirror, previous) {
                t.apps.insert(target.name.clone(), Arc::new(target));
            }
        }
        t.count_sites();
        t
    }

    fn count_sites(&mut self) {
        self.sites = self.apps.values().filter(|t| t.site.is_some()).count();
    }

    /// This table with what `changed` touched rebuilt from `mirror`: work for those
    /// apps only, and a pointer copy for each of the others.
    pub fn update(&self, mirror: &Mirror, changed: &Changed) -> Self {
        let mut t = Table {
            routes: self.routes.clone(),
            default_app: self.default_app.clone(),
            apps: self.apps.clone(),
            sites: 0,
        };
        if changed.routes {
            t.set_routes(mirror);
        }
        for name in &changed.apps {
            match build_target(name, mirror, self) {
                Some(target) => t.apps.insert(target.name.clone(), Arc::new(target)),
                None => t.apps.remove(name.as_str()),
            };
        }
        t.count_sites();
        t
    }

    fn set_routes(&mut self, mirror: &Mirror) {
        let mut routes = HashMap::new();
        self.default_app = None;
        for r in mirror.routes.values() {
            if r.default {
                self.default_app = Some(r.app.clone());
            }
            if r.host != DEFAULT_HOST {
                routes.insert(r.host.clone(), r.app.clone());
            }
        }
        self.routes = Arc::new(routes);
    }
}

/// One app's target: its active version's web pool and the pool's ready instances.
/// `None`: no such app, or nothing deployed yet.
fn build_target(name: &str, mirror: &Mirror, previous: &Table) -> Option<AppTarget> {
    let app = mirror.apps.get(name)?;
    let active = app.active_version.as_ref()?;
    let before = previous.apps.get(name);
    let site = match (
        &mirror.static_root,
        mirror
            .statics
            .get(name)
            .and_then(|s| s.get(active.as_str())),
    ) {
        (Some(root), Some(st)) => {
            let fresh = crate::statics::Site::new(root, active.as_str(), st.error_page.clone());
            // The same version keeps its site (and the error page it read).
            Some(
                before
                    .and_then(|t| t.site.clone())
                    .filter(|s| s.root == fresh.root && s.error_page == fresh.error_page)
                    .unwrap_or_else(|| Arc::new(fresh)),
            )
        }
        _ => None,
    };
    let mut target = AppTarget {
        name: Arc::from(name),
        site,
        stats: before.map(|t| t.stats.clone()).unwrap_or_default(),
        ..AppTarget::default()
    };
    let Some(pool) = mirror
        .pools
        .get(name)
        .and_then(|pools| pools.values().find(|p| p.versions.contains(active)))
    else {
        return Some(target);
    };
    target.has_web = true;
    target.pool = Some(pool.id.clone());
    target.scale = match &pool.scaling {
        miren_core::config::Concurrency::Auto(a) => Some(*a),
        miren_core::config::Concurrency::Fixed { .. } => None,
    };
    // Demand carries over while the pool stays the same.
    target.load = before
        .filter(|t| t.pool.as_ref() == Some(&pool.id))
        .map(|t| t.load.clone())
        .unwrap_or_default();
    let sandboxes = mirror
        .sandboxes
        .get(name)
        .into_iter()
        .flat_map(|m| m.values());
    for s in sandboxes.filter(|s| s.pool == pool.id) {
        if s.status == SandboxStatus::Dead {
            if target
                .last_death
                .as_ref()
                .is_none_or(|(at, _)| *at < s.updated)
            {
                let why = s.reason.clone().unwrap_or_else(|| "exited".into());
                target.last_death = Some((s.updated, why));
            }
            continue;
        }
        // Booting or draining instances get no new requests.
        if !s.is_serving() {
            target.starting += usize::from(s.status == SandboxStatus::Pending);
            continue;
        }
        let Some(addr) = s.address.and_then(|a| a.socket()) else {
            continue;
        };
        // The same instance keeps its counts and connections across reloads.
        let carried = before
            .and_then(|t| {
                t.backends
                    .iter()
                    .find(|b| b.sandbox == s.id.as_str() && b.addr == addr)
            })
            .cloned();
        target
            .backends
            .push(carried.unwrap_or_else(|| Arc::new(Backend::new(s.id.to_string(), addr))));
    }
    target.backends.sort_by(|a, b| a.sandbox.cmp(&b.sandbox));
    Some(target)
}

/// Least outstanding requests among two random choices (power of two), skipping
/// instances already tried. No allocation: this runs for every request.
pub fn pick<'a>(t: &'a AppTarget, tried: &[SocketAddr], seed: usize) -> Option<&'a Backend> {
    let n = t.backends.len();
    if !tried.is_empty() {
        // A retry: the least loaded of those not tried yet.
        return t
            .backends
            .iter()
            .filter(|b| !tried.contains(&b.addr))
            .min_by_key(|b| b.in_flight.load(Ordering::Relaxed))
            .map(|b| &**b);
    }
    match n {
        0 => None,
        1 => t.backends.first().map(|b| &**b),
        _ => {
            let i = seed % n;
            let j = (i + 1 + (seed / n) % (n - 1)) % n;
            let (a, b) = (&t.backends[i], &t.backends[j]);
            let less = b.in_flight.load(Ordering::Relaxed) < a.in_flight.load(Ordering::Relaxed);
            Some(if less { b } else { a })
        }
    }
}

/// A shared, swappable table.
pub type Shared = Arc<arc_swap::ArcSwap<Table>>;

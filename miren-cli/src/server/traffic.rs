//! What `app status`, `miren top` and the dashboard say about traffic and instances
//! (SPEC §16): the proxy's counters sampled once a second into the last minute, so
//! req/s, p95 and the 5xx rate are over that minute, with a per-second series for the
//! dashboard's sparklines; instances' CPU and memory measured only while someone looks
//! (reading `/proc` for every sandbox each second would cost the idle server).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use miren_proxy::metrics::BUCKETS;
use miren_proxy::table::Shared;

use crate::api::{InstanceUsage, ServiceTraffic};

/// How far back the figures go.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How often the counters are sampled.
const EVERY: Duration = Duration::from_secs(1);
/// How long after the last look instances are still measured.
const LOOKED: Duration = Duration::from_secs(60);

/// An app's counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// By status class, 1xx–5xx.
    pub classes: [u64; 5],
    /// By latency bucket (not cumulative), the last beyond [`BUCKETS`].
    pub buckets: [u64; 13],
}

impl Counts {
    fn total(&self) -> u64 {
        self.classes.iter().sum()
    }

    /// What happened between `earlier` and `self` (a counter that went down started
    /// again from zero: the app was routed anew).
    fn since(&self, earlier: &Counts) -> Counts {
        if self.total() < earlier.total() {
            return *self;
        }
        Counts {
            classes: std::array::from_fn(|i| self.classes[i].saturating_sub(earlier.classes[i])),
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
        }
    }
}

/// The latency under which `q` of the requests in `buckets` were answered, in
/// milliseconds, interpolated inside its bucket as Prometheus' `histogram_quantile`
/// does; `None` without requests.
pub fn quantile_ms(q: f64, buckets: &[u64; 13]) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        if *n > 0 && (below + n) as f64 >= rank {
            let Some(upper) = BUCKETS.get(i) else {
                // Beyond the last bound: all that can be said is "more than it".
                return BUCKETS.last().map(|b| b * 1000.0);
            };
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            let within = (rank - below as f64) / *n as f64;
            return Some((lower + (upper - lower) * within) * 1000.0);
        }
        below += n;
    }
    BUCKETS.last().map(|b| b * 1000.0)
}

/// One sample of every routed app and instance.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    apps: HashMap<String, Counts>,
    /// Requests each instance answered, by sandbox id.
    served: HashMap<String, u64>,
}

impl Sample {
    fn of(table: &Shared, at: Instant) -> Self {
        let table = table.load();
        let mut apps = HashMap::new();
        let mut served = HashMap::new();
        for t in table.targets() {
            apps.insert(
                t.name.to_string(),
                Counts {
                    classes: t.stats.classes(),
                    buckets: t.stats.buckets(),
                },
            );
            for b in &t.backends {
                served.insert(
                    b.sandbox.clone(),
                    b.served.load(std::sync::atomic::Ordering::Relaxed),
                );
            }
        }
        Self { at, apps, served }
    }
}

/// Instances' CPU time and memory at one instant.
#[derive(Debug, Clone)]
struct Measured {
    at: Instant,
    by_sandbox: HashMap<String, (f64, u64)>,
}

#[derive(Default)]
struct History {
    samples: VecDeque<Arc<Sample>>,
    measured: VecDeque<Arc<Measured>>,
    last_look: Option<Instant>,
}

/// The sampler, shared by the API and the dashboard.
#[derive(Clone)]
pub struct Traffic {
    table: Shared,
    measure: super::usage::Measure,
    history: Arc<Mutex<History>>,
}

/// An app's traffic and instances now.
pub struct AppTraffic {
    /// Per service that takes HTTP traffic.
    pub services: Vec<ServiceTraffic>,
    /// Per running instance.
    pub instances: HashMap<String, InstanceUsage>,
}

impl Traffic {
    /// Starts sampling `table` (stops with the runtime it runs on).
    pub fn start(table: Shared, measure: super::usage::Measure) -> Self {
        let t = Self {
            table,
            measure,
            history: Arc::default(),
        };
        let sampler = t.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                sampler.sample().await;
            }
        });
        t
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        // A panic elsewhere while holding it leaves plain data: go on with it.
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn sample(&self) {
        let now = Instant::now();
        let sample = Arc::new(Sample::of(&self.table, now));
        let looking = {
            let mut h = self.history();
            h.samples.push_back(sample);
            while h
                .samples
                .front()
                .is_some_and(|s| now.duration_since(s.at) > WINDOW + EVERY)
            {
                h.samples.pop_front();
            }
            h.last_look.is_some_and(|l| now.duration_since(l) < LOOKED)
        };
        if looking {
            self.measure().await;
        }
    }

    /// Reads every instance's usage now and keeps it.
    async fn measure(&self) -> Option<Arc<Measured>> {
        let usage = match self.measure.all().await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("measuring sandboxes: {e}");
                return None;
            }
        };
        let m = Arc::new(Measured {
            at: Instant::now(),
            by_sandbox: usage
                .into_iter()
                .map(|u| (u.sandbox.to_string(), (u.cpu_seconds, u.memory_bytes)))
                .collect(),
        });
        let mut h = self.history();
        h.measured.push_back(m.clone());
        while h.measured.len() > 3 {
            h.measured.pop_front();
        }
        Some(m)
    }

    /// The counters now and every instance's usage, measured once for every app
    /// looked at (`top` looks at all of them each second).
    pub async fn look(&self) -> Look {
        let now = Instant::now();
        let live = Sample::of(&self.table, now);
        let (samples, earlier) = {
            let mut h = self.history();
            h.last_look = Some(now);
            let samples: Vec<_> = h.samples.iter().cloned().collect();
            // A measurement at least a moment old to compare with.
            let earlier = h
                .measured
                .iter()
                .rev()
                .find(|m| now.duration_since(m.at) >= Duration::from_millis(200))
                .cloned();
            (samples, earlier)
        };
        let earlier = match earlier {
            Some(m) if now.duration_since(m.at) < Duration::from_secs(5) => Some(m),
            // Nobody looked lately: measure twice, a moment apart.
            _ => {
                let first = self.measure().await;
                tokio::time::sleep(Duration::from_millis(250)).await;
                first
            }
        };
        let latest = self.measure().await;
        Look {
            now,
            live,
            samples,
            earlier,
            latest,
        }
    }
}

/// The counters and usage at one look.
pub struct Look {
    now: Instant,
    live: Sample,
    samples: Vec<Arc<Sample>>,
    earlier: Option<Arc<Measured>>,
    latest: Option<Arc<Measured>>,
}

impl Look {
    /// `app`'s figures over the last minute, and its instances' usage now (by
    /// sandbox id; instances of other apps are left for their own).
    pub fn app(&self, app: &str) -> AppTraffic {
        let services = services(app, &self.samples, &self.live);
        let base = self
            .samples
            .iter()
            .find(|s| self.now.duration_since(s.at) <= WINDOW);
        let span = base.map_or(0.0, |b| self.now.duration_since(b.at).as_secs_f64());
        let mut instances = HashMap::new();
        let prefix = format!("{app}-");
        for (sandbox, served) in &self.live.served {
            if !sandbox.starts_with(&prefix) {
                continue;
            }
            let before = base
                .and_then(|b| b.served.get(sandbox))
                .copied()
                .unwrap_or(0);
            instances.insert(
                sandbox.clone(),
                InstanceUsage {
                    sandbox: sandbox.clone(),
                    req_per_sec: rate(served.saturating_sub(before), span),
                    ..InstanceUsage::default()
                },
            );
        }
        if let Some(latest) = &self.latest {
            for (sandbox, (cpu, memory)) in &latest.by_sandbox {
                if !sandbox.starts_with(&prefix) {
                    continue;
                }
                let u = instances
                    .entry(sandbox.clone())
                    .or_insert_with(|| InstanceUsage {
                        sandbox: sandbox.clone(),
                        ..InstanceUsage::default()
                    });
                u.memory_bytes = Some(*memory);
                u.cpu_percent = self.earlier.as_ref().and_then(|e| {
                    let (before, _) = e.by_sandbox.get(sandbox)?;
                    let wall = latest.at.duration_since(e.at).as_secs_f64();
                    (wall > 0.0).then(|| (cpu - before).max(0.0) / wall * 100.0)
                });
            }
        }
        AppTraffic {
            services,
            instances,
        }
    }
}

/// Requests per second for `n` over `span` seconds (none yet: 0).
fn rate(n: u64, span: f64) -> f64 {
    if span > 0.0 { n as f64 / span } else { 0.0 }
}

/// `app`'s web service over the window ending at `live`, with its per-second series.
fn services(app: &str, samples: &[Arc<Sample>], live: &Sample) -> Vec<ServiceTraffic> {
    let Some(now) = live.apps.get(app) else {
        return Vec::new();
    };
    let zero = Counts::default();
    let counts = |s: &Sample| s.apps.get(app).copied().unwrap_or(zero);
    let in_window: Vec<_> = samples
        .iter()
        .filter(|s| live.at.duration_since(s.at) <= WINDOW)
        .collect();
    let (delta, span) = match in_window.first() {
        Some(base) => (
            now.since(&counts(base)),
            live.at.duration_since(base.at).as_secs_f64(),
        ),
        None => (*now, 0.0),
    };
    let total = delta.total();
    // The series: one point per sample interval, the newest last (live included).
    let mut series = Vec::new();
    let mut p95_series = Vec::new();
    let points: Vec<(Instant, Counts)> = in_window
        .iter()
        .map(|s| (s.at, counts(s)))
        .chain(std::iter::once((live.at, *now)))
        .collect();
    for pair in points.windows(2) {
        let (t0, c0) = pair[0];
        let (t1, c1) = pair[1];
        let d = c1.since(&c0);
        series.push(rate(d.total(), t1.duration_since(t0).as_secs_f64()));
        p95_series.push(quantile_ms(0.95, &d.buckets));
    }
    vec![ServiceTraffic {
        service: "web".into(),
        window_secs: span,
        requests: total,
        req_per_sec: rate(total, span),
        p95_ms: quantile_ms(0.95, &delta.buckets),
        errors_5xx: delta.classes[4],
        error_rate: if total > 0 {
            delta.classes[4] as f64 / total as f64
        } else {
            0.0
        },
        series,
        p95_series,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_lies_in_the_bucket_holding_the_95th_request() {
        let mut b = [0u64; 13];
        assert_eq!(quantile_ms(0.95, &b), None);
        // 100 requests between 1 and 2.5 ms: p95 is 95 % of the way through.
        b[1] = 100;
        let p = quantile_ms(0.95, &b).unwrap_or(f64::NAN);
        assert!((p - 2.425).abs() < 1e-9, "{p}");
        // 90 fast ones and 10 slow: the 95th is among the slow (25–50 ms).
        b[1] = 90;
        b[5] = 10;
        let p = quantile_ms(0.95, &b).unwrap_or(f64::NAN);
        assert!((25.0..=50.0).contains(&p), "{p}");
        // Beyond the last bound: the last bound.
        let mut b = [0u64; 13];
        b[12] = 1;
        assert_eq!(quantile_ms(0.95, &b), Some(10_000.0));
    }

    #[test]
    fn the_window_counts_what_happened_since_its_first_sample() {
        let t0 = Instant::now();
        let app = |ok: u64, err: u64, at: Instant| {
            let mut c = Counts::default();
            c.classes[1] = ok;
            c.classes[4] = err;
            c.buckets[0] = ok + err;
            Arc::new(Sample {
                at,
                apps: HashMap::from([("demo".to_string(), c)]),
                served: HashMap::new(),
            })
        };
        let samples = vec![
            app(10, 0, t0),
            app(20, 0, t0 + Duration::from_secs(1)),
            app(40, 10, t0 + Duration::from_secs(2)),
        ];
        let live = app(50, 10, t0 + Duration::from_secs(4));
        let s = services("demo", &samples, &live);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].requests, 50);
        assert_eq!(s[0].errors_5xx, 10);
        assert!((s[0].req_per_sec - 12.5).abs() < 1e-9);
        assert!((s[0].error_rate - 0.2).abs() < 1e-9);
        assert_eq!(s[0].series, [10.0, 30.0, 5.0]);
        // An app the proxy does not route: nothing.
        assert!(services("other", &samples, &live).is_empty());
        // A counter that went down started again (the app was routed anew).
        let again = app(3, 0, t0 + Duration::from_secs(5));
        assert_eq!(services("demo", &samples, &again)[0].requests, 3);
    }
}

//! What the proxy measures of every request (SPEC §16): per app, counts by status
//! class and a latency histogram with fixed buckets; per instance, how many it served.
//! Atomic counters that live in the routing table's targets and instances and are
//! carried across table rebuilds like their in-flight counts: recording is a few
//! relaxed additions, no lock, no allocation, no lookup. [`render`] writes them in
//! Prometheus' text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::table::Table;

/// Upper bounds of the latency buckets, in seconds (Prometheus' defaults, from 1 ms).
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
const BUCKET_MICROS: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// An app's requests: by status class (1xx–5xx) and by latency.
#[derive(Debug, Default)]
pub struct RequestStats {
    classes: [AtomicU64; 5],
    /// Per bucket, not cumulative (cumulated when rendered); the last is beyond them.
    buckets: [AtomicU64; 13],
    sum_micros: AtomicU64,
}

impl RequestStats {
    /// One answered request.
    #[inline]
    pub fn record(&self, status: u16, took: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_MICROS
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(BUCKET_MICROS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Writes the request metrics of every app in `table`.
pub fn render(table: &Table, out: &mut String) {
    let targets: Vec<_> = table.targets().collect();
    let _ = writeln!(
        out,
        "# HELP miren_http_requests_total Requests the proxy answered for an app's web service, by status class.\n# TYPE miren_http_requests_total counter"
    );
    for t in &targets {
        for (i, n) in t.stats.classes.iter().enumerate() {
            let _ = writeln!(
                out,
                "miren_http_requests_total{{app=\"{}\",service=\"web\",status_class=\"{}xx\"}} {}",
                t.name,
                i + 1,
                n.load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP miren_http_request_duration_seconds Time from a request's head to its answer's head.\n# TYPE miren_http_request_duration_seconds histogram"
    );
    for t in &targets {
        let labels = format!("app=\"{}\",service=\"web\"", t.name);
        let mut cumulative = 0;
        for (i, n) in t.stats.buckets.iter().enumerate() {
            cumulative += n.load(Ordering::Relaxed);
            let le = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "miren_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = t.stats.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "miren_http_request_duration_seconds_sum{{{labels}}} {sum}"
        );
        let _ = writeln!(
            out,
            "miren_http_request_duration_seconds_count{{{labels}}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP miren_sandbox_http_requests_total Requests an instance of an app's web service answered, while it is routed to.\n# TYPE miren_sandbox_http_requests_total counter"
    );
    for t in &targets {
        for b in &t.backends {
            let _ = writeln!(
                out,
                "miren_sandbox_http_requests_total{{app=\"{}\",service=\"web\",sandbox=\"{}\"}} {}",
                t.name,
                b.sandbox,
                b.served.load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_buckets_count_where_they_belong() {
        let s = RequestStats::default();
        s.record(200, Duration::from_micros(900));
        s.record(204, Duration::from_micros(1_000));
        s.record(404, Duration::from_millis(30));
        s.record(503, Duration::from_secs(20));
        s.record(101, Duration::ZERO);
        let classes: Vec<u64> = s
            .classes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(classes, [1, 2, 0, 1, 1]);
        let buckets: Vec<u64> = s
            .buckets
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(buckets, [3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(s.sum_micros.load(Ordering::Relaxed), 20_031_900);
    }
}

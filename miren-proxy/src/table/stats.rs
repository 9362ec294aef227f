//! An app's request counts (`metrics` renders them): relaxed atomics bumped once per
//! answered request, kept in the app's target and carried across table rebuilds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// Response body bytes sent to clients.
    bytes: AtomicU64,
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

impl RequestStats {
    /// Response body bytes sent to a client (counted as they are, apart from the
    /// request they answer: a body may stream long after its head).
    #[inline]
    pub fn sent(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Response body bytes sent so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Requests per status class, 1xx to 5xx.
    pub fn classes(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.classes[i].load(Ordering::Relaxed))
    }

    /// Requests per latency bucket (not cumulative), the last beyond [`BUCKETS`].
    pub fn buckets(&self) -> [u64; 13] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }

    /// The latencies added up.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
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

//! What the proxy measures of every request (SPEC §16): per app, counts by status
//! class, response bytes and a latency histogram with fixed buckets; per instance, how
//! many it served.
//! Atomic counters that live in the routing table's targets and instances and are
//! carried across table rebuilds like their in-flight counts: recording is a few
//! relaxed additions, no lock, no allocation, no lookup. [`render`] writes them in
//! Prometheus' text format.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::table::Table;
pub use crate::table::stats::{BUCKETS, RequestStats};

/// Writes the request metrics of every app in `table`.
pub fn render(table: &Table, out: &mut String) {
    let targets: Vec<_> = table.targets().collect();
    let _ = writeln!(
        out,
        "# HELP miren_http_requests_total Requests the proxy answered for an app's web service, by status class.\n# TYPE miren_http_requests_total counter"
    );
    for t in &targets {
        for (i, n) in t.stats.classes().iter().enumerate() {
            let _ = writeln!(
                out,
                "miren_http_requests_total{{app=\"{}\",service=\"web\",status_class=\"{}xx\"}} {n}",
                t.name,
                i + 1,
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP miren_http_response_bytes_total Bytes of response bodies the proxy sent to clients for an app (its instances' and its static files').\n# TYPE miren_http_response_bytes_total counter"
    );
    for t in &targets {
        let _ = writeln!(
            out,
            "miren_http_response_bytes_total{{app=\"{}\",service=\"web\"}} {}",
            t.name,
            t.stats.bytes()
        );
    }
    let _ = writeln!(
        out,
        "# HELP miren_http_request_duration_seconds Time from a request's head to its answer (HTTP/1.1: to the end of its body; HTTP/2: to its head).\n# TYPE miren_http_request_duration_seconds histogram"
    );
    for t in &targets {
        let labels = format!("app=\"{}\",service=\"web\"", t.name);
        let mut cumulative = 0;
        for (i, n) in t.stats.buckets().iter().enumerate() {
            cumulative += n;
            let le = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "miren_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = t.stats.sum_seconds();
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

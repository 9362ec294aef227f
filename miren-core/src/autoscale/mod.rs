//! Request-based autoscaling (SPEC §5), as plain data and pure functions.
//!
//! The proxy reports, per pool, the highest number of requests in flight it saw in
//! each short interval. [`Window`] keeps the highest value over the trailing
//! `scale_down_delay` (a monotonic max-queue: O(1) amortized per sample), and
//! [`decide`] turns it into a desired count:
//! `clamp(ceil(D / requests_per_instance), min_instances, max_instances)`.
//! So scale-up follows the first report, an instance goes only after demand stayed
//! lower for the whole delay, and with `min_instances = 0` a pool with no request for
//! the whole delay goes to zero.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::AutoScale;

/// The peak in-flight count over a trailing window.
#[derive(Debug, Clone)]
pub struct Window {
    span: Duration,
    /// (time, value), times increasing, values strictly decreasing.
    samples: VecDeque<(Instant, u32)>,
}

impl Window {
    /// A window `span` long that starts out as if `initial` requests were in flight
    /// now: a new pool keeps its first instances for a whole delay before traffic
    /// decides.
    pub fn new(span: Duration, initial: u32, now: Instant) -> Self {
        let mut w = Self {
            span,
            samples: VecDeque::new(),
        };
        w.record(initial, now);
        w
    }

    /// The window of a pool that scales on demand (`None` for a fixed pool): it starts
    /// as if one request were in flight, so a new version keeps
    /// `max(1, min_instances)` for a whole delay.
    pub fn of_pool(scaling: &crate::config::Concurrency, now: Instant) -> Option<Self> {
        match scaling {
            crate::config::Concurrency::Auto(a) => Some(Self::new(a.scale_down_delay, 1, now)),
            crate::config::Concurrency::Fixed { .. } => None,
        }
    }

    /// Changes the span (a redeploy changed `scale_down_delay`).
    pub fn set_span(&mut self, span: Duration) {
        self.span = span;
    }

    /// Records that `value` requests were in flight at `now`.
    pub fn record(&mut self, value: u32, now: Instant) {
        while self.samples.back().is_some_and(|(_, v)| *v <= value) {
            self.samples.pop_back();
        }
        self.samples.push_back((now, value));
    }

    /// The peak over the window ending at `now`.
    pub fn peak(&mut self, now: Instant) -> u32 {
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= self.span)
        {
            self.samples.pop_front();
        }
        self.samples.front().map_or(0, |(_, v)| *v)
    }

    /// When the peak next drops if nothing new comes in (to re-decide then). A sample
    /// counts for `[t, t + span)`, so at that instant it is gone.
    pub fn next_drop(&self) -> Option<Instant> {
        self.samples.front().map(|(t, _)| *t + self.span)
    }
}

/// A decision and the reason `app status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Desired instances.
    pub desired: u32,
    /// Why.
    pub reason: String,
}

/// The desired count for peak demand `peak` under `scale`.
pub fn decide(scale: &AutoScale, peak: u32) -> Decision {
    let rpi = scale.requests_per_instance.max(1);
    let want = peak.div_ceil(rpi);
    let max = scale.max_instances.max(scale.min_instances);
    let desired = want.clamp(scale.min_instances, max);
    let delay = crate::config::duration::Display(scale.scale_down_delay);
    let reason = if desired > want {
        format!(
            "auto: peak {peak} in flight over the last {delay} needs {want}; min_instances = {}",
            scale.min_instances
        )
    } else if desired < want {
        format!("auto: peak {peak} in flight needs {want}; max_instances = {max}")
    } else if peak == 0 {
        format!("auto: no request in the last {delay}")
    } else {
        format!("auto: peak {peak} in flight over the last {delay} / {rpi} per instance")
    };
    Decision { desired, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(rpi: u32, delay_s: u64, min: u32, max: u32) -> AutoScale {
        AutoScale {
            requests_per_instance: rpi,
            scale_down_delay: Duration::from_secs(delay_s),
            min_instances: min,
            max_instances: max,
        }
    }

    #[test]
    fn desired_is_peak_over_rpi_clamped() {
        let s = scale(10, 60, 0, 5);
        assert_eq!(decide(&s, 0).desired, 0);
        assert_eq!(decide(&s, 1).desired, 1);
        assert_eq!(decide(&s, 10).desired, 1);
        assert_eq!(decide(&s, 11).desired, 2);
        assert_eq!(decide(&s, 1000).desired, 5);
        assert_eq!(decide(&scale(10, 60, 2, 5), 0).desired, 2);
        assert!(decide(&s, 1000).reason.contains("max_instances = 5"));
        assert!(decide(&s, 0).reason.contains("no request in the last 1m"));
    }

    #[test]
    fn the_window_holds_the_peak_for_its_span_then_lets_go() {
        let t0 = Instant::now();
        let span = Duration::from_secs(60);
        let mut w = Window::new(span, 1, t0);
        w.record(30, t0 + Duration::from_secs(10));
        w.record(5, t0 + Duration::from_secs(20));
        assert_eq!(w.peak(t0 + Duration::from_secs(20)), 30);
        assert_eq!(w.peak(t0 + Duration::from_millis(69_999)), 30);
        assert_eq!(w.next_drop(), Some(t0 + Duration::from_secs(70)));
        assert_eq!(w.peak(t0 + Duration::from_secs(70)), 5);
        assert_eq!(w.peak(t0 + Duration::from_secs(80)), 0);
        assert_eq!(w.next_drop(), None);
    }
}

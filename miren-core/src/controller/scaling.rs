//! Auto pools: demand reports in, desired counts out (see [`crate::autoscale`]).

use tokio::time::Instant;

use super::actor::{Actor, Timer};
use crate::autoscale::decide;
use crate::config::Concurrency;
use crate::model::PoolId;

impl Actor {
    /// Records demand on a pool and re-decides at once (scale-up is immediate).
    pub(super) fn record_load(&mut self, pid: &PoolId, peak: u32) {
        let Some(ps) = self.pools.get_mut(pid) else {
            return;
        };
        let Some(w) = ps.window.as_mut() else {
            return;
        };
        w.record(peak, Instant::now());
        self.autoscale(pid);
    }

    /// Sets an auto pool's desired count from its window, and a timer for when the
    /// window's peak next drops.
    pub(super) fn autoscale(&mut self, pid: &PoolId) {
        let now = Instant::now();
        let Some(ps) = self.pools.get_mut(pid) else {
            return;
        };
        let Concurrency::Auto(scale) = ps.pool.scaling else {
            return;
        };
        if ps.pool.versions.is_empty() {
            return;
        }
        let Some(w) = ps.window.as_mut() else {
            return;
        };
        let peak = w.peak(now);
        let next = w.next_drop();
        let d = decide(&scale, peak);
        let changed = d.desired != ps.pool.desired;
        if changed {
            ps.pool.desired = d.desired;
            ps.pool.desired_reason = d.reason;
        }
        let schedule = match (next, ps.autoscale_at) {
            (Some(t), Some(at)) if at <= t => None,
            (Some(t), _) => Some(t),
            (None, _) => None,
        };
        if let Some(t) = schedule {
            ps.autoscale_at = Some(t);
            self.add_timer(t, Timer::Autoscale(pid.clone()));
        }
        if changed {
            self.touch_pool(pid);
            self.to_reconcile.insert(pid.clone());
        }
    }
}

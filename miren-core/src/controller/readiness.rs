//! When an instance serves (SPEC §14): its runtime says it listens, and — when its
//! service has `[health]` — its health check answers healthy. One not ready within its
//! `port_timeout` is stopped as failed; a serving one that fails `unhealthy_after`
//! checks in a row leaves every answer at once and is replaced.

use super::actor::{Actor, HealthWatch, Timer};
use crate::config::command::fixed_port;
use crate::config::duration::Display;
use crate::model::{Address, SandboxId, SandboxStatus};
use crate::runtime::now_millis;

impl Actor {
    /// The runtime says the sandbox listens (at `address`, when it says where).
    pub(super) fn ready(&mut self, id: &SandboxId, address: Option<Address>) {
        let Some(s) = self.sandboxes.get_mut(id) else {
            return;
        };
        if address.is_some() {
            s.sb.address = address;
        }
        let health = self
            .pools
            .get(&s.sb.pool)
            .and_then(|p| p.pool.spec.health.clone());
        let socket = s.sb.address.and_then(|a| a.socket());
        match (health, socket) {
            (Some(h), Some(addr)) if s.health.is_none() && s.sb.is_live() => {
                let task = tokio::spawn(super::health::watch(
                    id.clone(),
                    addr,
                    h,
                    self.int_tx.clone(),
                ));
                s.health = Some(HealthWatch {
                    task: task.abort_handle(),
                    failures: 0,
                    last_error: None,
                });
                // Serving once the check answers healthy.
            }
            (Some(_), Some(_)) => {}
            _ => self.serve(id),
        }
    }

    /// Pending → running: in the proxy's and DNS's answers from now on.
    fn serve(&mut self, id: &SandboxId) {
        let Some(s) = self.sandboxes.get_mut(id) else {
            return;
        };
        if s.sb.status != SandboxStatus::Pending {
            return;
        }
        s.sb.status = SandboxStatus::Running;
        s.sb.updated = now_millis();
        let pool = s.sb.pool.clone();
        let reset_at = s.started + self.cfg.backoff.reset_after;
        self.touch_sandbox(id);
        self.recount(&pool);
        self.add_timer(reset_at, Timer::ResetCrashes(pool, id.clone()));
    }

    /// A health check's outcome.
    pub(super) fn health_checked(&mut self, id: &SandboxId, outcome: Result<(), String>) {
        let Some(s) = self.sandboxes.get_mut(id) else {
            return;
        };
        let Some(w) = s.health.as_mut() else {
            return;
        };
        match outcome {
            Ok(()) => {
                w.failures = 0;
                w.last_error = None;
                if s.sb.health.take().is_some() {
                    self.touch_sandbox(id);
                }
                self.serve(id);
            }
            Err(e) => {
                w.last_error = Some(e.clone());
                if s.sb.status != SandboxStatus::Running {
                    // Still starting: the port timeout decides.
                    return;
                }
                w.failures += 1;
                let failures = w.failures;
                s.sb.health = Some(e.clone());
                let limit = self
                    .pools
                    .get(&s.sb.pool)
                    .and_then(|p| p.pool.spec.health.as_ref())
                    .map_or(u32::MAX, |h| h.unhealthy_after);
                self.touch_sandbox(id);
                if failures >= limit {
                    let why = format!("unhealthy: {e} ({failures} checks in a row)");
                    if let Some(s) = self.sandboxes.get_mut(id) {
                        s.failure = Some(why.clone());
                    }
                    // Out of every answer now; replaced once it has gone.
                    self.stop_sandbox(id, &why);
                }
            }
        }
    }

    /// `port_timeout` after its start: still not ready, it is stopped as failed.
    pub(super) fn port_timed_out(&mut self, id: &SandboxId) {
        let Some(s) = self.sandboxes.get(id) else {
            return;
        };
        if s.sb.status != SandboxStatus::Pending || s.failure.is_some() {
            return;
        }
        let Some(p) = self.pools.get(&s.sb.pool) else {
            return;
        };
        let spec = &p.pool.spec;
        let within = Display(spec.port_timeout());
        let why = match (&spec.health, &s.health) {
            (Some(h), Some(w)) => format!(
                "did not answer healthy on {} within {within}{}",
                h.path,
                w.last_error
                    .as_ref()
                    .map(|e| format!(" (last check: {e})"))
                    .unwrap_or_default()
            ),
            _ => {
                let given =
                    s.sb.address
                        .and_then(|a| a.port)
                        .or(spec.port)
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default();
                let binds = spec
                    .command
                    .as_deref()
                    .and_then(fixed_port)
                    .map(|f| format!("; its command binds the fixed port {} itself", f.port))
                    .unwrap_or_default();
                format!("did not listen on $PORT{given} within {within}{binds}")
            }
        };
        if let Some(s) = self.sandboxes.get_mut(id) {
            s.failure = Some(why);
        }
        self.request_stop(id);
    }
}

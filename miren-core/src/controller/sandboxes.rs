//! Sandboxes: start, stop, readiness, exits, crash backoff, pool bookkeeping.

use std::time::Duration;

use tokio::time::Instant;

use super::actor::{Actor, Internal, SandboxState, Timer};
use super::plan::{Member, PoolView, plan_pool};
use crate::model::{PoolId, Sandbox, SandboxId, SandboxStatus, VersionState};
use crate::runtime::{RuntimeError, SandboxSpec, Started, now_millis};

/// Dead and stopped sandboxes kept per pool, for `sandbox list` and post-mortems.
const KEEP_EXITED: usize = 5;

impl Actor {
    /// Starts or stops what the pool's plan says; removes a drained pool.
    pub(super) fn reconcile(&mut self, pid: &PoolId) {
        let Some(ps) = self.pools.get(pid) else {
            return;
        };
        let draining = ps.pool.versions.is_empty();
        let desired = if draining || ps.suspended || ps.held {
            0
        } else {
            ps.pool.desired
        };
        let members: Vec<Member> = ps
            .members
            .iter()
            .filter_map(|id| self.sandboxes.get(id))
            .map(|s| Member {
                id: s.sb.id.clone(),
                status: s.sb.status,
            })
            .collect();
        // Only one process can mount a disk at a time: not while another pool's
        // sandbox, or one of this pool's own that is still draining, holds it.
        let blocked = ps.pool.spec.exclusive_disks()
            && (self.disks_held_elsewhere(pid)
                || members.iter().any(|m| m.status == SandboxStatus::Stopping));
        let plan = plan_pool(
            &PoolView {
                desired,
                members: &members,
                blocked,
                not_before: ps.not_before,
            },
            Instant::now(),
        );
        let why = if draining {
            "drained: no active version uses it any more"
        } else if ps.suspended {
            "stopped so a new version can take over its disks"
        } else {
            "scaled down"
        };
        for id in &plan.stop {
            self.stop_sandbox(id, why);
        }
        for _ in 0..plan.start {
            self.start_sandbox(pid);
        }
        if draining && self.pool_is_empty(pid) {
            self.remove_pool(pid);
        }
    }

    fn pool_is_empty(&self, pid: &PoolId) -> bool {
        self.pools.get(pid).is_some_and(|ps| {
            ps.members.iter().all(|id| {
                self.sandboxes
                    .get(id)
                    .is_none_or(|s| !s.sb.is_live() && !s.starting)
            })
        })
    }

    fn remove_pool(&mut self, pid: &PoolId) {
        let Some(ps) = self.take_pool(pid) else {
            return;
        };
        let app = ps.pool.app.clone();
        self.dirty.pools.insert((app.clone(), pid.clone()));
        for id in ps.members {
            self.sandboxes.remove(&id);
            self.dirty.sandboxes.insert((app.clone(), id));
        }
        // A pool waiting for these disks can go now.
        self.reconcile_disk_siblings(&app, &ps.pool.service);
        // The code only it ran may go.
        self.collector.wake();
    }

    /// Whether another pool of the same service still has a sandbox on its disks.
    fn disks_held_elsewhere(&self, pid: &PoolId) -> bool {
        let Some(me) = self.pools.get(pid) else {
            return false;
        };
        self.pools_of(&me.pool.app).any(|p| {
            p.pool.id != *pid
                && p.pool.service == me.pool.service
                && p.pool.spec.exclusive_disks()
                && p.members.iter().any(|id| {
                    self.sandboxes
                        .get(id)
                        .is_some_and(|s| s.sb.is_live() || s.starting)
                })
        })
    }

    fn reconcile_disk_siblings(&mut self, app: &str, service: &str) {
        let siblings = self.pools_where(app, |p| p.service == service && p.spec.exclusive_disks());
        self.to_reconcile.extend(siblings);
    }

    fn start_sandbox(&mut self, pid: &PoolId) {
        let Some(ps) = self.pools.get_mut(pid) else {
            return;
        };
        let Some(version) = ps.pool.versions.last().cloned() else {
            return;
        };
        let app = ps.pool.app.clone();
        let service = ps.pool.service.clone();
        let id = SandboxId::new(&app, &service);
        let now = now_millis();
        let sb = Sandbox {
            id: id.clone(),
            pool: pid.clone(),
            version: version.clone(),
            service: service.clone(),
            address: None,
            ports: Default::default(),
            runtime: None,
            node: None,
            status: SandboxStatus::Pending,
            reason: None,
            exit_code: None,
            restarts: ps.pool.quick_crashes,
            health: None,
            created: now,
            updated: now,
        };
        let mut spec = SandboxSpec {
            id: id.clone(),
            labels: SandboxSpec::standard_labels(&id, &app, &version, pid, &service),
            app: app.clone(),
            version,
            pool: Some(pid.clone()),
            spec: ps.pool.spec.clone(),
        };
        ps.members.insert(id.clone());
        ps.pool.retry_at = None;
        let sink = self.sink(&sb, &app);
        self.sandboxes.insert(
            id.clone(),
            SandboxState {
                sb,
                app,
                started: Instant::now(),
                starting: true,
                failure: None,
                health: None,
            },
        );
        self.touch_sandbox(&id);
        self.recount(pid);
        // Its secrets, opened for the runtime only: a start that can't have them
        // fails like any other.
        let opened = self.open_secrets(&mut spec.spec);
        let rt = self.runtime.clone();
        self.spawn_internal(async move {
            let r = match opened {
                Ok(()) => rt.start(&spec, sink).await,
                Err(why) => Err(RuntimeError::Start(why)),
            };
            Internal::Started(spec.id, r)
        });
    }

    pub(super) fn stop_sandbox(&mut self, id: &SandboxId, why: &str) {
        let Some(s) = self.sandboxes.get_mut(id) else {
            return;
        };
        if !matches!(s.sb.status, SandboxStatus::Pending | SandboxStatus::Running) {
            return;
        }
        s.sb.status = SandboxStatus::Stopping;
        s.sb.reason = Some(why.to_string());
        s.sb.updated = now_millis();
        let pool = s.sb.pool.clone();
        let starting = s.starting;
        self.touch_sandbox(id);
        self.recount(&pool);
        if starting {
            // `started` sees `stopping` and stops it then.
            return;
        }
        let delay = self.cfg.drain_delay;
        if delay.is_zero() || self.shutting_down() {
            self.request_stop(id);
        } else {
            // Stopping is stored now, so the proxy stops routing to it; the signal
            // follows once that has surely happened.
            self.add_timer(Instant::now() + delay, Timer::Stop(id.clone()));
        }
    }

    /// The drain delay of a stopping sandbox is over.
    pub(super) fn stop_now(&mut self, id: &SandboxId) {
        let due = self
            .sandboxes
            .get(id)
            .is_some_and(|s| s.sb.status == SandboxStatus::Stopping && !s.starting);
        if due {
            self.request_stop(id);
        }
    }

    /// Between SIGTERM and SIGKILL for `id`: its service's `shutdown_timeout`, else
    /// the server's.
    pub(super) fn grace_of(&self, id: &SandboxId) -> Duration {
        if let Some(r) = self.runs.get(id) {
            return r.grace.unwrap_or(self.cfg.stop_grace);
        }
        self.sandboxes
            .get(id)
            .and_then(|s| self.pools.get(&s.sb.pool))
            .and_then(|p| p.pool.spec.shutdown_timeout)
            .unwrap_or(self.cfg.stop_grace)
    }

    pub(super) fn request_stop(&self, id: &SandboxId) {
        let rt = self.runtime.clone();
        let grace = self.grace_of(id);
        let id = id.clone();
        self.spawn_internal(async move {
            match rt.stop(&id, grace).await {
                Ok(()) => Internal::Done(Box::new(|| {})),
                Err(RuntimeError::NotFound(_)) => Internal::StopFailed(id, "gone".to_string()),
                Err(e) => Internal::StopFailed(id, format!("stop failed: {e}")),
            }
        });
    }

    pub(super) fn started(&mut self, id: &SandboxId, result: Result<Started, RuntimeError>) {
        let Some(s) = self.sandboxes.get_mut(id) else {
            // Forgotten while starting (app deleted): make sure it doesn't linger.
            if result.is_ok() {
                self.request_stop(id);
            }
            return;
        };
        s.starting = false;
        match result {
            Ok(started) => {
                if s.sb.address.is_none() && started.address.is_some() {
                    s.sb.address = started.address;
                }
                if s.sb.ports.is_empty() {
                    s.sb.ports = started.ports;
                }
                s.sb.runtime = Some(
                    started
                        .runtime
                        .unwrap_or_else(|| self.runtime.name().to_string()),
                );
                s.sb.node = started.node;
                self.touch_sandbox(id);
                let s = &self.sandboxes[id];
                if s.sb.status == SandboxStatus::Stopping {
                    self.request_stop(id);
                } else if let Some(p) = self.pools.get(&s.sb.pool) {
                    // Ready by then, or stopped as failed.
                    let at = Instant::now() + p.pool.spec.port_timeout();
                    self.add_timer(at, Timer::PortTimeout(id.clone()));
                }
            }
            Err(e) => self.exited(id, None, format!("failed to start: {e}"), Vec::new()),
        }
    }

    pub(super) fn stop_failed(&mut self, id: &SandboxId, why: String) {
        let Some(s) = self.sandboxes.get(id) else {
            return;
        };
        if s.starting {
            return;
        }
        self.exited(id, None, why, Vec::new());
    }

    pub(super) fn exited(
        &mut self,
        id: &SandboxId,
        code: Option<i32>,
        reason: String,
        last_lines: Vec<String>,
    ) {
        let Some(s) = self.sandboxes.get_mut(id) else {
            return;
        };
        if !s.sb.is_live() {
            return;
        }
        let was_ready = s.sb.status == SandboxStatus::Running;
        let lifetime = s.started.elapsed();
        s.health = None;
        let failure = s.failure.take();
        let reason = failure.clone().unwrap_or(reason);
        s.sb.exit_code = code;
        s.sb.updated = now_millis();
        let pool = s.sb.pool.clone();
        let service = s.sb.service.clone();
        let app = s.app.clone();
        let crashed = s.sb.status != SandboxStatus::Stopping || failure.is_some();
        if crashed {
            s.sb.status = SandboxStatus::Dead;
            s.sb.reason = Some(reason.clone());
        } else {
            s.sb.status = SandboxStatus::Stopped;
            // Why it was stopped stays; that it had to be killed is worth knowing (a
            // database that ignores SIGTERM loses what it hadn't written).
            if reason.contains("SIGKILL") {
                let why = s.sb.reason.take().unwrap_or_else(|| "stopped".to_string());
                let grace = self
                    .pools
                    .get(&s.sb.pool)
                    .and_then(|p| p.pool.spec.shutdown_timeout)
                    .unwrap_or(self.cfg.stop_grace);
                s.sb.reason = Some(format!(
                    "{why}; killed: still running {} after SIGTERM",
                    crate::config::duration::Display(grace)
                ));
            }
        }
        self.touch_sandbox(id);
        if crashed {
            self.crashed(&pool, lifetime);
            if !was_ready {
                self.fail_deploys_of(&pool, &service, id, &reason, &last_lines);
            }
        }
        self.recount(&pool);
        self.prune(&pool);
        self.to_reconcile.insert(pool);
        self.reconcile_disk_siblings(&app, &service);
    }

    /// Backoff bookkeeping after a crash (SPEC §5).
    fn crashed(&mut self, pid: &PoolId, lifetime: Duration) {
        let backoff = self.cfg.backoff;
        let Some(ps) = self.pools.get_mut(pid) else {
            return;
        };
        let after = backoff.after_crash(ps.pool.quick_crashes, lifetime);
        ps.pool.quick_crashes = after.quick_crashes;
        if after.delay.is_zero() {
            ps.not_before = None;
            ps.pool.retry_at = None;
        } else {
            let at = Instant::now() + after.delay;
            ps.not_before = Some(at);
            ps.pool.retry_at = Some(now_millis() + after.delay.as_millis() as u64);
            self.add_timer(at, Timer::Retry(pid.clone()));
        }
        self.touch_pool(pid);
    }

    /// A sandbox of a pool only a deploying version uses died before it was ready:
    /// that deploy failed (SPEC §4.5).
    fn fail_deploys_of(
        &mut self,
        pid: &PoolId,
        service: &str,
        id: &SandboxId,
        reason: &str,
        last_lines: &[String],
    ) {
        let Some(ps) = self.pools.get(pid) else {
            return;
        };
        let active = self
            .apps
            .get(&ps.pool.app)
            .and_then(|a| a.active_version.clone());
        if active.is_some_and(|a| ps.pool.versions.contains(&a)) {
            return;
        }
        let deploying: Vec<_> = ps
            .pool
            .versions
            .iter()
            .filter(|v| {
                self.versions
                    .get(*v)
                    .is_some_and(|x| x.state == VersionState::Deploying)
            })
            .cloned()
            .collect();
        let mut message = if reason.starts_with("did not") {
            format!("service `{service}` {reason} (sandbox {id})")
        } else {
            format!("service `{service}` {reason} before it was ready (sandbox {id})")
        };
        if !last_lines.is_empty() {
            message.push_str("\nits last output:");
            for l in last_lines {
                message.push_str("\n  | ");
                message.push_str(l);
            }
        }
        for v in deploying {
            self.fail(&v, message.clone());
        }
    }

    pub(super) fn reset_crashes(&mut self, pid: &PoolId, sb: &SandboxId) {
        let still_up = self.sandboxes.get(sb).is_some_and(|s| s.sb.is_serving());
        if !still_up {
            return;
        }
        if let Some(ps) = self.pools.get_mut(pid)
            && ps.pool.quick_crashes != 0
        {
            ps.pool.quick_crashes = 0;
            ps.pool.retry_at = None;
            ps.not_before = None;
            self.touch_pool(pid);
        }
    }

    /// Recomputes a pool's counts from its members.
    pub(super) fn recount(&mut self, pid: &PoolId) {
        let Some(ps) = self.pools.get(pid) else {
            return;
        };
        let (mut current, mut ready) = (0, 0);
        for s in ps.members.iter().filter_map(|id| self.sandboxes.get(id)) {
            if s.sb.is_live() {
                current += 1;
                if s.sb.is_serving() {
                    ready += 1;
                }
            }
        }
        if ps.pool.current != current || ps.pool.ready != ready {
            if let Some(ps) = self.pools.get_mut(pid) {
                ps.pool.current = current;
                ps.pool.ready = ready;
            }
            self.touch_pool(pid);
        }
    }

    /// Forgets the oldest exited sandboxes of a pool beyond [`KEEP_EXITED`].
    fn prune(&mut self, pid: &PoolId) {
        let Some(ps) = self.pools.get(pid) else {
            return;
        };
        let exited: Vec<SandboxId> = ps
            .members
            .iter()
            .filter(|id| {
                self.sandboxes
                    .get(*id)
                    .is_some_and(|s| !s.sb.is_live() && !s.starting)
            })
            .cloned()
            .collect();
        if exited.len() <= KEEP_EXITED {
            return;
        }
        let app = ps.pool.app.clone();
        for id in &exited[..exited.len() - KEEP_EXITED] {
            if let Some(ps) = self.pools.get_mut(pid) {
                ps.members.remove(id);
            }
            self.sandboxes.remove(id);
            self.dirty.sandboxes.insert((app.clone(), id.clone()));
        }
    }
}

//! The controller task: its state, its loop, loading at start and writing back.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::autoscale::Window;

use super::{Command, ControllerConfig, ControllerError, Event, Reply, Snapshot};
use crate::model::{
    App, PoolId, Route, Sandbox, SandboxId, SandboxPool, SandboxStatus, Version, VersionId,
    VersionState,
};
use crate::runtime::{EventSink, Runtime, RuntimeError, RuntimeEvent, Started};
use crate::store::Revision;
use crate::store::{Op, Store, StoreError, keys};

/// A pool and what only the running controller needs to know about it.
pub(super) struct PoolState {
    pub pool: SandboxPool,
    /// Its sandboxes, any status.
    pub members: BTreeSet<SandboxId>,
    /// No new sandbox before then (crash backoff).
    pub not_before: Option<Instant>,
    /// Held at zero while a new pool of its service takes over its disks.
    pub suspended: bool,
    /// Held at zero until its version's deploy tasks succeed.
    pub held: bool,
    /// Auto pools: peak demand over the trailing scale-down delay.
    pub window: Option<crate::autoscale::Window>,
    /// When the autoscaler is due to look again (a timer is set for then).
    pub autoscale_at: Option<Instant>,
}

pub(super) struct SandboxState {
    pub sb: Sandbox,
    pub app: String,
    /// When it was started (tokio clock): crash lifetimes are measured from here.
    pub started: Instant,
    /// The runtime's `start` has not returned yet.
    pub starting: bool,
    /// Why it is being stopped as a failure (not ready in time, unhealthy): its exit
    /// then counts as a crash with this reason.
    pub failure: Option<String>,
    /// Its health checks, when its service has them and it listens.
    pub health: Option<HealthWatch>,
}

/// A sandbox's running health checks.
pub(super) struct HealthWatch {
    pub task: tokio::task::AbortHandle,
    /// Failed checks in a row.
    pub failures: u32,
    /// The last failed check's error.
    pub last_error: Option<String>,
}

impl Drop for HealthWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A run and what only the running controller needs to know about it.
pub(super) struct RunState {
    pub run: crate::model::TaskRun,
    /// The runtime's `start` has not returned yet.
    pub starting: bool,
    /// Asked to stop (timed out, app deleted, server shutting down): why.
    pub stopping: Option<String>,
    /// Its service's shutdown timeout.
    pub grace: Option<std::time::Duration>,
}

impl RunState {
    /// Started and not ended.
    pub fn is_live(&self) -> bool {
        self.run.status == crate::model::RunStatus::Running
    }
}

/// A scheduled task's next time.
pub(super) struct Armed {
    /// Which arming this is: a timer of an older one is stale.
    pub seq: u64,
    /// When it is due, Unix milliseconds.
    pub due_ms: u64,
    /// The same moment on tokio's clock.
    pub at: Instant,
}

pub(super) struct Deploying {
    /// The runtime prepared it and its pools exist.
    pub prepared: bool,
    /// Old disk pools held at zero for it; released if it fails.
    pub suspended: Vec<PoolId>,
    /// Its deploy tasks that have not succeeded yet: until they have, its new code
    /// pools are held at zero and it can't go active.
    pub tasks: Vec<String>,
    /// Whether those tasks have been started.
    pub tasks_started: bool,
    /// When it fails for taking too long (not while its tasks run: they have their
    /// own timeouts).
    pub timeout_at: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Retry(PoolId),
    ResetCrashes(PoolId, SandboxId),
    DeployTimeout(VersionId),
    Autoscale(PoolId),
    Stop(SandboxId),
    PortTimeout(SandboxId),
    /// A scheduled task's time came (app, task, generation of its schedule).
    Schedule(String, String, u64),
    /// A task run's timeout.
    RunTimeout(SandboxId),
}

pub(super) enum Internal {
    Prepared(VersionId, Result<(), RuntimeError>),
    Started(SandboxId, Result<Started, RuntimeError>),
    StopFailed(SandboxId, String),
    Health(SandboxId, Result<(), String>),
    Done(Box<dyn FnOnce() + Send>),
}

/// How the write a caller waits for went: one failed write answers every caller
/// waiting on it, so the error is shared.
pub(super) type Flushed = Result<(), Arc<StoreError>>;

type AfterFlush = Box<dyn FnOnce(Flushed) + Send>;

#[derive(Default)]
pub(super) struct Dirty {
    pub apps: BTreeSet<String>,
    pub versions: BTreeSet<(String, VersionId)>,
    pub pools: BTreeSet<(String, PoolId)>,
    pub sandboxes: BTreeSet<(String, SandboxId)>,
    pub runs: BTreeSet<(String, SandboxId)>,
    pub secrets: BTreeSet<String>,
    pub deletes: BTreeSet<String>,
}

impl Dirty {
    fn is_empty(&self) -> bool {
        self.apps.is_empty()
            && self.versions.is_empty()
            && self.pools.is_empty()
            && self.sandboxes.is_empty()
            && self.runs.is_empty()
            && self.secrets.is_empty()
            && self.deletes.is_empty()
    }
}

pub(super) struct Actor {
    pub store: Arc<dyn Store>,
    pub runtime: Arc<dyn Runtime>,
    pub cfg: ControllerConfig,
    pub events: broadcast::Sender<Event>,
    pub rt_tx: mpsc::UnboundedSender<RuntimeEvent>,
    pub int_tx: mpsc::UnboundedSender<Internal>,
    pub apps: BTreeMap<String, App>,
    pub versions: BTreeMap<VersionId, Version>,
    pub pools: BTreeMap<PoolId, PoolState>,
    /// Pools by app: every per-app question goes through here, never a full scan.
    pub app_pools: HashMap<String, BTreeSet<PoolId>>,
    /// Apps whose pools changed since deploys were last checked.
    pub changed_apps: BTreeSet<String>,
    pub sandboxes: HashMap<SandboxId, SandboxState>,
    /// Task runs, live and recent (ids sort by start time).
    pub runs: BTreeMap<SandboxId, RunState>,
    /// The armed schedule of each scheduled task of each app's active version.
    pub schedules: HashMap<(String, String), Armed>,
    pub schedule_seq: u64,
    pub deploys: BTreeMap<VersionId, Deploying>,
    /// Routes by host, with the revision each was last written at.
    pub routes: BTreeMap<String, (Route, Revision)>,
    /// The server's own secrets, by path (values sealed).
    pub secrets: BTreeMap<String, crate::model::Secret>,
    pub waiters: HashMap<VersionId, Vec<Reply<Version>>>,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    timer_seq: u64,
    pub dirty: Dirty,
    pub to_reconcile: BTreeSet<PoolId>,
    after_flush: Vec<AfterFlush>,
    shutdown: Option<Reply<()>>,
    /// Asked to stop deciding (a cluster's leader leaving): answered once written.
    step_down: Option<Reply<()>>,
    pub collector: super::collect::Collector,
}

pub(super) async fn spawn(
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    cfg: ControllerConfig,
    events: broadcast::Sender<Event>,
) -> Result<mpsc::UnboundedSender<Command>, ControllerError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (rt_tx, rt_rx) = mpsc::unbounded_channel();
    let (int_tx, int_rx) = mpsc::unbounded_channel();
    let collector = super::collect::Collector::spawn(
        &tx,
        runtime.clone(),
        cfg.artifacts.clone(),
        cfg.static_root.clone(),
        cfg.code_in_store.then(|| store.clone()),
        events.clone(),
    );
    let mut actor = Actor {
        store,
        runtime,
        cfg,
        events,
        rt_tx,
        int_tx,
        apps: BTreeMap::new(),
        versions: BTreeMap::new(),
        pools: BTreeMap::new(),
        app_pools: HashMap::new(),
        changed_apps: BTreeSet::new(),
        sandboxes: HashMap::new(),
        runs: BTreeMap::new(),
        schedules: HashMap::new(),
        schedule_seq: 0,
        deploys: BTreeMap::new(),
        routes: BTreeMap::new(),
        secrets: BTreeMap::new(),
        waiters: HashMap::new(),
        timers: BinaryHeap::new(),
        timer_seq: 0,
        dirty: Dirty::default(),
        to_reconcile: BTreeSet::new(),
        after_flush: Vec::new(),
        shutdown: None,
        step_down: None,
        collector,
    };
    actor.load().await?;
    actor.settle();
    actor.flush().await;
    actor.collector.wake();
    tokio::spawn(actor.run(rx, rt_rx, int_rx));
    Ok(tx)
}

/// How many queued messages one loop turn takes before writing to the store.
const BATCH: usize = 512;

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut rt_rx: mpsc::UnboundedReceiver<RuntimeEvent>,
        mut int_rx: mpsc::UnboundedReceiver<Internal>,
    ) {
        let mut commands_open = true;
        loop {
            let next_timer = self.timers.peek().map(|Reverse((t, _, _))| *t);
            tokio::select! {
                biased;
                Some(ev) = rt_rx.recv() => self.on_runtime(ev),
                Some(msg) = int_rx.recv() => self.on_internal(msg),
                cmd = rx.recv(), if commands_open => match cmd {
                    Some(c) => self.on_command(c).await,
                    None => commands_open = false,
                },
                _ = sleep_until_opt(next_timer), if next_timer.is_some() => self.fire_timers(),
            }
            for _ in 0..BATCH {
                if let Ok(ev) = rt_rx.try_recv() {
                    self.on_runtime(ev);
                } else if let Ok(msg) = int_rx.try_recv() {
                    self.on_internal(msg);
                } else {
                    break;
                }
            }
            self.settle();
            let finished = self.shutdown_finished();
            if let Some(reply) = finished.then(|| self.shutdown.take()).flatten() {
                self.after_flush(move |r| {
                    let _ = reply.send(r.map_err(ControllerError::Store));
                });
            }
            self.flush().await;
            if finished {
                return;
            }
            if let Some(reply) = self.step_down.take() {
                let _ = reply.send(Ok(()));
                return;
            }
        }
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Deploy(req, reply) => self.deploy(*req, reply),
            Command::Wait(id, reply) => match self.versions.get(&id) {
                None => {
                    let _ = reply.send(Err(not_found("version", id.as_str())));
                }
                Some(v) if v.state != VersionState::Deploying => {
                    let _ = reply.send(Ok(v.clone()));
                }
                Some(_) => self.waiters.entry(id).or_default().push(reply),
            },
            Command::Rollback(app, to, reply) => self.rollback(&app, to, reply),
            Command::Change(app, change, reply) => self.change_app(&app, change, reply),
            Command::SetDesired(pool, n, reason, reply) => {
                let Some(ps) = self.pools.get_mut(&pool) else {
                    let _ = reply.send(Err(not_found("pool", pool.as_str())));
                    return;
                };
                ps.pool.desired = n;
                ps.pool.desired_reason = reason;
                let snapshot = ps.pool.clone();
                self.touch_pool(&pool);
                self.to_reconcile.insert(pool);
                self.after_flush(move |r| {
                    let _ = reply.send(r.map(|_| snapshot).map_err(ControllerError::Store));
                });
            }
            Command::StopSandbox(id, reply) => {
                let live = self.sandboxes.get(&id).map(|s| s.sb.is_live());
                match live {
                    None => {
                        let _ = reply.send(Err(not_found("sandbox", id.as_str())));
                    }
                    Some(false) => {
                        let _ = reply.send(Err(ControllerError::Invalid(format!(
                            "sandbox `{id}` is not running"
                        ))));
                    }
                    Some(true) => {
                        self.stop_sandbox(&id, "stopped by an operator");
                        self.after_flush(move |r| {
                            let _ = reply.send(r.map_err(ControllerError::Store));
                        });
                    }
                }
            }
            Command::DeleteApp(app, purge, reply) => self.delete_app(&app, purge, reply).await,
            Command::Snapshot(app, reply) => {
                let _ = reply.send(Ok(self.snapshot(app.as_deref())));
            }
            Command::PutRoute(route, reply) => self.put_route(route, reply).await,
            Command::RemoveRoute(host, reply) => self.remove_route(host, reply).await,
            Command::StepDown(reply) => self.step_down = Some(reply),
            Command::Shutdown(reply) => {
                // Set first: stops during shutdown skip the drain delay.
                self.shutdown = Some(reply);
                // Every live sandbox, including those whose start is still in flight:
                // `stop_sandbox` marks them and `started` stops them when it returns.
                let live: Vec<(SandboxId, bool)> = self
                    .sandboxes
                    .iter()
                    .filter(|(_, s)| s.sb.is_live())
                    .map(|(id, s)| (id.clone(), s.sb.status == SandboxStatus::Stopping))
                    .collect();
                for (id, already_stopping) in live {
                    if already_stopping {
                        // Waiting out its drain delay: no more waiting.
                        self.stop_now(&id);
                    } else {
                        self.stop_sandbox(&id, "the server shut down");
                    }
                }
                self.stop_runs(|_| true, "the server shut down");
            }
            Command::Load(loads) => {
                for (pool, peak) in loads {
                    self.record_load(&pool, peak);
                }
            }
            Command::WantCapacity(pool) => self.record_load(&pool, 1),
            Command::Retained(reply) => {
                let _ = reply.send(self.retained());
            }
            Command::DisksDeleted(gone) => {
                for (app, disk) in gone {
                    if let Some(a) = self.apps.get_mut(&app) {
                        a.retired_disks.retain(|d| *d != disk);
                        self.touch_app(&app);
                    }
                }
            }
            Command::RunTask(app, task, reply) => self.run_task(&app, &task, reply),
            Command::Secrets(reply) => {
                let _ = reply.send(Ok(self.secrets.values().cloned().collect()));
            }
            Command::SetSecret(path, value, reply) => self.set_secret(&path, value, reply),
            Command::EnableSecret(r, enabled, reply) => self.enable_secret(r, enabled, reply),
            Command::DestroySecret(r, reply) => self.destroy_secret(r, reply),
            Command::Attach(target, attach, reply) => self.attach(target, attach, reply),
        }
    }

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Started(id, result) if self.runs.contains_key(&id) => {
                self.run_started(&id, result)
            }
            Internal::StopFailed(id, why) if self.runs.contains_key(&id) => {
                self.run_exited(&id, None, why, Vec::new())
            }
            Internal::Prepared(id, result) => self.prepared(&id, result),
            Internal::Started(id, result) => self.started(&id, result),
            Internal::StopFailed(id, why) => self.stop_failed(&id, why),
            Internal::Health(id, outcome) => self.health_checked(&id, outcome),
            Internal::Done(f) => f(),
        }
    }

    fn on_runtime(&mut self, ev: RuntimeEvent) {
        match ev {
            // A run serves nothing: ready means nothing for it.
            RuntimeEvent::Ready { sandbox, .. } if self.runs.contains_key(&sandbox) => {}
            RuntimeEvent::Exited {
                sandbox,
                code,
                reason,
                last_lines,
            } if self.runs.contains_key(&sandbox) => {
                self.run_exited(&sandbox, code, reason, last_lines)
            }
            RuntimeEvent::Ready { sandbox, address } => self.ready(&sandbox, address),
            RuntimeEvent::Exited {
                sandbox,
                code,
                reason,
                last_lines,
            } => self.exited(&sandbox, code, reason, last_lines),
        }
    }

    /// Brings pools to their desired counts and activates versions that are ready,
    /// until nothing changes.
    fn settle(&mut self) {
        for _ in 0..4 {
            if self.shutdown.is_none() {
                let pools = std::mem::take(&mut self.to_reconcile);
                for p in pools {
                    self.reconcile(&p);
                }
            }
            self.check_deploys();
            if self.to_reconcile.is_empty() || self.shutdown.is_some() {
                break;
            }
        }
    }

    fn shutdown_finished(&self) -> bool {
        self.shutdown.is_some()
            && !self
                .sandboxes
                .values()
                .any(|s| s.starting || s.sb.status == SandboxStatus::Stopping)
            && !self.runs.values().any(|r| r.is_live())
    }

    pub(super) fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    pub(super) fn after_flush(&mut self, f: impl FnOnce(Flushed) + Send + 'static) {
        self.after_flush.push(Box::new(f));
    }

    pub(super) fn add_timer(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq, timer)));
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, timer))) = self.timers.pop() else {
                break;
            };
            match timer {
                Timer::Retry(pool) => {
                    self.to_reconcile.insert(pool);
                }
                Timer::ResetCrashes(pool, sb) => self.reset_crashes(&pool, &sb),
                Timer::DeployTimeout(v) => self.deploy_timed_out(&v),
                Timer::Stop(id) => self.stop_now(&id),
                Timer::PortTimeout(id) => self.port_timed_out(&id),
                Timer::Schedule(app, task, seq) => self.schedule_due(&app, &task, seq),
                Timer::RunTimeout(id) => self.run_timed_out(&id),
                Timer::Autoscale(p) => {
                    if let Some(ps) = self.pools.get_mut(&p) {
                        ps.autoscale_at = None;
                    }
                    self.autoscale(&p);
                }
            }
        }
    }

    pub(super) fn spawn_internal(
        &self,
        f: impl std::future::Future<Output = Internal> + Send + 'static,
    ) {
        let tx = self.int_tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(f.await);
        });
    }

    pub(super) fn sink(&self, s: &Sandbox, app: &str) -> EventSink {
        EventSink::new(
            s.id.clone(),
            app,
            &s.service,
            s.version.clone(),
            self.rt_tx.clone(),
            self.cfg.logs.clone(),
        )
    }

    pub(super) fn touch_app(&mut self, app: &str) {
        self.dirty.apps.insert(app.to_string());
    }

    pub(super) fn touch_version(&mut self, id: &VersionId) {
        if let Some(v) = self.versions.get(id) {
            self.dirty.versions.insert((v.app.clone(), id.clone()));
        }
    }

    pub(super) fn touch_pool(&mut self, id: &PoolId) {
        if let Some(p) = self.pools.get(id) {
            self.dirty.pools.insert((p.pool.app.clone(), id.clone()));
            if !self.changed_apps.contains(&p.pool.app) {
                self.changed_apps.insert(p.pool.app.clone());
            }
        }
    }

    pub(super) fn insert_pool(&mut self, ps: PoolState) {
        self.app_pools
            .entry(ps.pool.app.clone())
            .or_default()
            .insert(ps.pool.id.clone());
        self.pools.insert(ps.pool.id.clone(), ps);
    }

    pub(super) fn take_pool(&mut self, id: &PoolId) -> Option<PoolState> {
        let ps = self.pools.remove(id)?;
        if let Some(set) = self.app_pools.get_mut(&ps.pool.app) {
            set.remove(id);
            if set.is_empty() {
                self.app_pools.remove(&ps.pool.app);
            }
        }
        Some(ps)
    }

    /// The pools of `app`.
    pub(super) fn pools_of<'a>(&'a self, app: &str) -> impl Iterator<Item = &'a PoolState> + 'a {
        self.app_pools
            .get(app)
            .into_iter()
            .flatten()
            .filter_map(|id| self.pools.get(id))
    }

    /// Ids of the pools of `app` matching `keep`.
    pub(super) fn pools_where(
        &self,
        app: &str,
        keep: impl Fn(&SandboxPool) -> bool,
    ) -> Vec<PoolId> {
        self.pools_of(app)
            .filter(|p| keep(&p.pool))
            .map(|p| p.pool.id.clone())
            .collect()
    }

    pub(super) fn touch_sandbox(&mut self, id: &SandboxId) {
        if let Some(s) = self.sandboxes.get(id) {
            self.dirty.sandboxes.insert((s.app.clone(), id.clone()));
        }
    }

    fn snapshot(&self, app: Option<&str>) -> Snapshot {
        let keep = |a: &str| app.is_none_or(|x| x == a);
        let mut sandboxes: Vec<Sandbox> = self
            .sandboxes
            .values()
            .filter(|s| keep(&s.app))
            .map(|s| s.sb.clone())
            .collect();
        sandboxes.sort_by(|a, b| a.id.cmp(&b.id));
        Snapshot {
            apps: self
                .apps
                .values()
                .filter(|a| keep(&a.name))
                .cloned()
                .collect(),
            versions: self
                .versions
                .values()
                .filter(|v| keep(&v.app))
                .cloned()
                .collect(),
            pools: self
                .pools
                .values()
                .filter(|p| keep(&p.pool.app))
                .map(|p| p.pool.clone())
                .collect(),
            sandboxes,
            routes: self.route_list(app),
            runs: self
                .runs
                .values()
                .filter(|r| keep(&r.run.app))
                .map(|r| r.run.clone())
                .collect(),
        }
    }

    /// Writes every changed object in one transaction, then answers the callers
    /// waiting for it. On a store error the changes stay dirty and are retried.
    async fn flush(&mut self) {
        if self.dirty.is_empty() && self.after_flush.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let mut ops = Vec::new();
        for name in &dirty.apps {
            ops.push(match self.apps.get(name) {
                Some(a) => Op::put(keys::app(name), keys::encode(a)),
                None => {
                    let key = keys::app(name);
                    let _ = self.events.send(Event::Removed { key: key.clone() });
                    Op::delete(key)
                }
            });
        }
        for (app, id) in &dirty.versions {
            ops.push(match self.versions.get(id) {
                Some(v) => {
                    let _ = self.events.send(Event::Version {
                        id: id.clone(),
                        state: v.state,
                        failure: v.failure.clone(),
                    });
                    Op::put(keys::version(app, id), keys::encode(v))
                }
                None => {
                    let key = keys::version(app, id);
                    let _ = self.events.send(Event::Removed { key: key.clone() });
                    Op::delete(key)
                }
            });
        }
        for (app, id) in &dirty.pools {
            ops.push(match self.pools.get(id) {
                Some(p) => {
                    let _ = self.events.send(Event::Pool {
                        id: id.clone(),
                        app: app.clone(),
                        service: p.pool.service.clone(),
                        desired: p.pool.desired,
                        current: p.pool.current,
                        ready: p.pool.ready,
                        reason: p.pool.desired_reason.clone(),
                    });
                    Op::put(keys::pool(app, id), keys::encode(&p.pool))
                }
                None => {
                    let key = keys::pool(app, id);
                    let _ = self.events.send(Event::Removed { key: key.clone() });
                    Op::delete(key)
                }
            });
        }
        for (app, id) in &dirty.sandboxes {
            ops.push(match self.sandboxes.get(id) {
                Some(s) => {
                    let _ = self.events.send(Event::Sandbox {
                        id: id.clone(),
                        app: app.clone(),
                        service: s.sb.service.clone(),
                        status: s.sb.status,
                        reason: s.sb.reason.clone(),
                    });
                    Op::put(keys::sandbox(app, id), keys::encode(&s.sb))
                }
                None => {
                    let key = keys::sandbox(app, id);
                    let _ = self.events.send(Event::Removed { key: key.clone() });
                    Op::delete(key)
                }
            });
        }
        for (app, id) in &dirty.runs {
            ops.push(match self.runs.get(id) {
                Some(r) => {
                    let _ = self.events.send(Event::Run {
                        id: id.clone(),
                        app: app.clone(),
                        task: r.run.task.clone(),
                        status: r.run.status,
                        exit_code: r.run.exit_code,
                    });
                    Op::put(keys::run(app, id), keys::encode(&r.run))
                }
                None => Op::delete(keys::run(app, id)),
            });
        }
        for path in &dirty.secrets {
            ops.push(match self.secrets.get(path) {
                Some(s) => Op::put(keys::secret(path), keys::encode(s)),
                None => Op::delete(keys::secret(path)),
            });
        }
        for key in &dirty.deletes {
            ops.push(Op::delete(key.clone()));
        }
        let result = if ops.is_empty() {
            Ok(())
        } else {
            self.store.txn(ops).await.map(|_| ())
        };
        let result = match result {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!("controller: writing state failed, will retry: {e}");
                merge(&mut self.dirty, dirty);
                Err(Arc::new(e))
            }
        };
        for f in std::mem::take(&mut self.after_flush) {
            f(result.clone());
        }
    }

    /// Reads the state back and squares it with what the runtime runs.
    async fn load(&mut self) -> Result<(), ControllerError> {
        let store = self.store.clone();
        for a in keys::list::<App>(store.as_ref(), keys::APPS).await? {
            self.apps.insert(a.name.clone(), a);
        }
        for v in keys::list::<Version>(store.as_ref(), keys::VERSIONS).await? {
            self.versions.insert(v.id.clone(), v);
        }
        self.load_routes().await?;
        for s in keys::list::<crate::model::Secret>(store.as_ref(), keys::SECRETS).await? {
            self.secrets.insert(s.path.clone(), s);
        }
        for p in keys::list::<SandboxPool>(store.as_ref(), keys::POOLS).await? {
            let window = Window::of_pool(&p.scaling, Instant::now());
            self.insert_pool(PoolState {
                pool: p,
                members: BTreeSet::new(),
                not_before: None,
                suspended: false,
                held: false,
                window,
                autoscale_at: None,
            });
        }
        self.load_runs().await?;
        let now = Instant::now();
        for s in keys::list::<Sandbox>(store.as_ref(), keys::SANDBOXES).await? {
            let Some(ps) = self.pools.get_mut(&s.pool) else {
                // Its pool is gone: a leftover record.
                self.dirty
                    .deletes
                    .insert(keys::sandbox(s.version.app(), &s.id));
                continue;
            };
            ps.members.insert(s.id.clone());
            let app = ps.pool.app.clone();
            self.sandboxes.insert(
                s.id.clone(),
                SandboxState {
                    sb: s,
                    app,
                    started: now,
                    starting: false,
                    failure: None,
                    health: None,
                },
            );
        }

        // A deploy the previous server did not finish: its sandboxes are being
        // replaced anyway, so say so and let the user deploy again.
        let unfinished: Vec<VersionId> = self
            .versions
            .values()
            .filter(|v| v.state == VersionState::Deploying)
            .map(|v| v.id.clone())
            .collect();
        for id in unfinished {
            self.deploys.insert(
                id.clone(),
                Deploying {
                    prepared: true,
                    suspended: Vec::new(),
                    tasks: Vec::new(),
                    tasks_started: false,
                    timeout_at: Instant::now(),
                },
            );
            self.fail(
                &id,
                "the server restarted before this version was ready; deploy again".to_string(),
            );
        }

        // The runtime may have restarted too: give it each active version again
        // (idempotent) before sandboxes start.
        let active: Vec<VersionId> = self
            .apps
            .values()
            .filter_map(|a| a.active_version.clone())
            .collect();
        for id in active {
            let Some(prep) = self.prepare_request(&id) else {
                continue;
            };
            if let Err(e) = self.runtime.prepare(&prep, &self.prepare_log(&id)).await {
                tracing::warn!("preparing {id} again after a restart failed: {e}");
                continue;
            }
            let statics = self
                .versions
                .get(&id)
                .and_then(|v| v.config.static_files.clone());
            if let Some(files) = statics {
                let root = self.cfg.static_root.as_deref();
                if let Err(e) =
                    super::statics::export(self.runtime.as_ref(), &prep, &files, root).await
                {
                    tracing::warn!("exporting the static files of {id} again failed: {e}");
                }
            }
        }

        let listed = self
            .runtime
            .list()
            .await
            .map_err(ControllerError::Runtime)?;
        let mut adopted = BTreeSet::new();
        for l in listed {
            let status = self.sandboxes.get(&l.id).map(|s| s.sb.status);
            // Booting or serving: adopted. Draining when the server went down, or not
            // ours (any more): stopped.
            let known = matches!(
                status,
                Some(SandboxStatus::Pending | SandboxStatus::Running)
            );
            if !known {
                // Not ours (any more): a leftover of a crashed server.
                let rt = self.runtime.clone();
                let grace = self.cfg.stop_grace;
                tokio::spawn(async move {
                    let _ = rt.stop(&l.id, grace).await;
                });
                continue;
            }
            let runtime = l
                .runtime
                .clone()
                .unwrap_or_else(|| self.runtime.name().to_string());
            let (sb, app) = match self.sandboxes.get_mut(&l.id) {
                Some(s) => {
                    s.sb.status = SandboxStatus::Pending;
                    s.sb.runtime = Some(runtime);
                    (s.sb.clone(), s.app.clone())
                }
                None => continue,
            };
            let sink = self.sink(&sb, &app);
            if self.runtime.adopt(&l.id, sink).await.is_ok() {
                adopted.insert(l.id.clone());
            }
        }
        let lost: Vec<SandboxId> = self
            .sandboxes
            .iter()
            .filter(|(id, s)| s.sb.is_live() && !adopted.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in lost {
            if let Some(s) = self.sandboxes.get_mut(&id) {
                if s.sb.status == SandboxStatus::Stopping {
                    // It was on its way out: that is done now.
                    s.sb.status = SandboxStatus::Stopped;
                } else {
                    s.sb.status = SandboxStatus::Dead;
                    s.sb.reason = Some("gone after the server restarted".to_string());
                }
                s.sb.updated = crate::runtime::now_millis();
            }
            self.touch_sandbox(&id);
        }
        let pools: Vec<PoolId> = self.pools.keys().cloned().collect();
        for p in pools {
            self.recount(&p);
            self.autoscale(&p);
            self.to_reconcile.insert(p);
        }
        let apps: Vec<String> = self.apps.keys().cloned().collect();
        for app in apps {
            self.arm_schedules(&app);
        }
        Ok(())
    }
}

fn merge(into: &mut Dirty, from: Dirty) {
    into.apps.extend(from.apps);
    into.versions.extend(from.versions);
    into.pools.extend(from.pools);
    into.sandboxes.extend(from.sandboxes);
    into.runs.extend(from.runs);
    into.secrets.extend(from.secrets);
    into.deletes.extend(from.deletes);
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

pub(super) fn not_found(kind: &'static str, name: &str) -> ControllerError {
    ControllerError::NotFound {
        kind,
        name: name.to_string(),
    }
}

//! [`PlacementRuntime`]: the leader's [`Runtime`] in a cluster. Starting a sandbox
//! writes a placement record for the node chosen for it and waits for that node's
//! agent to report it launched; readiness and exits come back as reports and go to
//! the sandbox's [`EventSink`]; stopping marks the placement and waits for the exit.
//! A node whose heartbeat lapses is lost: its sandboxes are reported gone, so the
//! controller replaces them elsewhere — the controller itself knows nothing of nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::batch::Batcher;
use super::choose::{Choice, Cluster, choose};
use super::records::{
    self, PLACEMENTS, Placement, REPORTS, Report, ReportState, disk_home_key, placement_key,
    prepare_key, prepare_of, report_key,
};
use crate::model::SandboxId;
use crate::runtime::{
    Attach, EventSink, Listed, PrepareApp, PrepareLog, Retained, Runtime, RuntimeError,
    SandboxSpec, Started, Usage, now_millis,
};
use crate::secret::SecretKey;
use crate::store::{Expect, Op, Store, StoreError, WatchEvent, keys};

/// How long a node may take to launch a sandbox (preparing its version first: an
/// image build on that node).
const LAUNCH_WITHIN: Duration = Duration::from_secs(300);
/// How long past its grace period a stop waits for the node to report the exit.
const STOP_SLACK: Duration = Duration::from_secs(15);

/// A placed sandbox, as the leader knows it.
struct Placed {
    node: String,
    pool: Option<String>,
    sink: Option<EventSink>,
}

/// The leader's runtime: sandboxes run where they are placed.
#[derive(Clone)]
pub struct PlacementRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    key: Arc<SecretKey>,
    /// This node's name.
    node: String,
    /// This node's runtime: versions are prepared here too (static files are exported
    /// from here), and one-off commands run here.
    local: Arc<dyn Runtime>,
    state: Mutex<State>,
    /// One placement decided at a time: starts run concurrently, and each must count
    /// the placements made before it.
    placing: tokio::sync::Mutex<()>,
    /// Placements and removals, written in groups.
    writer: Batcher,
    follower: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    /// Each placed sandbox: its node, pool and sink. The leader is the one writer of
    /// placements, so this is what the store holds (read back by `list` after a
    /// takeover): placing counts from here, not from a listing per start.
    placed: HashMap<SandboxId, Placed>,
    /// The live nodes (heartbeats), followed; `None` until first read.
    live: Option<BTreeSet<String>>,
    /// The drained nodes, followed; `None` until first read.
    drained: Option<BTreeSet<String>>,
    /// Starts waiting for their node to say launched (or failed).
    launching: HashMap<SandboxId, oneshot::Sender<ReportState>>,
    /// Stops waiting for the exit.
    stopping: HashMap<SandboxId, oneshot::Sender<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = self
            .follower
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
    }
}

fn backend(e: StoreError) -> RuntimeError {
    RuntimeError::Backend(format!("the cluster store: {e}"))
}

impl PlacementRuntime {
    /// The runtime of the leading node `node`, placing on every live node (this one
    /// included) through `store`; `local` is this node's own runtime.
    pub fn start(
        store: Arc<dyn Store>,
        key: Arc<SecretKey>,
        node: &str,
        local: Arc<dyn Runtime>,
    ) -> Self {
        let writer = Batcher::start(store.clone());
        let rt = Self {
            inner: Arc::new(Inner {
                writer,
                store,
                key,
                node: node.to_string(),
                local,
                state: Mutex::default(),
                placing: tokio::sync::Mutex::default(),
                follower: Mutex::default(),
            }),
        };
        let weak = Arc::downgrade(&rt.inner);
        let watches = Watches {
            reports: rt.inner.store.watch(REPORTS),
            alive: rt.inner.store.watch(keys::ALIVE),
            drains: rt.inner.store.watch(records::DRAINS),
        };
        let task = tokio::spawn(follow(weak, watches));
        *rt.inner.follower_lock() = Some(task);
        rt
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn follower_lock(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.follower
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live nodes' names (read once, then followed).
    async fn live_nodes(&self) -> Result<BTreeSet<String>, StoreError> {
        if let Some(live) = &self.state().live {
            return Ok(live.clone());
        }
        let live = self.names(keys::ALIVE).await?;
        self.state().live.get_or_insert(live.clone());
        Ok(live)
    }

    /// The drained nodes' names (read once, then followed).
    async fn drained_nodes(&self) -> Result<BTreeSet<String>, StoreError> {
        if let Some(d) = &self.state().drained {
            return Ok(d.clone());
        }
        let d = self.names(records::DRAINS).await?;
        self.state().drained.get_or_insert(d.clone());
        Ok(d)
    }

    /// The names of the keys under `prefix`.
    async fn names(&self, prefix: &str) -> Result<BTreeSet<String>, StoreError> {
        let (items, _) = self.store.list(prefix).await?;
        Ok(items
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix(prefix).map(str::to_string))
            .collect())
    }

    /// Every placement: (node, sandbox, record).
    async fn placements(&self) -> Result<Vec<(String, SandboxId, Placement)>, StoreError> {
        let (items, _) = self.store.list(PLACEMENTS).await?;
        let mut out = Vec::new();
        for (k, v) in items {
            let Some((node, id)) = k
                .strip_prefix(PLACEMENTS)
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            let Ok(id) = id.parse::<SandboxId>() else {
                continue;
            };
            match keys::decode::<Placement>(&k, &v.value) {
                Ok(p) => out.push((node.to_string(), id, p)),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(out)
    }

    /// Removes a sandbox's placement and report (it is over).
    async fn forget(&self, node: &str, id: &SandboxId) {
        self.state().placed.remove(id);
        let ops = vec![
            Op::delete(placement_key(node, id)),
            Op::delete(report_key(id)),
        ];
        if let Err(e) = self.writer.write(ops).await {
            tracing::warn!("removing the placement of {id}: {e}");
        }
    }

    /// A report came: to the waiting start or stop, and the sandbox's sink.
    async fn reported(&self, id: SandboxId, report: Report) {
        let (launching, sink) = {
            let mut s = self.state();
            // The first report of a start ends its wait, whichever it is.
            let launching = s.launching.remove(&id);
            let sink = s.placed.get(&id).and_then(|p| p.sink.clone());
            (launching, sink)
        };
        if let Some(tx) = launching {
            // The start reports it (a failed one: the start fails).
            let _ = tx.send(report.state);
            return;
        }
        match report.state {
            ReportState::Started { .. } => {}
            ReportState::Ready { address, .. } => {
                if let Some(sink) = sink {
                    sink.ready(address);
                }
            }
            ReportState::Failed { reason } => {
                if let Some(sink) = sink {
                    sink.exited_with(None, format!("failed to start: {reason}"), Vec::new());
                }
                self.forget(&report.node, &id).await;
            }
            ReportState::Exited {
                code,
                reason,
                last_lines,
            } => {
                if let Some(sink) = sink {
                    sink.exited_with(code, reason, last_lines);
                }
                let stopping = self.state().stopping.remove(&id);
                if let Some(tx) = stopping {
                    let _ = tx.send(());
                }
                self.forget(&report.node, &id).await;
            }
        }
    }

    /// `node`'s heartbeat lapsed: what ran there is gone.
    async fn lost(&self, node: &str) {
        let ids: Vec<SandboxId> = {
            let mut s = self.state();
            if let Some(live) = &mut s.live {
                live.remove(node);
            }
            s.placed
                .iter()
                .filter(|(_, p)| p.node == node)
                .map(|(id, _)| id.clone())
                .collect()
        };
        if !ids.is_empty() {
            tracing::warn!(
                "node `{node}` was lost (its heartbeat lapsed): its {} sandbox(es) start elsewhere",
                ids.len()
            );
        }
        for id in ids {
            let (sink, launching, stopping) = {
                let mut s = self.state();
                (
                    s.placed.get(&id).and_then(|p| p.sink.clone()),
                    s.launching.remove(&id),
                    s.stopping.remove(&id),
                )
            };
            let reason = format!("its node `{node}` was lost (no heartbeat)");
            if let Some(tx) = launching {
                let _ = tx.send(ReportState::Failed {
                    reason: reason.clone(),
                });
            } else if let Some(sink) = sink {
                sink.exited_with(None, reason, Vec::new());
            }
            if let Some(tx) = stopping {
                let _ = tx.send(());
            }
            self.forget(node, &id).await;
        }
    }

    /// Where `spec` goes; for a sandbox with a disk, the op that pins the disk to a
    /// node that doesn't hold it yet.
    async fn place(&self, spec: &SandboxSpec) -> Result<(String, Vec<Op>), RuntimeError> {
        let live = self.live_nodes().await.map_err(backend)?;
        let drained = self.drained_nodes().await.map_err(backend)?;
        let placed: Vec<(String, Option<String>)> = self
            .state()
            .placed
            .values()
            .map(|p| (p.node.clone(), p.pool.clone()))
            .collect();
        let mut cluster = Cluster::default();
        for n in live.iter().filter(|n| !drained.contains(*n)) {
            cluster.nodes.insert(n.as_str(), Vec::new());
        }
        for (node, pool) in &placed {
            if let Some(list) = cluster.nodes.get_mut(node.as_str()) {
                list.push(pool.as_deref());
            }
        }
        let disk = spec.spec.disks.first().map(|d| d.name.clone());
        let (home_key, home) = match &disk {
            Some(d) => {
                let key = disk_home_key(&spec.app, d);
                let home = self.store.get(&key).await.map_err(backend)?;
                let home = home.map(|v| String::from_utf8_lossy(&v.value).into_owned());
                (Some(key), home)
            }
            None => (None, None),
        };
        let pool = spec.pool.as_ref().map(|p| p.to_string());
        // A disk's node keeps its sandboxes even drained: the disk can't move.
        if let Some(h) = &home
            && live.contains(h)
        {
            cluster.nodes.entry(h.as_str()).or_default();
        }
        match choose(&cluster, pool.as_deref(), home.as_deref()) {
            Choice::Node(n) => {
                let mut ops = Vec::new();
                if let (Some(key), None) = (home_key, &home) {
                    ops.push(Op::put(key, n.as_bytes().to_vec()).expecting(Expect::Absent));
                }
                Ok((n.to_string(), ops))
            }
            Choice::DiskAway { node } => Err(RuntimeError::Start(format!(
                "its disk `{}` is on node `{node}`, which is not in the cluster now: it starts there once that node is back",
                disk.unwrap_or_default()
            ))),
            Choice::NoNode => Err(RuntimeError::Start(
                "no node of the cluster is live (and not drained) to run it".into(),
            )),
        }
    }
}

/// What the runtime follows.
struct Watches {
    reports: crate::store::Watch,
    alive: crate::store::Watch,
    drains: crate::store::Watch,
}

/// Follows the reports, the nodes' heartbeats and the drains while the runtime lives.
async fn follow(inner: std::sync::Weak<Inner>, mut w: Watches) {
    loop {
        tokio::select! {
            ev = w.reports.next() => {
                let Some(ev) = ev else { return };
                let Some(inner) = inner.upgrade() else { return };
                match ev {
                    WatchEvent::Put { key, value, .. } => {
                        let Some(id) = key.strip_prefix(REPORTS).and_then(|i| i.parse().ok()) else {
                            continue;
                        };
                        match keys::decode::<Report>(&key, &value) {
                            Ok(r) => inner.reported(id, r).await,
                            Err(e) => tracing::warn!("{e}"),
                        }
                    }
                    WatchEvent::Lagged => {
                        // Read every report again: the latest state of each counts.
                        if let Ok((items, _)) = inner.store.list(REPORTS).await {
                            for (key, v) in items {
                                let id = key.strip_prefix(REPORTS).and_then(|i| i.parse().ok());
                                if let (Some(id), Ok(r)) = (id, keys::decode::<Report>(&key, &v.value)) {
                                    inner.reported(id, r).await;
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            ev = w.alive.next() => {
                let Some(ev) = ev else { return };
                let Some(inner) = inner.upgrade() else { return };
                match ev {
                    WatchEvent::Put { key, .. } => {
                        if let (Some(node), Some(live)) = (key.strip_prefix(keys::ALIVE), &mut inner.state().live) {
                            live.insert(node.to_string());
                        }
                    }
                    WatchEvent::Delete { key, .. } => {
                        if let Some(node) = key.strip_prefix(keys::ALIVE) {
                            inner.lost(node).await;
                        }
                    }
                    // Read again when next needed.
                    WatchEvent::Lagged => inner.state().live = None,
                    WatchEvent::Progress { .. } => {}
                }
            }
            ev = w.drains.next() => {
                let Some(ev) = ev else { return };
                let Some(inner) = inner.upgrade() else { return };
                let mut s = inner.state();
                match (ev, &mut s.drained) {
                    (WatchEvent::Put { key, .. }, Some(d)) => {
                        if let Some(n) = key.strip_prefix(records::DRAINS) {
                            d.insert(n.to_string());
                        }
                    }
                    (WatchEvent::Delete { key, .. }, Some(d)) => {
                        if let Some(n) = key.strip_prefix(records::DRAINS) {
                            d.remove(n);
                        }
                    }
                    (WatchEvent::Lagged, _) => s.drained = None,
                    _ => {}
                }
            }
        }
    }
}

#[async_trait]
impl Runtime for PlacementRuntime {
    fn name(&self) -> &str {
        self.inner.local.name()
    }

    async fn prepare(&self, app: &PrepareApp, log: &PrepareLog) -> Result<(), RuntimeError> {
        self.inner.local.prepare(app, log).await?;
        // The other nodes prepare it when they are first given one of its sandboxes.
        let record = prepare_of(&self.inner.key, app)
            .map_err(|e| RuntimeError::Backend(format!("sealing {}: {e}", app.version)))?;
        // An app deployed again is no longer one the nodes forget.
        self.inner
            .writer
            .write(vec![
                Op::delete(records::removal_key(&app.app)),
                Op::put(prepare_key(app.version.as_str()), keys::encode(&record)),
            ])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn start(&self, spec: &SandboxSpec, events: EventSink) -> Result<Started, RuntimeError> {
        let inner = &self.inner;
        let sealed = records::seal(&inner.key, spec)
            .map_err(|e| RuntimeError::Start(format!("sealing its spec: {e}")))?;
        let placing = inner.placing.lock().await;
        let (node, mut ops) = inner.place(spec).await?;
        let placement = Placement {
            node: node.clone(),
            spec: sealed,
            pool: spec.pool.as_ref().map(|p| p.to_string()),
            stop: None,
            placed: now_millis(),
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut s = inner.state();
            s.placed.insert(
                spec.id.clone(),
                Placed {
                    node: node.clone(),
                    pool: spec.pool.as_ref().map(|p| p.to_string()),
                    sink: Some(events.clone()),
                },
            );
            s.launching.insert(spec.id.clone(), tx);
        }
        ops.push(Op::put(
            placement_key(&node, &spec.id),
            keys::encode(&placement),
        ));
        // Decided: the next start counts this one. A disk pinned here is written on
        // its own (it expects the disk to be nowhere yet); the rest in groups.
        drop(placing);
        let written = if ops.len() > 1 {
            inner.store.txn(ops).await.map(|_| ())
        } else {
            inner.writer.write(ops).await
        };
        if let Err(e) = written {
            let mut s = inner.state();
            s.placed.remove(&spec.id);
            s.launching.remove(&spec.id);
            return Err(RuntimeError::Start(format!("placing it: {e}")));
        }
        let launched = tokio::time::timeout(LAUNCH_WITHIN, rx).await;
        let failed = |why: String| async {
            inner.forget(&node, &spec.id).await;
            Err(RuntimeError::Start(why))
        };
        match launched {
            Ok(Ok(ReportState::Started {
                address,
                ports,
                runtime,
            })) => Ok(Started {
                address,
                ports,
                runtime,
                node: Some(node),
            }),
            Ok(Ok(ReportState::Ready {
                address,
                ports,
                runtime,
            })) => {
                // Ready as it was launched: the controller takes either order.
                events.ready(address);
                Ok(Started {
                    address,
                    ports,
                    runtime,
                    node: Some(node),
                })
            }
            Ok(Ok(ReportState::Failed { reason } | ReportState::Exited { reason, .. })) => {
                failed(format!("on node `{node}`: {reason}")).await
            }
            Ok(Err(_)) => failed(format!("node `{node}` did not say it started")).await,
            Err(_) => {
                inner.state().launching.remove(&spec.id);
                failed(format!(
                    "node `{node}` did not start it within {} s",
                    LAUNCH_WITHIN.as_secs()
                ))
                .await
            }
        }
    }

    async fn stop(&self, sandbox: &SandboxId, grace: Duration) -> Result<(), RuntimeError> {
        let inner = &self.inner;
        let known = inner.state().placed.get(sandbox).map(|p| p.node.clone());
        let node = match known {
            Some(n) => n,
            None => inner
                .placements()
                .await
                .map_err(backend)?
                .into_iter()
                .find(|(_, id, _)| id == sandbox)
                .map(|(n, _, _)| n)
                .ok_or_else(|| RuntimeError::NotFound(sandbox.clone()))?,
        };
        let key = placement_key(&node, sandbox);
        let Some(current) = inner.store.get(&key).await.map_err(backend)? else {
            return Err(RuntimeError::NotFound(sandbox.clone()));
        };
        if !inner.live_nodes().await.map_err(backend)?.contains(&node) {
            inner.forget(&node, sandbox).await;
            return Ok(());
        }
        let mut p: Placement =
            keys::decode(&key, &current.value).map_err(|e| RuntimeError::Backend(e.to_string()))?;
        p.stop = Some(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX));
        let (tx, rx) = oneshot::channel();
        inner.state().stopping.insert(sandbox.clone(), tx);
        inner
            .store
            .txn(vec![
                Op::put(key, keys::encode(&p)).expecting(Expect::Revision(current.revision)),
            ])
            .await
            .map_err(backend)?;
        if tokio::time::timeout(grace + STOP_SLACK, rx).await.is_err() {
            inner.state().stopping.remove(sandbox);
            return Err(RuntimeError::Backend(format!(
                "node `{node}` did not report {sandbox} stopped within {} s",
                (grace + STOP_SLACK).as_secs()
            )));
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let inner = &self.inner;
        let live = inner.live_nodes().await.map_err(backend)?;
        let (reports, _) = inner.store.list(REPORTS).await.map_err(backend)?;
        let reports: BTreeMap<String, Report> = reports
            .into_iter()
            .filter_map(|(k, v)| {
                let r = keys::decode::<Report>(&k, &v.value).ok()?;
                Some((k.strip_prefix(REPORTS)?.to_string(), r))
            })
            .collect();
        let mut out = Vec::new();
        for (node, id, p) in inner.placements().await.map_err(backend)? {
            let report = reports.get(id.as_str());
            let over = report.is_some_and(|r| r.state.is_over());
            if !live.contains(&node) || over || p.stop.is_some() {
                // Gone with its node, over, or on its way out when the last leader
                // went: the controller replaces it.
                inner.forget(&node, &id).await;
                continue;
            }
            let Ok(spec) = records::spec_of(&inner.key, &p) else {
                tracing::warn!("the placement of {id} does not open with this node's key");
                continue;
            };
            let (address, runtime) = match report.map(|r| &r.state) {
                Some(ReportState::Ready {
                    address, runtime, ..
                }) => (*address, runtime.clone()),
                Some(ReportState::Started {
                    address, runtime, ..
                }) => (*address, runtime.clone()),
                _ => (None, None),
            };
            inner.state().placed.insert(
                id.clone(),
                Placed {
                    node,
                    pool: p.pool.clone(),
                    sink: None,
                },
            );
            out.push(Listed {
                id,
                address,
                runtime,
                labels: spec.labels,
            });
        }
        Ok(out)
    }

    async fn adopt(&self, sandbox: &SandboxId, events: EventSink) -> Result<(), RuntimeError> {
        let inner = &self.inner;
        let node = {
            let mut s = inner.state();
            let Some(p) = s.placed.get_mut(sandbox) else {
                return Err(RuntimeError::NotFound(sandbox.clone()));
            };
            p.sink = Some(events.clone());
            p.node.clone()
        };
        // Ready already: say so now (later reports come through the follower).
        if let Some(v) = inner
            .store
            .get(&report_key(sandbox))
            .await
            .map_err(backend)?
            && let Ok(r) = keys::decode::<Report>(&report_key(sandbox), &v.value)
            && let ReportState::Ready { address, .. } = r.state
        {
            events.ready(address);
        }
        tracing::debug!("adopted {sandbox} on node `{node}`");
        Ok(())
    }

    async fn remove_app(&self, app: &str, purge_disks: bool) -> Result<(), RuntimeError> {
        self.inner.local.remove_app(app, purge_disks).await?;
        // The other nodes forget it too (its disks with `purge_disks`).
        let removal = records::Removal {
            purge_disks,
            at: now_millis(),
        };
        self.inner
            .store
            .txn(vec![Op::put(
                records::removal_key(app),
                keys::encode(&removal),
            )])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn exec(&self, sandbox: &SandboxId, attach: Attach) -> Result<i32, RuntimeError> {
        let node = self
            .inner
            .state()
            .placed
            .get(sandbox)
            .map(|p| p.node.clone());
        match node {
            Some(n) if n != self.inner.node => Err(RuntimeError::Unsupported(format!(
                "{sandbox} runs on node `{n}`: run the command there (`miren sandbox exec` against that node's server)"
            ))),
            _ => self.inner.local.exec(sandbox, attach).await,
        }
    }

    async fn export_dir(
        &self,
        app: &PrepareApp,
        dir: &str,
        dest: &Path,
    ) -> Result<(), RuntimeError> {
        self.inner.local.export_dir(app, dir, dest).await
    }

    async fn run_attached(&self, spec: &SandboxSpec, attach: Attach) -> Result<i32, RuntimeError> {
        self.inner.local.run_attached(spec, attach).await
    }

    async fn usage(&self) -> Result<Vec<Usage>, RuntimeError> {
        self.inner.local.usage().await
    }

    async fn collect(&self, retained: &Retained) -> Result<(), RuntimeError> {
        self.inner.local.collect(retained).await
    }
}

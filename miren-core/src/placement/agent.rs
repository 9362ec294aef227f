//! [`Agent`]: what every node of a cluster runs. It follows the placements for its
//! node, prepares their versions on first need (the code from the store, the build
//! from the sealed prepare record), runs them with the node's own runtime, and writes
//! what happens to them — launched, ready, gone — as reports the leader follows. Their
//! log lines go to the node's own log sink.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::batch::Batcher;
use super::records::{
    self, Placement, Prepare, Report, ReportState, placements_of, prepare_key, report_key,
};
use crate::artifact::{ArtifactStore, replica};
use crate::model::{SandboxId, VersionId};
use crate::runtime::{
    EventSink, LogSink, PrepareApp, PrepareLog, Runtime, RuntimeEvent, SandboxSpec, now_millis,
};
use crate::secret::SecretKey;
use crate::store::{Op, Store, WatchEvent, keys};

/// The grace period of a sandbox stopped because its placement was removed.
const ORPHAN_GRACE: Duration = Duration::from_secs(10);

/// A node's agent; it stops (leaving what runs running) when dropped.
pub struct Agent {
    task: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What an agent works with.
#[derive(Clone)]
pub struct AgentParts {
    /// The cluster's store.
    pub store: Arc<dyn Store>,
    /// The cluster's secret key (placements and prepares are sealed with it).
    pub key: Arc<SecretKey>,
    /// This node's name.
    pub node: String,
    /// This node's runtime.
    pub local: Arc<dyn Runtime>,
    /// This node's archives (code is copied in from the store).
    pub artifacts: ArtifactStore,
    /// Where its sandboxes' lines go.
    pub logs: Arc<dyn LogSink>,
}

struct Shared {
    parts: AgentParts,
    /// Reports, written in groups.
    writer: Batcher,
    /// Sandboxes running here (started or adopted), with their placement's stop state.
    running: Mutex<HashSet<SandboxId>>,
    /// Versions prepared here, each behind a lock of its own: one prepare per
    /// version, versions prepared side by side.
    prepared: Mutex<std::collections::HashMap<VersionId, Arc<tokio::sync::Mutex<bool>>>>,
}

impl Shared {
    fn running(&self) -> MutexGuard<'_, HashSet<SandboxId>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reports `id` stopped (it runs here no more).
    async fn report_stopped(&self, id: &SandboxId) {
        let gone = ReportState::Exited {
            code: None,
            reason: "stopped".into(),
            last_lines: Vec::new(),
        };
        self.report(id, gone).await;
    }

    /// Stops `id`, no longer placed here (it runs elsewhere now).
    fn stop_orphan(&self, id: SandboxId) {
        let local = self.parts.local.clone();
        tokio::spawn(async move {
            let _ = local.stop(&id, ORPHAN_GRACE).await;
        });
    }

    async fn report(&self, id: &SandboxId, state: ReportState) {
        let report = Report {
            node: self.parts.node.clone(),
            state,
            at: now_millis(),
        };
        let op = Op::put(report_key(id), keys::encode(&report));
        if let Err(e) = self.writer.write(vec![op]).await {
            tracing::warn!("reporting {id} to the cluster: {e}");
        }
    }
}

impl Agent {
    /// Starts following this node's placements. Placements found for it that its
    /// runtime does not run (the node restarted) are reported gone, or adopted when
    /// the runtime still runs them (containers).
    pub async fn start(parts: AgentParts) -> Result<Agent, crate::store::StoreError> {
        let prefix = placements_of(&parts.node);
        let mut watch = parts.store.watch(&prefix);
        let mut removals = parts.store.watch(records::REMOVALS);
        let (items, listed_at) = parts.store.list(&prefix).await?;
        let shared = Arc::new(Shared {
            writer: Batcher::start(parts.store.clone()),
            parts,
            running: Mutex::default(),
            prepared: Mutex::default(),
        });
        let still_running: HashSet<SandboxId> = match shared.parts.local.list().await {
            Ok(l) => l.into_iter().map(|l| l.id).collect(),
            Err(e) => {
                tracing::warn!("listing what this node runs: {e}");
                HashSet::new()
            }
        };
        for (key, v) in items {
            let Some((id, p)) = decode(&prefix, &key, &v.value) else {
                continue;
            };
            if still_running.contains(&id) {
                adopt(&shared, id, &p).await;
            } else {
                shared
                    .report(
                        &id,
                        ReportState::Exited {
                            code: None,
                            reason: format!("its node `{}` restarted", shared.parts.node),
                            last_lines: Vec::new(),
                        },
                    )
                    .await;
            }
        }
        let following = shared.clone();
        let task = tokio::spawn(async move {
            let shared = following;
            loop {
                let ev = tokio::select! {
                    ev = watch.next() => ev,
                    removal = removals.next() => {
                        if let Some(WatchEvent::Put { key, value, revision }) = removal
                            && revision > listed_at
                            && let Some(app) = key.strip_prefix(records::REMOVALS)
                            && let Ok(r) = keys::decode::<records::Removal>(&key, &value)
                        {
                            tokio::spawn(forget_app(shared.clone(), app.to_string(), r.purge_disks));
                        }
                        continue;
                    }
                };
                let Some(ev) = ev else { return };
                match ev {
                    WatchEvent::Put {
                        key,
                        value,
                        revision,
                    } if revision > listed_at => {
                        if let Some((id, p)) = decode(&prefix, &key, &value) {
                            placed(&shared, id, p);
                        }
                    }
                    WatchEvent::Delete { key, revision } if revision > listed_at => {
                        let Some(id) = key.strip_prefix(&prefix).and_then(|i| i.parse().ok())
                        else {
                            continue;
                        };
                        // The leader gave up on it (its node was thought lost): it
                        // runs elsewhere now.
                        if shared.running().contains(&id) {
                            shared.stop_orphan(id);
                        }
                    }
                    WatchEvent::Lagged => {
                        // Fell behind: read this node's placements again. Each is
                        // started or stopped as it says (idempotent); one gone stops.
                        tracing::warn!(
                            "this node's agent fell behind the cluster store: reading its placements again"
                        );
                        match shared.parts.store.list(&prefix).await {
                            Ok((items, _)) => {
                                let mut listed = HashSet::new();
                                for (key, v) in items {
                                    if let Some((id, p)) = decode(&prefix, &key, &v.value) {
                                        listed.insert(id.clone());
                                        placed(&shared, id, p);
                                    }
                                }
                                let gone: Vec<SandboxId> = shared
                                    .running()
                                    .iter()
                                    .filter(|id| !listed.contains(*id))
                                    .cloned()
                                    .collect();
                                for id in gone {
                                    shared.stop_orphan(id);
                                }
                            }
                            Err(e) => tracing::warn!("reading this node's placements: {e}"),
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok(Agent { task, shared })
    }

    /// Stops every sandbox running here (this node leaves the cluster), each with
    /// `grace`, and returns once their exits are reported (or `grace` and a little
    /// more passed).
    pub async fn stop_all(&self, grace: Duration) {
        self.task.abort();
        let ids: Vec<SandboxId> = self.shared.running().iter().cloned().collect();
        let local = self.shared.parts.local.clone();
        let stops = ids.into_iter().map(|id| {
            let local = local.clone();
            async move {
                let _ = local.stop(&id, grace).await;
            }
        });
        futures_stops(stops).await;
        // Their exits reported: each forwarder writes its report, then forgets it.
        let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(5);
        while !self.shared.running().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An app was deleted: this node forgets it — network, code, with `purge` its disks —
/// unless a sandbox of it still runs here (then it is kept, and the log says so).
async fn forget_app(shared: Arc<Shared>, app: String, purge: bool) {
    let local = &shared.parts.local;
    let busy = match local.list().await {
        Ok(listed) => listed
            .iter()
            .any(|l| l.labels.get(crate::runtime::LABEL_APP) == Some(&app)),
        Err(e) => {
            tracing::warn!("listing what this node runs: {e}");
            true
        }
    };
    if busy {
        tracing::warn!(
            "app `{app}` was deleted, but sandboxes of it still run here: its files are kept"
        );
        return;
    }
    shared
        .prepared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|v, _| v.app() != app);
    if let Err(e) = local.remove_app(&app, purge).await {
        tracing::warn!("forgetting the deleted app `{app}`: {e}");
    }
}

/// Runs the stops at once.
async fn futures_stops(
    stops: impl Iterator<Item = impl std::future::Future<Output = ()> + Send + 'static>,
) {
    let handles: Vec<_> = stops.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

fn decode(prefix: &str, key: &str, value: &[u8]) -> Option<(SandboxId, Placement)> {
    let id = key.strip_prefix(prefix)?.parse().ok()?;
    match keys::decode::<Placement>(key, value) {
        Ok(p) => Some((id, p)),
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

/// A placement for this node was written: start it, or stop it.
fn placed(shared: &Arc<Shared>, id: SandboxId, p: Placement) {
    let running = shared.running().contains(&id);
    match (running, p.stop) {
        (false, None) => {
            shared.running().insert(id.clone());
            let shared = shared.clone();
            tokio::spawn(async move { launch(&shared, id, &p).await });
        }
        (true, Some(grace)) => {
            let shared = shared.clone();
            tokio::spawn(async move {
                let grace = Duration::from_millis(grace);
                if let Err(crate::runtime::RuntimeError::NotFound(_)) =
                    shared.parts.local.stop(&id, grace).await
                {
                    shared.running().remove(&id);
                    shared.report_stopped(&id).await;
                }
            });
        }
        (false, Some(_)) => {
            // Asked to stop one that doesn't run here (any more): it is gone.
            let shared = shared.clone();
            tokio::spawn(async move {
                shared.report_stopped(&id).await;
            });
        }
        (true, None) => {}
    }
}

/// A sink whose events become reports, once `start` has said it launched.
fn sink_for(
    spec: &SandboxSpec,
    logs: Arc<dyn LogSink>,
) -> (EventSink, mpsc::UnboundedReceiver<RuntimeEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let service = spec
        .labels
        .get(crate::runtime::LABEL_SERVICE)
        .cloned()
        .unwrap_or_default();
    (
        EventSink::new(
            spec.id.clone(),
            &spec.app,
            &service,
            spec.version.clone(),
            tx,
            logs,
        ),
        rx,
    )
}

/// What a start said that its ready report repeats: its extra ports and runtime.
type Said = (std::collections::BTreeMap<String, u16>, Option<String>);

/// Reports the sandbox's events as they come (`first`, then the rest), until it is
/// gone.
async fn forward(
    shared: Arc<Shared>,
    id: SandboxId,
    said: Said,
    first: Option<RuntimeEvent>,
    mut events: mpsc::UnboundedReceiver<RuntimeEvent>,
) {
    let mut next = first;
    loop {
        let ev = match next.take() {
            Some(ev) => ev,
            None => match events.recv().await {
                Some(ev) => ev,
                None => return,
            },
        };
        match ev {
            RuntimeEvent::Ready { address, .. } => {
                let (ports, runtime) = said.clone();
                let ready = ReportState::Ready {
                    address,
                    ports,
                    runtime,
                };
                shared.report(&id, ready).await;
            }
            RuntimeEvent::Exited {
                code,
                reason,
                last_lines,
                ..
            } => {
                shared
                    .report(
                        &id,
                        ReportState::Exited {
                            code,
                            reason,
                            last_lines,
                        },
                    )
                    .await;
                shared.running().remove(&id);
                return;
            }
        }
    }
}

async fn launch(shared: &Arc<Shared>, id: SandboxId, p: &Placement) {
    let failed = |reason: String| async {
        shared.running().remove(&id);
        shared.report(&id, ReportState::Failed { reason }).await;
    };
    let spec = match records::spec_of(&shared.parts.key, p) {
        Ok(s) => s,
        Err(e) => return failed(format!("its spec does not open on this node: {e}")).await,
    };
    if let Err(why) = prepare(shared, &spec.version).await {
        return failed(why).await;
    }
    let (sink, events) = sink_for(&spec, shared.parts.logs.clone());
    match shared.parts.local.start(&spec, sink).await {
        Ok(started) => {
            let runtime = Some(
                started
                    .runtime
                    .unwrap_or_else(|| shared.parts.local.name().to_string()),
            );
            let said = (started.ports.clone(), runtime.clone());
            // Ready already (it often is): one report says both.
            let mut events = events;
            let first = match events.try_recv() {
                Ok(RuntimeEvent::Ready { address, .. }) => {
                    let (ports, runtime) = said.clone();
                    let ready = ReportState::Ready {
                        address,
                        ports,
                        runtime,
                    };
                    shared.report(&id, ready).await;
                    None
                }
                other => {
                    let launched = ReportState::Started {
                        address: started.address,
                        ports: started.ports,
                        runtime,
                    };
                    shared.report(&id, launched).await;
                    other.ok()
                }
            };
            // What comes after is reported in order, after that.
            tokio::spawn(forward(shared.clone(), id, said, first, events));
        }
        Err(e) => failed(e.to_string()).await,
    }
}

async fn adopt(shared: &Arc<Shared>, id: SandboxId, p: &Placement) {
    let Ok(spec) = records::spec_of(&shared.parts.key, p) else {
        return;
    };
    let (sink, events) = sink_for(&spec, shared.parts.logs.clone());
    if shared.parts.local.adopt(&id, sink).await.is_ok() {
        shared.running().insert(id.clone());
        tokio::spawn(forward(
            shared.clone(),
            id,
            (Default::default(), None),
            None,
            events,
        ));
    }
}

/// Prepares `version` on this node once: its code copied from the store, then the
/// node's runtime prepares it as the leader's did.
async fn prepare(shared: &Arc<Shared>, version: &VersionId) -> Result<(), String> {
    let lock = shared
        .prepared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(version.clone())
        .or_default()
        .clone();
    let mut prepared = lock.lock().await;
    if *prepared {
        return Ok(());
    }
    let parts = &shared.parts;
    let key = prepare_key(version.as_str());
    let record = parts
        .store
        .get(&key)
        .await
        .map_err(|e| format!("reading how to prepare {version}: {e}"))?
        .ok_or_else(|| format!("{version} has no prepare record in the cluster store"))?;
    let record: Prepare = keys::decode(&key, &record.value).map_err(|e| e.to_string())?;
    let mut app: PrepareApp = records::open(&parts.key, "a version's prepare record", &record.app)
        .map_err(|e| e.to_string())?;
    let digest = app.artifact.digest.clone();
    replica::fetch_missing(
        parts.store.as_ref(),
        &parts.artifacts,
        &BTreeSet::from([digest.clone()]),
    )
    .await
    .map_err(|e| format!("copying the code of {version} from the cluster store: {e}"))?;
    app.artifact = parts.artifacts.artifact(&digest);
    let node = parts.node.clone();
    let log = PrepareLog::new(move |line| tracing::info!("node `{node}` preparing: {line}"));
    parts
        .local
        .prepare(&app, &log)
        .await
        .map_err(|e| format!("preparing {version} on node `{}`: {e}", parts.node))?;
    *prepared = true;
    Ok(())
}

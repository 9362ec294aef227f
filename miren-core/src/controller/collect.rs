//! Collection: what deploys leave behind (archives, unpacked code, built images) is
//! removed once no version keeps it, so a server that deploys all day doesn't fill its
//! disk.
//!
//! Kept per app: the active version, the [`keep_versions`](super::ControllerConfig)
//! newest versions (to roll back to), every version a pool or a live sandbox uses, and
//! their code. A deleted app keeps nothing (its disks are not collected: they go only
//! with `--purge-disks`). One task collects, woken when a deploy settles, an app is
//! deleted and at start; it asks the controller what to keep only once it holds the
//! gate no `prepare` runs through, so what it removes can't be what a deploy is
//! preparing right then. Uploads no version uses yet are the artifact store's to keep
//! ([`ArtifactStore::retain`](crate::artifact::ArtifactStore::retain)).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Notify, RwLock, broadcast, mpsc, oneshot};

use super::actor::Actor;
use super::{Command, Event};
use crate::artifact::ArtifactStore;
use crate::model::{CodeSource, Version, VersionState};
use crate::runtime::{Retained, Runtime};

/// The collector's handle, held by the controller task.
pub(super) struct Collector {
    /// Read-held by every `prepare`, write-held by a collection.
    pub gate: Arc<RwLock<()>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    /// Starts the collection task; it asks `commands` what to keep.
    pub fn spawn(
        commands: &mpsc::UnboundedSender<Command>,
        runtime: Arc<dyn Runtime>,
        artifacts: ArtifactStore,
        events: broadcast::Sender<Event>,
    ) -> Self {
        let gate = Arc::new(RwLock::new(()));
        let wake = Arc::new(Notify::new());
        let commands = commands.downgrade();
        let task = tokio::spawn({
            let (gate, wake) = (gate.clone(), wake.clone());
            async move {
                loop {
                    wake.notified().await;
                    let _exclusive = gate.write().await;
                    let (tx, rx) = oneshot::channel();
                    let Some(commands) = commands.upgrade() else {
                        return;
                    };
                    if commands.send(Command::Retained(tx)).is_err() {
                        return;
                    }
                    drop(commands);
                    let Ok(retained) = rx.await else {
                        return;
                    };
                    let event = collect(&retained, runtime.as_ref(), &artifacts).await;
                    let _ = events.send(event);
                }
            }
        });
        Self { gate, wake, task }
    }

    /// Asks for a collection (several asks before it runs make one).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What asks for a collection, for tasks that outlive a turn of the controller.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

async fn collect(retained: &Retained, runtime: &dyn Runtime, artifacts: &ArtifactStore) -> Event {
    let keep = retained.digests.clone();
    let store = artifacts.clone();
    let (archives, bytes) = match tokio::task::spawn_blocking(move || store.retain(&keep)).await {
        Ok(Ok(c)) => (c.files, c.bytes),
        Ok(Err(e)) => {
            tracing::warn!("collecting uploaded code: {e}");
            (0, 0)
        }
        Err(e) => {
            tracing::warn!("collecting uploaded code: {e}");
            (0, 0)
        }
    };
    if archives > 0 {
        tracing::info!(
            "removed {archives} archive(s) no version keeps ({} KiB)",
            bytes.div_ceil(1024)
        );
    }
    if let Err(e) = runtime.collect(retained).await {
        tracing::warn!("collecting the {} runtime's code: {e}", runtime.name());
    }
    Event::Collected { archives, bytes }
}

impl Actor {
    /// What a collection keeps now.
    pub(super) fn retained(&self) -> Retained {
        let mut r = Retained::default();
        let mut by_app: BTreeMap<&str, Vec<&Version>> = BTreeMap::new();
        for v in self.versions.values() {
            by_app.entry(v.app.as_str()).or_default().push(v);
        }
        for (app, mut versions) in by_app {
            versions.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
            let active = self.apps.get(app).and_then(|a| a.active_version.as_ref());
            for (i, v) in versions.into_iter().enumerate() {
                let keep = i < self.cfg.keep_versions
                    || Some(&v.id) == active
                    || matches!(v.state, VersionState::Active | VersionState::Deploying);
                if keep {
                    r.versions.insert(v.id.clone());
                }
            }
        }
        for p in self.pools.values() {
            r.versions.extend(p.pool.versions.iter().cloned());
            if let CodeSource::Artifact(d) = &p.pool.spec.source {
                r.digests.insert(d.clone());
            }
        }
        for s in self.sandboxes.values() {
            if s.sb.is_live() || s.starting {
                r.versions.insert(s.sb.version.clone());
            }
        }
        for run in self.runs.values().filter(|r| r.is_live()) {
            r.versions.insert(run.run.version.clone());
        }
        for v in &r.versions {
            if let Some(v) = self.versions.get(v) {
                r.digests.insert(v.artifact_digest.clone());
            }
        }
        r
    }
}

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

use std::sync::Arc;

use tokio::sync::{Notify, RwLock, broadcast, mpsc, oneshot};

use super::{Command, Event};
use crate::artifact::ArtifactStore;
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
                    let Some(sender) = commands.upgrade() else {
                        return;
                    };
                    if sender.send(Command::Retained(tx)).is_err() {
                        return;
                    }
                    drop(sender);
                    let Ok(retained) = rx.await else {
                        return;
                    };
                    let (event, disks_gone) =
                        collect(&retained, runtime.as_ref(), &artifacts).await;
                    if disks_gone
                        && !retained.retired_disks.is_empty()
                        && let Some(sender) = commands.upgrade()
                    {
                        let _ = sender.send(Command::DisksDeleted(retained.retired_disks));
                    }
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

/// Collects; the event to send, and whether the runtime deleted the retired disks.
async fn collect(
    retained: &Retained,
    runtime: &dyn Runtime,
    artifacts: &ArtifactStore,
) -> (Event, bool) {
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
    let collected = match runtime.collect(retained).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("collecting the {} runtime's code: {e}", runtime.name());
            false
        }
    };
    (Event::Collected { archives, bytes }, collected)
}

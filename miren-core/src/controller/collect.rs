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
        static_root: Option<std::path::PathBuf>,
        code_in_store: Option<Arc<dyn crate::store::Store>>,
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
                    let (event, disks_gone) = collect(
                        &retained,
                        runtime.as_ref(),
                        &artifacts,
                        static_root.as_deref(),
                    )
                    .await;
                    if let Some(store) = &code_in_store {
                        match crate::artifact::replica::retain(store.as_ref(), &artifacts).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(
                                "removed {n} archive(s) no version keeps from the cluster store"
                            ),
                            Err(e) => tracing::warn!("{e}"),
                        }
                    }
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

/// Removes the exported static files of versions not in `keep`; how many.
fn sweep_static(
    root: &std::path::Path,
    keep: &std::collections::BTreeSet<crate::model::VersionId>,
) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        other => other?,
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Scratch copies (`.<version>.partial`) belong to a prepare in flight, which
        // this collection waited for: whatever is left is half-made.
        let kept = !name.starts_with('.') && keep.iter().any(|v| v.as_str() == name);
        if !kept {
            std::fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Collects; the event to send, and whether the runtime deleted the retired disks.
async fn collect(
    retained: &Retained,
    runtime: &dyn Runtime,
    artifacts: &ArtifactStore,
    static_root: Option<&std::path::Path>,
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
    if let Some(root) = static_root {
        let (root, keep) = (root.to_path_buf(), retained.versions.clone());
        let swept = tokio::task::spawn_blocking(move || sweep_static(&root, &keep)).await;
        match swept {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!("removed the static files of {n} version(s) no one keeps"),
            Ok(Err(e)) => tracing::warn!("collecting static files: {e}"),
            Err(e) => tracing::warn!("collecting static files: {e}"),
        }
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

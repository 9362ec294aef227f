//! Change notifications, by key prefix.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::Revision;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// `key` was set.
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: Vec<u8>,
        /// The revision of the write.
        revision: Revision,
    },
    /// `key` was removed.
    Delete {
        /// The key.
        key: String,
        /// The revision of the delete.
        revision: Revision,
    },
    /// The watcher fell behind and events were dropped: re-list, then go on.
    Lagged,
    /// Every change up to `revision` has been delivered, though none of them was
    /// under this prefix (a store whose revisions also count writes elsewhere, as
    /// etcd's do: a follower waiting for a revision learns it has it).
    Progress {
        /// The revision reached.
        revision: Revision,
    },
}

impl WatchEvent {
    fn key(&self) -> Option<&str> {
        match self {
            WatchEvent::Put { key, .. } | WatchEvent::Delete { key, .. } => Some(key),
            WatchEvent::Lagged | WatchEvent::Progress { .. } => None,
        }
    }

    fn change_revision(&self) -> Option<Revision> {
        match self {
            WatchEvent::Put { revision, .. } | WatchEvent::Delete { revision, .. } => {
                Some(*revision)
            }
            WatchEvent::Lagged | WatchEvent::Progress { .. } => None,
        }
    }
}

/// How many committed transactions a slow watcher may fall behind.
const BACKLOG: usize = 4096;

/// Fans committed changes out to watchers: every store's [`Store::watch`] is a
/// subscription to one. A store kept elsewhere (etcd) feeds its own from the remote
/// watch stream, and publishes [`WatchEvent::Lagged`] when it could not resume one
/// without a gap.
///
/// [`Store::watch`]: super::Store::watch
#[derive(Debug)]
pub struct WatchHub {
    tx: broadcast::Sender<Arc<Vec<WatchEvent>>>,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchHub {
    /// A hub nobody watches yet.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
        }
    }

    /// Changes under `prefix` published from now on.
    pub fn subscribe(&self, prefix: &str) -> Watch {
        self.subscribe_after(prefix, 0)
    }

    /// Changes under `prefix` published from now on, leaving out those of revision
    /// `floor` or older: a hub fed from afar (etcd) may publish a change after its
    /// writer has returned, and a watch made after that return must not see it.
    pub fn subscribe_after(&self, prefix: &str, floor: Revision) -> Watch {
        Watch {
            rx: self.tx.subscribe(),
            prefix: prefix.to_string(),
            floor,
            pending: VecDeque::new(),
        }
    }

    /// Publishes one transaction's changes (no receivers is fine); `Lagged` and
    /// `Progress` reach every watcher.
    pub fn publish(&self, events: Vec<WatchEvent>) {
        if !events.is_empty() {
            let _ = self.tx.send(Arc::new(events));
        }
    }
}

/// A stream of changes under one prefix.
#[derive(Debug)]
pub struct Watch {
    rx: broadcast::Receiver<Arc<Vec<WatchEvent>>>,
    prefix: String,
    /// Changes of this revision or older were seen before the watch began.
    floor: Revision,
    pending: VecDeque<WatchEvent>,
}

impl Watch {
    /// The next change if one is already here, without waiting: how a follower takes
    /// a burst (a deploy writes many keys) in one go. `None` when none is.
    pub fn try_next(&mut self) -> Option<WatchEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            match self.rx.try_recv() {
                Ok(batch) => self.take(&batch),
                Err(broadcast::error::TryRecvError::Lagged(_)) => return Some(WatchEvent::Lagged),
                Err(_) => return None,
            }
        }
    }

    fn take(&mut self, batch: &[WatchEvent]) {
        let (prefix, floor) = (&self.prefix, self.floor);
        self.pending.extend(
            batch
                .iter()
                .filter(|e| e.key().is_none_or(|k| k.starts_with(prefix.as_str())))
                .filter(|e| e.change_revision().is_none_or(|r| r > floor))
                .cloned(),
        );
    }

    /// The next change; `None` once the store is gone.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            match self.rx.recv().await {
                Ok(batch) => self.take(&batch),
                Err(broadcast::error::RecvError::Lagged(_)) => return Some(WatchEvent::Lagged),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, revision: Revision) -> WatchEvent {
        WatchEvent::Put {
            key: key.into(),
            value: Vec::new(),
            revision,
        }
    }

    #[test]
    fn a_watch_begun_after_a_revision_leaves_out_changes_that_old_delivered_late() {
        let hub = WatchHub::new();
        let mut w = hub.subscribe_after("apps/", 5);
        hub.publish(vec![put("apps/a", 5)]);
        hub.publish(vec![put("apps/b", 6), put("routes/x", 6)]);
        hub.publish(vec![WatchEvent::Progress { revision: 4 }]);
        assert_eq!(w.try_next(), Some(put("apps/b", 6)));
        assert_eq!(w.try_next(), Some(WatchEvent::Progress { revision: 4 }));
        assert_eq!(w.try_next(), None);
    }
}

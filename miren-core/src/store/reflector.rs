//! Following the store, written once: a [`Reflector`] keeps a plain-data view of some
//! kinds of object in step with the store, and readers take the newest view without a
//! lock.
//!
//! A consumer (the proxy's routing table, the DNS zone, the service addresses) writes
//! a [`Projection`]: which kinds it follows, how a put or a delete changes its state,
//! and how that state becomes the view readers see. The reflector does the rest, the
//! same way for everyone:
//!
//! - it subscribes to the store's changes *before* it lists, so nothing falls between
//!   the listing and the watch;
//! - it lists each kind and remembers the revision each listing reflects (a floor per
//!   kind): an event at or below its kind's floor is already in the listing and is
//!   skipped;
//! - it takes a burst of events (a deploy writes many keys) at once and publishes one
//!   new view for it;
//! - when the watch falls behind or a value does not decode, it lists everything
//!   again into a fresh state; readers keep the last whole view meanwhile and never
//!   see a half-listed one;
//! - it says which store revision the view reflects ([`Progress`]), so a caller that
//!   just wrote can wait until its change is visible before it answers.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::keys::{self, Key, Kind, Undecodable};
use super::{Revision, Store, StoreError, Watch, WatchEvent};

/// One consumer's way of looking at the store.
pub trait Projection: Send + 'static {
    /// What readers get: an immutable snapshot, swapped in whole.
    type View: Default + Send + Sync + 'static;

    /// The kinds of object it follows; changes to others never reach it.
    const KINDS: &'static [Kind];

    /// An object was written (or listed).
    fn put(&mut self, put: Put<'_>) -> Result<(), Undecodable>;

    /// An object was removed.
    fn delete(&mut self, key: Key<'_>);

    /// The view after the changes since the last call, or `None` when none of them
    /// changes what readers see. `previous` is what readers see now (state a view
    /// carries from one to the next, like the proxy's connection counts, comes from
    /// there); the new view reflects the store up to `revision`.
    fn publish(&mut self, previous: &Self::View, revision: Revision) -> Option<Self::View>;

    /// Forgets everything: a full listing follows.
    fn reset(&mut self);
}

/// An object's new value, with the key it was written under.
#[derive(Debug, Clone, Copy)]
pub struct Put<'a> {
    /// What the key names.
    pub key: Key<'a>,
    raw: &'a str,
    /// The stored bytes.
    pub value: &'a [u8],
}

impl<'a> Put<'a> {
    /// A put of `value` at `key`, for driving a projection by hand (benchmarks, tests);
    /// `None` when the key names nothing.
    pub fn new(key: &'a str, value: &'a [u8]) -> Option<Self> {
        Some(Self {
            key: Key::parse(key)?,
            raw: key,
            value,
        })
    }

    /// The value, decoded as the object its key names.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, Undecodable> {
        keys::decode(self.raw, self.value)
    }
}

/// How long a failed listing waits before the next try.
const RELIST_RETRY: Duration = Duration::from_secs(1);

/// A running follower. Dropping it stops following (readers keep the last view).
pub struct Reflector<V> {
    reader: Reader<V>,
    task: tokio::task::JoinHandle<()>,
}

impl<V> Drop for Reflector<V> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A cheap handle on the newest view. Clone it freely.
pub struct Reader<V> {
    view: Arc<ArcSwap<V>>,
    published: watch::Receiver<u64>,
    progress: Progress,
}

impl<V> Clone for Reader<V> {
    fn clone(&self) -> Self {
        Self {
            view: self.view.clone(),
            published: self.published.clone(),
            progress: self.progress.clone(),
        }
    }
}

/// Which store revision a view reflects, for callers that wait for their own change
/// to show. Not generic, so a caller can wait on several views at once.
#[derive(Clone)]
pub struct Progress {
    store: Arc<dyn Store>,
    applied: watch::Receiver<Revision>,
}

impl<V: Default + Send + Sync + 'static> Reflector<V> {
    /// Lists what `projection` follows, publishes the first view and follows the
    /// store from then on (on a task of the current tokio runtime). Fails only when
    /// the first listing does.
    pub async fn start<P>(store: Arc<dyn Store>, mut projection: P) -> Result<Self, StoreError>
    where
        P: Projection<View = V>,
    {
        // Subscribed before listing: nothing falls between the two.
        let changes = store.watch("");
        let floors = list(store.as_ref(), &mut projection).await?;
        let seen = lowest(&floors);
        let first = projection.publish(&V::default(), seen).unwrap_or_default();
        let view = Arc::new(ArcSwap::from_pointee(first));
        let (published_tx, published) = watch::channel(0);
        let (applied_tx, applied) = watch::channel(seen);
        let follower = Follower {
            store: store.clone(),
            projection,
            floors,
            view: view.clone(),
            published: published_tx,
            applied: applied_tx,
        };
        let task = tokio::spawn(follower.run(changes));
        Ok(Self {
            reader: Reader {
                view,
                published,
                progress: Progress { store, applied },
            },
            task,
        })
    }

    /// A handle for readers.
    pub fn reader(&self) -> Reader<V> {
        self.reader.clone()
    }
}

impl<V> Reader<V> {
    /// The newest view (cheap: no lock, no clone of the view).
    pub fn load(&self) -> arc_swap::Guard<Arc<V>> {
        self.view.load()
    }

    /// The newest view, as an owned pointer.
    pub fn load_full(&self) -> Arc<V> {
        self.view.load_full()
    }

    /// The swappable cell itself, for code that loads on every request.
    pub fn cell(&self) -> Arc<ArcSwap<V>> {
        self.view.clone()
    }

    /// Changes each time a new view is published: what a waiter for "anything new"
    /// subscribes to.
    pub fn published(&self) -> watch::Receiver<u64> {
        self.published.clone()
    }

    /// Which revision the view reflects.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }
}

impl Progress {
    /// Every change up to this revision is in the view.
    pub fn applied(&self) -> Revision {
        *self.applied.borrow()
    }

    /// Waits until the view reflects every change up to `revision`; false when that
    /// took longer than `timeout` (or the follower stopped).
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> bool {
        let mut applied = self.applied.clone();
        let reached = applied.wait_for(|a| *a >= revision);
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
    }

    /// Waits until the view reflects the store as it is now: what a caller that just
    /// wrote calls before it answers. False after `timeout`.
    pub async fn caught_up(&self, timeout: Duration) -> Result<bool, StoreError> {
        let now = self.store.revision().await?;
        Ok(self.wait_for(now, timeout).await)
    }
}

/// The follower task's state.
struct Follower<P: Projection> {
    store: Arc<dyn Store>,
    projection: P,
    /// Per kind of `P::KINDS`, the revision its last listing reflected.
    floors: Vec<Revision>,
    view: Arc<ArcSwap<P::View>>,
    published: watch::Sender<u64>,
    applied: watch::Sender<Revision>,
}

impl<P: Projection> Follower<P> {
    async fn run(mut self, mut changes: Watch) {
        loop {
            let Some(first) = changes.next().await else {
                // The store is gone: nothing will change any more.
                return;
            };
            let mut newest = *self.applied.borrow();
            let mut relist = false;
            let mut event = Some(first);
            while let Some(ev) = event.take().or_else(|| changes.try_next()) {
                match self.apply(&ev) {
                    Ok(r) => newest = newest.max(r),
                    Err(Relist) => {
                        relist = true;
                        break;
                    }
                }
            }
            if relist {
                self.relist().await;
                continue;
            }
            if let Some(v) = self.projection.publish(&self.view.load(), newest) {
                self.swap(v);
            }
            self.advance(newest);
        }
    }

    /// Applies one event; the revision it carries.
    fn apply(&mut self, ev: &WatchEvent) -> Result<Revision, Relist> {
        let (raw, revision) = match ev {
            WatchEvent::Put { key, revision, .. } | WatchEvent::Delete { key, revision } => {
                (key.as_str(), *revision)
            }
            WatchEvent::Lagged => return Err(Relist),
            WatchEvent::Progress { revision } => return Ok(*revision),
        };
        let Some(key) = Key::parse(raw) else {
            return Ok(revision);
        };
        let Some(i) = P::KINDS.iter().position(|k| *k == key.kind()) else {
            return Ok(revision);
        };
        if revision <= self.floors[i] {
            // Already in the listing.
            return Ok(revision);
        }
        match ev {
            WatchEvent::Put { value, .. } => {
                let put = Put { key, raw, value };
                if let Err(e) = self.projection.put(put) {
                    tracing::warn!("following the store: {e}; listing everything again");
                    return Err(Relist);
                }
            }
            _ => self.projection.delete(key),
        }
        Ok(revision)
    }

    /// Lists everything into a fresh state, retrying until the store answers;
    /// readers keep the last view until the new one is whole.
    async fn relist(&mut self) {
        loop {
            self.projection.reset();
            match list(self.store.as_ref(), &mut self.projection).await {
                Ok(floors) => {
                    self.floors = floors;
                    let seen = lowest(&self.floors);
                    // A fresh state publishes even when the view looks the same.
                    let v = self
                        .projection
                        .publish(&self.view.load(), seen)
                        .unwrap_or_default();
                    self.swap(v);
                    self.advance(seen);
                    return;
                }
                Err(e) => {
                    tracing::warn!(
                        "following the store: listing failed ({e}); the view stays as it was, retrying"
                    );
                    tokio::time::sleep(RELIST_RETRY).await;
                }
            }
        }
    }

    fn swap(&self, v: P::View) {
        self.view.store(Arc::new(v));
        self.published.send_modify(|n| *n += 1);
    }

    fn advance(&self, revision: Revision) {
        self.applied.send_if_modified(|a| {
            let newer = revision > *a;
            *a = (*a).max(revision);
            newer
        });
    }
}

/// The watch fell behind or a value did not decode: list again.
struct Relist;

/// Lists each kind the projection follows into it; the floor of each.
async fn list<P: Projection>(
    store: &dyn Store,
    projection: &mut P,
) -> Result<Vec<Revision>, StoreError> {
    let mut floors = Vec::with_capacity(P::KINDS.len());
    for kind in P::KINDS {
        let (items, revision) = store.list(kind.prefix()).await?;
        floors.push(revision);
        for (raw, v) in &items {
            let Some(key) = Key::parse(raw) else { continue };
            projection.put(Put {
                key,
                raw,
                value: &v.value,
            })?;
        }
    }
    Ok(floors)
}

/// The kinds were listed one after the other: the view surely reflects the store up
/// to the first listing's revision; later events bring the rest.
fn lowest(floors: &[Revision]) -> Revision {
    floors.iter().copied().min().unwrap_or(0)
}

#[cfg(test)]
mod tests;

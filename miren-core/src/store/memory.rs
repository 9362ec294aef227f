//! The store in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::watch::WatchHub;
use super::{Op, Revision, Store, StoreError, Versioned, Watch, WatchEvent, check};

/// A [`Store`] in memory: same contract as the durable one, nothing on disk.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    hub: WatchHub,
}

#[derive(Debug, Default)]
struct State {
    data: BTreeMap<String, Versioned>,
    revision: Revision,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            hub: WatchHub::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock can't leave the map half-written: every
        // mutation below happens after all checks passed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.lock().data.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<(String, Versioned)>, Revision), StoreError> {
        let s = self.lock();
        let items = s
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok((items, s.revision))
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        let mut s = self.lock();
        for op in &ops {
            check(op, s.data.get(op.key()).map_or(0, |v| v.revision))?;
        }
        let revision = s.revision + 1;
        let mut events = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put { key, value, .. } => {
                    events.push(WatchEvent::Put {
                        key: key.clone(),
                        value: value.clone(),
                        revision,
                    });
                    s.data.insert(key, Versioned { value, revision });
                }
                Op::Delete { key, .. } => {
                    if s.data.remove(&key).is_some() {
                        events.push(WatchEvent::Delete { key, revision });
                    }
                }
            }
        }
        if events.is_empty() {
            // Nothing changed (deletes of absent keys): no new revision.
            return Ok(s.revision);
        }
        s.revision = revision;
        self.hub.publish(events);
        Ok(revision)
    }

    fn watch(&self, prefix: &str) -> Watch {
        self.hub.subscribe(prefix)
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.lock().revision)
    }
}

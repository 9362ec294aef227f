//! The durable store: one redb file.
//!
//! redb commits copy-on-write with a checksummed root swap and an fsync
//! (`Durability::Immediate`, the default), so a process killed at any instant leaves
//! the last committed transaction intact. Calls run on tokio's blocking pool so a
//! slow disk never stalls the async workers.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition};

use super::watch::WatchHub;
use super::{Op, Revision, Store, StoreError, Versioned, Watch, WatchEvent, check};

/// key → (revision of last write, value).
const KV: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("kv");
/// `revision` → the store-wide revision.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// A [`Store`] in a redb file.
#[derive(Debug, Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    hub: WatchHub,
    /// Serializes commit + publish, so watchers see transactions in commit order.
    write: Mutex<()>,
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(Box::new(e.into()))
}

impl RedbStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                path: path.display().to_string(),
            },
            other => backend(other),
        })?;
        // Create the tables up front so readers never find them missing.
        let tx = db.begin_write().map_err(backend)?;
        {
            tx.open_table(KV).map_err(backend)?;
            tx.open_table(META).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                hub: WatchHub::new(),
                write: Mutex::new(()),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?
    }
}

impl Inner {
    fn revision(&self) -> Result<Revision, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let meta = tx.open_table(META).map_err(backend)?;
        Ok(meta
            .get("revision")
            .map_err(backend)?
            .map_or(0, |v| v.value()))
    }

    fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let tx = self.db.begin_write().map_err(backend)?;
        let revision;
        let mut events = Vec::with_capacity(ops.len());
        {
            let mut kv = tx.open_table(KV).map_err(backend)?;
            let mut meta = tx.open_table(META).map_err(backend)?;
            for op in &ops {
                let current = kv
                    .get(op.key())
                    .map_err(backend)?
                    .map_or(0, |v| v.value().0);
                check(op, current)?;
            }
            revision = meta
                .get("revision")
                .map_err(backend)?
                .map_or(0, |v| v.value())
                + 1;
            for op in ops {
                match op {
                    Op::Put { key, value, .. } => {
                        kv.insert(key.as_str(), (revision, value.as_slice()))
                            .map_err(backend)?;
                        events.push(WatchEvent::Put {
                            key,
                            value,
                            revision,
                        });
                    }
                    Op::Delete { key, .. } => {
                        if kv.remove(key.as_str()).map_err(backend)?.is_some() {
                            events.push(WatchEvent::Delete { key, revision });
                        }
                    }
                }
            }
            if events.is_empty() {
                // Nothing changed (deletes of absent keys): no new revision, no write.
                return Ok(revision - 1);
            }
            meta.insert("revision", revision).map_err(backend)?;
        }
        // Dropping `tx` without commit (on any error above) aborts it.
        tx.commit().map_err(backend)?;
        self.hub.publish(events);
        Ok(revision)
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let key = key.to_string();
        self.blocking(move |inner| {
            let tx = inner.db.begin_read().map_err(backend)?;
            let kv = tx.open_table(KV).map_err(backend)?;
            Ok(kv.get(key.as_str()).map_err(backend)?.map(|v| {
                let (revision, value) = v.value();
                Versioned {
                    value: value.to_vec(),
                    revision,
                }
            }))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<(String, Versioned)>, Revision), StoreError> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| {
            let tx = inner.db.begin_read().map_err(backend)?;
            let kv = tx.open_table(KV).map_err(backend)?;
            let meta = tx.open_table(META).map_err(backend)?;
            let revision = meta
                .get("revision")
                .map_err(backend)?
                .map_or(0, |v| v.value());
            let mut out = Vec::new();
            for item in kv.range(prefix.as_str()..).map_err(backend)? {
                let (k, v) = item.map_err(backend)?;
                let key = k.value();
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                let (rev, value) = v.value();
                out.push((
                    key.to_string(),
                    Versioned {
                        value: value.to_vec(),
                        revision: rev,
                    },
                ));
            }
            Ok((out, revision))
        })
        .await
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        self.blocking(move |inner| inner.txn(ops)).await
    }

    fn watch(&self, prefix: &str) -> Watch {
        self.inner.hub.subscribe(prefix)
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.blocking(Inner::revision).await
    }
}

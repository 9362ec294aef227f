//! State storage: a small transactional key-value contract.
//!
//! The contract is etcd's, so a clustered implementation fits later without changing
//! callers: every write bumps one store-wide [`Revision`]; each key remembers the
//! revision of its last write; a transaction applies several writes all-or-nothing,
//! each guarded by an expectation on its key's revision (optimistic concurrency); and
//! changes can be watched by key prefix. Nothing here assumes a local file.
//!
//! # Layout
//! - [`keys`]: where each object lives, and the typed parser that reads a key back.
//! - `memory`: [`MemoryStore`], in memory, for tests, simulations and benchmarks.
//! - `redb`: [`RedbStore`], embedded and durable (redb): a committed transaction
//!   survives a kill -9 at any moment.
//! - `watch`: change notifications by key prefix.
//! - [`reflector`]: following the store, written once: a consumer says how changes
//!   shape its view, the [`Reflector`] lists, watches, relists on lag and publishes.

pub mod keys;
mod memory;
mod redb;
pub mod reflector;
mod watch;

use async_trait::async_trait;
use thiserror::Error;

pub use self::redb::RedbStore;
pub use memory::MemoryStore;
pub use reflector::{Progress, Projection, Reader, Reflector};
pub use watch::{Watch, WatchEvent, WatchHub};

/// A store-wide write counter; 0 means "never written".
pub type Revision = u64;

/// A value with the revision of its last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// The revision that wrote them.
    pub revision: Revision,
}

/// What a write expects of its key before it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Anything: a blind write.
    Any,
    /// The key does not exist (create).
    Absent,
    /// The key was last written at exactly this revision (compare-and-swap).
    Revision(Revision),
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// What the key must be before.
        expect: Expect,
    },
    /// Remove `key` (a no-op when absent and `expect` allows it).
    Delete {
        /// The key.
        key: String,
        /// What the key must be before.
        expect: Expect,
    },
}

impl Op {
    /// A blind put.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            expect: Expect::Any,
        }
    }

    /// A blind delete.
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete {
            key: key.into(),
            expect: Expect::Any,
        }
    }

    /// The same op, guarded.
    pub fn expecting(mut self, e: Expect) -> Self {
        match &mut self {
            Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect = e,
        }
        self
    }

    /// The key it writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    fn expect(&self) -> Expect {
        match self {
            Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect,
        }
    }
}

/// Why a store call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An expectation did not hold: someone else wrote the key first. Re-read, retry.
    #[error("conflict on `{key}`: expected {expected:?}, found revision {found}")]
    Conflict {
        /// The key.
        key: String,
        /// What the write expected.
        expected: Expect,
        /// The key's revision (0: absent).
        found: Revision,
    },
    /// The storage backend failed (disk full, corrupt file, I/O error).
    #[error("store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store's file is used by another process.
    #[error(
        "the store at {path} is in use by another process (is another `miren server` running on this data dir?)"
    )]
    Locked {
        /// The file.
        path: String,
    },
}

/// The state store. Object safe: the controller holds an `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync {
    /// The current value of `key`.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;
    /// Every key starting with `prefix`, in key order, with the revision the listing
    /// reflects (start a watch from it to miss nothing).
    async fn list(&self, prefix: &str) -> Result<(Vec<(String, Versioned)>, Revision), StoreError>;
    /// Applies `ops` all-or-nothing; returns the new revision (the same one when
    /// nothing changed: deletes of absent keys make none).
    async fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError>;
    /// Changes to keys under `prefix` from now on.
    fn watch(&self, prefix: &str) -> Watch;
    /// The current revision.
    async fn revision(&self) -> Result<Revision, StoreError>;
}

/// Checks `op`'s expectation against the key's current revision (0: absent).
fn check(op: &Op, current: Revision) -> Result<(), StoreError> {
    let ok = match op.expect() {
        Expect::Any => true,
        Expect::Absent => current == 0,
        Expect::Revision(r) => current == r,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            key: op.key().to_string(),
            expected: op.expect(),
            found: current,
        })
    }
}

#[cfg(test)]
mod contract_tests;

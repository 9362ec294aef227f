//! A transaction's ops as one etcd `Txn`: each expectation a compare, the writes its
//! success branch, and in its failure branch a read of every guarded key, so a conflict
//! says what it found without another round trip (or a race with a later write).

use std::collections::HashMap;

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse};
use miren_core::store::{Expect, Op, Revision, StoreError};

/// The `Txn` for `ops`, keys under `prefix`.
pub(crate) fn build(prefix: &str, ops: &[Op]) -> Txn {
    let full = |key: &str| format!("{prefix}{key}");
    let compares: Vec<Compare> = ops
        .iter()
        .filter_map(|op| match expectation(op) {
            Expect::Any => None,
            // A key that does not exist has version 0.
            Expect::Absent => Some(Compare::version(full(op.key()), CompareOp::Equal, 0)),
            Expect::Revision(r) => Some(Compare::mod_revision(
                full(op.key()),
                CompareOp::Equal,
                to_etcd(r),
            )),
        })
        .collect();
    // etcd refuses a key written twice in one request: the last write of a key is what
    // the transaction leaves, as on the other stores.
    let mut writes: Vec<TxnOp> = Vec::with_capacity(ops.len());
    let mut at: HashMap<&str, usize> = HashMap::new();
    for op in ops {
        let write = match op {
            Op::Put { key, value, .. } => TxnOp::put(full(key), value.clone(), None),
            Op::Delete { key, .. } => TxnOp::delete(full(key), None),
        };
        match at.get(op.key()) {
            Some(&i) => writes[i] = write,
            None => {
                at.insert(op.key(), writes.len());
                writes.push(write);
            }
        }
    }
    let reads: Vec<TxnOp> = guarded(ops)
        .map(|key| TxnOp::get(full(key), None))
        .collect();
    Txn::new().when(compares).and_then(writes).or_else(reads)
}

/// The conflict a failed `Txn` (built by [`build`]) ran into.
pub(crate) fn conflict(ops: &[Op], resp: &TxnResponse) -> StoreError {
    let found: Vec<Revision> = resp
        .op_responses()
        .iter()
        .map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map_or(0, |kv| from_etcd(kv.mod_revision())),
            _ => 0,
        })
        .collect();
    let keys: Vec<&str> = guarded(ops).collect();
    let revision_of = |key: &str| {
        keys.iter()
            .position(|k| *k == key)
            .and_then(|i| found.get(i).copied())
            .unwrap_or(0)
    };
    let failed = ops.iter().find_map(|op| {
        let current = revision_of(op.key());
        let holds = match expectation(op) {
            Expect::Any => true,
            Expect::Absent => current == 0,
            Expect::Revision(r) => current == r,
        };
        (!holds).then_some((op, current))
    });
    // The reads ran in the same transaction as the compares, so one of them failed;
    // the first guarded op stands for it otherwise.
    let Some((op, current)) = failed.or_else(|| {
        ops.iter()
            .find(|op| expectation(op) != Expect::Any)
            .map(|op| (op, revision_of(op.key())))
    }) else {
        return StoreError::Backend("etcd refused a transaction that had no compare".into());
    };
    StoreError::Conflict {
        key: op.key().to_string(),
        expected: expectation(op),
        found: current,
    }
}

/// The keys with an expectation, each once, in order.
fn guarded(ops: &[Op]) -> impl Iterator<Item = &str> {
    let mut seen = std::collections::HashSet::new();
    ops.iter()
        .filter(|op| expectation(op) != Expect::Any)
        .map(Op::key)
        .filter(move |k| seen.insert(*k))
}

fn expectation(op: &Op) -> Expect {
    match op {
        Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect,
    }
}

/// etcd's revisions are positive `i64`s.
pub(crate) fn to_etcd(r: Revision) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

/// And ours are `u64`s (a negative one never comes from etcd; 0 if it did).
pub(crate) fn from_etcd(r: i64) -> Revision {
    Revision::try_from(r).unwrap_or(0)
}

//! App code kept in the store too, for a cluster (SPEC §15): uploaded code lives in
//! the data dir of the node that took the upload, and the node that leads after it
//! needs it. The leader copies each archive into the store in chunks (values stay far
//! under etcd's request limit) and a node about to lead copies every archive a
//! version names that it lacks from the store into its own [`ArtifactStore`], checked
//! against its digest on the way in.
//!
//! Keys: `blobs/<digest>/<n>` (chunk n) and `blobmeta/<digest>` (how many, written
//! last: a meta says every chunk is there).

use std::collections::BTreeSet;

use crate::artifact::{ArtifactError, ArtifactStore};
use crate::model::Digest;
use crate::store::{Expect, Op, Store, StoreError};

/// Bytes per chunk: a put stays under etcd's default request limit of 1.5 MiB.
pub const CHUNK: usize = 1 << 20;

/// Why copying code to or from the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The store failed.
    #[error("copying app code through the cluster store: {0}")]
    Store(#[from] StoreError),
    /// The local archive could not be read or written.
    #[error("copying app code through the cluster store: {0}")]
    Artifact(#[from] ArtifactError),
    /// A chunk is missing or the meta is not a number.
    #[error("the code {digest} in the cluster store is incomplete: {why}")]
    Incomplete {
        /// Which code.
        digest: Digest,
        /// What is wrong.
        why: String,
    },
}

fn meta_key(digest: &Digest) -> String {
    format!("blobmeta/{digest}")
}

fn chunk_key(digest: &Digest, n: usize) -> String {
    format!("blobs/{digest}/{n:06}")
}

/// Copies the archive `digest` into the store unless it is there already.
pub async fn publish(
    store: &dyn Store,
    artifacts: &ArtifactStore,
    digest: &Digest,
) -> Result<(), ReplicaError> {
    if store.get(&meta_key(digest)).await?.is_some() {
        return Ok(());
    }
    let path = artifacts.artifact(digest).path;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ArtifactError::io(format!("reading {}", path.display()), e))?;
    let chunks: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[]]
    } else {
        bytes.chunks(CHUNK).collect()
    };
    for (n, chunk) in chunks.iter().enumerate() {
        store
            .txn(vec![Op::put(chunk_key(digest, n), *chunk)])
            .await?;
    }
    let meta = Op::put(meta_key(digest), chunks.len().to_string()).expecting(Expect::Absent);
    match store.txn(vec![meta]).await {
        // Someone published it meanwhile: the same bytes.
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Copies into `artifacts` every archive in `wanted` that the store has and it lacks;
/// how many it copied.
pub async fn fetch_missing(
    store: &dyn Store,
    artifacts: &ArtifactStore,
    wanted: &BTreeSet<Digest>,
) -> Result<usize, ReplicaError> {
    let mut copied = 0;
    for digest in wanted {
        // Unknown (the check itself failed): copied again, which is harmless.
        if has(artifacts, digest).await.unwrap_or(false) {
            continue;
        }
        let Some(meta) = store.get(&meta_key(digest)).await? else {
            continue;
        };
        let incomplete = |why: String| ReplicaError::Incomplete {
            digest: digest.clone(),
            why,
        };
        let count: usize = String::from_utf8_lossy(&meta.value)
            .parse()
            .map_err(|_| incomplete("its chunk count is not a number".into()))?;
        let mut bytes = Vec::new();
        for n in 0..count {
            let chunk = store
                .get(&chunk_key(digest, n))
                .await?
                .ok_or_else(|| incomplete(format!("chunk {n} of {count} is missing")))?;
            bytes.extend_from_slice(&chunk.value);
        }
        let into = artifacts.clone();
        let expected = digest.clone();
        tokio::task::spawn_blocking(move || {
            let mut up = into.upload()?;
            up.write(&bytes)?;
            up.finish(Some(&expected))
        })
        .await
        .map_err(|e| incomplete(format!("storing it locally: {e}")))??;
        copied += 1;
    }
    Ok(copied)
}

/// Removes from the store every archive this node's [`ArtifactStore`] no longer has
/// (its collection keeps what a version keeps and recent uploads); how many. The meta
/// goes first, so a half-removed archive is never fetched.
pub async fn retain(store: &dyn Store, artifacts: &ArtifactStore) -> Result<usize, ReplicaError> {
    let (metas, _) = store.list("blobmeta/").await?;
    let mut removed = 0;
    for (key, meta) in metas {
        let Some(digest) = key
            .strip_prefix("blobmeta/")
            .and_then(|d| d.parse::<Digest>().ok())
        else {
            continue;
        };
        // Unknown (the check itself failed): kept, never lost.
        if has(artifacts, &digest).await.unwrap_or(true) {
            continue;
        }
        let count: usize = String::from_utf8_lossy(&meta.value).parse().unwrap_or(0);
        store
            .txn(vec![
                Op::delete(meta_key(&digest)).expecting(Expect::Revision(meta.revision)),
            ])
            .await?;
        let chunks: Vec<Op> = (0..count)
            .map(|n| Op::delete(chunk_key(&digest, n)))
            .collect();
        for batch in chunks.chunks(64) {
            store.txn(batch.to_vec()).await?;
        }
        removed += 1;
    }
    Ok(removed)
}

/// Whether `artifacts` holds `digest` (a file stat, off the async threads); `None`
/// when the check itself failed.
async fn has(artifacts: &ArtifactStore, digest: &Digest) -> Option<bool> {
    let (have, d) = (artifacts.clone(), digest.clone());
    tokio::task::spawn_blocking(move || have.get(&d).is_some())
        .await
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn code_published_by_one_node_is_fetched_whole_by_another() {
        let (a, b) = (
            tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        );
        let (on_a, on_b) = (
            ArtifactStore::open(a.path()).unwrap_or_else(|e| panic!("{e}")),
            ArtifactStore::open(b.path()).unwrap_or_else(|e| panic!("{e}")),
        );
        let store = MemoryStore::new();
        // Two and a half chunks, and an empty archive.
        let big: Vec<u8> = (0..CHUNK * 5 / 2).map(|i| (i % 251) as u8).collect();
        let mut wanted = BTreeSet::new();
        for bytes in [big.as_slice(), b""] {
            let art = on_a.put(bytes).unwrap_or_else(|e| panic!("{e}"));
            publish(&store, &on_a, &art.digest)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            // Twice is once.
            publish(&store, &on_a, &art.digest)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            wanted.insert(art.digest);
        }
        assert_eq!(store.list("blobs/").await.map(|l| l.0.len()).ok(), Some(4));
        let copied = fetch_missing(&store, &on_b, &wanted)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(copied, 2);
        for d in &wanted {
            let here = on_b.get(d).unwrap_or_else(|| panic!("{d} copied"));
            let there = on_a.get(d).unwrap_or_else(|| panic!("{d}"));
            assert_eq!(
                std::fs::read(here.path).ok(),
                std::fs::read(there.path).ok()
            );
        }
        assert_eq!(
            fetch_missing(&store, &on_b, &wanted).await.ok(),
            Some(0),
            "nothing twice"
        );

        // A chunk lost in the store: said, and nothing half-copied is kept.
        let c = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let on_c = ArtifactStore::open(c.path()).unwrap_or_else(|e| panic!("{e}"));
        let big_digest = crate::artifact::digest(&big);
        store
            .txn(vec![Op::delete(chunk_key(&big_digest, 1))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let only_big: BTreeSet<Digest> = [big_digest.clone()].into();
        let err = fetch_missing(&store, &on_c, &only_big).await.err();
        assert!(
            matches!(&err, Some(ReplicaError::Incomplete { why, .. }) if why == "chunk 1 of 3 is missing"),
            "{err:?}"
        );
        assert!(on_c.get(&big_digest).is_none());

        // What this node still has stays in the store; what its collection removed
        // goes (a fresh open: the big archive is no longer a recent upload).
        assert_eq!(retain(&store, &on_a).await.ok(), Some(0));
        let empty = crate::artifact::digest(b"");
        let keep: BTreeSet<Digest> = [empty.clone()].into();
        let reopened = ArtifactStore::open(a.path()).unwrap_or_else(|e| panic!("{e}"));
        reopened.retain(&keep).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(retain(&store, &reopened).await.ok(), Some(1));
        let (left, _) = store.list("blob").await.unwrap_or_else(|e| panic!("{e}"));
        let left: Vec<&str> = left.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(left, [meta_key(&empty), chunk_key(&empty, 0)]);
    }
}

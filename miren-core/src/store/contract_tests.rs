//! The [`Store`] contract (`testing::store_contract`) on the stores of this crate.

use super::*;
use crate::testing::store_contract as contract;

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redb_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = RedbStore::open(&dir.path().join("state.redb")).unwrap_or_else(|e| panic!("{e}"));
    contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redb_store_keeps_committed_data_across_reopening() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("state.redb");
    {
        let store = RedbStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..20 {
            store
                .txn(vec![Op::put(format!("versions/a/{i:02}"), vec![i])])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(
            matches!(RedbStore::open(&path), Err(StoreError::Locked { .. })),
            "a second opener is refused"
        );
    }
    let store = RedbStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.revision().await.ok(), Some(20));
    let (items, _) = store.list("versions/a/").await.unwrap_or_default();
    assert_eq!(items.len(), 20);
    assert_eq!(
        items[19].1,
        Versioned {
            value: vec![19],
            revision: 20
        }
    );
}

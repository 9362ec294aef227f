//! The [`Store`] contract, run against every implementation.

use super::*;

async fn contract(store: &dyn Store) {
    // Writes bump one revision; keys remember theirs.
    assert_eq!(store.revision().await.ok(), Some(0));
    let r1 = store
        .txn(vec![
            Op::put("apps/a", "1"),
            Op::put("apps/b", "2"),
            Op::put("routes/x", "a"),
        ])
        .await
        .ok();
    assert_eq!(r1, Some(1));
    let a = store.get("apps/a").await.ok().flatten();
    assert_eq!(
        a,
        Some(Versioned {
            value: b"1".to_vec(),
            revision: 1
        })
    );
    assert_eq!(store.get("apps/zz").await.ok().flatten(), None);

    // Prefix listing, in key order, with the revision it reflects.
    let (items, rev) = store.list("apps/").await.unwrap_or_default();
    assert_eq!(
        items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["apps/a", "apps/b"]
    );
    assert_eq!(rev, 1);

    // Create-only and compare-and-swap.
    assert!(matches!(
        store
            .txn(vec![Op::put("apps/a", "x").expecting(Expect::Absent)])
            .await,
        Err(StoreError::Conflict { found: 1, .. })
    ));
    assert!(
        store
            .txn(vec![Op::put("apps/a", "3").expecting(Expect::Revision(1))])
            .await
            .is_ok()
    );
    assert!(
        store
            .txn(vec![Op::put("apps/a", "4").expecting(Expect::Revision(1))])
            .await
            .is_err()
    );

    // All or nothing: one failed expectation writes nothing.
    let before = store.revision().await.unwrap_or_default();
    let r = store
        .txn(vec![
            Op::put("apps/c", "new"),
            Op::delete("apps/b").expecting(Expect::Revision(99)),
        ])
        .await;
    assert!(r.is_err());
    assert_eq!(store.get("apps/c").await.ok().flatten(), None);
    assert!(store.get("apps/b").await.ok().flatten().is_some());
    assert_eq!(store.revision().await.unwrap_or_default(), before);

    // Watches see committed changes under their prefix, in order.
    let mut w = store.watch("apps/");
    let rev = store
        .txn(vec![Op::put("routes/y", "b"), Op::put("apps/d", "5")])
        .await
        .unwrap_or_default();
    store.txn(vec![Op::delete("apps/d")]).await.ok();
    // Changing nothing makes no revision: a watcher that saw the last event is up to
    // date exactly when its revision is the store's.
    let nothing = store.txn(vec![Op::delete("apps/nope")]).await.ok();
    assert_eq!(nothing, Some(rev + 1));
    assert_eq!(store.revision().await.ok(), Some(rev + 1));
    assert_eq!(
        w.next().await,
        Some(WatchEvent::Put {
            key: "apps/d".into(),
            value: b"5".to_vec(),
            revision: rev
        })
    );
    assert_eq!(
        w.next().await,
        Some(WatchEvent::Delete {
            key: "apps/d".into(),
            revision: rev + 1
        })
    );
}

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

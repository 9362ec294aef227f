//! The [`Store`] contract, run against every implementation (the memory and redb
//! stores here, etcd in `miren-store-etcd`): a store from another crate passes the very
//! same checks.

use crate::store::{Expect, Op, Store, StoreError, Versioned, WatchEvent};

/// Checks `store`'s behaviour against the contract; panics at the first difference.
/// `store` must be empty, and nobody else may write to it meanwhile (revisions are
/// counted from where it starts: 0 for the embedded stores, etcd's own otherwise).
pub async fn store_contract(store: &dyn Store) {
    // Writes bump one revision; keys remember theirs.
    let r0 = store
        .revision()
        .await
        .unwrap_or_else(|e| panic!("revision: {e}"));
    let r1 = store
        .txn(vec![
            Op::put("apps/a", "1"),
            Op::put("apps/b", "2"),
            Op::put("routes/x", "a"),
        ])
        .await
        .ok();
    assert_eq!(r1, Some(r0 + 1));
    let a = store.get("apps/a").await.ok().flatten();
    assert_eq!(
        a,
        Some(Versioned {
            value: b"1".to_vec(),
            revision: r0 + 1
        })
    );
    assert_eq!(store.get("apps/zz").await.ok().flatten(), None);

    // Prefix listing, in key order, with the revision it reflects.
    let (items, rev) = store.list("apps/").await.unwrap_or_default();
    assert_eq!(
        items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["apps/a", "apps/b"]
    );
    assert_eq!(rev, r0 + 1);

    // Create-only and compare-and-swap; a conflict names the key and what it found.
    match store
        .txn(vec![Op::put("apps/a", "x").expecting(Expect::Absent)])
        .await
    {
        Err(StoreError::Conflict { key, found, .. }) => {
            assert_eq!((key.as_str(), found), ("apps/a", r0 + 1));
        }
        other => panic!("a create of an existing key: {other:?}"),
    }
    assert_eq!(
        store
            .txn(vec![
                Op::put("apps/a", "3").expecting(Expect::Revision(r0 + 1))
            ])
            .await
            .ok(),
        Some(r0 + 2)
    );
    match store
        .txn(vec![
            Op::put("apps/a", "4").expecting(Expect::Revision(r0 + 1)),
        ])
        .await
    {
        Err(StoreError::Conflict { key, found, .. }) => {
            assert_eq!((key.as_str(), found), ("apps/a", r0 + 2));
        }
        other => panic!("a stale compare-and-swap: {other:?}"),
    }
    // Deletes are guarded the same way.
    assert!(
        store
            .txn(vec![
                Op::delete("apps/zz").expecting(Expect::Revision(r0 + 1))
            ])
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

    // A key written twice in one transaction ends as the last write says.
    let r = store
        .txn(vec![Op::put("apps/e", "1"), Op::put("apps/e", "2")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = store.get("apps/e").await.ok().flatten();
    assert_eq!(e.map(|v| (v.value, v.revision)), Some((b"2".to_vec(), r)));
    store
        .txn(vec![Op::delete("apps/e")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));

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

//! The etcd store against real etcd members on loopback: the contract the other stores
//! keep, watches that go on across restarts, broken connections and compaction, and a
//! three-member cluster losing members. Skipped, saying so, where etcd is not
//! installed; `MIREN_TEST_ETCD=1` (CI) requires them.

mod relay;

use std::time::Duration;

use miren_core::store::{Op, Store, StoreError, Watch, WatchEvent};
use miren_store_etcd::EtcdStore;
use miren_store_etcd::testing::{Cluster, etcd_installed};
use relay::Relay;

/// The next key change (progress reports skipped), within 10 s.
async fn next_change(w: &mut Watch) -> WatchEvent {
    let wait = async {
        loop {
            match w.next().await {
                Some(WatchEvent::Progress { .. }) => continue,
                Some(e) => return e,
                None => panic!("the store went away"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no change within 10 s"))
}

/// Calls `f` until it succeeds, `within` at most (then panics with its last error).
async fn until_ok<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    within: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn put_of(e: &WatchEvent) -> (String, Vec<u8>) {
    match e {
        WatchEvent::Put { key, value, .. } => (key.clone(), value.clone()),
        other => panic!("expected a put, got {other:?}"),
    }
}

async fn write(store: &EtcdStore, key: &str, value: &str) -> u64 {
    store
        .txn(vec![Op::put(key, value)])
        .await
        .unwrap_or_else(|e| panic!("writing {key}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_store_keeps_the_store_contract() {
    if !etcd_installed() {
        return;
    }
    let etcd = Cluster::start(1).await;
    miren_core::testing::store_contract(&etcd.store("contract").await).await;
    // Another prefix is another store: it sees none of those keys.
    let other = etcd.store("other").await;
    let (items, _) = other.list("").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(items.is_empty(), "{items:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_bigger_than_a_page_is_one_snapshot() {
    if !etcd_installed() {
        return;
    }
    let etcd = Cluster::start(1).await;
    let store = etcd.store("big").await;
    let ops: Vec<Op> = (0..1200)
        .map(|i| Op::put(format!("pools/a/{i:04}"), vec![b'x'; 100]))
        .collect();
    let rev = store.txn(ops).await.unwrap_or_else(|e| panic!("{e}"));
    let (items, at) = store.list("pools/").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(items.len(), 1200);
    assert_eq!(at, rev);
    assert!(items.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
    assert_eq!(items[1199].0, "pools/a/1199");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_goes_on_after_etcd_restarts_missing_and_repeating_nothing() {
    if !etcd_installed() {
        return;
    }
    let mut etcd = Cluster::start(1).await;
    let store = etcd.store("restart").await;
    let mut w = store.watch("apps/");
    write(&store, "apps/1", "one").await;
    assert_eq!(put_of(&next_change(&mut w).await).0, "apps/1");

    etcd.restart(0);
    etcd.wait_ready(Duration::from_secs(20)).await;
    // Written by another client the moment etcd is back: the watch (still reconnecting)
    // resumes from the revision after the last it delivered, so it gets these too.
    let other = etcd.store("restart").await;
    write(&other, "apps/2", "two").await;
    write(&other, "apps/3", "three").await;
    assert_eq!(put_of(&next_change(&mut w).await).0, "apps/2");
    assert_eq!(put_of(&next_change(&mut w).await).0, "apps/3");
    // The same store writes again once it is back; nothing came twice before it.
    let rev = until_ok(Duration::from_secs(10), || {
        store.txn(vec![Op::put("apps/4", "four")])
    })
    .await;
    match next_change(&mut w).await {
        WatchEvent::Put { key, revision, .. } => {
            assert_eq!((key.as_str(), revision), ("apps/4", rev))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_cut_off_resumes_from_its_revision_and_a_compacted_one_lists_again() {
    if !etcd_installed() {
        return;
    }
    let etcd = Cluster::start(1).await;
    let direct = etcd.address("cut");
    let member: std::net::SocketAddr = direct.endpoints[0]
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let relay = Relay::to(member).await;
    let through = format!("etcd://{}/cut", relay.addr)
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let store = EtcdStore::connect(through)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other = EtcdStore::connect(direct.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut w = store.watch("apps/");
    write(&other, "apps/a", "1").await;
    assert_eq!(put_of(&next_change(&mut w).await).0, "apps/a");

    // Cut off: what is written meanwhile arrives, once, in order, when it is back.
    relay.cut();
    for (k, v) in [("apps/b", "2"), ("apps/c", "3")] {
        write(&other, k, v).await;
    }
    other
        .txn(vec![Op::delete("apps/a")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    relay.mend();
    assert_eq!(put_of(&next_change(&mut w).await).0, "apps/b");
    assert_eq!(put_of(&next_change(&mut w).await).0, "apps/c");
    assert!(matches!(next_change(&mut w).await, WatchEvent::Delete { key, .. } if key == "apps/a"));

    // Cut off while the revisions it has not seen are compacted away: it cannot resume,
    // so its watchers are told to list again, and changes flow after that.
    relay.cut();
    write(&other, "apps/d", "4").await;
    let now = write(&other, "apps/e", "5").await;
    let mut client = etcd_client::Client::connect(&direct.endpoints, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .compact(i64::try_from(now).unwrap_or(i64::MAX), None)
        .await
        .unwrap_or_else(|e| panic!("compacting: {e}"));
    relay.mend();
    assert_eq!(next_change(&mut w).await, WatchEvent::Lagged);
    let (items, _) = store.list("apps/").await.unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["apps/b", "apps/c", "apps/d", "apps/e"]);
    write(&other, "apps/f", "6").await;
    assert_eq!(put_of(&next_change(&mut w).await).0, "apps/f");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_progress_reaches_watchers_when_other_prefixes_write() {
    if !etcd_installed() {
        return;
    }
    let etcd = Cluster::start(1).await;
    let ours = etcd.store("ours").await;
    let theirs = etcd.store("theirs").await;
    let mut w = ours.watch("");
    let last = write(&theirs, "apps/x", "1").await;
    // Our revision counts their write; a follower waiting for it learns it has it.
    let now = ours.revision().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(now >= last);
    let progress = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match w.next().await {
                Some(WatchEvent::Progress { revision }) if revision >= now => return revision,
                Some(WatchEvent::Progress { .. }) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no progress within 10 s"));
    assert!(progress >= now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_go_on_without_one_and_refuse_writes_without_two_losing_nothing() {
    if !etcd_installed() {
        return;
    }
    let mut etcd = Cluster::start(3).await;
    let store = etcd.store("quorum").await;
    let mut w = store.watch("apps/");
    write(&store, "apps/1", "one").await;

    // One of three down (kill -9): reads and writes go on.
    etcd.kill(0);
    // (writes with two of three)
    until_ok(Duration::from_secs(15), || {
        store.txn(vec![Op::put("apps/2", "two")])
    })
    .await;
    // Two of three down: a write fails, clearly, within the call's bound.
    etcd.kill(1);
    let t = std::time::Instant::now();
    let err = store
        .txn(vec![Op::put("apps/3", "three")])
        .await
        .err()
        .unwrap_or_else(|| panic!("a write without a quorum succeeded"));
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(matches!(err, StoreError::Backend(_)), "{err}");

    assert!(err.to_string().contains("may still be applied"), "{err}");

    // They come back: everything committed is there; the write that timed out is there
    // or not (Raft commits what the last leader had logged once a majority is back:
    // the error said so); writes go on and the watch shows exactly what a list shows.
    etcd.restart(0);
    etcd.restart(1);
    etcd.wait_ready(Duration::from_secs(30)).await;
    until_ok(Duration::from_secs(15), || {
        store.txn(vec![Op::put("apps/4", "four")])
    })
    .await;
    let (items, _) = until_ok(Duration::from_secs(15), || store.list("apps/")).await;
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys == ["apps/1", "apps/2", "apps/4"] || keys == ["apps/1", "apps/2", "apps/3", "apps/4"],
        "{keys:?}"
    );
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("apps/4") {
        seen.push(put_of(&next_change(&mut w).await).0);
    }
    assert_eq!(seen, keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_at_a_time_and_learns_when_it_no_longer_does() {
    if !etcd_installed() {
        return;
    }
    let mut etcd = Cluster::start(1).await;
    let store = etcd.store("lead").await;
    let a = store.lead("a").await.unwrap_or_else(|e| panic!("{e}"));
    match store.lead("b").await {
        Err(e @ miren_store_etcd::LeadError::Held { .. }) => {
            assert_eq!(e.to_string(), "node `a` leads this cluster");
        }
        other => panic!("b led while a did: {:?}", other.err()),
    }
    // Not even a process with the same name: one name, one leader.
    assert!(matches!(
        store.lead("a").await,
        Err(miren_store_etcd::LeadError::Held { holder }) if holder == "a"
    ));
    drop(a);
    // Given up: the key goes with the lease, and another node leads.
    let mut b = until_ok(Duration::from_secs(10), || store.lead("b")).await;
    // etcd gone: the leader learns it no longer leads once its lease would have lapsed.
    let t = std::time::Instant::now();
    etcd.kill(0);
    let why = tokio::time::timeout(Duration::from_secs(15), b.lost())
        .await
        .unwrap_or_else(|_| panic!("still leading 15 s after etcd died"));
    assert!(why.contains("lease"), "{why}");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        (4.0..12.0).contains(&secs),
        "lost after {secs:.1} s (TTL 5 s)"
    );
}

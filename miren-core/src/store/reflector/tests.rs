use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::store::{MemoryStore, Op};

/// Follows pools and sandboxes as text, keyed by store key; counts its resets.
#[derive(Default)]
struct Text {
    objects: BTreeMap<String, String>,
    changed: bool,
    resets: Arc<AtomicUsize>,
}

impl Projection for Text {
    type View = BTreeMap<String, String>;
    const KINDS: &'static [Kind] = &[Kind::Pool, Kind::Sandbox];

    fn put(&mut self, put: Put<'_>) -> Result<(), Undecodable> {
        let v: serde_json::Value = put.decode()?;
        let key = match put.key {
            Key::Pool { app, id } => format!("pool {app}/{id}"),
            Key::Sandbox { app, id } => format!("sandbox {app}/{id}"),
            other => panic!("not followed: {other:?}"),
        };
        self.objects.insert(key, v.to_string());
        self.changed = true;
        Ok(())
    }

    fn delete(&mut self, key: Key<'_>) {
        let key = match key {
            Key::Pool { app, id } => format!("pool {app}/{id}"),
            Key::Sandbox { app, id } => format!("sandbox {app}/{id}"),
            other => panic!("not followed: {other:?}"),
        };
        self.changed |= self.objects.remove(&key).is_some();
    }

    fn publish(&mut self, _: &Self::View, _: Revision) -> Option<Self::View> {
        std::mem::take(&mut self.changed).then(|| self.objects.clone())
    }

    fn reset(&mut self) {
        self.objects.clear();
        self.resets.fetch_add(1, Ordering::Relaxed);
    }
}

fn put(key: &str, n: u32) -> Op {
    Op::put(key, format!("{{\"n\":{n}}}"))
}

const WAIT: Duration = Duration::from_secs(5);

async fn fresh_view(store: &Arc<dyn Store>) -> BTreeMap<String, String> {
    let (_r, reader) = follow(store).await;
    reader.load_full().as_ref().clone()
}

/// A store holding what `ops` write.
async fn store_with(ops: Vec<Op>) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    if !ops.is_empty() {
        store.txn(ops).await.expect("write");
    }
    store
}

async fn follow(
    store: &Arc<dyn Store>,
) -> (
    Reflector<BTreeMap<String, String>>,
    Reader<BTreeMap<String, String>>,
) {
    let r = Reflector::start(store.clone(), Text::default())
        .await
        .expect("listing");
    let reader = r.reader();
    (r, reader)
}

#[tokio::test]
async fn the_view_after_events_is_the_view_a_fresh_listing_gives() {
    let store = store_with(vec![put("pools/shop/p1", 1), put("sandboxes/shop/s1", 1)]).await;
    let (_r, reader) = follow(&store).await;
    assert_eq!(reader.load().len(), 2);

    store
        .txn(vec![put("pools/shop/p1", 2), put("sandboxes/blog/s2", 1)])
        .await
        .expect("write");
    store
        .txn(vec![Op::delete("sandboxes/shop/s1")])
        .await
        .expect("write");
    // Kinds it does not follow change nothing, but still count as caught up.
    store
        .txn(vec![Op::put("routes/a.example", b"{}".to_vec())])
        .await
        .expect("write");
    assert!(reader.progress().caught_up(WAIT).await.expect("revision"));
    assert_eq!(*reader.load_full(), fresh_view(&store).await);
    assert_eq!(reader.load()["pool shop/p1"], "{\"n\":2}");
    assert!(!reader.load().contains_key("sandbox shop/s1"));
}

#[tokio::test]
async fn a_caller_waits_until_its_write_is_visible() {
    let store = store_with(vec![]).await;
    let (_r, reader) = follow(&store).await;
    let mut published = reader.published();
    for n in 0..20 {
        let rev = store
            .txn(vec![put("pools/shop/p1", n)])
            .await
            .expect("write");
        assert!(reader.progress().wait_for(rev, WAIT).await);
        assert_eq!(reader.load()["pool shop/p1"], format!("{{\"n\":{n}}}"));
        assert!(published.has_changed().expect("follower runs"));
        published.borrow_and_update();
    }
    // A revision nobody wrote yet is never reached.
    let beyond = store.revision().await.expect("revision") + 1;
    assert!(
        !reader
            .progress()
            .wait_for(beyond, Duration::from_millis(50))
            .await
    );
}

#[tokio::test]
async fn a_watch_that_falls_behind_lists_again_and_loses_nothing() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let text = Text::default();
    let resets = text.resets.clone();
    let r = Reflector::start(store.clone(), text)
        .await
        .expect("listing");
    let reader = r.reader();
    // More transactions than the watch keeps, written without letting the follower
    // run (one thread): it lags.
    for n in 0..5000u32 {
        let key = format!("sandboxes/shop/s{}", n % 300);
        store.txn(vec![put(&key, n)]).await.expect("write");
    }
    assert!(reader.progress().caught_up(WAIT).await.expect("revision"));
    assert!(resets.load(Ordering::Relaxed) >= 1, "it listed again");
    assert_eq!(reader.load().len(), 300);
    assert_eq!(*reader.load_full(), fresh_view(&store).await);
}

#[tokio::test(start_paused = true)]
async fn a_value_that_does_not_decode_keeps_the_last_view_until_it_does() {
    let store = store_with(vec![put("pools/shop/p1", 1)]).await;
    let (_r, reader) = follow(&store).await;
    let bad = store
        .txn(vec![Op::put("pools/shop/p2", b"not json".to_vec())])
        .await
        .expect("write");
    // Listing again fails on the same value: the view stays whole and as it was.
    assert!(
        !reader
            .progress()
            .wait_for(bad, Duration::from_secs(3))
            .await
    );
    assert_eq!(reader.load().len(), 1);
    let good = store
        .txn(vec![put("pools/shop/p2", 2)])
        .await
        .expect("write");
    assert!(reader.progress().wait_for(good, WAIT).await);
    assert_eq!(reader.load().len(), 2);
}

#[tokio::test]
async fn a_first_listing_that_fails_is_an_error_naming_the_key() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .txn(vec![Op::put("sandboxes/shop/x", b"{".to_vec())])
        .await
        .expect("write");
    let err = Reflector::start(store, Text::default())
        .await
        .err()
        .expect("an error");
    assert!(err.to_string().contains("sandboxes/shop/x"), "{err}");
}

/// Counts what reaches it.
#[derive(Default)]
struct Puts(Arc<AtomicUsize>);

impl Projection for Puts {
    type View = ();
    const KINDS: &'static [Kind] = &[Kind::Pool];
    fn put(&mut self, _: Put<'_>) -> Result<(), Undecodable> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn delete(&mut self, _: Key<'_>) {}
    fn publish(&mut self, _: &(), _: Revision) -> Option<()> {
        None
    }
    fn reset(&mut self) {}
}

#[tokio::test]
async fn events_the_listing_already_reflects_are_skipped() {
    // A pool written just before the first listing of pools: its event reaches the
    // watch, and the listing already has it.
    let store = Arc::new(crate::testing::CountingStore::default());
    store.write_before_listing(Kind::Pool.prefix(), vec![put("pools/shop/p9", 9)]);
    let puts = Puts::default();
    let seen = puts.0.clone();
    let r = Reflector::start(store.clone() as Arc<dyn Store>, puts)
        .await
        .expect("listing");
    assert_eq!(seen.load(Ordering::Relaxed), 1, "listed once");
    assert!(
        r.reader()
            .progress()
            .caught_up(WAIT)
            .await
            .expect("revision")
    );
    assert_eq!(seen.load(Ordering::Relaxed), 1, "its event was skipped");
    let rev = store
        .txn(vec![put("pools/shop/p9", 10)])
        .await
        .expect("write");
    assert!(r.reader().progress().wait_for(rev, WAIT).await);
    assert_eq!(seen.load(Ordering::Relaxed), 2, "a newer one is not");
}

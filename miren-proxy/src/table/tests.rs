//! The table follows the store by events exactly as a full listing would see it.

use std::sync::Arc;

use miren_core::config::resolve;
use std::time::Duration;

use miren_core::model::{
    App, Digest, PoolId, PoolSpec, Route, SandboxId, SandboxPool, SandboxStatus, VersionId,
};
use miren_core::store::keys;
use miren_core::store::{MemoryStore, Op, Reader, Reflector, Store};

use super::{Lookup, Routing, Table};

struct World {
    store: Arc<MemoryStore>,
}

impl World {
    async fn put(&self, key: String, value: Vec<u8>) {
        self.store
            .txn(vec![Op::put(key, value)])
            .await
            .expect("txn");
    }

    /// An app with an active version whose web pool has `n` running instances.
    async fn app(&self, name: &str, n: u16) -> (VersionId, PoolId) {
        let config = resolve(&format!(
            "name = \"{name}\"\n[services.web]\ncommand = \"x\"\n"
        ))
        .expect("config");
        let version = VersionId::new(name);
        let pool = PoolId::new();
        let spec = PoolSpec::of(&config, "web", &Digest::of(b"code")).expect("web");
        self.put(
            keys::pool(name, &pool),
            keys::encode(&SandboxPool {
                id: pool.clone(),
                app: name.into(),
                service: "web".into(),
                spec_hash: spec.hash(),
                spec,
                versions: vec![version.clone()],
                scaling: config.services["web"].concurrency,
                desired: u32::from(n),
                desired_reason: "test".into(),
                current: u32::from(n),
                ready: u32::from(n),
                quick_crashes: 0,
                retry_at: None,
            }),
        )
        .await;
        for i in 0..n {
            self.sandbox(name, &pool, &version, 9000 + i, SandboxStatus::Running)
                .await;
        }
        self.put(
            keys::app(name),
            keys::encode(&App {
                active_version: Some(version.clone()),
                ..App::new(name, 0)
            }),
        )
        .await;
        (version, pool)
    }

    async fn sandbox(
        &self,
        app: &str,
        pool: &PoolId,
        version: &VersionId,
        port: u16,
        status: SandboxStatus,
    ) -> SandboxId {
        let addr = format!("127.0.0.1:{port}");
        let mut s = miren_core::testing::sandbox(app, "web", Some(&addr), status);
        s.pool = pool.clone();
        s.version = version.clone();
        self.put(keys::sandbox(app, &s.id), keys::encode(&s)).await;
        s.id
    }

    async fn route(&self, host: &str, app: &str) {
        let r = Route {
            host: host.into(),
            app: app.into(),
            default: host == "*",
        };
        self.put(keys::route(host), keys::encode(&r)).await;
    }
}

/// What a host resolves to, as text, to compare tables.
fn show(t: &Table, host: &str) -> String {
    match t.lookup(host) {
        Lookup::NoRoute => "no route".into(),
        Lookup::NoWeb(a) => format!("{a}: no web"),
        Lookup::NotDeployed(a) => format!("{a}: not deployed"),
        Lookup::App(t) => {
            let addrs: Vec<String> = t.backends.iter().map(|b| b.addr.to_string()).collect();
            format!("{}: {}", t.name, addrs.join(" "))
        }
    }
}

/// A table following `store`, as the proxy keeps one.
async fn follow(store: &Arc<MemoryStore>) -> (Reflector<Table>, Reader<Table>) {
    let r = Reflector::start(store.clone() as Arc<dyn Store>, Routing::default())
        .await
        .expect("listing");
    let reader = r.reader();
    (r, reader)
}

async fn caught_up(r: &Reader<Table>) {
    let ok = r.progress().caught_up(Duration::from_secs(5)).await;
    assert!(ok.expect("revision"), "the table caught up");
}

#[tokio::test]
async fn events_give_the_table_a_full_listing_would() {
    let w = World {
        store: Arc::new(MemoryStore::new()),
    };
    let (v, shop_pool) = w.app("shop", 2).await;
    w.app("blog", 1).await;
    w.app("news", 1).await;
    w.route("shop.example", "shop").await;
    w.route("news.example", "news").await;
    let (_following, reader) = follow(&w.store).await;
    let table = reader.load_full();
    assert_eq!(
        show(&table, "shop.example"),
        "shop: 127.0.0.1:9000 127.0.0.1:9001"
    );
    assert_eq!(show(&table, "other"), "no route");
    let kept = Arc::clone(&table.apps["shop"].backends[0]);
    let news = Arc::clone(&table.apps["news"]);

    // A third instance, a default route, an app deleted, one not deployed yet.
    w.sandbox("shop", &shop_pool, &v, 9002, SandboxStatus::Running)
        .await;
    w.route("*", "blog").await;
    w.store
        .txn(vec![Op::delete(keys::app("blog"))])
        .await
        .expect("delete");
    w.route("new.example", "fresh").await;
    caught_up(&reader).await;
    let table = reader.load_full();
    let (_fresh, full) = follow(&w.store).await;
    for host in ["shop.example", "other", "new.example", "news.example"] {
        assert_eq!(show(&table, host), show(&full.load(), host), "{host}");
    }
    assert_eq!(
        show(&table, "shop.example"),
        "shop: 127.0.0.1:9000 127.0.0.1:9001 127.0.0.1:9002"
    );
    assert_eq!(show(&table, "other"), "blog: not deployed");
    // The instance that stayed is the same object: its counts and connections stay.
    assert!(
        table.apps["shop"]
            .backends
            .iter()
            .any(|b| Arc::ptr_eq(b, &kept))
    );
    // An app no event touched was not rebuilt.
    assert!(Arc::ptr_eq(&table.apps["news"], &news));
}

#[tokio::test]
async fn a_draining_instance_leaves_the_table_before_it_stops() {
    let w = World {
        store: Arc::new(MemoryStore::new()),
    };
    let (v, pool) = w.app("shop", 1).await;
    let second = w
        .sandbox("shop", &pool, &v, 9001, SandboxStatus::Running)
        .await;
    w.route("*", "shop").await;
    let (_following, reader) = follow(&w.store).await;
    assert_eq!(
        show(&reader.load(), "x"),
        "shop: 127.0.0.1:9000 127.0.0.1:9001"
    );
    let mut s = miren_core::testing::sandbox(
        "shop",
        "web",
        Some("127.0.0.1:9001"),
        SandboxStatus::Stopping,
    );
    s.id = second;
    s.pool = pool.clone();
    s.version = v.clone();
    w.put(keys::sandbox("shop", &s.id), keys::encode(&s)).await;
    caught_up(&reader).await;
    assert_eq!(show(&reader.load(), "x"), "shop: 127.0.0.1:9000");
}

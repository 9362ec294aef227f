//! The table follows the store by events exactly as a full listing would see it.

use std::sync::Arc;

use miren_core::config::resolve;
use miren_core::controller::keys;
use miren_core::model::{
    App, PoolId, PoolSpec, Route, SandboxId, SandboxPool, SandboxStatus, VersionId,
};
use miren_core::store::{MemoryStore, Op, Store, WatchEvent};

use super::{Changed, Lookup, Mirror, Table};

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
        let spec = PoolSpec::of(&config, "web", "sha256:0").expect("web");
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
                name: name.into(),
                active_version: Some(version.clone()),
                created: 0,
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

/// Drains what the watch has now.
async fn events(w: &mut miren_core::store::Watch) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(std::time::Duration::ZERO, w.next()).await {
        out.push(ev);
    }
    out
}

#[tokio::test]
async fn events_give_the_table_a_full_listing_would() {
    let w = World {
        store: Arc::new(MemoryStore::new()),
    };
    let (v, shop_pool) = w.app("shop", 2).await;
    w.app("blog", 1).await;
    w.route("shop.example", "shop").await;
    let mut watch = w.store.watch("");
    let mut mirror = Mirror::load(w.store.as_ref()).await.expect("load");
    let mut table = Table::build(&mirror, &Table::default());
    assert_eq!(
        show(&table, "shop.example"),
        "shop: 127.0.0.1:9000 127.0.0.1:9001"
    );
    assert_eq!(show(&table, "other"), "no route");
    let kept = Arc::clone(&table.apps["shop"].backends[0]);

    // A third instance, a default route, an app deleted, one not deployed yet.
    w.sandbox("shop", &shop_pool, &v, 9002, SandboxStatus::Running)
        .await;
    w.route("*", "blog").await;
    w.store
        .txn(vec![Op::delete(keys::app("blog"))])
        .await
        .expect("delete");
    w.route("new.example", "fresh").await;
    let mut changed = Changed::default();
    for ev in events(&mut watch).await {
        mirror.apply(&ev, &mut changed).expect("apply");
    }
    assert!(changed.routes);
    assert_eq!(
        changed.apps,
        ["shop", "blog"].map(String::from).into_iter().collect()
    );
    table = table.update(&mirror, &changed);
    let full = Table::build(
        &Mirror::load(w.store.as_ref()).await.expect("load"),
        &Table::default(),
    );
    for host in ["shop.example", "other", "new.example"] {
        assert_eq!(show(&table, host), show(&full, host), "{host}");
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
}

#[tokio::test]
async fn events_older_than_the_listing_change_nothing() {
    let w = World {
        store: Arc::new(MemoryStore::new()),
    };
    let mut watch = w.store.watch("");
    w.app("shop", 1).await;
    w.route("shop.example", "shop").await;
    // Listed after those writes: their events are already in it.
    let mut mirror = Mirror::load(w.store.as_ref()).await.expect("load");
    let mut changed = Changed::default();
    let evs = events(&mut watch).await;
    assert!(!evs.is_empty());
    for ev in &evs {
        mirror.apply(ev, &mut changed).expect("apply");
    }
    assert!(changed.is_empty(), "{changed:?}");
    // A watch that fell behind asks for a listing.
    assert!(mirror.apply(&WatchEvent::Lagged, &mut changed).is_err());
}

//! Addons (SPEC §17) on the fake runtime, in virtual time: an addon's server is a
//! service the app's own services wait for, its credentials are made once, and a
//! dropped or destroyed addon's disk is collected.

use std::time::Duration;

use miren_core::controller::{AddonRequest, AppChange};
use miren_core::model::{SandboxStatus, VersionState};
use miren_core::runtime::fake::Behavior;

use super::{Harness, count, running};

const APP: &str = "name = \"shop\"\n[services.web]\ncommand = \"web-v1\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n";

fn with_pg(web: &str) -> String {
    format!(
        "{}\n[addons.miren-postgresql]\nversion = \"16\"\n",
        APP.replace("web-v1", web)
    )
}

#[tokio::test(start_paused = true)]
async fn the_apps_services_start_once_its_addon_server_is_ready() {
    let h = Harness::new().await;
    h.rt.behave("miren-postgresql", Behavior::Ready(Duration::from_secs(5)));
    let id = h.deploy(&with_pg("web-v1")).await;
    // While the database starts, web is held at zero.
    let s = h
        .until("the database starting", |s| {
            count(s, "miren-postgresql", SandboxStatus::Pending) == 1
        })
        .await;
    assert_eq!(
        s.sandboxes.iter().filter(|x| x.service == "web").count(),
        0,
        "web started before its database was ready"
    );
    let v = h.ctl.wait(&id).await.expect("wait");
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let s = h.snap().await;
    assert_eq!(running(&s, "web"), 1);
    assert_eq!(running(&s, "miren-postgresql"), 1);

    // What each runs: the server from its image, web with its credentials, secret.
    let pool = |svc: &str| {
        s.pools
            .iter()
            .find(|p| p.service == svc)
            .unwrap_or_else(|| panic!("no {svc} pool"))
            .spec
            .clone()
    };
    let (pg, web) = (pool("miren-postgresql"), pool("web"));
    assert_eq!(
        pg.source,
        miren_core::model::CodeSource::Image("postgres:16".into())
    );
    let addon = &s.apps[0].addons[0];
    let url = format!(
        "postgres://shop:{}@miren-postgresql.app.miren:5432/shop",
        addon.password
    );
    assert_eq!(web.env.get("DATABASE_URL"), Some(&url));
    assert!(web.secret_env.contains("DATABASE_URL"));
    assert!(pg.secret_env.contains("POSTGRES_PASSWORD"));
    assert_eq!(pg.disks.first().map(|d| d.name.clone()), addon.disk.clone());
    // Shown outside the server, no password is left.
    let shown = format!("{:?}", v.clone().redacted());
    assert!(!shown.contains(&addon.password), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn credentials_stay_across_deploys_and_a_dropped_addon_loses_its_disk() {
    let h = Harness::new().await;
    h.deploy_and_wait(&with_pg("web-v1")).await;
    let first = h.snap().await.apps[0].addons[0].clone();
    let v2 = h.deploy_and_wait(&with_pg("web-v2")).await;
    assert_eq!(v2.state, VersionState::Active, "{:?}", v2.failure);
    let s = h.snap().await;
    assert_eq!(s.apps[0].addons[0].password, first.password);
    // The database is the same pool: not restarted by a deploy of new code.
    let starts =
        h.rt.started()
            .iter()
            .filter(|x| x.spec.service == "miren-postgresql")
            .count();
    assert_eq!(starts, 1);

    // Dropped from app.toml: it goes, and its disk is deleted once nothing uses it.
    let v3 = h.deploy_and_wait(&APP.replace("web-v1", "web-v3")).await;
    assert_eq!(v3.state, VersionState::Active, "{:?}", v3.failure);
    assert!(!v3.config.services.contains_key("miren-postgresql"));
    assert!(!v3.config.services["web"].env.contains_key("DATABASE_URL"));
    let disk = first.disk.clone().expect("a disk");
    h.until("the disk collected and forgotten", |s| {
        s.apps[0].addons.is_empty() && s.apps[0].retired_disks.is_empty()
    })
    .await;
    let deleted = h.rt.collections().iter().any(|r| {
        r.retired_disks
            .contains(&("shop".to_string(), disk.clone()))
    });
    assert!(deleted, "the runtime was never told to delete {disk}");
    assert_eq!(running(&h.snap().await, "miren-postgresql"), 0);
}

#[tokio::test(start_paused = true)]
async fn addon_create_and_destroy_roll_out_the_active_code() {
    let h = Harness::new().await;
    h.deploy_and_wait(APP).await;
    let add = AppChange::AddAddon(AddonRequest {
        name: "miren-valkey".into(),
        variant: None,
        version: None,
        services: Vec::new(),
    });
    let id = h
        .ctl
        .change_app("shop", add.clone())
        .await
        .expect("accepted")
        .expect("a version");
    let v = h.ctl.wait(&id).await.expect("wait");
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    let web = &v.config.services["web"];
    assert!(web.env["REDIS_URL"].starts_with("redis://:"));
    assert_eq!(web.env["VALKEY_HOST"], "miren-valkey.app.miren");
    assert_eq!(v.declared().services.len(), 1, "app.toml's own: web only");
    // Twice is refused, saying why.
    let again = h.ctl.change_app("shop", add).await;
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("has `miren-valkey` already")),
        "{again:?}"
    );
    // A deploy of app.toml keeps what `addon create` made.
    let v2 = h.deploy_and_wait(&APP.replace("web-v1", "web-v2")).await;
    assert!(v2.config.services["web"].env.contains_key("REDIS_URL"));

    let id = h
        .ctl
        .change_app("shop", AppChange::RemoveAddon("miren-valkey".into()))
        .await
        .expect("accepted")
        .expect("a version");
    let v = h.ctl.wait(&id).await.expect("wait");
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    assert!(!v.config.services["web"].env.contains_key("REDIS_URL"));
    assert!(!v.config.services.contains_key("miren-valkey"));
    assert_eq!(v.config.services["web"].command.as_deref(), Some("web-v2"));
}

#[tokio::test(start_paused = true)]
async fn an_unknown_addon_fails_the_deploy_saying_which_there_are() {
    let h = Harness::new().await;
    let v = h
        .deploy_and_wait(&format!("{APP}\n[addons.storage]\nvariant = \"minio\"\n"))
        .await;
    assert_eq!(v.state, VersionState::Failed);
    let why = v.failure.unwrap_or_default();
    assert!(why.contains("no addon `storage`"), "{why}");
    assert!(why.contains("miren-postgresql"), "{why}");
}

//! Upstream Miren's env metadata (SPEC §17) in the controller: `required` env blocks a
//! deploy until it has a value, `sensitive` env is a secret.

use miren_core::controller::AppChange;
use miren_core::model::{ConfigVar, SECRET_SHOWN, VersionState};

use super::Harness;

const APP: &str = r#"
name = "shop"
[[env]]
key = "STRIPE_KEY"
required = true
sensitive = true
description = "the live Stripe key"
[[env]]
key = "DB_PASSWORD"
value = "hunter2"
sensitive = true
[services.web]
command = "web"
"#;

#[tokio::test(start_paused = true)]
async fn a_required_var_without_a_value_fails_the_deploy_until_env_set_gives_one() {
    let h = Harness::new().await;
    let v1 = h.deploy_and_wait(APP).await;
    assert_eq!(v1.state, VersionState::Failed);
    let failure = v1.failure.unwrap_or_default();
    assert!(
        failure.contains("STRIPE_KEY (the live Stripe key), for service `web`"),
        "{failure}"
    );
    assert!(
        failure.contains("miren env set -a shop STRIPE_KEY=…"),
        "{failure}"
    );
    assert!(h.rt.started().is_empty(), "nothing started for it");

    let set = ConfigVar {
        key: "STRIPE_KEY".into(),
        value: "sk_live_1".into(),
        secret: true,
        service: None,
    };
    assert_eq!(
        h.ctl
            .change_app("shop", AppChange::SetVars(vec![set]))
            .await
            .ok(),
        Some(None)
    );
    let v2 = h.deploy_and_wait(APP).await;
    assert_eq!(v2.state, VersionState::Active, "{:?}", v2.failure);
    let spec = v2.pool_spec("web").unwrap_or_else(|| panic!("no web"));
    assert_eq!(
        spec.env.get("STRIPE_KEY").map(String::as_str),
        Some("sk_live_1")
    );
    // Both are secrets: what leaves the server shows neither.
    assert!(spec.secret_env.contains("STRIPE_KEY") && spec.secret_env.contains("DB_PASSWORD"));
    let shown = serde_json::to_string(&v2.clone().redacted()).unwrap_or_default();
    assert!(
        !shown.contains("hunter2") && !shown.contains("sk_live_1"),
        "{shown}"
    );
    assert!(shown.contains(SECRET_SHOWN));
    let pool = serde_json::to_string(&spec.redacted()).unwrap_or_default();
    assert!(
        !pool.contains("hunter2") && !pool.contains("sk_live_1"),
        "{pool}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_local_disk_is_shared_so_a_new_instance_starts_beside_the_old_one() {
    let h = Harness::new().await;
    let app = |cmd: &str| {
        format!(
            "name = \"shop\"\n[services.web]\ncommand = \"{cmd}\"\n[[services.web.disks]]\nname = \"cache\"\nmount_path = \"/cache\"\nprovider = \"local\"\n"
        )
    };
    let v1 = h.deploy_and_wait(&app("web-v1")).await;
    assert_eq!(v1.state, VersionState::Active, "{:?}", v1.failure);
    h.rt.behave(
        "web-v2",
        miren_core::runtime::fake::Behavior::Ready(std::time::Duration::from_secs(5)),
    );
    let _v2 = h.deploy(&app("web-v2")).await;
    // The old instance keeps serving while the new one starts: nobody waits for the disk.
    h.until("old and new web at once", |s| {
        s.sandboxes
            .iter()
            .filter(|x| x.service == "web" && x.is_live())
            .count()
            == 2
    })
    .await;
}

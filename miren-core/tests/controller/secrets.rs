//! The server's own secrets (SPEC §17) on the fake runtime: a reference is pinned at
//! deploy and opened only into the spec a sandbox starts with; the store never holds
//! a value in the clear; a rotation rolls out, a rollback runs the old value, and a
//! reference that can't resolve fails closed.

use miren_core::model::{SecretRef, VersionState};
use miren_core::secret::SecretKey;
use miren_core::store::Store;

use super::Harness;

const APP: &str = "name = \"shop\"\n[[services.web.env]]\nkey = \"STRIPE_KEY\"\nbackend = \"cluster\"\nref = \"payments/stripe\"\n[services.web]\ncommand = \"web\"\n[services.web.concurrency]\nmode = \"fixed\"\nnum_instances = 1\n";

async fn harness() -> Harness {
    Harness::with(|c| c.secret_key = Some(SecretKey::from_bytes(&SecretKey::generate()))).await
}

/// The value `STRIPE_KEY` had in the newest start of `web`.
fn started_with(h: &Harness) -> Option<String> {
    h.rt.started()
        .iter()
        .rev()
        .find(|s| s.spec.service == "web")
        .and_then(|s| s.spec.env.get("STRIPE_KEY").cloned())
}

/// Everything the store holds, as text.
async fn store_text(h: &Harness) -> String {
    let (all, _) = h.store.list("").await.expect("list");
    all.iter()
        .map(|(k, v)| format!("{k} {}", String::from_utf8_lossy(&v.value)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(start_paused = true)]
async fn a_reference_runs_its_pinned_value_and_no_value_is_stored() {
    let h = harness().await;
    let set = h
        .ctl
        .set_secret("payments/stripe", b"sk_live_ONE".to_vec())
        .await
        .expect("set");
    assert!(!set.unchanged);
    let again = h
        .ctl
        .set_secret("payments/stripe", b"sk_live_ONE".to_vec())
        .await
        .expect("set");
    assert!(again.unchanged, "the same value makes no version");
    let v1 = h.deploy_and_wait(APP).await;
    assert_eq!(v1.state, VersionState::Active, "{:?}", v1.failure);
    assert_eq!(started_with(&h).as_deref(), Some("sk_live_ONE"));
    assert_eq!(v1.secret_pins["payments/stripe"], set.version);
    let pool = &h.snap().await.pools[0];
    assert_eq!(
        pool.spec.secret_refs["STRIPE_KEY"],
        format!("payments/stripe@{}", set.version)
    );
    assert!(!pool.spec.env.contains_key("STRIPE_KEY"));
    assert!(!store_text(&h).await.contains("sk_live_ONE"));

    // Rotated: the next deploy runs the new value, a rollback the old one.
    h.ctl
        .set_secret("payments/stripe", b"sk_live_TWO".to_vec())
        .await
        .expect("set");
    let v2 = h.deploy_and_wait(&APP.replace("\"web\"", "\"web2\"")).await;
    assert_eq!(v2.state, VersionState::Active, "{:?}", v2.failure);
    assert_eq!(started_with(&h).as_deref(), Some("sk_live_TWO"));
    let back = h
        .ctl
        .rollback("shop", Some(v1.id.clone()))
        .await
        .expect("rollback");
    let back = h.ctl.wait(&back).await.expect("wait");
    assert_eq!(back.state, VersionState::Active, "{:?}", back.failure);
    assert_eq!(started_with(&h).as_deref(), Some("sk_live_ONE"));
    assert!(!store_text(&h).await.contains("sk_live_TWO"));
}

#[tokio::test(start_paused = true)]
async fn a_reference_that_does_not_resolve_fails_the_deploy_closed() {
    let h = harness().await;
    let v = h.deploy_and_wait(APP).await;
    assert_eq!(v.state, VersionState::Failed);
    let why = v.failure.unwrap_or_default();
    assert!(
        why.contains("`STRIPE_KEY` of service `web`: there is no secret `payments/stripe`"),
        "{why}"
    );
    assert!(h.rt.started().is_empty(), "nothing started");

    // The current version disabled: no falling back to an older one.
    let one = h
        .ctl
        .set_secret("payments/stripe", b"old".to_vec())
        .await
        .expect("set");
    let two = h
        .ctl
        .set_secret("payments/stripe", b"new".to_vec())
        .await
        .expect("set");
    assert_ne!(one.version, two.version);
    let current = SecretRef::parse(&format!("payments/stripe@{}", two.version)).expect("ref");
    h.ctl.enable_secret(current, false).await.expect("disable");
    let v = h.deploy_and_wait(APP).await;
    assert_eq!(v.state, VersionState::Failed);
    assert!(
        v.failure.unwrap_or_default().contains("is disabled"),
        "disabled fails closed"
    );
    // `miren env set` wins over the reference.
    let vars = vec![miren_core::model::ConfigVar {
        key: "STRIPE_KEY".into(),
        value: "from env set".into(),
        secret: true,
        service: None,
    }];
    h.ctl
        .change_app("shop", miren_core::controller::AppChange::SetVars(vars))
        .await
        .expect("set vars");
    let v = h.deploy_and_wait(APP).await;
    assert_eq!(v.state, VersionState::Active, "{:?}", v.failure);
    assert_eq!(started_with(&h).as_deref(), Some("from env set"));
}

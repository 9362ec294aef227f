//! Collection: what deploys leave behind goes once no version keeps it.

use std::collections::BTreeSet;
use std::time::Duration;

use miren_core::controller::Event;
use miren_core::model::{Digest, VersionId};

use super::Harness;

fn app(n: usize) -> String {
    format!("name = \"shop\"\n[services.web]\ncommand = \"web-{n}\"\n")
}

/// The archives in the store, by digest.
fn archives(h: &Harness) -> BTreeSet<Digest> {
    std::fs::read_dir(h.dir.path())
        .expect("read_dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            format!("sha256:{}", name.strip_suffix(".tar")?)
                .parse()
                .ok()
        })
        .collect()
}

/// Waits (virtual time) for collections until `cond` holds after one.
async fn until_collected(h: &Harness, what: &str, cond: impl Fn(&Harness) -> bool) {
    let mut events = h.ctl.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while !cond(h) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(Event::Collected { .. })) => {}
            Ok(Ok(_)) => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            _ => panic!("no collection made this true: {what}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_ten_newest_versions_keep_their_code_and_older_ones_lose_it() {
    let h = Harness::new().await;
    let mut versions: Vec<(VersionId, Digest)> = Vec::new();
    for n in 0..13 {
        let code = format!("code {n}");
        let id = h.deploy_code(&app(n), code.as_bytes()).await;
        let v = h.ctl.wait(&id).await.expect("wait");
        assert_eq!(v.artifact_digest, Digest::of(code.as_bytes()));
        versions.push((id, v.artifact_digest));
    }
    let kept: BTreeSet<Digest> = versions[3..].iter().map(|(_, d)| d.clone()).collect();
    let newest: BTreeSet<VersionId> = versions[3..].iter().map(|(v, _)| v.clone()).collect();
    // Old instances drain for a while: until they are gone, their versions are kept.
    until_collected(&h, "only the 10 newest versions and archives left", |h| {
        archives(h) == kept
            && h.rt
                .collections()
                .last()
                .is_some_and(|r| r.versions == newest)
    })
    .await;
    let last = h.rt.collections().pop().expect("the runtime collected too");
    assert_eq!(last.digests, kept);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_app_keeps_no_code_and_an_upload_waiting_for_its_deploy_stays() {
    let h = Harness::new().await;
    h.deploy_code(&app(1), b"one").await;
    let v2 = h.deploy_code(&app(2), b"two").await;
    h.ctl.wait(&v2).await.expect("wait");
    // Uploaded, not deployed yet.
    let waiting = h.artifacts.put(b"next").expect("put").digest;
    h.ctl.delete_app("shop", false).await.expect("delete");
    until_collected(&h, "only the waiting upload left", |h| {
        archives(h) == BTreeSet::from([waiting.clone()])
            && h.rt
                .collections()
                .last()
                .is_some_and(|r| r.versions.is_empty())
    })
    .await;
    let last = h.rt.collections().pop().expect("collected");
    assert!(last.versions.is_empty(), "{last:?}");
}

//! A minimal server process for the kill -9 test: redb store + process runtime +
//! controller on `MIREN_TEST_DATA`, optionally deploying `MIREN_TEST_DEPLOY_DIR`.
//! Prints `ready <active version>` once every pool is at its desired count, and shuts
//! down cleanly on SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use miren_core::artifact::{ArtifactStore, pack_dir};
use miren_core::controller::{Controller, ControllerConfig, DeployRequest};
use miren_core::model::SourceInfo;
use miren_core::store::RedbStore;
use miren_runtime_process::ProcessRuntime;

pub async fn run() -> i32 {
    let data = PathBuf::from(std::env::var("MIREN_TEST_DATA").unwrap_or_default());
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
    let store =
        Arc::new(RedbStore::open(&data.join("state.redb")).unwrap_or_else(|e| panic!("{e}")));
    let rt = ProcessRuntime::new(data.join("process"), store.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let artifacts = ArtifactStore::open(data.join("artifacts")).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = ControllerConfig::new(artifacts.clone());
    cfg.stop_grace = Duration::from_secs(2);
    let ctl = Controller::start(store, Arc::new(rt), cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    if let Ok(dir) = std::env::var("MIREN_TEST_DEPLOY_DIR") {
        let dir = PathBuf::from(dir);
        let bytes = pack_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let art = artifacts.put(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let src = std::fs::read_to_string(dir.join(".miren/app.toml")).unwrap_or_default();
        let config = miren_core::config::resolve(&src).unwrap_or_else(|e| panic!("{e}"));
        let v = ctl
            .deploy(DeployRequest {
                config,
                artifact_digest: art.digest,
                source: SourceInfo::default(),
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let v = ctl.wait(&v).await.unwrap_or_else(|e| panic!("{e}"));
        println!("deployed {} {:?}", v.id, v.state);
    }
    // Before saying `ready`: the test may send SIGTERM the moment it reads it.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut events = ctl.subscribe();
    loop {
        let s = ctl.snapshot(None).await.unwrap_or_else(|e| panic!("{e}"));
        let converged = !s.pools.is_empty()
            && s.pools
                .iter()
                .all(|p| p.ready == p.desired && p.current == p.desired);
        if converged {
            let active = s.apps.first().and_then(|a| a.active_version.clone());
            println!(
                "ready {}",
                active.map(|v| v.to_string()).unwrap_or_default()
            );
            break;
        }
        if tokio::time::timeout_at(deadline, events.recv())
            .await
            .is_err()
        {
            println!("never converged: {s:?}");
            return 1;
        }
    }
    term.recv().await;
    let _ = ctl.shutdown().await;
    0
}

//! `/v1/apps`: listing, one app's status and history, deletion.

use miren_core::controller::Snapshot;
use serde::Deserialize;

use super::extract::{Json, Path, Query};
use super::{R, S, done, lookup};
use crate::api::{AppStatus, AppSummary, VersionRow};
use crate::server::status;

pub async fn list(state: S) -> R<Json<Vec<AppSummary>>> {
    let s = state.controller.snapshot(None).await?;
    Ok(Json(
        s.apps.iter().map(|a| status::summary(a, &s)).collect(),
    ))
}

/// One app's part of the state; 404 (with "did you mean") when there is no such app.
async fn of(state: &S, app: &str) -> R<Snapshot> {
    lookup::app(state, app).await?;
    Ok(state.controller.snapshot(Some(app)).await?)
}

pub async fn status(state: S, Path(app): Path<String>) -> R<Json<AppStatus>> {
    let s = of(&state, &app).await?;
    let a = &s.apps[0];
    // A pool's newest sandbox says where it runs.
    let runtimes = s
        .sandboxes
        .iter()
        .filter_map(|x| Some((x.pool.to_string(), x.runtime.clone()?)))
        .collect();
    Ok(Json(AppStatus {
        app: status::summary(a, &s),
        pools: s.pools.iter().cloned().map(super::pools::shown).collect(),
        runtimes,
    }))
}

pub async fn history(state: S, Path(app): Path<String>) -> R<Json<Vec<VersionRow>>> {
    let s = of(&state, &app).await?;
    Ok(Json(
        s.versions
            .iter()
            .rev()
            .map(|v| VersionRow {
                number: v.number,
                id: v.id.to_string(),
                state: status::state_name(v.state).to_string(),
                created: v.created,
                commit: v.source.git_commit.clone(),
                failure: v.failure.clone(),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    purge_disks: bool,
}

pub async fn delete(
    state: S,
    Path(app): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> R<Json<serde_json::Value>> {
    lookup::app(&state, &app).await?;
    state.controller.delete_app(&app, q.purge_disks).await?;
    state.logs.remove_app(&app).await;
    state.visible.sync().await;
    Ok(done())
}

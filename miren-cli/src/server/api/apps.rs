//! `/v1/apps`: listing, one app's status and history, deletion.

use miren_core::controller::Snapshot;
use serde::Deserialize;

use super::extract::{Json, Path, Query};
use super::{R, S, done, lookup};
use crate::api::{AppStatus, AppSummary, VersionRow};
use crate::server::status;
use crate::server::traffic::Look;

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
    let look = state.traffic.look().await;
    Ok(Json(status_of(&state, &s, &s.apps[0], &look)))
}

/// Every app's status at once (`miren top`, the dashboard): one measurement for all.
pub async fn status_all(state: S) -> R<Json<Vec<AppStatus>>> {
    let s = state.controller.snapshot(None).await?;
    let look = state.traffic.look().await;
    Ok(Json(
        s.apps
            .iter()
            .map(|a| status_of(&state, &s, a, &look))
            .collect(),
    ))
}

/// `a`'s part of `all`, with its traffic and instances from `look`.
fn status_of(state: &S, all: &Snapshot, a: &miren_core::model::App, look: &Look) -> AppStatus {
    let app = a.name.as_str();
    let pools: Vec<_> = all.pools.iter().filter(|p| p.app == app).cloned().collect();
    let ids: std::collections::HashSet<_> = pools.iter().map(|p| &p.id).collect();
    let s = Snapshot {
        apps: vec![a.clone()],
        versions: all
            .versions
            .iter()
            .filter(|v| v.app == app)
            .cloned()
            .collect(),
        sandboxes: all
            .sandboxes
            .iter()
            .filter(|x| ids.contains(&x.pool))
            .cloned()
            .collect(),
        pools,
        routes: Vec::new(),
        runs: Vec::new(),
    };
    // A pool's newest sandbox says where it runs.
    let runtimes = s
        .sandboxes
        .iter()
        .filter_map(|x| Some((x.pool.to_string(), x.runtime.clone()?)))
        .collect();
    let mut traffic = look.app(app);
    let instances = s
        .sandboxes
        .iter()
        .filter(|x| x.status.is_live())
        .map(|x| {
            let mut u = traffic.instances.remove(x.id.as_str()).unwrap_or_default();
            u.sandbox = x.id.to_string();
            u.service = x.service.clone();
            u.status = status::sandbox_state(x.status).to_string();
            u.restarts = x.restarts;
            u.node = x.node.clone();
            u
        })
        .collect();
    AppStatus {
        app: status::summary(a, &s),
        pools: s.pools.iter().cloned().map(super::pools::shown).collect(),
        runtimes,
        traffic: traffic.services,
        instances,
        last_exits: status::last_exits(&s),
        decisions: state.decisions.of(app),
    }
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

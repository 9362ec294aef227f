//! `/v1/sandboxes`: listing (by app and status), and stopping one.

use miren_core::model::{Sandbox, SandboxStatus};
use serde::Deserialize;

use super::extract::{Json, Path, Query};
use super::{ApiError, R, S, lookup};

/// `?app=&status=`.
#[derive(Deserialize)]
pub struct AppQuery {
    pub app: Option<String>,
    pub status: Option<String>,
}

pub async fn list(state: S, Query(q): Query<AppQuery>) -> R<Json<Vec<Sandbox>>> {
    if let Some(a) = &q.app {
        lookup::app(&state, a).await?;
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<SandboxStatus>()
                .map_err(|e| ApiError::invalid(e.to_string()))?,
        ),
    };
    let s = state.controller.snapshot(q.app.as_deref()).await?;
    Ok(Json(
        s.sandboxes
            .into_iter()
            .filter(|x| status.is_none_or(|st| x.status == st))
            .collect(),
    ))
}

pub async fn stop(state: S, Path(given): Path<String>) -> R<Json<serde_json::Value>> {
    let s = state.controller.snapshot(None).await?;
    let Some(id) = lookup::sandbox(&s, &given, true)? else {
        return Err(ApiError::not_found(format!(
            "no sandbox `{}`: `miren sandbox list` shows them",
            super::clip(&given)
        )));
    };
    state.controller.stop_sandbox(&id).await?;
    // It is draining now: out of the proxy's and DNS's answers before we say so.
    state.visible.sync().await;
    Ok(Json(serde_json::json!({ "stopped": id })))
}

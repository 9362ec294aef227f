//! `POST /v1/deploys` and `POST /v1/apps/{app}/rollback`: rollouts, streamed as NDJSON
//! [`DeployLine`](crate::api::DeployLine)s as they progress.

use axum::response::Response;
use miren_core::controller::DeployRequest;
use miren_core::model::{Digest, SourceInfo};
use tokio::sync::mpsc;

use super::extract::{Json, Path};
use super::stream::{line, ndjson};
use super::{ApiError, R, S, app_name, lookup, parse};
use crate::api::{DeployBody, RollbackBody};
use crate::server::rollout::{Rollout, Start};

pub async fn deploy(state: S, Json(body): Json<DeployBody>) -> R<Response> {
    // Validation of a big app.toml takes a while: not on the API's threads.
    let (body, resolved) = tokio::task::spawn_blocking(move || {
        // A file without `name` is the app the client names (after its directory).
        let v = miren_core::config::validate_in(&body.app_toml, body.app.as_deref());
        let resolved = v
            .resolved
            .clone()
            .ok_or_else(|| v.report(".miren/app.toml", &body.app_toml).render(false));
        (body, resolved)
    })
    .await
    .map_err(ApiError::internal)?;
    let mut config = resolved.map_err(ApiError::invalid)?;
    if let Some(app) = body.app {
        app_name(&app)?;
        config.name = app;
    }
    let digest: Digest = parse(&body.artifact)?;
    let path = state.artifacts.artifact(&digest).path;
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(ApiError::invalid(format!(
            "no uploaded code with digest {digest}: upload it first (PUT /v1/artifacts)"
        )));
    }
    let request = DeployRequest {
        config,
        artifact_digest: digest,
        source: SourceInfo {
            git_commit: body.git_commit,
        },
    };
    let rollout = Rollout::start(
        &state.controller,
        &state.visible,
        Start::Deploy(Box::new(request)),
    )
    .await?;
    Ok(streamed(rollout, !body.no_wait))
}

pub async fn rollback(
    state: S,
    Path(app): Path<String>,
    body: Option<Json<RollbackBody>>,
) -> R<Response> {
    let s = lookup::app(&state, &app).await?;
    let to = match body.and_then(|b| b.0.version) {
        Some(v) => Some(lookup::version(&s, &app, &v)?),
        None => None,
    };
    let rollout = Rollout::start(
        &state.controller,
        &state.visible,
        Start::Rollback { app, to },
    )
    .await?;
    Ok(streamed(rollout, true))
}

/// The rollout's lines as they come; the answer starts before it ends.
pub(super) fn streamed(rollout: Rollout, wait: bool) -> Response {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(rollout.follow(wait, move |l| {
        let _ = tx.send(line(&l));
    }));
    ndjson(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
}

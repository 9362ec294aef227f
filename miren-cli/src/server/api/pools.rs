//! `/v1/pools`: listing, and setting a pool's desired count by hand.

use axum::http::StatusCode;
use miren_core::config::Concurrency;
use miren_core::model::{PoolId, SandboxPool};

use super::extract::{Json, Path, Query};
use super::sandboxes::AppQuery;
use super::{ApiError, R, S, lookup};
use crate::api::DesiredBody;

/// The most instances one `set-desired` may ask for.
const MAX_DESIRED: u32 = 1000;

pub async fn list(state: S, Query(q): Query<AppQuery>) -> R<Json<Vec<SandboxPool>>> {
    if let Some(a) = &q.app {
        lookup::app(&state, a).await?;
    }
    let s = state.controller.snapshot(q.app.as_deref()).await?;
    Ok(Json(s.pools.into_iter().map(shown).collect()))
}

/// A pool as it may leave the server: its secret env values replaced.
pub fn shown(mut p: SandboxPool) -> SandboxPool {
    p.spec = p.spec.redacted();
    p
}

pub async fn set_desired(
    state: S,
    Path(id): Path<String>,
    Json(b): Json<DesiredBody>,
) -> R<Json<SandboxPool>> {
    let snapshot = state.controller.snapshot(None).await?;
    let id: PoolId = lookup::pool(&snapshot, &id)?;
    if b.desired > MAX_DESIRED {
        return Err(ApiError::invalid(format!(
            "desired must be at most {MAX_DESIRED}"
        )));
    }
    if let Some(p) = snapshot.pools.iter().find(|p| p.id == id)
        && let Concurrency::Auto(a) = &p.scaling
        && b.desired > a.max_instances
        && !b.force
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "over_max_instances",
            format!(
                "{id} ({} of {}) scales automatically up to max_instances = {}; {} is past it: pass --force to go past it, or raise max_instances in app.toml",
                p.service, p.app, a.max_instances, b.desired
            ),
        ));
    }
    let p = state
        .controller
        .set_desired(&id, b.desired, format!("set by an operator: {}", b.desired))
        .await?;
    Ok(Json(shown(p)))
}

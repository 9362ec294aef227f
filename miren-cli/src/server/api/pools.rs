//! `/v1/pools`: listing, and setting a pool's desired count by hand.

use miren_core::model::{PoolId, SandboxPool};

use super::extract::{Json, Path, Query};
use super::sandboxes::AppQuery;
use super::{ApiError, R, S, app_name, parse};
use crate::api::DesiredBody;

/// The most instances one `set-desired` may ask for.
const MAX_DESIRED: u32 = 1000;

pub async fn list(state: S, Query(q): Query<AppQuery>) -> R<Json<Vec<SandboxPool>>> {
    if let Some(a) = &q.app {
        app_name(a)?;
    }
    let s = state.controller.snapshot(q.app.as_deref()).await?;
    Ok(Json(s.pools))
}

pub async fn set_desired(
    state: S,
    Path(id): Path<String>,
    Json(b): Json<DesiredBody>,
) -> R<Json<SandboxPool>> {
    let id: PoolId = parse(&id)?;
    if b.desired > MAX_DESIRED {
        return Err(ApiError::invalid(format!(
            "desired must be at most {MAX_DESIRED}"
        )));
    }
    let p = state
        .controller
        .set_desired(&id, b.desired, format!("set by an operator: {}", b.desired))
        .await?;
    Ok(Json(p))
}

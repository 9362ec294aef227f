//! `PUT /v1/artifacts`: an app directory's tar archive, stored under its digest.

use axum::Json;
use axum::body::Bytes;

use super::{ApiError, R, S};
use crate::api::Uploaded;

pub async fn upload(state: S, body: Bytes) -> R<Json<Uploaded>> {
    let bytes = body.len() as u64;
    let artifacts = state.artifacts.clone();
    let art = tokio::task::spawn_blocking(move || artifacts.put(&body))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("storing the upload: {e}")))?;
    Ok(Json(Uploaded {
        digest: art.digest,
        bytes,
    }))
}

//! `PUT /v1/artifacts`: an app directory's tar archive, streamed to disk and stored
//! under its digest. Memory stays flat whatever the size: the body goes to a blocking
//! writer through a short queue, so a slow disk slows the client, not the server.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use miren_core::artifact::ArtifactError;
use miren_core::model::Digest;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::extract::{Json, Query};
use super::{ApiError, R, S, parse};
use crate::api::Uploaded;

/// Uploads bigger than this are refused (413), before their body is read when they
/// say their length.
pub const MAX_UPLOAD: u64 = 1 << 30;

#[derive(Deserialize)]
pub struct UploadQuery {
    /// What the client computed; the upload is refused when what arrived differs.
    digest: Option<String>,
}

/// What the writer is given: the next piece, or the word to give up.
enum Piece {
    Data(bytes::Bytes),
    Abandon,
}

pub async fn upload(
    state: S,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> R<Json<Uploaded>> {
    let expected: Option<Digest> = q.digest.as_deref().map(parse).transpose()?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD) {
        return Err(too_large());
    }
    let (tx, mut rx) = mpsc::channel::<Piece>(8);
    let artifacts = state.artifacts.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut up = artifacts.upload()?;
        while let Some(piece) = rx.blocking_recv() {
            match piece {
                Piece::Data(b) => up.write(&b)?,
                Piece::Abandon => return Ok(None),
            }
        }
        up.finish(expected.as_ref()).map(Some)
    });
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    let mut refused = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                refused = Some(ApiError::invalid(format!("reading the upload: {e}")));
                break;
            }
        };
        bytes += chunk.len() as u64;
        if bytes > MAX_UPLOAD {
            refused = Some(too_large());
            break;
        }
        if tx.send(Piece::Data(chunk)).await.is_err() {
            break; // the writer failed: its error says why
        }
    }
    if refused.is_some() {
        let _ = tx.send(Piece::Abandon).await;
    }
    drop(tx);
    let stored = writer
        .await
        .map_err(ApiError::internal)?
        .map_err(storing_failed)?;
    if let Some(e) = refused {
        return Err(e);
    }
    let art = stored.ok_or_else(|| ApiError::internal("the upload was abandoned"))?;
    if let Some(store) = &state.cluster_store {
        miren_core::artifact::replica::publish(store.as_ref(), &state.artifacts, &art.digest)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(Json(Uploaded {
        digest: art.digest,
        bytes,
    }))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the upload is over the {} GiB limit: leave big files out with .gitignore",
            MAX_UPLOAD >> 30
        ),
    )
}

fn storing_failed(e: ArtifactError) -> ApiError {
    match &e {
        ArtifactError::Mismatch { .. } => ApiError::invalid(e.to_string()),
        ArtifactError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                format!("the server's disk is full: {e}; nothing was stored"),
            )
        }
        _ => ApiError::internal(format!("storing the upload: {e}")),
    }
}

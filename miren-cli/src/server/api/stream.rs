//! Answers that stream one JSON object per line (NDJSON): deploy progress, logs.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio_stream::Stream;

use super::ApiError;

/// A response streaming `lines` as they come.
pub fn ndjson(lines: impl Stream<Item = Vec<u8>> + Send + 'static) -> Response {
    let stream = tokio_stream::StreamExt::map(lines, Ok::<_, std::convert::Infallible>);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| ApiError::internal(e).into_response())
}

/// One line: the value as JSON, then a newline.
pub fn line<T: Serialize>(v: &T) -> Vec<u8> {
    // The wire types are plain data with string keys: they always serialize.
    let mut b = serde_json::to_vec(v).unwrap_or_else(|e| {
        format!("{{\"error\":{{\"code\":\"internal\",\"message\":\"{e}\"}}}}").into_bytes()
    });
    b.push(b'\n');
    b
}

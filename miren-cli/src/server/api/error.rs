//! The error answer: `{"error": {"code", "message"}}` with a status code that says
//! whose fault it was.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use miren_core::controller::ControllerError;

use crate::api::{ErrorBody, ErrorDetail};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request itself is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500: the server failed.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<ControllerError> for ApiError {
    fn from(e: ControllerError) -> Self {
        let (status, code) = match &e {
            ControllerError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            // The state doesn't allow it (already active, nothing to roll back to).
            ControllerError::Invalid(_) => (StatusCode::CONFLICT, "conflict"),
            ControllerError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
            // The runtime or the store failed: the server's fault, not the caller's.
            ControllerError::Runtime(_) => (StatusCode::INTERNAL_SERVER_ERROR, "runtime"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self::new(status, code, e.to_string())
    }
}

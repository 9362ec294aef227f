//! The request extractors handlers use: axum's, with every rejection answered as the
//! API's JSON error (axum's own answer plain text), and messages that never echo
//! more than a bit of what was sent.

use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use super::ApiError;

/// JSON bodies bigger than this are refused (413): an app.toml is kilobytes.
pub const MAX_JSON: usize = 4 << 20;

/// A JSON body, in a request or an answer.
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// A query string.
pub struct Query<T>(pub T);

/// Path parameters.
pub struct Path<T>(pub T);

/// The API's error for an axum rejection: its status, a code naming it, its text.
fn rejected(status: StatusCode, text: &str) -> ApiError {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        s if s.is_server_error() => "internal",
        _ => "invalid",
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the body is over the {} MiB limit", MAX_JSON >> 20)
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "send the body as JSON, with `Content-Type: application/json`".to_string()
        }
        _ => clip(text),
    };
    ApiError::new(status, code, message)
}

/// Bodies past this size are parsed on a blocking thread, off the API's.
const PARSE_INLINE: usize = 64 << 10;

impl<T: DeserializeOwned + Send + 'static, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !is_json {
            return Err(rejected(StatusCode::UNSUPPORTED_MEDIA_TYPE, ""));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(r) => return Err(rejected(r.status(), &r.body_text())),
        };
        let small = bytes.len() <= PARSE_INLINE;
        let parse = move || match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(r) => Err(rejected(r.status(), &r.body_text())),
        };
        if small {
            return parse();
        }
        tokio::task::spawn_blocking(parse)
            .await
            .map_err(ApiError::internal)?
    }
}

impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        match <axum::Json<T> as OptionalFromRequest<S>>::from_request(req, state).await {
            Ok(v) => Ok(v.map(|axum::Json(v)| Json(v))),
            Err(r) => Err(rejected(r.status(), &r.body_text())),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(rejected(StatusCode::BAD_REQUEST, &r.body_text())),
        }
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(r) => {
                let status = r.status();
                Err(rejected(status, &r.body_text()))
            }
        }
    }
}

/// Text the client sent, or a message quoting it, cut to a length that fits a line:
/// a 10 KB name is not echoed back.
pub fn clip(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// `message`, which quotes `input`, with a long input clipped wherever it appears.
pub fn quoting(input: &str, message: String) -> String {
    if input.len() > 300 {
        message.replace(input, &clip(input))
    } else {
        message
    }
}

/// 405 for a path that exists with another method.
pub async fn method_not_allowed() -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this API route doesn't take that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_clipped_on_a_char_boundary() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(5000);
        let c = clip(&long);
        assert!(c.len() < 400, "{}", c.len());
        assert!(c.ends_with("(10000 bytes)"), "{c}");
    }
}

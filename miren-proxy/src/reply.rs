//! Answers the proxy gives itself, in plain text: no route, an app with nothing to
//! answer, an instance that failed, its own health.

use std::time::Duration;

/// An answer from the proxy itself, maybe with `Retry-After`.
#[derive(Debug)]
pub struct LocalReply {
    pub status: u16,
    pub body: String,
    pub retry_after: bool,
    /// The body is an app's error page (`[static]`), not plain text.
    pub html: bool,
}

impl LocalReply {
    pub fn new(status: u16, body: String) -> Self {
        Self {
            status,
            body,
            retry_after: false,
            html: false,
        }
    }

    /// 200 for `/.well-known/miren/health`.
    pub fn healthy() -> Self {
        Self::new(200, "ok\n".into())
    }

    /// 504: the instance took longer than the upstream timeout to start answering.
    pub fn too_slow(app: &str, timeout: Duration) -> Self {
        Self::new(
            504,
            format!("app {app} did not answer within {}\n", show(timeout)),
        )
    }

    /// 503 with `Retry-After: 1`: the condition is expected to pass.
    pub fn retry_later(body: String) -> Self {
        Self {
            status: 503,
            body,
            retry_after: true,
            html: false,
        }
    }

    /// 502: the instance failed to answer.
    pub fn failed(app: &str, why: impl std::fmt::Display) -> Self {
        Self::new(502, format!("app {app}: the web instance failed: {why}\n"))
    }
}

/// A timeout as people write it: `60s`, `300ms`.
pub fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The reason phrase of the statuses the proxy answers with itself.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

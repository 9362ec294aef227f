//! The access log: one line per request (app, sandbox, method, path, status,
//! duration), target `miren::access`, whichever protocol carried it.

use std::time::Instant;

/// The target of access lines: a subscriber may send them elsewhere than the rest.
pub const ACCESS_TARGET: &str = "miren::access";

/// What a request's access line needs from its head, taken only when someone
/// listens: the common case copies nothing.
pub struct LogLine {
    /// When the request's head was read: the clock is read only for the log.
    pub started: Instant,
    pub method: String,
    pub path: String,
}

impl LogLine {
    /// A line for this request, or `None` when access lines are off.
    #[inline]
    pub fn new(method: &[u8], path: &[u8]) -> Option<Self> {
        enabled().then(|| LogLine {
            started: Instant::now(),
            method: String::from_utf8_lossy(method).into_owned(),
            path: String::from_utf8_lossy(path).into_owned(),
        })
    }

    /// Writes the line.
    pub fn write(&self, app: &str, sandbox: &str, status: u16) {
        tracing::info!(
            target: "miren::access",
            "{app} {sandbox} {} {} {status} {:.1}ms",
            self.method,
            self.path,
            self.started.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// Whether access lines are wanted at all: building one costs more than the check.
#[inline]
fn enabled() -> bool {
    tracing::enabled!(target: "miren::access", tracing::Level::INFO)
}

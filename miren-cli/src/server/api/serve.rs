//! Serving the API on its sockets, with the limits a hostile client meets: a request
//! head must arrive within [`HEAD_TIMEOUT`], and at most [`MAX_CONNECTIONS`] are open
//! per socket (the next waits in the kernel's queue, holding none of the server's
//! file descriptors), so slow or piled-up clients can't starve the proxy or the other
//! socket of descriptors.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

/// How long a client may take to send a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once per socket.
pub const MAX_CONNECTIONS: usize = 256;

/// Serves `app` on the Unix socket until the task is dropped.
pub async fn serve_unix(listener: UnixListener, app: Router) {
    let slots = std::sync::Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(connection(conn, app.clone(), slot));
            }
            Err(e) => pause_after(e).await,
        }
    }
}

/// Serves `app` on TCP until the task is dropped.
pub async fn serve_tcp(listener: TcpListener, app: Router) {
    let slots = std::sync::Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((conn, _)) => {
                let _ = conn.set_nodelay(true);
                tokio::spawn(connection(conn, app.clone(), slot));
            }
            Err(e) => pause_after(e).await,
        }
    }
}

/// Out of descriptors, say: wait a little instead of spinning.
async fn pause_after(e: std::io::Error) {
    tracing::warn!("accepting an API connection: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn connection<T>(conn: T, app: Router, _slot: tokio::sync::OwnedSemaphorePermit)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    let service = TowerToHyperService::new(app);
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(conn), service)
        .await;
}

/// Whether two secrets are equal, in time that doesn't depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Whether `req` carries `Authorization: Bearer <token>`.
pub fn bearer_is(req: &axum::extract::Request, token: &str) -> bool {
    req.headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes()))
}

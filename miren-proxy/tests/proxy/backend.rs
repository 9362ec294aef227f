//! The web service the tests deploy, run from this same test binary
//! (`MIREN_TEST_ROLE=web`): a hyper server on `$PORT`.
//!
//! - `GET /`: `web <pid> host=… xff=… proto=… fhost=… rid=…`
//! - `POST /upload`: reads the body as it streams, answers its size
//! - `GET /download?bytes=N`: streams N bytes
//! - `GET /ws`: a WebSocket that echoes every message
//! - `POST /refuse`: 413 at once, without reading the body
//! - `GET /count`: how many requests it got before this one
//!
//! With `ONESHOT=1` it is a minimal server instead that answers one request per
//! connection and then closes it, although its answer says nothing of closing — as a
//! server whose keep-alive timeout is shorter than the proxy's idle time behaves.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::tungstenite::protocol::Role;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// The command that runs the backend.
pub fn command() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    format!(
        "MIREN_TEST_ROLE=web exec '{}' backend --exact --nocapture --test-threads=1 --quiet",
        exe.display()
    )
}

pub fn run() {
    if std::env::var("MIREN_TEST_ROLE").as_deref() != Ok("web") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(serve());
    std::process::exit(0);
}

async fn serve() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("PORT"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!("listening on {port}");
    if std::env::var("ONESHOT").is_ok() {
        return oneshot(listener).await;
    }
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handle);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(conn), service)
                .await;
        });
    }
}

async fn oneshot(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let body = format!("oneshot {}", std::process::id());
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        });
    }
}

fn full(status: StatusCode, s: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(s))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

/// Requests this instance got.
static SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn handle(mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let seen = SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    match req.uri().path() {
        "/count" => Ok(full(StatusCode::OK, seen.to_string())),
        "/upload" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(e) => return Ok(full(StatusCode::BAD_REQUEST, e.to_string())),
                }
            }
            Ok(full(StatusCode::OK, n.to_string()))
        }
        "/refuse" => Ok(full(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large\n".to_string(),
        )),
        "/download" => {
            let total: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("bytes="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::unfold(total, move |left| {
                let chunk = chunk.clone();
                async move {
                    if left == 0 {
                        return None;
                    }
                    let n = left.min(chunk.len() as u64);
                    Some((
                        Ok::<_, std::io::Error>(Frame::data(chunk.slice(..n as usize))),
                        left - n,
                    ))
                }
            });
            Ok(Response::new(BodyExt::boxed(StreamBody::new(stream))))
        }
        "/ws" => {
            let key = h("sec-websocket-key");
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(io) = upgrade.await else { return };
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(io),
                    Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() || ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
            let mut r = full(StatusCode::SWITCHING_PROTOCOLS, String::new());
            let hs = r.headers_mut();
            hs.insert(
                "upgrade",
                hyper::header::HeaderValue::from_static("websocket"),
            );
            hs.insert(
                "connection",
                hyper::header::HeaderValue::from_static("Upgrade"),
            );
            if let Ok(v) = hyper::header::HeaderValue::from_str(&accept) {
                hs.insert("sec-websocket-accept", v);
            }
            Ok(r)
        }
        _ => {
            if let Some(ms) = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("sleep_ms="))
                .and_then(|n| n.parse().ok())
            {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let body = format!(
                "web {} host={} xff={} proto={} fhost={} rid={} v={}",
                std::process::id(),
                h("host"),
                h("x-forwarded-for"),
                h("x-forwarded-proto"),
                h("x-forwarded-host"),
                h("x-request-id"),
                std::env::var("V").unwrap_or_default(),
            );
            Ok(full(StatusCode::OK, body))
        }
    }
}

//! Serving one client connection: route by host, forward, answer errors plainly.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::table::{Lookup, Shared, pick};

type Body = BoxBody<Bytes, hyper::Error>;

/// Upstream response timeout (SPEC §6).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Instances tried for a request whose connection was refused.
const ATTEMPTS: usize = 3;
/// Where the proxy answers for itself.
pub const HEALTH_PATH: &str = "/.well-known/miren/health";

pub struct Forwarder {
    table: Shared,
    client: Client<HttpConnector, Body>,
    seed: AtomicUsize,
}

impl Forwarder {
    pub fn new(table: Shared) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self {
            table,
            client,
            seed: AtomicUsize::new(0),
        }
    }

    pub async fn serve_connection(self: Arc<Self>, conn: tokio::net::TcpStream, peer: SocketAddr) {
        let me = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let me = me.clone();
            async move { Ok::<_, Infallible>(me.handle(req, peer).await) }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .header_read_timeout(Duration::from_secs(30))
            .timer(hyper_util::rt::TokioTimer::new())
            .max_buf_size(64 * 1024);
        let _ = builder
            .serve_connection_with_upgrades(TokioIo::new(conn), service)
            .await;
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        if path == HEALTH_PATH {
            return text(StatusCode::OK, "ok\n");
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let table = self.table.load();
        let (app, target) = match table.lookup(&host) {
            Lookup::NoRoute => {
                return text(
                    StatusCode::NOT_FOUND,
                    &format!("no route for host {host}\n"),
                );
            }
            Lookup::NoWeb(app) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("app {app} has no web service running\n"),
                );
            }
            Lookup::App(app, t) => (app.to_string(), t),
        };
        let (mut parts, body) = req.into_parts();
        prepare_headers(&mut parts.headers, peer, &host);
        let empty_body = body_is_empty(&parts.headers, &body);
        let mut body = Some(body.boxed());
        let mut tried = Vec::new();
        let seed = self
            .seed
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(2654435761);
        let response = loop {
            let Some(backend) = pick(target, &tried, seed.wrapping_add(tried.len())) else {
                let mut r = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("app {app} has no ready web instance; try again shortly\n"),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                break r;
            };
            let uri = format!(
                "http://{}{}",
                backend.addr,
                parts.uri.path_and_query().map_or("/", |p| p.as_str())
            );
            let mut out = Request::builder().method(parts.method.clone()).uri(uri);
            if let Some(h) = out.headers_mut() {
                *h = parts.headers.clone();
            }
            let b = match body.take() {
                Some(b) => b,
                None => Empty::new().map_err(|never| match never {}).boxed(),
            };
            let Ok(out) = out.body(b) else {
                break text(StatusCode::BAD_REQUEST, "bad request\n");
            };
            backend.in_flight.fetch_add(1, Ordering::Relaxed);
            let r = tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(out)).await;
            backend.in_flight.fetch_sub(1, Ordering::Relaxed);
            match r {
                Ok(Ok(mut resp)) => {
                    strip_hop_by_hop(resp.headers_mut());
                    tracing::debug!(sandbox = %backend.sandbox, "forwarded");
                    break resp.map(|b| b.boxed());
                }
                Ok(Err(e)) if e.is_connect() && empty_body && tried.len() + 1 < ATTEMPTS => {
                    tried.push(backend.addr);
                }
                Ok(Err(e)) => {
                    break text(
                        StatusCode::BAD_GATEWAY,
                        &format!("app {app}: the web instance failed: {e}\n"),
                    );
                }
                Err(_) => {
                    break text(
                        StatusCode::GATEWAY_TIMEOUT,
                        &format!(
                            "app {app} did not answer within {}s\n",
                            UPSTREAM_TIMEOUT.as_secs()
                        ),
                    );
                }
            }
        };
        tracing::info!(
            target: "miren::access",
            "{app} {method} {path} {} {:.1}ms",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1e3
        );
        response
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn body_is_empty(h: &HeaderMap, body: &Incoming) -> bool {
    use hyper::body::Body as _;
    !h.contains_key(header::TRANSFER_ENCODING)
        && (body.is_end_stream()
            || h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) == Some("0"))
}

const HOP_BY_HOP: [&str; 7] = [
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| n != header::UPGRADE)
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    if !h.contains_key(header::UPGRADE) {
        h.remove(header::CONNECTION);
    }
}

fn prepare_headers(h: &mut HeaderMap, peer: SocketAddr, host: &str) {
    strip_hop_by_hop(h);
    let ip = peer.ip().to_string();
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert("x-forwarded-host", v);
    }
    if !h.contains_key("x-request-id") {
        let id = miren_core::model::new_suffix();
        if let Ok(v) = HeaderValue::from_str(&id) {
            h.insert("x-request-id", v);
        }
    }
}

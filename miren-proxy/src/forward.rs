//! Serving one client connection: route by host, hold requests for a pool at zero
//! (the activator), forward, pass upgrades through, answer errors plainly.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use miren_core::controller::Controller;
use tokio::sync::watch;

use crate::ProxyConfig;
use crate::table::{AppTarget, Lookup, PoolLoad, Shared, pick};

use crate::upstream::{UpstreamError, Upstreams};

type Body = BoxBody<Bytes, hyper::Error>;

/// Instances tried for a request whose connection was refused.
const ATTEMPTS: usize = 3;
/// Where the proxy answers for itself.
pub const HEALTH_PATH: &str = "/.well-known/miren/health";

pub struct Forwarder {
    table: Shared,
    version: watch::Receiver<u64>,
    controller: Option<Controller>,
    config: ProxyConfig,
    upstreams: Upstreams,
    seed: AtomicUsize,
    /// Requests held per app.
    held: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

/// Counts a request in its pool's demand while it lives.
struct InFlight(Arc<PoolLoad>);

impl InFlight {
    fn new(load: Arc<PoolLoad>) -> Self {
        let now = load.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        load.peak.fetch_max(now, Ordering::Relaxed);
        Self(load)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a held request against its app's cap while it waits.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Forwarder {
    pub fn new(
        table: Shared,
        version: watch::Receiver<u64>,
        controller: Option<Controller>,
        config: ProxyConfig,
    ) -> Self {
        Self {
            table,
            version,
            controller,
            config,
            upstreams: Upstreams::default(),
            seed: AtomicUsize::new(0),
            held: Mutex::new(HashMap::new()),
        }
    }

    pub async fn serve_connection(self: Arc<Self>, conn: tokio::net::TcpStream, peer: SocketAddr) {
        let me = self.clone();
        // The client's address, as X-Forwarded-For wants it: once per connection.
        let ip = HeaderValue::from_str(&peer.ip().to_string()).ok();
        let service = hyper::service::service_fn(move |req| {
            let me = me.clone();
            let ip = ip.clone();
            // Boxed: the request future is large; hyper then moves a pointer, not it.
            Box::pin(async move { Ok::<_, Infallible>(me.handle(req, ip).await) })
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .header_read_timeout(self.config.header_timeout)
            .timer(hyper_util::rt::TokioTimer::new())
            .max_buf_size(64 * 1024);
        let _ = builder
            .serve_connection_with_upgrades(TokioIo::new(conn), service)
            .await;
    }

    async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: Option<HeaderValue>,
    ) -> Response<Body> {
        let started = Instant::now();
        if req.uri().path() == HEALTH_PATH {
            return text(StatusCode::OK, "ok\n");
        }
        // Header values are shared buffers: cloning one is a reference count.
        let host_value = req.headers().get(header::HOST).cloned();
        let authority = req.uri().authority().map(|a| a.as_str().to_string());
        let host = host_value
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .or(authority.as_deref())
            .unwrap_or_default();
        let (target, _demand) = match self.route(host).await {
            Ok(x) => x,
            Err(r) => {
                access(
                    host,
                    "-",
                    req.method(),
                    req.uri().path(),
                    r.status(),
                    started,
                );
                return r;
            }
        };
        let app: &str = &target.name;
        let client_upgrade = wants_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        prepare_headers(&mut parts.headers, peer, host);
        let empty_body = client_upgrade.is_some() || body_is_empty(&parts.headers, &body);
        let idempotent = client_upgrade.is_none()
            && matches!(
                parts.method,
                hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
            );
        // A retry goes to another instance: with one, there is nothing to keep a copy for.
        let retryable = idempotent && empty_body && target.backends.len() > 1;
        let mut body = Some(body.boxed());
        let mut tried = Vec::new();
        let seed = self
            .seed
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(2654435761);
        let mut sandbox = "-";
        let response = loop {
            let Some(backend) = pick(&target, &tried, seed.wrapping_add(tried.len())) else {
                break retry_later(&format!(
                    "app {app} has no ready web instance; try again shortly\n"
                ));
            };
            sandbox = &backend.sandbox;
            // Origin-form: the instance is dialled directly; Host stays as sent.
            let mut uri = hyper::http::uri::Parts::default();
            uri.path_and_query = parts.uri.path_and_query().cloned();
            let Ok(uri) = hyper::Uri::from_parts(uri) else {
                break text(StatusCode::BAD_REQUEST, "bad request target\n");
            };
            let mut out = Request::builder().method(parts.method.clone()).uri(uri);
            if let Some(h) = out.headers_mut() {
                // Only a request that may be retried needs its headers kept.
                *h = if retryable {
                    parts.headers.clone()
                } else {
                    std::mem::take(&mut parts.headers)
                };
            }
            let b = match body.take() {
                Some(b) => b,
                None => Empty::new().map_err(|never| match never {}).boxed(),
            };
            let Ok(out) = out.body(b) else {
                break text(StatusCode::BAD_REQUEST, "bad request\n");
            };
            backend.in_flight.fetch_add(1, Ordering::Relaxed);
            let r = tokio::time::timeout(
                self.config.upstream_timeout,
                self.upstreams.send(backend.addr, out),
            )
            .await;
            backend.in_flight.fetch_sub(1, Ordering::Relaxed);
            match r {
                Ok(Ok(mut resp)) => {
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                        if let Some(client) = client_upgrade {
                            let upstream = hyper::upgrade::on(&mut resp);
                            tokio::spawn(splice(client, upstream));
                        }
                        break resp.map(|b| b.boxed());
                    }
                    strip_hop_by_hop(resp.headers_mut());
                    break resp.map(|b| b.boxed());
                }
                // Refused: nothing was sent, any request can go elsewhere. A bodiless
                // idempotent request whose instance died before answering (killed
                // mid-request) can too.
                Ok(Err(e))
                    if ((matches!(e, UpstreamError::Connect(_)) && empty_body) || retryable)
                        && tried.len() + 1 < ATTEMPTS =>
                {
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
                            self.config.upstream_timeout.as_secs()
                        ),
                    );
                }
            }
        };
        access(
            app,
            sandbox,
            &parts.method,
            parts.uri.path(),
            response.status(),
            started,
        );
        response
    }

    /// Resolves the host to an app with a ready instance, holding the request while
    /// its pool starts one (scale from zero). The request counts as demand from here.
    async fn route(&self, host: &str) -> Result<(Arc<AppTarget>, InFlight), Response<Body>> {
        let mut table = self.table.load_full();
        let mut version = self.version.clone();
        let mut hold: Option<(Held, Instant, u64)> = None;
        let mut demand: Option<InFlight> = None;
        loop {
            version.borrow_and_update();
            let (app, target) = match table.lookup(host) {
                Lookup::NoRoute => {
                    return Err(text(
                        StatusCode::NOT_FOUND,
                        &format!("no route for host {host}\n"),
                    ));
                }
                Lookup::NoWeb(app) => {
                    return Err(text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("app {app} has no web service running\n"),
                    ));
                }
                Lookup::NotDeployed(app) => {
                    return Err(retry_later(&format!(
                        "app {app} has no active version yet (is it still deploying?)\n"
                    )));
                }
                // A reference count, not a copy: this runs for every request.
                Lookup::App(t) => (t.name.clone(), t),
            };
            if demand.is_none() {
                demand = Some(InFlight::new(target.load.clone()));
            }
            if !target.backends.is_empty() {
                let demand = demand.unwrap_or_else(|| InFlight::new(target.load.clone()));
                return Ok((target.clone(), demand));
            }
            let (since, since_ms) = match &hold {
                Some((_, since, since_ms)) => (*since, *since_ms),
                None => {
                    let counter = self.held_counter(&app);
                    if counter.fetch_add(1, Ordering::Relaxed) >= self.config.max_held_per_app {
                        counter.fetch_sub(1, Ordering::Relaxed);
                        return Err(retry_later(&format!(
                            "app {app} is starting and already has {} requests waiting; try again shortly\n",
                            self.config.max_held_per_app
                        )));
                    }
                    if let (Some(c), Some(pool)) = (&self.controller, &target.pool) {
                        c.want_capacity(pool);
                    }
                    let now_ms = miren_core::runtime::now_millis();
                    hold = Some((Held(counter), Instant::now(), now_ms));
                    (Instant::now(), now_ms)
                }
            };
            if let Some((at, why)) = &target.last_death
                && *at >= since_ms
            {
                return Err(text(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "app {app}: its web instance died while starting ({why}); see `miren logs -a {app}`\n"
                    ),
                ));
            }
            let deadline = since + self.config.hold_timeout;
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, version.changed()).await {
                Ok(Ok(())) => table = self.table.load_full(),
                _ => {
                    return Err(retry_later(&format!(
                        "app {app} did not start within {}s; try again shortly\n",
                        self.config.hold_timeout.as_secs()
                    )));
                }
            }
        }
    }

    fn held_counter(&self, app: &str) -> Arc<AtomicUsize> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.entry(app.to_string()).or_default().clone()
    }
}

/// Copies bytes both ways between an upgraded client and upstream (WebSockets).
async fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (Ok(c), Ok(u)) = tokio::join!(client, upstream) else {
        return;
    };
    let mut c = TokioIo::new(c);
    let mut u = TokioIo::new(u);
    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
}

fn access(
    app: &str,
    sandbox: &str,
    method: &hyper::Method,
    path: &str,
    status: StatusCode,
    started: Instant,
) {
    tracing::info!(
        target: "miren::access",
        "{app} {sandbox} {method} {path} {} {:.1}ms",
        status.as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
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

fn retry_later(body: &str) -> Response<Body> {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, body);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn wants_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

fn body_is_empty(h: &HeaderMap, body: &Incoming) -> bool {
    use hyper::body::Body as _;
    !h.contains_key(header::TRANSFER_ENCODING)
        && (body.is_end_stream()
            || h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) == Some("0"))
}

/// Whether a header only concerns one hop (RFC 9110 §7.6.1).
fn is_hop_by_hop(n: &HeaderName) -> bool {
    n == header::CONNECTION
        || n == header::TE
        || n == header::TRAILER
        || n == header::TRANSFER_ENCODING
        || n == header::PROXY_AUTHENTICATE
        || n == header::PROXY_AUTHORIZATION
        || n.as_str() == "keep-alive"
        || n.as_str() == "proxy-connection"
}

/// Removes hop-by-hop headers (and those `Connection` names), keeping an upgrade's
/// `Connection: upgrade` and `Upgrade`. One pass; removes only what is there.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    if !h.keys().any(is_hop_by_hop) {
        if h.contains_key(header::UPGRADE) {
            h.remove(header::UPGRADE);
        }
        return;
    }
    let upgrade = wants_upgrade(h);
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
    let hop: Vec<HeaderName> = h.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for n in hop {
        h.remove(n);
    }
    if upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::UPGRADE);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A unique request id: this process's random prefix and a counter, as hex. Cheap
/// enough for every request.
fn request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| miren_core::model::new_suffix()[..10].to_string());
    format!("{prefix}{:012x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn prepare_headers(h: &mut HeaderMap, peer: Option<HeaderValue>, host: &str) {
    strip_hop_by_hop(h);
    if let Some(ip) = peer {
        // Appended to what earlier proxies said; set as is otherwise (no allocation).
        let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => ip
                .to_str()
                .ok()
                .and_then(|ip| HeaderValue::from_str(&format!("{prev}, {ip}")).ok()),
            None => Some(ip),
        };
        if let Some(v) = xff {
            h.insert(X_FORWARDED_FOR, v);
        }
    }
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(X_FORWARDED_HOST, v);
    }
    if !h.contains_key(&X_REQUEST_ID)
        && let Ok(v) = HeaderValue::from_str(&request_id())
    {
        h.insert(X_REQUEST_ID, v);
    }
}

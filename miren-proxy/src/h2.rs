//! HTTP/2 clients (h2c with prior knowledge), served by hyper; requests go to the
//! instance as HTTP/1.1 through [`Upstreams`](crate::upstream::Upstreams).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::forward::{
    ATTEMPTS, Forwarder, HEALTH_PATH, OnBackend, Reject, access, write_request_id,
};
use crate::table::pick;
use crate::upstream::UpstreamError;

type Body = BoxBody<Bytes, hyper::Error>;

pub async fn serve<T>(fwd: Arc<Forwarder>, io: T, peer: SocketAddr)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ip = HeaderValue::from_str(&peer.ip().to_string()).ok();
    let service = hyper::service::service_fn(move |req| {
        let fwd = fwd.clone();
        let ip = ip.clone();
        Box::pin(async move { Ok::<_, Infallible>(handle(&fwd, req, ip).await) })
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn handle(
    fwd: &Forwarder,
    req: Request<Incoming>,
    peer: Option<HeaderValue>,
) -> Response<Body> {
    let started = Instant::now();
    if req.uri().path() == HEALTH_PATH {
        return text(Reject::new(200, "ok\n".into()));
    }
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    let host_value = req.headers().get(header::HOST).cloned();
    // A Host header, when a client sends one, names the app (as in HTTP/1.1).
    let host = host_value
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .or(authority.as_deref())
        .unwrap_or_default()
        .to_string();
    let (target, _demand) = match fwd.route(&host).await {
        Ok(x) => x,
        Err(r) => {
            access(
                &host,
                "-",
                req.method().as_str(),
                req.uri().path(),
                r.status,
                started,
            );
            return text(r);
        }
    };
    let app: &str = &target.name;
    let (mut parts, body) = req.into_parts();
    prepare_headers(&mut parts.headers, peer, &host);
    let empty_body = body_is_empty(&parts.headers, &body);
    let idempotent = matches!(
        parts.method,
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
    );
    let retryable = idempotent && empty_body && target.backends.len() > 1;
    let mut body = Some(body.boxed());
    let mut tried = Vec::new();
    let seed = fwd.seed();
    let mut sandbox = "-";
    let response = loop {
        let Some(backend) = pick(&target, &tried, seed.wrapping_add(tried.len())) else {
            break text(Reject::retry_later(format!(
                "app {app} has no ready web instance; try again shortly\n"
            )));
        };
        sandbox = &backend.sandbox;
        let mut uri = hyper::http::uri::Parts::default();
        uri.path_and_query = parts.uri.path_and_query().cloned();
        let Ok(uri) = hyper::Uri::from_parts(uri) else {
            break text(Reject::new(400, "bad request target\n".into()));
        };
        let mut out = Request::builder().method(parts.method.clone()).uri(uri);
        if let Some(h) = out.headers_mut() {
            *h = if retryable {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            };
            // HTTP/2 has no Host header: the instance gets one.
            if !h.contains_key(header::HOST)
                && let Ok(v) = HeaderValue::from_str(&host)
            {
                h.insert(header::HOST, v);
            }
        }
        let b = match body.take() {
            Some(b) => b,
            None => Empty::new().map_err(|never| match never {}).boxed(),
        };
        let Ok(out) = out.body(b) else {
            break text(Reject::new(400, "bad request\n".into()));
        };
        let counted = OnBackend::new(&backend.in_flight);
        let r = tokio::time::timeout(
            fwd.config.upstream_timeout,
            fwd.h2_upstreams.send(backend.addr, out),
        )
        .await;
        drop(counted);
        match r {
            Ok(Ok(mut resp)) => {
                strip_hop_by_hop(resp.headers_mut());
                break resp.map(|b| b.boxed());
            }
            Ok(Err(e))
                if ((matches!(e, UpstreamError::Connect(_)) && empty_body) || retryable)
                    && tried.len() + 1 < ATTEMPTS =>
            {
                tried.push(backend.addr);
            }
            Ok(Err(e)) => {
                break text(Reject::new(
                    502,
                    format!("app {app}: the web instance failed: {e}\n"),
                ));
            }
            Err(_) => {
                break text(Reject::too_slow(app, fwd.config.upstream_timeout));
            }
        }
    };
    access(
        app,
        sandbox,
        parts.method.as_str(),
        parts.uri.path(),
        response.status().as_u16(),
        started,
    );
    response
}

fn text(r: Reject) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(r.body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if r.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn body_is_empty(h: &HeaderMap, body: &Incoming) -> bool {
    use hyper::body::Body as _;
    body.is_end_stream() || h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) == Some("0")
}

/// Removes hop-by-hop headers and those `Connection` names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    let hop: Vec<HeaderName> = h
        .keys()
        .filter(|n| crate::h1::is_hop_by_hop(n.as_str()))
        .cloned()
        .collect();
    for n in hop {
        h.remove(n);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn prepare_headers(h: &mut HeaderMap, peer: Option<HeaderValue>, host: &str) {
    strip_hop_by_hop(h);
    if let Some(ip) = peer {
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
    if !h.contains_key(&X_REQUEST_ID) {
        let mut id = Vec::with_capacity(22);
        write_request_id(&mut id);
        if let Ok(v) = HeaderValue::from_bytes(&id) {
            h.insert(X_REQUEST_ID, v);
        }
    }
}

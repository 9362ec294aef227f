//! HTTP/2 clients (h2c with prior knowledge), served by hyper; requests go to the
//! instance as HTTP/1.1 through [`Upstreams`](crate::upstream::Upstreams), under the
//! same [`policy`](crate::policy) and header rules as HTTP/1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;

use crate::counted::Counted;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::access::LogLine;
use crate::forwarder::{Forwarder, HEALTH_PATH, OnBackend};
use crate::headers::{self, forwarded_for, is_hop_by_hop, write_request_id};
use crate::policy::{self, Failure, Next, Tries};
use crate::reply::LocalReply;
use crate::upstream::UpstreamError;

type Body = BoxBody<Bytes, hyper::Error>;

pub async fn serve<T>(fwd: Arc<Forwarder>, io: T, peer: SocketAddr)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ip: Arc<str> = peer.ip().to_string().into();
    let trusted = crate::trust::trusted(&fwd.config.trust_forwarded_from, peer.ip());
    let service = hyper::service::service_fn(move |req| {
        let fwd = fwd.clone();
        let ip = ip.clone();
        Box::pin(async move { Ok::<_, Infallible>(handle(&fwd, req, &ip, trusted).await) })
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn handle(
    fwd: &Forwarder,
    req: Request<Incoming>,
    client_ip: &str,
    trusted: bool,
) -> Response<Body> {
    let log = LogLine::new(
        req.method().as_str().as_bytes(),
        req.uri().path().as_bytes(),
    );
    let started = std::time::Instant::now();
    let rid = request_id(req.headers());
    let text = |r: LocalReply| with_request_id(text(r), &rid);
    if req.uri().path() == HEALTH_PATH {
        return text(LocalReply::healthy());
    }
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    // A Host header, when a client sends one, names the app (as in HTTP/1.1).
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(authority.as_deref())
        .unwrap_or_default()
        .to_string();
    // `[static]`: its files first; an app of files only has nothing else.
    if let Some(t) = fwd.site(&host)
        && let Some(site) = &t.site
    {
        let method = req.method().clone();
        let fetch = method == hyper::Method::GET || method == hyper::Method::HEAD;
        if fetch && let Some(resp) = file(site, &req).await {
            let resp = resp.map(|b| Counted::new(b, t.stats.clone()).boxed());
            policy::answered(
                log.as_ref(),
                started,
                &t,
                None,
                "static",
                resp.status().as_u16(),
            );
            return with_request_id(resp, &rid);
        }
        if !t.has_web {
            let r = match fetch {
                true => LocalReply::new(404, "no such file\n".into()),
                false => LocalReply::new(405, "this app serves files only: GET or HEAD\n".into()),
            };
            policy::answered(log.as_ref(), started, &t, None, "static", r.status);
            return text(r);
        }
    }
    let routed = match fwd.route(&host).await {
        Ok(r) => r,
        Err(r) => {
            policy::log(log.as_ref(), &host, "-", r.status);
            return text(r);
        }
    };
    let (mut parts, body) = req.into_parts();
    prepare_headers(&mut parts.headers, client_ip, trusted, &host, &rid);
    let empty_body = body_is_empty(&parts.headers, &body);
    let idempotent = matches!(
        parts.method,
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
    );
    // A send hands the body stream over: only an empty one can go again, and only a
    // request that can go again needs its headers kept.
    let (replayable, resendable) = (idempotent && empty_body, empty_body);
    let mut body = Some(body.boxed());
    let mut tries = Tries::new(fwd, &routed.target, replayable, resendable);
    let mut next = tries.first(routed.given());
    let answered = |backend: Option<&crate::table::Backend>, sandbox: &str, status: u16| {
        policy::answered(
            log.as_ref(),
            started,
            &routed.target,
            backend,
            sandbox,
            status,
        );
    };
    loop {
        let backend = match next {
            Next::Send { backend, .. } => backend,
            Next::Reply { reply, sandbox } => {
                answered(None, sandbox, reply.status);
                return text(reply);
            }
        };
        let out = match upstream_request(&mut parts, body.take(), &host, resendable) {
            Ok(r) => r,
            Err(reply) => {
                let sandbox = &backend.sandbox;
                answered(None, sandbox, reply.status);
                return text(reply);
            }
        };
        let counted = OnBackend::new(&backend.in_flight);
        let sent = tokio::time::timeout(
            fwd.config.upstream_timeout,
            fwd.h2_upstreams.send(backend.addr, out),
        )
        .await;
        drop(counted);
        let failure = match sent {
            Ok(Ok(mut resp)) => {
                strip_hop_by_hop(resp.headers_mut());
                let status = resp.status().as_u16();
                answered(Some(backend), &backend.sandbox, status);
                let stats = routed.target.stats.clone();
                return with_request_id(resp.map(|b| Counted::new(b, stats).boxed()), &rid);
            }
            Ok(Err(UpstreamError::Connect(e))) => Failure::Refused(e.to_string()),
            Ok(Err(e)) => Failure::NoAnswer {
                why: e.to_string(),
                reused: false,
            },
            Err(_) => Failure::TimedOut,
        };
        next = tries.after(backend, failure);
    }
}

/// The request as the instance gets it: origin-form, a Host header. `keep`: the
/// headers stay in `parts` for another try.
fn upstream_request(
    parts: &mut Parts,
    body: Option<Body>,
    host: &str,
    keep: bool,
) -> Result<Request<Body>, LocalReply> {
    let mut uri = hyper::http::uri::Parts::default();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    let Ok(uri) = hyper::Uri::from_parts(uri) else {
        return Err(LocalReply::new(400, "bad request target\n".into()));
    };
    let mut out = Request::builder().method(parts.method.clone()).uri(uri);
    if let Some(h) = out.headers_mut() {
        *h = if keep {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        // HTTP/2 has no Host header: the instance gets one.
        if !h.contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(host)
        {
            h.insert(header::HOST, v);
        }
    }
    let body = body.unwrap_or_else(|| Empty::new().map_err(|never| match never {}).boxed());
    out.body(body)
        .map_err(|_| LocalReply::new(400, "bad request\n".into()))
}

/// The file `req` names in `site`, as a response; `None` when there is none.
async fn file(site: &crate::statics::Site, req: &Request<Incoming>) -> Option<Response<Body>> {
    let target = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path(), |p| p.as_str());
    let found = site.find(target.as_bytes()).await?;
    let f = tokio::fs::File::open(&found.path).await.ok()?;
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == found.etag || t.trim() == "*");
    let body: Body = if fresh || req.method() == hyper::Method::HEAD {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        // Read as it is sent; an error midway ends the stream (the client sees it).
        crate::statics::FileBody::new(f, found.len)
            .map_err(|never| match never {})
            .boxed()
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = if fresh {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(crate::statics::mime::of(&found.path)) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if !fresh && let Ok(v) = HeaderValue::from_str(&found.len.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&found.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(resp)
}

fn text(r: LocalReply) -> Response<Body> {
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
        .filter(|n| is_hop_by_hop(n.as_str()))
        .cloned()
        .collect();
    for n in hop {
        h.remove(n);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static(headers::X_FORWARDED_FOR);
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static(headers::X_FORWARDED_PROTO);
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static(headers::X_FORWARDED_HOST);
const X_REQUEST_ID: HeaderName = HeaderName::from_static(headers::X_REQUEST_ID);

/// The request's id: the client's `X-Request-Id`, else a new one.
fn request_id(h: &HeaderMap) -> HeaderValue {
    if let Some(v) = h.get(&X_REQUEST_ID) {
        return v.clone();
    }
    let mut id = Vec::with_capacity(headers::REQUEST_ID_LEN);
    write_request_id(&mut id);
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The response with the request's id, unless the instance set its own.
fn with_request_id(mut resp: Response<Body>, rid: &HeaderValue) -> Response<Body> {
    if !resp.headers().contains_key(&X_REQUEST_ID) {
        resp.headers_mut().insert(X_REQUEST_ID, rid.clone());
    }
    resp
}

/// The request headers the instance gets: the same rules as HTTP/1's (see
/// [`headers`]), written into a header map.
fn prepare_headers(
    h: &mut HeaderMap,
    client_ip: &str,
    trusted: bool,
    host: &str,
    rid: &HeaderValue,
) {
    strip_hop_by_hop(h);
    let mut xff = Vec::with_capacity(64);
    let prior: Vec<&[u8]> = if trusted {
        h.get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    } else {
        Vec::new()
    };
    forwarded_for(prior, client_ip.as_bytes(), &mut xff);
    if let Ok(v) = HeaderValue::from_bytes(&xff) {
        h.insert(X_FORWARDED_FOR, v);
    }
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(headers::PROTO));
    match HeaderValue::from_str(host) {
        Ok(v) => h.insert(X_FORWARDED_HOST, v),
        Err(_) => h.remove(X_FORWARDED_HOST),
    };
    if !h.contains_key(&X_REQUEST_ID) {
        h.insert(X_REQUEST_ID, rid.clone());
    }
}

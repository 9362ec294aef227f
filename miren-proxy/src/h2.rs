//! HTTP/2 clients (h2c with prior knowledge), served by hyper; requests go to the
//! instance as HTTP/1.1 through [`Upstreams`](crate::upstream::Upstreams), under the
//! same [`policy`](crate::policy) and header rules as HTTP/1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::access::LogLine;
use crate::forwarder::{Forwarder, HEALTH_PATH};
use crate::headers::{self, forwarded_for, is_hop_by_hop, write_request_id};
use crate::policy::{self, Attempt, Outcome, Sent};
use crate::reply::LocalReply;
use crate::table::Backend;
use crate::upstream::{UpstreamError, Upstreams};

type Body = BoxBody<Bytes, hyper::Error>;

pub async fn serve<T>(fwd: Arc<Forwarder>, io: T, peer: SocketAddr)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ip: Arc<str> = peer.ip().to_string().into();
    let service = hyper::service::service_fn(move |req| {
        let fwd = fwd.clone();
        let ip = ip.clone();
        Box::pin(async move { Ok::<_, Infallible>(handle(&fwd, req, &ip).await) })
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn handle(fwd: &Forwarder, req: Request<Incoming>, client_ip: &str) -> Response<Body> {
    let log = LogLine::new(
        req.method().as_str().as_bytes(),
        req.uri().path().as_bytes(),
    );
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
    let routed = match policy::route(fwd, &host, log.as_ref()).await {
        Ok(r) => r,
        Err(r) => return text(r),
    };
    let (mut parts, body) = req.into_parts();
    prepare_headers(&mut parts.headers, client_ip, &host);
    let mut attempt = H2Attempt {
        empty_body: body_is_empty(&parts.headers, &body),
        idempotent: matches!(
            parts.method,
            hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
        ),
        parts,
        body: Some(body.boxed()),
        host: &host,
        upstreams: &fwd.h2_upstreams,
        timeout: fwd.config.upstream_timeout,
    };
    match policy::forward(fwd, routed, log.as_ref(), &mut attempt).await {
        Outcome::Answered(resp) => resp,
        Outcome::Reply(r) => text(r),
        Outcome::Aborted => text(LocalReply::new(502, "the request broke off\n".into())),
    }
}

/// One request, ready to go to an instance as HTTP/1.1.
struct H2Attempt<'a> {
    parts: Parts,
    /// Handed to the first send: a stream can't be sent twice.
    body: Option<Body>,
    empty_body: bool,
    idempotent: bool,
    host: &'a str,
    upstreams: &'a Upstreams,
    timeout: Duration,
}

impl Attempt for H2Attempt<'_> {
    type Answer = Response<Body>;

    async fn send(&mut self, backend: &Backend, _fresh: bool) -> Sent<Response<Body>> {
        let mut uri = hyper::http::uri::Parts::default();
        uri.path_and_query = self.parts.uri.path_and_query().cloned();
        let Ok(uri) = hyper::Uri::from_parts(uri) else {
            return Sent::Reply(LocalReply::new(400, "bad request target\n".into()));
        };
        let mut out = Request::builder()
            .method(self.parts.method.clone())
            .uri(uri);
        let again = self.replayable() || self.resendable();
        if let Some(h) = out.headers_mut() {
            *h = if again {
                self.parts.headers.clone()
            } else {
                std::mem::take(&mut self.parts.headers)
            };
            // HTTP/2 has no Host header: the instance gets one.
            if !h.contains_key(header::HOST)
                && let Ok(v) = HeaderValue::from_str(self.host)
            {
                h.insert(header::HOST, v);
            }
        }
        let body = match self.body.take() {
            Some(b) => b,
            None => Empty::new().map_err(|never| match never {}).boxed(),
        };
        let Ok(out) = out.body(body) else {
            return Sent::Reply(LocalReply::new(400, "bad request\n".into()));
        };
        match tokio::time::timeout(self.timeout, self.upstreams.send(backend.addr, out)).await {
            Ok(Ok(mut resp)) => {
                strip_hop_by_hop(resp.headers_mut());
                let status = resp.status().as_u16();
                Sent::Answered(resp.map(|b| b.boxed()), status)
            }
            Ok(Err(UpstreamError::Connect(e))) => Sent::Refused(e.to_string()),
            Ok(Err(e)) => Sent::NoAnswer {
                why: e.to_string(),
                reused: false,
            },
            Err(_) => Sent::TimedOut,
        }
    }

    fn replayable(&self) -> bool {
        self.idempotent && self.empty_body
    }

    fn resendable(&self) -> bool {
        // A refused send consumed the body stream: only an empty one can go again.
        self.empty_body
    }
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

/// The request headers the instance gets: the same rules as HTTP/1's (see
/// [`headers`]), written into a header map.
fn prepare_headers(h: &mut HeaderMap, client_ip: &str, host: &str) {
    strip_hop_by_hop(h);
    let mut xff = Vec::with_capacity(64);
    forwarded_for(
        h.get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes),
        client_ip.as_bytes(),
        &mut xff,
    );
    if let Ok(v) = HeaderValue::from_bytes(&xff) {
        h.insert(X_FORWARDED_FOR, v);
    }
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    match HeaderValue::from_str(host) {
        Ok(v) => h.insert(X_FORWARDED_HOST, v),
        Err(_) => h.remove(X_FORWARDED_HOST),
    };
    if !h.contains_key(&X_REQUEST_ID) {
        let mut id = Vec::with_capacity(headers::REQUEST_ID_LEN);
        write_request_id(&mut id);
        if let Ok(v) = HeaderValue::from_bytes(&id) {
            h.insert(X_REQUEST_ID, v);
        }
    }
}

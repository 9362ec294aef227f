//! Connections to web instances for HTTP/2 clients: HTTP/1.1 through hyper's client,
//! kept alive and reused, one idle list per instance. Lighter than a general-purpose
//! client: the proxy only ever speaks origin-form HTTP/1.1 to loopback or app-network
//! addresses it already parsed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The request body type the proxy sends.
pub type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// Idle connections kept per instance at most.
const MAX_IDLE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request did not get a response.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be made: nothing was sent.
    Connect(std::io::Error),
    /// The connection failed after the request (maybe partly) went out.
    Failed(hyper::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connecting: {e}"),
            UpstreamError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// The pool. Cheap to clone.
#[derive(Clone, Default)]
pub struct Upstreams {
    idle: Arc<Mutex<Idle>>,
}

#[derive(Default)]
struct Idle {
    by_addr: HashMap<SocketAddr, Vec<SendRequest<Body>>>,
    /// Gives back since the last sweep of closed connections (instances that went
    /// away leave theirs behind otherwise).
    puts: usize,
}

impl Upstreams {
    fn take(&self, addr: SocketAddr) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.by_addr.get_mut(&addr)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, s: SendRequest<Body>) {
        // Its connection task may not have caught up with the end of the response
        // yet: `ready()` waits for that when it is taken again.
        if s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.puts += 1;
        if idle.puts >= 256 {
            idle.puts = 0;
            idle.by_addr.retain(|_, list| {
                list.retain(|s| !s.is_closed());
                !list.is_empty()
            });
        }
        let list = idle.by_addr.entry(addr).or_default();
        if list.len() < MAX_IDLE {
            list.push(s);
        }
    }

    async fn connect(addr: SocketAddr) -> Result<SendRequest<Body>, UpstreamError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| UpstreamError::Connect(std::io::ErrorKind::TimedOut.into()))?
            .map_err(UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Connect(std::io::Error::other(e)))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Sends `req` (origin-form URI) to `addr` on an idle connection, or a new one
    /// when none is left or the idle one turned out closed before sending.
    pub async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<Body>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        loop {
            let (mut sender, fresh) = match self.take(addr) {
                Some(mut s) => {
                    if s.ready().await.is_err() {
                        continue;
                    }
                    (s, false)
                }
                None => (Self::connect(addr).await?, true),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let back = Some((self.clone(), addr, sender));
                    return Ok(resp.map(|body| {
                        let mut b = PooledBody { body, back };
                        // No body to read (HEAD, 204, 304): reusable now.
                        if b.body.is_end_stream() {
                            b.release();
                        }
                        b
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent: an idle connection closed meanwhile. Try another.
                    Some(r) if !fresh => req = r,
                    _ => return Err(UpstreamError::Failed(e.into_error())),
                },
            }
        }
    }
}

/// A response body that gives its connection back to the pool once read to the end.
pub struct PooledBody {
    body: Incoming,
    back: Option<(Upstreams, SocketAddr, SendRequest<Body>)>,
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) || self.body.is_end_stream() {
            self.release();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((pool, addr, sender)) = self.back.take() {
            pool.put(addr, sender);
        }
    }
}

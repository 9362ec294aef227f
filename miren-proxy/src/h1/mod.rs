//! The HTTP/1.1 path, which carries nearly all traffic: one task per client
//! connection reads a request head, routes it, writes it to a kept-alive connection to
//! the instance, reads the answer and writes it back — no header maps, no per-request
//! task or channel, heads parsed in place (httparse) and rewritten in one pass.
//! A connection that opens with the HTTP/2 preface goes to hyper instead.

mod chunked;
mod deadline;
mod head;
mod pool;
#[cfg(test)]
mod props;
mod request;
mod response;
mod rewind;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::forward::{
    ATTEMPTS, Forwarder, HEALTH_PATH, OnBackend, Reject, access, access_enabled, reason,
    write_request_id,
};
use crate::table::pick;
use chunked::Chunked;
use deadline::Deadline;
pub use head::is_hop_by_hop;
use head::{Framing, put_header};
pub use pool::IdleConns;
use pool::UpConn;
use request::{Refusal, RequestHead};
use response::ResponseHead;

/// Read and written at a time when streaming a body.
pub const STREAM_CHUNK: usize = 64 * 1024;
/// Free buffer space asked for before reading a head.
const HEAD_READ: usize = 4 * 1024;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves one client connection until it closes, fails or times out.
pub async fn serve(fwd: Arc<Forwarder>, client: TcpStream, peer: SocketAddr) {
    let mut c = ClientConn {
        fwd,
        client,
        buf: BytesMut::with_capacity(8 * 1024),
        up: Vec::with_capacity(1024),
        down: Vec::with_capacity(1024),
        ip: peer.ip().to_string(),
        header_timer: Deadline::default(),
        upstream_timer: Deadline::default(),
        unread_input: false,
    };
    let mut first = true;
    loop {
        let head = match c.next_head(first).await {
            Next::Head(h) => h,
            Next::Http2 => {
                let pre = c.buf.split().freeze();
                return crate::h2::serve(c.fwd, rewind::Rewind::new(pre, c.client), peer).await;
            }
            Next::Refuse(status, why) => {
                write_reject(&mut c.down, &Reject::new(status, why.into()), true, false);
                if c.client.write_all(&c.down).await.is_ok() {
                    linger(&mut c.client).await;
                }
                return;
            }
            Next::Close => return,
        };
        first = false;
        if !c.exchange(head).await {
            if c.unread_input {
                linger(&mut c.client).await;
            }
            return;
        }
    }
}

/// Closes a connection whose client may still be sending (a body the proxy did not
/// read): closing at once would make the kernel reset it, and a reset can destroy the
/// answer before the client reads it. So: end the writing side, then read and drop
/// what still comes, for a bounded time and amount (as nginx's lingering close).
async fn linger(client: &mut TcpStream) {
    const MAX: usize = 16 << 20;
    let _ = client.shutdown().await;
    let mut scratch = vec![0u8; STREAM_CHUNK];
    let drain = async {
        let mut total = 0;
        while total < MAX {
            match client.read(&mut scratch).await {
                Ok(n) if n > 0 => total += n,
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

struct ClientConn {
    fwd: Arc<Forwarder>,
    client: TcpStream,
    /// What the client sent and the proxy has not used yet.
    buf: BytesMut,
    /// The request as it goes to the instance: head, and the body as far as read.
    up: Vec<u8>,
    /// The response as it goes to the client: head, and the body as far as read.
    down: Vec<u8>,
    /// The client's address, for `X-Forwarded-For`.
    ip: String,
    header_timer: Deadline,
    upstream_timer: Deadline,
    /// The connection ends with part of the client's request unread.
    unread_input: bool,
}

enum Next {
    Head(RequestHead),
    Http2,
    Refuse(u16, &'static str),
    Close,
}

/// How sending a request to an instance went.
enum Sent {
    /// Answered; whether the client connection goes on, and the instance's.
    Done {
        status: u16,
        keep: bool,
        reusable: bool,
    },
    /// 101: both sides now speak another protocol; the bytes are to be spliced.
    Upgraded,
    /// Nothing came back (refused, reset, closed): maybe safe to send again.
    NoAnswer(String),
    /// A broken answer, or it broke off before its head was complete.
    Bad(&'static str),
    TimedOut,
    /// Failed while the response was under way: nothing more can be said to the
    /// client, the connection just closes.
    Aborted,
}

impl ClientConn {
    async fn next_head(&mut self, first: bool) -> Next {
        let deadline = Instant::now() + self.fwd.config.header_timeout;
        loop {
            if !self.buf.is_empty() {
                let n = self.buf.len().min(H2_PREFACE.len());
                if first && H2_PREFACE.starts_with(&self.buf[..n]) {
                    if n == H2_PREFACE.len() {
                        return Next::Http2;
                    }
                } else {
                    match request::parse(&self.buf, &self.ip, write_request_id, &mut self.up) {
                        Ok(h) => return Next::Head(h),
                        Err(Refusal::Partial) => {}
                        Err(Refusal::TooLarge) => {
                            return Next::Refuse(431, "request headers too large\n");
                        }
                        Err(Refusal::Bad(why)) => return Next::Refuse(400, why),
                    }
                }
            }
            self.buf.reserve(HEAD_READ);
            let read = self.client.read_buf(&mut self.buf);
            match self.header_timer.run(deadline, read).await {
                Some(Ok(n)) if n > 0 => {}
                // Closed, failed, or too slow: nothing to answer.
                _ => return Next::Close,
            }
        }
    }

    /// One request and its response. Whether the connection goes on.
    async fn exchange(&mut self, head: RequestHead) -> bool {
        let target_path = path_of(&self.buf[head.target.clone()]);
        // Only built when someone listens: the common case copies nothing.
        let log = access_enabled().then(|| LogLine {
            started: std::time::Instant::now(),
            method: String::from_utf8_lossy(&self.buf[head.method.clone()]).into_owned(),
            path: String::from_utf8_lossy(target_path).into_owned(),
        });

        // How much of the body came with the head.
        let after = &self.buf[head.len..];
        let mut chunks = Chunked::default();
        let (body_here, body_complete) = match head.body {
            Framing::Empty | Framing::UntilClose => (0, true),
            Framing::Length(n) => {
                let k = (after.len() as u64).min(n) as usize;
                (k, k as u64 == n)
            }
            Framing::Chunked => match chunks.scan(after, |_| {}) {
                Ok(k) => (k, chunks.is_done()),
                Err(_) => {
                    let bad = Reject::new(400, "malformed chunked body\n".into());
                    return self.answer(&head, bad, None).await;
                }
            },
        };
        // What the client sent in full and can be skipped to serve its next request.
        let whole = body_complete.then_some(body_here);
        if target_path == HEALTH_PATH.as_bytes() {
            let ok = Reject::new(200, "ok\n".into());
            return self.answer(&head, ok, whole).await;
        }

        let host = std::str::from_utf8(&self.buf[head.host.clone()]).unwrap_or_default();
        let (target, demand) = match self.fwd.route(host).await {
            Ok(x) => x,
            Err(r) => {
                if let Some(l) = &log {
                    let host = String::from_utf8_lossy(&self.buf[head.host.clone()]);
                    access(&host, "-", &l.method, &l.path, r.status, l.started);
                }
                return self.answer(&head, r, whole).await;
            }
        };
        let app: &str = &target.name;
        self.up
            .extend_from_slice(&self.buf[head.len..head.len + body_here]);

        let seed = self.fwd.seed();
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut fresh = false;
        let mut sends = 0;
        loop {
            let Some(backend) = pick(&target, &tried, seed.wrapping_add(tried.len())) else {
                let r = Reject::retry_later(format!(
                    "app {app} has no ready web instance; try again shortly\n"
                ));
                return self.answer_logged(&head, r, whole, app, "-", &log).await;
            };
            let counted = OnBackend::new(&backend.in_flight);
            let pooled = if fresh { None } else { backend.idle.take() };
            fresh = false;
            let reused = pooled.is_some();
            let mut up = match pooled {
                Some(c) => c,
                None => match pool::connect(backend.addr).await {
                    Ok(c) => c,
                    // Nothing was sent: any request can go to another instance.
                    Err(_) if tried.len() + 1 < ATTEMPTS && target.backends.len() > 1 => {
                        tried.push(backend.addr);
                        continue;
                    }
                    Err(e) => {
                        let r = Reject::new(
                            502,
                            format!("app {app}: the web instance failed: connecting: {e}\n"),
                        );
                        let sandbox = &backend.sandbox;
                        return self
                            .answer_logged(&head, r, whole, app, sandbox, &log)
                            .await;
                    }
                },
            };
            sends += 1;
            let sent = self
                .send(&head, &mut up, body_here, body_complete, &chunks)
                .await;
            drop(counted);
            let sandbox = &backend.sandbox;
            let r = match sent {
                Sent::Done {
                    status,
                    keep,
                    reusable,
                } => {
                    if reusable {
                        backend.idle.put(up);
                    }
                    if let Some(l) = &log {
                        access(app, sandbox, &l.method, &l.path, status, l.started);
                    }
                    return keep;
                }
                Sent::Upgraded => {
                    if let Some(l) = &log {
                        access(app, sandbox, &l.method, &l.path, 101, l.started);
                    }
                    // A long-lived tunnel is not demand on the pool.
                    drop(demand);
                    let _ = tokio::io::copy_bidirectional(&mut self.client, &mut up.stream).await;
                    return false;
                }
                Sent::Aborted => return false,
                Sent::NoAnswer(e) => {
                    // Safe to send again only when the request is whole in `up` and
                    // doing it twice can't matter.
                    let again = body_complete && head.idempotent && sends <= ATTEMPTS;
                    if again && reused {
                        // A kept-alive connection the instance had closed meanwhile.
                        fresh = true;
                        continue;
                    }
                    if again && target.backends.len() > 1 && tried.len() + 1 < ATTEMPTS {
                        // The instance died mid-request (killed): another one answers.
                        tried.push(backend.addr);
                        continue;
                    }
                    Reject::new(502, format!("app {app}: the web instance failed: {e}\n"))
                }
                Sent::Bad(why) => Reject::new(502, format!("app {app}: {why}\n")),
                Sent::TimedOut => Reject::too_slow(app, self.fwd.config.upstream_timeout),
            };
            return self
                .answer_logged(&head, r, whole, app, sandbox, &log)
                .await;
        }
    }

    /// Writes the request to `up` and the answer to the client.
    async fn send(
        &mut self,
        head: &RequestHead,
        up: &mut UpConn,
        body_here: usize,
        body_complete: bool,
        chunks: &Chunked,
    ) -> Sent {
        let Self {
            fwd,
            client,
            buf,
            up: request,
            down,
            upstream_timer,
            unread_input,
            ..
        } = self;
        if let Err(e) = up.stream.write_all(request).await {
            return Sent::NoAnswer(e.to_string());
        }
        up.buf.clear();
        let side = response::Client {
            http10: head.http10,
            keep_alive: head.keep_alive,
            is_head: head.is_head,
        };
        let timeout = fwd.config.upstream_timeout;
        // Whether the instance got the whole body (so its connection can be reused).
        let mut sent_all = true;
        let resp = if body_complete {
            let read = read_head(&mut up.stream, &mut up.buf, side, down);
            match upstream_timer.run(Instant::now() + timeout, read).await {
                Some(r) => r,
                None => return Sent::TimedOut,
            }
        } else {
            // The rest of the body streams from the client while the answer is
            // awaited: an instance may answer (and refuse) before reading it all.
            if head.expect_continue
                && client
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
            {
                return Sent::Aborted;
            }
            buf.advance(head.len + body_here);
            let left = match head.body {
                Framing::Length(n) => Left::Length(n - body_here as u64),
                _ => Left::Chunked(chunks.clone()),
            };
            let (mut ur, mut uw) = up.stream.split();
            let pump = pump(client, buf, &mut uw, left);
            let read = read_head(&mut ur, &mut up.buf, side, down);
            tokio::pin!(pump, read);
            let early = tokio::select! {
                biased;
                r = &mut read => Some(r),
                r = &mut pump => match r {
                    Ok(()) => None,
                    Err(PumpError::Client) => return Sent::Aborted,
                    // The instance stopped reading: its answer may say why.
                    Err(PumpError::Upstream) => {
                        sent_all = false;
                        None
                    }
                },
            };
            match early {
                Some(r) => {
                    sent_all = false;
                    r
                }
                None => match upstream_timer
                    .run(Instant::now() + timeout, &mut read)
                    .await
                {
                    Some(r) => r,
                    None => return Sent::TimedOut,
                },
            }
        };
        let mut resp = match resp {
            Ok(r) => r,
            Err(HeadError::NoAnswer(e)) => return Sent::NoAnswer(e),
            Err(HeadError::Bad(why)) => return Sent::Bad(why),
        };
        if resp.status == 101 {
            if !head.upgrade {
                return Sent::Bad("switched protocols without being asked to");
            }
            // Whatever either side sent past its head belongs to the new protocol.
            down.extend_from_slice(&up.buf[resp.len..]);
            let ok = client.write_all(down).await.is_ok()
                && up
                    .stream
                    .write_all(&buf[head.len + body_here..])
                    .await
                    .is_ok();
            return if ok { Sent::Upgraded } else { Sent::Aborted };
        }
        if !sent_all && !resp.close {
            // The client's body was not all read: its connection can't go on.
            down.truncate(down.len() - 2);
            put_header(down, b"connection", b"close");
            down.extend_from_slice(b"\r\n");
            resp.close = true;
            *unread_input = true;
        }
        if copy_body(&resp, up, client, down).await.is_err() {
            return Sent::Aborted;
        }
        if body_complete {
            buf.advance(head.len + body_here);
        }
        Sent::Done {
            status: resp.status,
            keep: !resp.close,
            // Bytes past the response: the instance is confused; don't reuse.
            reusable: resp.reusable && sent_all && up.buf.is_empty(),
        }
    }

    /// Answers the client itself. `whole`: the body length if the whole request was
    /// read (then the connection can go on).
    async fn answer(&mut self, head: &RequestHead, r: Reject, whole: Option<usize>) -> bool {
        let keep = head.keep_alive && whole.is_some();
        self.unread_input = whole.is_none();
        write_reject(&mut self.down, &r, !keep, head.is_head);
        if self.client.write_all(&self.down).await.is_err() {
            return false;
        }
        if let (true, Some(body)) = (keep, whole) {
            self.buf.advance(head.len + body);
        }
        keep
    }

    async fn answer_logged(
        &mut self,
        head: &RequestHead,
        r: Reject,
        whole: Option<usize>,
        app: &str,
        sandbox: &str,
        log: &Option<LogLine>,
    ) -> bool {
        if let Some(l) = log {
            access(app, sandbox, &l.method, &l.path, r.status, l.started);
        }
        self.answer(head, r, whole).await
    }
}

struct LogLine {
    /// When the request's head was read: the clock is read only for the log.
    started: std::time::Instant,
    method: String,
    path: String,
}

/// The path of a request target, without its query.
fn path_of(target: &[u8]) -> &[u8] {
    let end = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    &target[..end]
}

/// A plain-text answer from the proxy itself.
fn write_reject(out: &mut Vec<u8>, r: &Reject, close: bool, is_head: bool) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(r.status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(r.status).as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\n");
    put_header(out, b"content-length", r.body.len().to_string().as_bytes());
    if r.retry_after {
        put_header(out, b"retry-after", b"1");
    }
    if close {
        put_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !is_head {
        out.extend_from_slice(r.body.as_bytes());
    }
}

enum HeadError {
    NoAnswer(String),
    Bad(&'static str),
}

/// Reads the instance's answer up to the end of its (final) head; the client's head
/// is then in `down`. Informational answers (`100`, `103`) are dropped: the proxy
/// sends its own `100 Continue`.
async fn read_head(
    r: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    side: response::Client,
    down: &mut Vec<u8>,
) -> Result<ResponseHead, HeadError> {
    loop {
        if !buf.is_empty() {
            match response::parse(buf, side, down) {
                Ok(Some(h)) if h.informational() => {
                    buf.advance(h.len);
                    continue;
                }
                Ok(Some(h)) => return Ok(h),
                Ok(None) => {}
                Err(why) => return Err(HeadError::Bad(why)),
            }
        }
        buf.reserve(HEAD_READ);
        let broke = match r.read_buf(buf).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => "the connection closed".to_string(),
            Err(e) => e.to_string(),
        };
        return Err(if buf.is_empty() {
            HeadError::NoAnswer(broke)
        } else {
            HeadError::Bad("the connection broke off in the response head")
        });
    }
}

/// The part of a request body still to come from the client.
enum Left {
    Length(u64),
    Chunked(Chunked),
}

enum PumpError {
    /// The client went away or sent broken framing.
    Client,
    /// The instance stopped taking it.
    Upstream,
}

/// Copies the rest of a request body from the client to the instance, `buf` (what the
/// client sent past the part already forwarded) first.
async fn pump(
    client: &mut TcpStream,
    buf: &mut BytesMut,
    up: &mut (impl AsyncWrite + Unpin),
    mut left: Left,
) -> Result<(), PumpError> {
    loop {
        let n = match &mut left {
            Left::Length(l) => {
                let n = (buf.len() as u64).min(*l) as usize;
                *l -= n as u64;
                n
            }
            Left::Chunked(c) => c.scan(buf, |_| {}).map_err(|_| PumpError::Client)?,
        };
        if n > 0 {
            up.write_all(&buf[..n])
                .await
                .map_err(|_| PumpError::Upstream)?;
            buf.advance(n);
        }
        let done = match &left {
            Left::Length(l) => *l == 0,
            Left::Chunked(c) => c.is_done(),
        };
        if done {
            return Ok(());
        }
        buf.reserve(STREAM_CHUNK);
        match client.read_buf(buf).await {
            Ok(n) if n > 0 => {}
            _ => return Err(PumpError::Client),
        }
    }
}

/// Writes the response head in `down` and the body after it to the client, as the
/// instance sends it. Any error ends the exchange (and both connections).
async fn copy_body(
    resp: &ResponseHead,
    up: &mut UpConn,
    client: &mut TcpStream,
    down: &mut Vec<u8>,
) -> std::io::Result<()> {
    let broken = || std::io::Error::other("the instance broke off the response");
    let start = resp.len;
    match resp.body {
        Framing::Empty => {
            up.buf.advance(start);
            client.write_all(down).await
        }
        Framing::Length(n) => {
            let here = ((up.buf.len() - start) as u64).min(n) as usize;
            down.extend_from_slice(&up.buf[start..start + here]);
            up.buf.advance(start + here);
            client.write_all(down).await?;
            let mut left = n - here as u64;
            while left > 0 {
                up.buf.reserve(STREAM_CHUNK);
                if up.stream.read_buf(&mut up.buf).await? == 0 {
                    return Err(broken());
                }
                let take = (up.buf.len() as u64).min(left) as usize;
                client.write_all(&up.buf[..take]).await?;
                up.buf.advance(take);
                left -= take as u64;
            }
            Ok(())
        }
        Framing::Chunked => {
            let mut chunks = Chunked::default();
            let mut from = start;
            loop {
                let n = if resp.dechunk {
                    chunks.scan(&up.buf[from..], |d| down.extend_from_slice(d))
                } else {
                    let n = chunks.scan(&up.buf[from..], |_| {});
                    if let Ok(n) = n {
                        down.extend_from_slice(&up.buf[from..from + n]);
                    }
                    n
                }
                .map_err(|_| broken())?;
                up.buf.advance(from + n);
                from = 0;
                if !down.is_empty() {
                    client.write_all(down).await?;
                    down.clear();
                }
                if chunks.is_done() {
                    return Ok(());
                }
                up.buf.reserve(STREAM_CHUNK);
                if up.stream.read_buf(&mut up.buf).await? == 0 {
                    return Err(broken());
                }
            }
        }
        Framing::UntilClose => {
            down.extend_from_slice(&up.buf[start..]);
            up.buf.clear();
            client.write_all(down).await?;
            loop {
                up.buf.reserve(STREAM_CHUNK);
                if up.stream.read_buf(&mut up.buf).await? == 0 {
                    return Ok(());
                }
                client.write_all(&up.buf).await?;
                up.buf.clear();
            }
        }
    }
}

//! One client connection: heads read one after the other (pipelining included),
//! each exchanged in turn, the proxy's own answers, and a lingering close when the
//! client may still be sending.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::deadline::Deadline;
use super::head::put_header;
use super::request::{self, Refusal, RequestHead};
use super::{HEAD_READ, STREAM_CHUNK, rewind};
use crate::forwarder::Forwarder;
use crate::headers::write_request_id;
use crate::reply::{LocalReply, reason};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves one client connection until it closes, fails or times out.
pub async fn serve(fwd: Arc<Forwarder>, client: TcpStream, peer: SocketAddr) {
    let trusted = crate::trust::trusted(&fwd.config.trust_forwarded_from, peer.ip());
    let mut c = ClientConn {
        fwd,
        io: ClientIo {
            client,
            buf: BytesMut::with_capacity(8 * 1024),
            up: Vec::with_capacity(1024),
            down: Vec::with_capacity(1024),
            ip: peer.ip().to_string(),
            trusted,
            header_timer: Deadline::default(),
            upstream_timer: Deadline::default(),
            unread_input: false,
        },
    };
    let mut first = true;
    loop {
        let head = match c.next_head(first).await {
            Next::Head(h) => h,
            Next::Http2 => {
                let pre = c.io.buf.split().freeze();
                let io = rewind::Rewind::new(pre, c.io.client);
                return crate::h2::serve(c.fwd, io, peer).await;
            }
            Next::Refuse(status, why) => {
                let io = &mut c.io;
                // No head to take an id from: this answer gets one of its own.
                let mut id = Vec::with_capacity(crate::headers::REQUEST_ID_LEN);
                write_request_id(&mut id);
                write_reply(
                    &mut io.down,
                    &LocalReply::new(status, why.into()),
                    true,
                    false,
                    &id,
                );
                if io.client.write_all(&io.down).await.is_ok() {
                    linger(&mut io.client).await;
                }
                return;
            }
            Next::Close => return,
        };
        first = false;
        if !c.exchange(head).await {
            if c.io.unread_input {
                linger(&mut c.io.client).await;
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

/// A client connection.
pub(super) struct ClientConn {
    pub fwd: Arc<Forwarder>,
    pub io: ClientIo,
}

/// The client's socket and the buffers and timers its exchanges reuse.
pub(super) struct ClientIo {
    pub client: TcpStream,
    /// What the client sent and the proxy has not used yet.
    pub buf: BytesMut,
    /// The request as it goes to the instance: head, and the body as far as read.
    pub up: Vec<u8>,
    /// The response as it goes to the client: head, and the body as far as read.
    pub down: Vec<u8>,
    /// The client's address, for `X-Forwarded-For`.
    pub ip: String,
    /// Its own `X-Forwarded-For` is believed (it is a trusted proxy).
    pub trusted: bool,
    pub header_timer: Deadline,
    pub upstream_timer: Deadline,
    /// The connection ends with part of the client's request unread.
    pub unread_input: bool,
}

enum Next {
    Head(RequestHead),
    Http2,
    Refuse(u16, &'static str),
    Close,
}

impl ClientConn {
    async fn next_head(&mut self, first: bool) -> Next {
        let deadline = Instant::now() + self.fwd.config.header_timeout;
        loop {
            if !self.io.buf.is_empty() {
                let n = self.io.buf.len().min(H2_PREFACE.len());
                if first && H2_PREFACE.starts_with(&self.io.buf[..n]) {
                    if n == H2_PREFACE.len() {
                        return Next::Http2;
                    }
                } else {
                    match request::parse(
                        &self.io.buf,
                        &self.io.ip,
                        self.io.trusted,
                        write_request_id,
                        &mut self.io.up,
                    ) {
                        Ok(h) => return Next::Head(h),
                        Err(Refusal::Partial) => {}
                        Err(Refusal::TooLarge) => {
                            return Next::Refuse(431, "request headers too large\n");
                        }
                        Err(Refusal::Bad(why)) => return Next::Refuse(400, why),
                    }
                }
            }
            self.io.buf.reserve(HEAD_READ);
            let read = self.io.client.read_buf(&mut self.io.buf);
            match self.io.header_timer.run(deadline, read).await {
                Some(Ok(n)) if n > 0 => {}
                // Closed, failed, or too slow: nothing to answer.
                _ => return Next::Close,
            }
        }
    }
}

impl ClientIo {
    /// Answers the client itself. `whole`: the body length if the whole request was
    /// read (then the connection can go on).
    pub async fn answer(
        &mut self,
        head: &RequestHead,
        r: LocalReply,
        whole: Option<usize>,
    ) -> bool {
        let keep = head.keep_alive && whole.is_some();
        self.unread_input = whole.is_none();
        let id = &self.up[head.request_id.clone()];
        write_reply(&mut self.down, &r, !keep, head.is_head, id);
        if self.client.write_all(&self.down).await.is_err() {
            return false;
        }
        if let (true, Some(body)) = (keep, whole) {
            self.buf.advance(head.len + body);
        }
        keep
    }
}

/// A plain-text answer from the proxy itself, with the request's id.
pub(super) fn write_reply(
    out: &mut Vec<u8>,
    r: &LocalReply,
    close: bool,
    is_head: bool,
    request_id: &[u8],
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(r.status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(r.status).as_bytes());
    out.extend_from_slice(if r.html {
        &b"\r\ncontent-type: text/html; charset=utf-8\r\n"[..]
    } else {
        &b"\r\ncontent-type: text/plain; charset=utf-8\r\n"[..]
    });
    put_header(out, b"content-length", r.body.len().to_string().as_bytes());
    if r.retry_after {
        put_header(out, b"retry-after", b"1");
    }
    put_header(out, crate::headers::X_REQUEST_ID.as_bytes(), request_id);
    if close {
        put_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !is_head {
        out.extend_from_slice(r.body.as_bytes());
    }
}

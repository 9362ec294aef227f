//! One request: route it, send it to the instances the shared
//! [`policy`](crate::policy) says, finish the answer (or splice an upgraded
//! connection).

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::HEAD_READ;
use super::body::{Left, PumpError, copy_body, pump};
use super::chunked::Chunked;
use super::connection::{ClientConn, ClientIo};
use super::head::{Framing, put_header};
use super::request::RequestHead;
use super::response::{self, ResponseHead};
use crate::access::LogLine;
use crate::conns::{self, UpConn};
use crate::forwarder::{HEALTH_PATH, OnBackend};
use crate::policy::{self, Failure, Next, Tries};
use crate::reply::LocalReply;

impl ClientConn {
    /// One request and its response. Whether the connection goes on.
    pub(super) async fn exchange(&mut self, head: RequestHead) -> bool {
        let io = &mut self.io;
        let target_path = path_of(&io.buf[head.target.clone()]);
        let log = LogLine::new(&io.buf[head.method.clone()], target_path);
        let started = std::time::Instant::now();

        // How much of the body came with the head.
        let after = &io.buf[head.len..];
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
                    let bad = LocalReply::new(400, "malformed chunked body\n".into());
                    return io.answer(&head, bad, None).await;
                }
            },
        };
        // What the client sent in full and can be skipped to serve its next request.
        let whole = body_complete.then_some(body_here);
        if target_path == HEALTH_PATH.as_bytes() {
            return io.answer(&head, LocalReply::healthy(), whole).await;
        }

        let host = std::str::from_utf8(&io.buf[head.host.clone()]).unwrap_or_default();
        // `[static]`: its files first; an app of files only has nothing else.
        let site = self.fwd.site(host);
        if let Some(t) = &site
            && let Some(s) = &t.site
        {
            if let Some((keep, status, bytes)) = io.serve_file(&head, s, whole).await {
                t.stats.sent(bytes);
                policy::answered(log.as_ref(), started, t, None, "static", status);
                return keep;
            }
            if !t.has_web {
                let method = &io.buf[head.method.clone()];
                let r = if method == b"GET" || method == b"HEAD" {
                    LocalReply::new(404, "no such file\n".into())
                } else {
                    LocalReply::new(405, "this app serves files only: GET or HEAD\n".into())
                };
                let r = io.dressed(&head, s, &t.name, r).await;
                policy::answered(log.as_ref(), started, t, None, "static", r.status);
                return io.answer(&head, r, whole).await;
            }
        }
        // Read again: serving a file borrowed the buffer.
        let host = std::str::from_utf8(&io.buf[head.host.clone()]).unwrap_or_default();
        let routed = match self.fwd.route(host).await {
            Ok(r) => r,
            Err(r) => {
                policy::log(log.as_ref(), host, "-", r.status);
                let r = match site
                    .as_ref()
                    .and_then(|t| t.site.as_ref().map(|s| (s, &t.name)))
                {
                    Some((s, app)) => io.dressed(&head, s, app, r).await,
                    None => r,
                };
                return io.answer(&head, r, whole).await;
            }
        };
        io.up
            .extend_from_slice(&io.buf[head.len..head.len + body_here]);
        let app: &str = &routed.target.name;
        let timeout = self.fwd.config.upstream_timeout;
        // Nothing leaves the proxy before a connection is made: a refused request can
        // always go elsewhere.
        let replayable = body_complete && head.idempotent;
        let mut tries = Tries::new(&self.fwd, &routed.target, replayable, true);
        let mut next = tries.first(routed.given());
        loop {
            let (backend, fresh) = match next {
                Next::Send { backend, fresh } => (backend, fresh),
                Next::Reply { reply, sandbox } => {
                    let target = &routed.target;
                    policy::answered(log.as_ref(), started, target, None, sandbox, reply.status);
                    let reply = match &routed.target.site {
                        Some(s) => self.io.dressed(&head, s, app, reply).await,
                        None => reply,
                    };
                    return self.io.answer(&head, reply, whole).await;
                }
            };
            let counted = OnBackend::new(&backend.in_flight);
            let pooled = if fresh { None } else { backend.idle.take() };
            let reused = pooled.is_some();
            let mut up = match pooled {
                Some(c) => c,
                None => match conns::connect(backend.addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        next = tries.after(backend, Failure::Refused(e.to_string()));
                        continue;
                    }
                },
            };
            let idle = self.fwd.config.body_idle_timeout;
            let sent = self
                .io
                .send(
                    &head,
                    &mut up,
                    body_here,
                    body_complete,
                    &chunks,
                    (timeout, idle),
                )
                .await;
            drop(counted);
            let sandbox = &backend.sandbox;
            let failure = match sent {
                Exchanged::Done {
                    status,
                    bytes,
                    keep,
                    reusable,
                } => {
                    if reusable {
                        backend.idle.put(up);
                    }
                    let target = &routed.target;
                    target.stats.sent(bytes);
                    policy::answered(
                        log.as_ref(),
                        started,
                        target,
                        Some(backend),
                        sandbox,
                        status,
                    );
                    return keep;
                }
                Exchanged::Upgraded => {
                    let target = &routed.target;
                    policy::answered(log.as_ref(), started, target, Some(backend), sandbox, 101);
                    // A long-lived tunnel is not demand on the pool.
                    drop(tries);
                    drop(routed);
                    let _ =
                        tokio::io::copy_bidirectional(&mut self.io.client, &mut up.stream).await;
                    return false;
                }
                Exchanged::Aborted => return false,
                Exchanged::BodyIdle => {
                    // The instance's connection goes with `up`: it never got the end.
                    let idle = self.fwd.config.body_idle_timeout;
                    let reply = LocalReply::new(
                        408,
                        format!(
                            "the request body stalled: no byte for {}\n",
                            crate::reply::show(idle)
                        ),
                    );
                    let target = &routed.target;
                    policy::answered(log.as_ref(), started, target, Some(backend), sandbox, 408);
                    self.io.answer(&head, reply, None).await;
                    return false;
                }
                Exchanged::NoAnswer(why) => Failure::NoAnswer { why, reused },
                Exchanged::Bad(why) => Failure::Bad(why.to_string()),
                Exchanged::TimedOut => Failure::TimedOut,
            };
            next = tries.after(backend, failure);
        }
    }
}

/// How sending a request on one connection went.
enum Exchanged {
    /// Answered; whether the client connection goes on, and the instance's.
    Done {
        status: u16,
        /// Body bytes sent to the client.
        bytes: u64,
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
    /// The client stopped sending its body before the instance answered.
    BodyIdle,
}

impl ClientIo {
    /// Writes the request to `up` and the answer to the client.
    async fn send(
        &mut self,
        head: &RequestHead,
        up: &mut UpConn,
        body_here: usize,
        body_complete: bool,
        chunks: &Chunked,
        (timeout, body_idle): (std::time::Duration, std::time::Duration),
    ) -> Exchanged {
        let Self {
            client,
            buf,
            up: request,
            down,
            upstream_timer,
            unread_input,
            ..
        } = self;
        if let Err(e) = up.stream.write_all(request).await {
            return Exchanged::NoAnswer(e.to_string());
        }
        up.buf.clear();
        let side = response::Client {
            http10: head.http10,
            keep_alive: head.keep_alive,
            is_head: head.is_head,
        };
        // Whether the instance got the whole body (so its connection can be reused).
        let mut sent_all = true;
        let resp = if body_complete {
            let read = read_head(&mut up.stream, &mut up.buf, side, down);
            match upstream_timer.run(Instant::now() + timeout, read).await {
                Some(r) => r,
                None => return Exchanged::TimedOut,
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
                return Exchanged::Aborted;
            }
            buf.advance(head.len + body_here);
            let left = match head.body {
                Framing::Length(n) => Left::Length(n - body_here as u64),
                _ => Left::Chunked(chunks.clone()),
            };
            let (mut ur, mut uw) = up.stream.split();
            let pump = pump(client, buf, &mut uw, left, body_idle);
            let read = read_head(&mut ur, &mut up.buf, side, down);
            tokio::pin!(pump, read);
            let early = tokio::select! {
                biased;
                r = &mut read => Some(r),
                r = &mut pump => match r {
                    Ok(()) => None,
                    Err(PumpError::Client) => return Exchanged::Aborted,
                    Err(PumpError::Idle) => return Exchanged::BodyIdle,
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
                    None => return Exchanged::TimedOut,
                },
            }
        };
        let mut resp = match resp {
            Ok(r) => r,
            Err(HeadError::NoAnswer(e)) => return Exchanged::NoAnswer(e),
            Err(HeadError::Bad(why)) => return Exchanged::Bad(why),
        };
        if resp.status == 101 {
            if !head.upgrade {
                return Exchanged::Bad("switched protocols without being asked to");
            }
            // Whatever either side sent past its head belongs to the new protocol.
            down.extend_from_slice(&up.buf[resp.len..]);
            let ok = client.write_all(down).await.is_ok()
                && up
                    .stream
                    .write_all(&buf[head.len + body_here..])
                    .await
                    .is_ok();
            return if ok {
                Exchanged::Upgraded
            } else {
                Exchanged::Aborted
            };
        }
        if !resp.has_request_id {
            // The client gets the id its request was known by.
            down.truncate(down.len() - 2);
            put_header(
                down,
                crate::headers::X_REQUEST_ID.as_bytes(),
                &request[head.request_id.clone()],
            );
            down.extend_from_slice(b"\r\n");
        }
        if !sent_all && !resp.close {
            // The client's body was not all read: its connection can't go on.
            down.truncate(down.len() - 2);
            put_header(down, b"connection", b"close");
            down.extend_from_slice(b"\r\n");
            resp.close = true;
            *unread_input = true;
        }
        let Ok(bytes) = copy_body(&resp, up, client, down).await else {
            return Exchanged::Aborted;
        };
        if body_complete {
            buf.advance(head.len + body_here);
        }
        Exchanged::Done {
            status: resp.status,
            bytes,
            keep: !resp.close,
            // Bytes past the response: the instance is confused; don't reuse.
            reusable: resp.reusable && sent_all && up.buf.is_empty(),
        }
    }
}

/// The path of a request target, without its query.
fn path_of(target: &[u8]) -> &[u8] {
    let end = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    &target[..end]
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

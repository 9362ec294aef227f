//! Bodies in flight: the rest of a request body from the client to the instance while
//! its answer is awaited, and the answer's body back to the client by its framing.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::STREAM_CHUNK;
use super::chunked::Chunked;
use super::head::Framing;
use super::response::ResponseHead;
use crate::conns::UpConn;

/// The part of a request body still to come from the client.
pub(super) enum Left {
    Length(u64),
    Chunked(Chunked),
}

pub(super) enum PumpError {
    /// The client went away or sent broken framing.
    Client,
    /// The client sent nothing for the idle timeout.
    Idle,
    /// The instance stopped taking it.
    Upstream,
}

/// Copies the rest of a request body from the client to the instance, `buf` (what the
/// client sent past the part already forwarded) first; gives up when the client sends
/// nothing for `idle`.
pub(super) async fn pump(
    client: &mut TcpStream,
    buf: &mut BytesMut,
    up: &mut (impl AsyncWrite + Unpin),
    mut left: Left,
    idle: std::time::Duration,
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
        match tokio::time::timeout(idle, client.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return Err(PumpError::Client),
            Err(_) => return Err(PumpError::Idle),
        }
    }
}

/// Writes the response head in `down` and the body after it to the client, as the
/// instance sends it; the body's bytes sent (as framed to the client). Any error ends
/// the exchange (and both connections).
pub(super) async fn copy_body(
    resp: &ResponseHead,
    up: &mut UpConn,
    client: &mut TcpStream,
    down: &mut Vec<u8>,
) -> std::io::Result<u64> {
    let broken = || std::io::Error::other("the instance broke off the response");
    let start = resp.len;
    // The head's length in `down`: what is written past it is body.
    let head = down.len() as u64;
    match resp.body {
        Framing::Empty => {
            up.buf.advance(start);
            client.write_all(down).await.map(|()| 0)
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
            Ok(n)
        }
        Framing::Chunked => {
            let mut chunks = Chunked::default();
            let mut from = start;
            let mut sent = 0u64;
            let mut past_head = head;
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
                    sent += down.len() as u64 - past_head;
                    past_head = 0;
                    down.clear();
                }
                if chunks.is_done() {
                    return Ok(sent);
                }
                up.buf.reserve(STREAM_CHUNK);
                if up.stream.read_buf(&mut up.buf).await? == 0 {
                    return Err(broken());
                }
            }
        }
        Framing::UntilClose => {
            down.extend_from_slice(&up.buf[start..]);
            let mut sent = down.len() as u64 - head;
            up.buf.clear();
            client.write_all(down).await?;
            loop {
                up.buf.reserve(STREAM_CHUNK);
                if up.stream.read_buf(&mut up.buf).await? == 0 {
                    return Ok(sent);
                }
                client.write_all(&up.buf).await?;
                sent += up.buf.len() as u64;
                up.buf.clear();
            }
        }
    }
}

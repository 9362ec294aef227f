//! An instance's response head, parsed in place and rewritten for the client.

use std::mem::MaybeUninit;

use super::head::{
    ConnectionTokens, Framing, MAX_HEAD, MAX_HEADERS, ends_chunked, parse_length, put_header,
};
use crate::headers::is_hop_by_hop;

/// What the client side of the exchange needs the response to respect.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub http10: bool,
    /// The connection stays open after this response, unless the response forbids it.
    pub keep_alive: bool,
    /// A HEAD request: whatever the headers say, no body follows.
    pub is_head: bool,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Length of the head in the instance's buffer.
    pub len: usize,
    pub status: u16,
    /// How the body is delimited, as the instance sends it.
    pub body: Framing,
    /// The instance's connection can carry another request afterwards.
    pub reusable: bool,
    /// The client connection closes after this response.
    pub close: bool,
    /// A chunked body the client (HTTP/1.0) gets without the chunk framing.
    pub dechunk: bool,
    /// The instance set `X-Request-Id` itself.
    pub has_request_id: bool,
}

impl ResponseHead {
    /// A `1xx` other than `101`: more heads follow.
    pub fn informational(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Parses the head at the start of `buf` (`Ok(None)`: not all here yet) and writes
/// the head for the client into `out` (cleared first).
pub fn parse(
    buf: &[u8],
    client: Client,
    out: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, &'static str> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Err("the response head is too large");
        }
        Err(_) => return Err("malformed response"),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err("malformed response");
    };
    let reason = resp.reason.unwrap_or_default();

    let mut conn = ConnectionTokens::default();
    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut upgrade: Option<&[u8]> = None;
    let mut has_request_id = false;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case(crate::headers::X_REQUEST_ID) {
            has_request_id = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or("invalid Content-Length in the response")?;
            if length.is_some_and(|m| m != n) {
                return Err("conflicting Content-Length headers in the response");
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = Some(h.value);
        } else if name.eq_ignore_ascii_case("connection") {
            conn.add(h.value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(h.value);
        }
    }
    let informational = (100..200).contains(&status);
    let body = if informational || client.is_head || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (transfer_encoding, length) {
            (Some(te), _) if ends_chunked(te) => Framing::Chunked,
            (Some(_), _) | (None, None) => Framing::UntilClose,
            (None, Some(0)) => Framing::Empty,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    let dechunk = body == Framing::Chunked && client.http10;
    let switching = status == 101;
    let close = !switching && (!client.keep_alive || body == Framing::UntilClose || dechunk);
    let reusable = !switching
        && body != Framing::UntilClose
        && if version == 0 {
            conn.keep_alive && !conn.close
        } else {
            !conn.close
        };

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        let name = h.name;
        // With Transfer-Encoding, a Content-Length is wrong (RFC 9112 §6.3): dropped.
        if is_hop_by_hop(name)
            || conn.names(name)
            || (transfer_encoding.is_some() && name.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        put_header(out, name.as_bytes(), h.value);
    }
    if let (Framing::Chunked, false, Some(te)) = (body, dechunk, transfer_encoding) {
        put_header(out, b"transfer-encoding", te);
    }
    if switching {
        put_header(out, b"connection", b"upgrade");
        if let Some(u) = upgrade {
            put_header(out, b"upgrade", u);
        }
    } else if informational {
        // Says nothing about the connection.
    } else if close {
        put_header(out, b"connection", b"close");
    } else if client.http10 {
        put_header(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(ResponseHead {
        len,
        status,
        body,
        reusable,
        close,
        dechunk,
        has_request_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Client = Client {
        http10: false,
        keep_alive: true,
        is_head: false,
    };

    fn rewrite(raw: &str, client: Client) -> (ResponseHead, String) {
        let mut out = Vec::new();
        let head = parse(raw.as_bytes(), client, &mut out)
            .expect("valid")
            .expect("complete");
        (head, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn strips_hop_by_hop_and_keeps_the_rest() {
        let (head, out) = rewrite(
            "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nok\n",
            KEEP,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 3\r\n\r\n"
        );
        assert_eq!(
            (head.body, head.reusable, head.close),
            (Framing::Length(3), true, false)
        );
        assert_eq!(head.len, 99 - 3, "the head ends before the body");
    }

    #[test]
    fn framing_rules() {
        let (h, _) = rewrite("HTTP/1.1 204 No Content\r\n\r\n", KEEP);
        assert_eq!(h.body, Framing::Empty);
        let head_req = Client {
            is_head: true,
            ..KEEP
        };
        let (h, out) = rewrite("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", head_req);
        assert_eq!(h.body, Framing::Empty);
        assert!(
            out.contains("Content-Length: 99"),
            "HEAD keeps the length: {out}"
        );
        let (h, out) = rewrite("HTTP/1.1 200 OK\r\n\r\n", KEEP);
        assert_eq!(
            (h.body, h.reusable, h.close),
            (Framing::UntilClose, false, true)
        );
        assert!(out.ends_with("connection: close\r\n\r\n"), "{out}");
        let (h, out) = rewrite(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            KEEP,
        );
        assert_eq!(h.body, Framing::Chunked);
        assert!(
            out.contains("transfer-encoding: chunked") && !out.contains("Content-Length"),
            "{out}"
        );
        let (h, _) = rewrite("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", KEEP);
        assert!(!h.reusable, "HTTP/1.0 without keep-alive closes");
        let (h, _) = rewrite(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            KEEP,
        );
        assert!(
            !h.reusable && !h.close,
            "the instance's close is not the client's"
        );
    }

    #[test]
    fn http10_clients_get_no_chunks() {
        let c = Client {
            http10: true,
            keep_alive: true,
            is_head: false,
        };
        let (h, out) = rewrite("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", c);
        assert!(h.dechunk && h.close);
        assert!(
            !out.contains("chunked") && out.contains("connection: close"),
            "{out}"
        );
        let (h, out) = rewrite("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", c);
        assert!(!h.close && out.contains("connection: keep-alive"), "{out}");
    }

    #[test]
    fn switching_protocols_keeps_the_upgrade() {
        let (h, out) = rewrite(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
            KEEP,
        );
        assert!(!h.reusable && !h.close && !h.informational());
        assert!(
            out.contains("connection: upgrade\r\nupgrade: websocket\r\n"),
            "{out}"
        );
        let (h, _) = rewrite("HTTP/1.1 100 Continue\r\n\r\n", KEEP);
        assert!(h.informational());
    }

    #[test]
    fn refuses_garbage() {
        let mut out = Vec::new();
        assert!(
            parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                KEEP,
                &mut out
            )
            .is_err()
        );
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n", KEEP, &mut out).is_err());
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nA: b", KEEP, &mut out),
            Ok(None)
        ));
    }
}

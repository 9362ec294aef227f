//! A client's request head: parsed once, in place, and turned straight into the head
//! sent upstream — no header map in between.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::head::{
    ConnectionTokens, Framing, MAX_HEAD, MAX_HEADERS, ends_chunked, parse_length, put_header,
    range_in,
};
use crate::headers::{
    PROTO_LINE, X_FORWARDED_FOR, X_FORWARDED_HOST, X_REQUEST_ID, forwarded_for, is_hop_by_hop,
    is_rewritten,
};

/// A parsed request head; ranges point into the client buffer it was parsed from.
#[derive(Debug)]
pub struct RequestHead {
    /// Length of the head in the buffer; the body (if any) follows.
    pub len: usize,
    pub method: Range<usize>,
    /// The request target as sent.
    pub target: Range<usize>,
    /// The host it is for: the absolute-form authority, else `Host`.
    pub host: Range<usize>,
    pub http10: bool,
    /// Whether the client wants the connection kept after this exchange.
    pub keep_alive: bool,
    pub body: Framing,
    /// A protocol upgrade (WebSocket) is asked for.
    pub upgrade: bool,
    /// The client waits for `100 Continue` before sending its body.
    pub expect_continue: bool,
    /// Safe to send again if the instance died without answering.
    pub idempotent: bool,
    pub is_head: bool,
    /// Where the request id (the client's, or the one made here) is in the head sent
    /// upstream: the client gets it back on the response.
    pub request_id: Range<usize>,
}

/// Why a head can't be served (yet).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not all here yet.
    Partial,
    /// Over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] headers: 431.
    TooLarge,
    /// Malformed: 400 with this text.
    Bad(&'static str),
}

/// Parses the head at the start of `buf` and writes the request to send upstream
/// into `out` (cleared first): origin-form, hop-by-hop headers gone, `X-Forwarded-*`
/// and `X-Request-Id` added. `client_ip` is appended to the `X-Forwarded-For` the
/// client sent when `trusted` (a load balancer in front), else replaces it: a client
/// can't make the app believe it comes from elsewhere.
pub fn parse(
    buf: &[u8],
    client_ip: &str,
    trusted: bool,
    request_id: impl FnOnce(&mut Vec<u8>),
    out: &mut Vec<u8>,
) -> Result<RequestHead, Refusal> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Err(Refusal::Partial),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::TooLarge);
        }
        Err(_) => return Err(Refusal::Bad("malformed request\n")),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(Refusal::Bad("malformed request\n"));
    };
    if method == "CONNECT" {
        return Err(Refusal::Bad("CONNECT is not supported\n"));
    }
    let http10 = version == 0;

    // The first pass: framing, Connection and what the second pass needs to know.
    let mut conn = ConnectionTokens::default();
    let mut host: Option<&[u8]> = None;
    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut upgrade: Option<&[u8]> = None;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err(Refusal::Bad("more than one Host header\n"));
            }
            host = Some(h.value.trim_ascii());
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(Refusal::Bad("invalid Content-Length\n"))?;
            if length.is_some_and(|m| m != n) {
                return Err(Refusal::Bad("conflicting Content-Length headers\n"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if transfer_encoding.is_some() {
                return Err(Refusal::Bad("more than one Transfer-Encoding header\n"));
            }
            transfer_encoding = Some(h.value);
        } else if name.eq_ignore_ascii_case("connection") {
            conn.add(h.value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(h.value);
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    let body = match (transfer_encoding, length) {
        // Both: a request smuggling attempt or a broken client (RFC 9112 §6.3).
        (Some(_), Some(_)) => {
            return Err(Refusal::Bad(
                "Content-Length and Transfer-Encoding together\n",
            ));
        }
        (Some(te), None) if ends_chunked(te) && !http10 => Framing::Chunked,
        (Some(_), None) => return Err(Refusal::Bad("unsupported Transfer-Encoding\n")),
        (None, Some(n)) if n > 0 => Framing::Length(n),
        (None, _) => Framing::Empty,
    };
    let upgrade = if conn.upgrade && !http10 {
        upgrade
    } else {
        None
    };

    // Absolute-form (`GET http://host/path`): the authority is the host (RFC 9112
    // §3.2.2) and the instance gets origin-form.
    let (path, authority) = split_absolute(target);
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400.
    if !http10 && host.is_none() && authority.is_none() {
        return Err(Refusal::Bad("missing Host header\n"));
    }
    let host = authority.or(host).unwrap_or_default();

    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    if !path.starts_with('/') && path != "*" {
        out.push(b'/');
    }
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut prior_forwarded_for = false;
    let mut request_id_at: Option<Range<usize>> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if is_rewritten(name) {
            // Written below; the client's X-Forwarded-For joined into one if trusted.
            prior_forwarded_for |= trusted && name.eq_ignore_ascii_case(X_FORWARDED_FOR);
            continue;
        }
        if request_id_at.is_none() && name.eq_ignore_ascii_case(X_REQUEST_ID) {
            let start = out.len() + name.len() + 2;
            put_header(out, name.as_bytes(), h.value);
            request_id_at = Some(start..start + h.value.len());
            continue;
        }
        if is_hop_by_hop(name)
            || conn.names(name)
            || (expect_continue && name.eq_ignore_ascii_case("expect"))
            || (authority.is_some() && name.eq_ignore_ascii_case("host"))
        {
            continue;
        }
        put_header(out, name.as_bytes(), h.value);
    }
    if let Some(a) = authority {
        put_header(out, b"host", a);
    }
    if let (Framing::Chunked, Some(te)) = (body, transfer_encoding) {
        put_header(out, b"transfer-encoding", te);
    }
    if let Some(u) = upgrade {
        put_header(out, b"connection", b"upgrade");
        put_header(out, b"upgrade", u);
    }
    out.extend_from_slice(X_FORWARDED_FOR.as_bytes());
    out.extend_from_slice(b": ");
    let ip = client_ip.as_bytes();
    if prior_forwarded_for {
        let prior = req
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(X_FORWARDED_FOR));
        forwarded_for(prior.map(|h| h.value), ip, out);
    } else {
        forwarded_for([], ip, out);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(PROTO_LINE);
    put_header(out, X_FORWARDED_HOST.as_bytes(), host);
    let request_id_at = match request_id_at {
        Some(r) => r,
        None => {
            out.extend_from_slice(X_REQUEST_ID.as_bytes());
            out.extend_from_slice(b": ");
            let start = out.len();
            request_id(out);
            let r = start..out.len();
            out.extend_from_slice(b"\r\n");
            r
        }
    };
    out.extend_from_slice(b"\r\n");

    Ok(RequestHead {
        len,
        method: range_in(buf, method.as_bytes()),
        target: range_in(buf, target.as_bytes()),
        host: if host.is_empty() {
            0..0
        } else {
            range_in(buf, host)
        },
        http10,
        keep_alive: if http10 {
            conn.keep_alive && !conn.close
        } else {
            !conn.close
        },
        body,
        upgrade: upgrade.is_some(),
        expect_continue: expect_continue && !http10,
        idempotent: matches!(method, "GET" | "HEAD" | "OPTIONS"),
        is_head: method == "HEAD",
        request_id: request_id_at,
    })
}

/// Splits an absolute-form target into its path (with query) and authority.
fn split_absolute(target: &str) -> (&str, Option<&[u8]>) {
    let rest = match target.get(..7) {
        Some(s) if s.eq_ignore_ascii_case("http://") => &target[7..],
        _ => match target.get(..8) {
            Some(s) if s.eq_ignore_ascii_case("https://") => &target[8..],
            _ => return (target, None),
        },
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // Userinfo is not passed on.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    (
        if path.is_empty() { "/" } else { path },
        Some(authority.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(raw: &str) -> (Result<RequestHead, Refusal>, String) {
        let mut out = Vec::new();
        let r = parse(
            raw.as_bytes(),
            "10.0.0.9",
            true,
            |o| o.extend_from_slice(b"rid1"),
            &mut out,
        );
        (r, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn rewrites_a_plain_get() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: Shop.example:8080\r\nAccept: */*\r\n\
                   Connection: keep-alive, x-drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\n\
                   X-Forwarded-Proto: https\r\n\r\nrest";
        let (head, out) = upstream(raw);
        let head = head.expect("parses");
        assert_eq!(
            out,
            "GET /a?b=1 HTTP/1.1\r\nHost: Shop.example:8080\r\nAccept: */*\r\n\
             x-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\n\
             x-forwarded-host: Shop.example:8080\r\nx-request-id: rid1\r\n\r\n"
        );
        assert_eq!(&raw[head.host], "Shop.example:8080");
        assert_eq!(head.len, raw.len() - 4);
        assert!(head.keep_alive && head.idempotent && head.body == Framing::Empty);
    }

    #[test]
    fn keeps_forwarded_for_and_request_id_from_earlier_proxies() {
        let raw = "POST /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\n\
                   X-Request-Id: abc\r\nx-forwarded-for: 2.2.2.2\r\nContent-Length: 3\r\n\r\nabc";
        let (head, out) = upstream(raw);
        let head = head.expect("parses");
        assert!(
            out.contains("x-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\n"),
            "{out}"
        );
        assert!(
            out.contains("X-Request-Id: abc\r\n") && !out.contains("rid1"),
            "{out}"
        );
        assert!(out.contains("Content-Length: 3\r\n"), "{out}");
        assert_eq!(head.body, Framing::Length(3));
        assert!(!head.idempotent);
    }

    #[test]
    fn an_untrusted_clients_forwarded_for_is_replaced_and_the_request_id_found() {
        let raw =
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\nX-Request-Id: mine\r\n\r\n";
        let mut out = Vec::new();
        let head = parse(
            raw.as_bytes(),
            "10.0.0.9",
            false,
            |o| o.push(b'x'),
            &mut out,
        )
        .expect("parses");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("x-forwarded-for: 10.0.0.9\r\n"), "{text}");
        assert!(!text.contains("6.6.6.6"), "{text}");
        assert_eq!(&out[head.request_id], b"mine");
        let (head, out) = upstream("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(&out.as_bytes()[head.expect("parses").request_id], b"rid1");
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        let (head, out) =
            upstream("GET http://user@api.example:81?q HTTP/1.1\r\nHost: other\r\n\r\n");
        let raw = "GET http://user@api.example:81?q HTTP/1.1\r\nHost: other\r\n\r\n";
        assert_eq!(&raw[head.expect("parses").host], "api.example:81");
        assert!(out.starts_with("GET /?q HTTP/1.1\r\n"), "{out}");
        assert!(
            out.contains("host: api.example:81\r\n") && !out.contains("other"),
            "{out}"
        );
    }

    #[test]
    fn upgrades_chunked_and_continue() {
        let (head, out) = upstream(
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert!(head.expect("parses").upgrade);
        assert!(
            out.contains("connection: upgrade\r\nupgrade: websocket\r\n"),
            "{out}"
        );
        let (head, out) = upstream(
            "PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        );
        let head = head.expect("parses");
        assert!(head.expect_continue && head.body == Framing::Chunked);
        assert!(
            out.contains("transfer-encoding: chunked\r\n") && !out.contains("Expect"),
            "{out}"
        );
    }

    #[test]
    fn http10_closes_unless_asked_to_keep_alive() {
        let (head, _) = upstream("GET / HTTP/1.0\r\n\r\n");
        let head = head.expect("parses");
        assert!(head.http10 && !head.keep_alive && head.host.is_empty());
        let (head, _) = upstream("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(head.expect("parses").keep_alive);
        let (head, _) = upstream("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        assert!(!head.expect("parses").keep_alive);
    }

    #[test]
    fn refuses_what_it_must() {
        let bad = |raw: &str| upstream(raw).0.err();
        assert_eq!(bad("GET / HTTP/1.1\r\nHost: a"), Some(Refusal::Partial));
        assert_eq!(
            bad("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"),
            Some(Refusal::Bad("missing Host header\n"))
        );
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(Refusal::Bad(_))
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Some(Refusal::Bad(_))
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Some(Refusal::Bad(_))
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Some(Refusal::Bad(_))
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Some(Refusal::Bad(_))
        ));
        assert!(matches!(
            bad("CONNECT a:443 HTTP/1.1\r\n\r\n"),
            Some(Refusal::Bad(_))
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"),
            Some(Refusal::Bad(_))
        ));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        assert_eq!(
            bad(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Some(Refusal::TooLarge)
        );
        let huge = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(bad(&huge), Some(Refusal::TooLarge));
    }
}

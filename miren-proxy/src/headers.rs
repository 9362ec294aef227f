//! The header rules both protocols follow (SPEC §6), written once: which headers
//! concern only one hop, which the proxy writes itself, how `X-Forwarded-For` grows by
//! one hop, and what a request id looks like. Each protocol writes them in its own
//! representation (bytes for HTTP/1, a header map for HTTP/2).

use std::sync::atomic::{AtomicU64, Ordering};

/// The client's address, after those of earlier proxies.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// The scheme the client used to reach the proxy.
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// The host the client asked for.
pub const X_FORWARDED_HOST: &str = "x-forwarded-host";
/// A request's id: kept when the client sent one, else made here.
pub const X_REQUEST_ID: &str = "x-request-id";
/// What `X-Forwarded-Proto` says: the proxy speaks plain HTTP.
pub const PROTO: &str = "http";
/// `X-Forwarded-Proto` as an HTTP/1 header line, written in one go.
pub const PROTO_LINE: &[u8] = b"x-forwarded-proto: http\r\n";
/// How long a request id is.
pub const REQUEST_ID_LEN: usize = 22;

/// Whether a header only concerns one hop, so the proxy never passes it on as is.
/// `Transfer-Encoding` and `Upgrade` are written back by the proxy when they apply.
#[inline]
pub fn is_hop_by_hop(name: &str) -> bool {
    // Dispatch on length first: most headers are none of these.
    match name.len() {
        2 => name.eq_ignore_ascii_case("te"),
        7 => name.eq_ignore_ascii_case("trailer") || name.eq_ignore_ascii_case("upgrade"),
        10 => name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive"),
        16 => name.eq_ignore_ascii_case("proxy-connection"),
        17 => name.eq_ignore_ascii_case("transfer-encoding"),
        18 => name.eq_ignore_ascii_case("proxy-authenticate"),
        19 => name.eq_ignore_ascii_case("proxy-authorization"),
        _ => false,
    }
}

/// Whether the proxy writes this request header itself: what a client sent is
/// replaced (`X-Forwarded-Proto`, `-Host`) or joined into one (`X-Forwarded-For`,
/// see [`forwarded_for`]).
#[inline]
pub fn is_rewritten(name: &str) -> bool {
    name.len() >= 15
        && (name.eq_ignore_ascii_case(X_FORWARDED_FOR)
            || name.eq_ignore_ascii_case(X_FORWARDED_PROTO)
            || name.eq_ignore_ascii_case(X_FORWARDED_HOST))
}

/// Appends the value of `X-Forwarded-For` after this hop to `out`: every value the
/// client sent, in order, then the client's address.
#[inline]
pub fn forwarded_for<'a>(
    prior: impl IntoIterator<Item = &'a [u8]>,
    client_ip: &[u8],
    out: &mut Vec<u8>,
) {
    for v in prior {
        out.extend_from_slice(v);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client_ip);
}

/// Appends a new request id: this process's random prefix and a counter, as hex.
/// Cheap enough for every request: no allocation.
pub fn write_request_id(out: &mut Vec<u8>) {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| miren_core::model::new_suffix()[..10].to_string());
    out.extend_from_slice(prefix.as_bytes());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..12).rev() {
        out.push(HEX[((n >> (shift * 4)) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_fixed_width() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_request_id(&mut a);
        write_request_id(&mut b);
        assert_eq!((a.len(), b.len()), (REQUEST_ID_LEN, REQUEST_ID_LEN));
        assert_ne!(a, b);
        assert!(a.iter().all(u8::is_ascii_alphanumeric));
    }

    #[test]
    fn the_proto_line_says_what_the_constants_do() {
        let line = format!("{X_FORWARDED_PROTO}: {PROTO}\r\n");
        assert_eq!(PROTO_LINE, line.as_bytes());
    }

    #[test]
    fn forwarded_for_grows_by_one_hop() {
        let mut out = Vec::new();
        forwarded_for([&b"1.1.1.1"[..], b"2.2.2.2"], b"10.0.0.9", &mut out);
        assert_eq!(out, b"1.1.1.1, 2.2.2.2, 10.0.0.9");
        out.clear();
        forwarded_for([], b"10.0.0.9", &mut out);
        assert_eq!(out, b"10.0.0.9");
    }

    #[test]
    fn hop_by_hop_and_rewritten_names() {
        for n in [
            "Connection",
            "TE",
            "keep-alive",
            "Transfer-Encoding",
            "Upgrade",
        ] {
            assert!(is_hop_by_hop(n), "{n}");
        }
        for n in ["content-length", "host", "x-request-id", "trailers"] {
            assert!(!is_hop_by_hop(n), "{n}");
        }
        assert!(is_rewritten("X-Forwarded-Proto") && is_rewritten("x-forwarded-for"));
        assert!(!is_rewritten("x-request-id") && !is_rewritten("host"));
    }
}

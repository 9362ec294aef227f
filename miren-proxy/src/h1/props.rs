//! Properties of the head rewriting, over generated requests and arbitrary bytes: a
//! proxy's parser meets whatever the network sends.

use proptest::prelude::*;

use super::head::Framing;
use super::{request, response};
use crate::headers::is_hop_by_hop;

/// A header name: a token, sometimes one the proxy treats specially.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z][A-Za-z0-9-]{0,15}",
        Just("Connection".to_string()),
        Just("Keep-Alive".to_string()),
        Just("TE".to_string()),
        Just("Upgrade".to_string()),
        Just("X-Forwarded-For".to_string()),
        Just("X-Request-Id".to_string()),
        Just("Proxy-Authorization".to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    "[ -~]{0,30}".prop_map(|v| v.trim().to_string())
}

/// Lines of an upstream head after the request line, lowercased names.
fn header_names(head: &str) -> Vec<String> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut out = Vec::new();
        let _ = request::parse(&bytes, "127.0.0.1", true, |o| o.push(b'x'), &mut out);
        let client = response::Client { http10: false, keep_alive: true, is_head: false };
        let _ = response::parse(&bytes, client, &mut out);
        let mut c = super::chunked::Chunked::default();
        let _ = c.scan(&bytes, |_| {});
    }

    #[test]
    fn the_upstream_head_keeps_end_to_end_headers_only(
        headers in proptest::collection::vec((name(), value()), 0..12),
        path in "/[a-z0-9/?=&]{0,20}",
    ) {
        let mut raw = format!("GET {path} HTTP/1.1\r\nHost: app.example\r\n");
        for (n, v) in &headers {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let mut out = Vec::new();
        let head = request::parse(raw.as_bytes(), "10.1.2.3", true, |o| o.extend_from_slice(b"id"), &mut out);
        let head = match head {
            Ok(h) => h,
            // Generated Content-Length or Transfer-Encoding values may be refused;
            // refusing is fine, rewriting them wrongly is not.
            Err(_) => return Ok(()),
        };
        prop_assert_eq!(head.len, raw.len());
        let up = String::from_utf8(out).expect("ascii in, ascii out");
        prop_assert!(up.starts_with(&format!("GET {path} HTTP/1.1\r\n")), "{}", up);
        prop_assert!(up.ends_with("\r\n\r\n"));
        let names = header_names(&up);
        // Every end-to-end header goes through once per occurrence, in order.
        let named: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
            .collect();
        let kept: Vec<String> = headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .filter(|n| !is_hop_by_hop(n) && !n.starts_with("x-forwarded-") && n != "expect")
            .filter(|n| !named.contains(n))
            .collect();
        let passed: Vec<String> = names
            .iter()
            .filter(|n| kept.contains(n))
            .cloned()
            .collect();
        prop_assert_eq!(passed, kept);
        // Hop-by-hop never, upgrades aside; one X-Forwarded-For, ending with the client.
        for n in &names {
            let rewritten = (head.upgrade && (n == "connection" || n == "upgrade"))
                || (head.body == Framing::Chunked && n == "transfer-encoding");
            prop_assert!(!is_hop_by_hop(n) || rewritten, "{}", up);
        }
        prop_assert_eq!(names.iter().filter(|n| *n == "x-forwarded-for").count(), 1);
        let xff = up.lines().find(|l| l.to_ascii_lowercase().starts_with("x-forwarded-for:")).unwrap_or_default();
        prop_assert!(xff.ends_with("10.1.2.3"), "{}", xff);
        // The client's request ids pass as they are; one is added when there is none.
        let ids = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("x-request-id")).count();
        prop_assert_eq!(names.iter().filter(|n| *n == "x-request-id").count(), ids.max(1));
    }

    #[test]
    fn response_framing_is_never_guessed(len in 0u64..100_000, chunked in any::<bool>(), http10 in any::<bool>()) {
        let raw = if chunked {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
        } else {
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n")
        };
        let client = response::Client { http10, keep_alive: true, is_head: false };
        let mut out = Vec::new();
        let head = response::parse(raw.as_bytes(), client, &mut out).expect("valid").expect("complete");
        let down = String::from_utf8(out).expect("ascii");
        match head.body {
            Framing::Chunked => {
                prop_assert!(chunked);
                // HTTP/1.0 can't take chunks: they are stripped and the end is the close.
                prop_assert_eq!(down.contains("chunked"), !http10);
                prop_assert_eq!(head.close, http10);
            }
            Framing::Length(n) => prop_assert_eq!((n, chunked, head.close), (len, false, false)),
            Framing::Empty => prop_assert_eq!((len, chunked), (0, false)),
            Framing::UntilClose => prop_assert!(false, "framed responses are never read to the close"),
        }
    }
}

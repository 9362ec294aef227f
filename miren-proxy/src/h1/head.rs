//! What request and response heads share: framing, the `Connection` header and the
//! headers that concern only one hop (RFC 9110 §7.6.1, RFC 9112 §6).

use std::ops::Range;

/// Headers parsed per message at most (as hyper's default).
pub const MAX_HEADERS: usize = 100;
/// Longest head kept while waiting for its end.
pub const MAX_HEAD: usize = 64 * 1024;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// The tokens of the `Connection` header(s): close / keep-alive / upgrade, and the
/// other headers it names (hop-by-hop too, and removed).
#[derive(Default)]
pub struct ConnectionTokens<'a> {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    named: [&'a [u8]; 8],
    n_named: usize,
}

impl<'a> ConnectionTokens<'a> {
    pub fn add(&mut self, value: &'a [u8]) {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if !token.is_empty() && self.n_named < self.named.len() {
                self.named[self.n_named] = token;
                self.n_named += 1;
            }
        }
    }

    /// Whether `Connection` names this header.
    pub fn names(&self, header: &str) -> bool {
        self.named[..self.n_named]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(header.as_bytes()))
    }
}

/// A `Content-Length` value, strictly digits (RFC 9110 §8.6): anything else is a
/// framing error, never guessed at.
#[inline]
pub fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether the last coding of a `Transfer-Encoding` value is `chunked`.
#[inline]
pub fn ends_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Appends `name: value\r\n`.
#[inline]
pub fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Where `part` (a subslice of `whole`) sits in it.
pub fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_digits_only() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b" 42 "), Some(42));
        for bad in [
            &b""[..],
            b"-1",
            b"1,1",
            b"0x10",
            b"+5",
            b"99999999999999999999",
        ] {
            assert_eq!(
                parse_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn connection_tokens() {
        let mut t = ConnectionTokens::default();
        t.add(b"keep-alive, Upgrade");
        t.add(b"X-Secret ,close");
        assert!(t.keep_alive && t.upgrade && t.close);
        assert!(t.names("x-secret") && !t.names("x-other"));
    }

    #[test]
    fn only_a_last_chunked_coding_is_chunked() {
        assert!(ends_chunked(b"gzip, Chunked") && !ends_chunked(b"chunked, gzip"));
    }
}

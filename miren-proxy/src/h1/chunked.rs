//! Chunked transfer coding (RFC 9112 §7.1), scanned as it streams by: the proxy passes
//! chunked bodies through unchanged and only needs to know where they end, or, for an
//! HTTP/1.0 client, the payload without the framing.
//!
//! Strict, because what it passes on is read again by the app's own HTTP parser: every
//! chunk line and trailer line ends in CRLF, and a bare CR or LF anywhere in them, a
//! malformed extension or trailer field, is refused. A lenient parser behind the proxy
//! (one that takes a bare LF for a line end) would otherwise find the body ending
//! elsewhere than the proxy did, and read the rest as a request the proxy never saw.

/// Where a chunked body stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data: this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailer,
    Done,
}

/// Malformed chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// Longest size or trailer line kept while waiting for the rest of it.
const MAX_LINE: usize = 4096;

impl Default for Chunked {
    fn default() -> Self {
        Self { state: State::Size }
    }
}

impl Chunked {
    /// Whether the last chunk and the trailer went by.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans the start of `buf`, calling `data` with each piece of payload. Returns
    /// how many bytes it went through: all of `buf` unless the body ends inside it or
    /// a line is cut off at its end (those bytes wait for the rest).
    pub fn scan(&mut self, buf: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, Invalid> {
        let mut i = 0;
        loop {
            let rest = &buf[i..];
            match self.state {
                State::Done => return Ok(i),
                State::Size => match line(rest)? {
                    None => return Ok(i),
                    Some(len) => {
                        let size = chunk_size(&rest[..len])?;
                        i += len + 2;
                        self.state = if size == 0 {
                            State::Trailer
                        } else {
                            State::Data(size)
                        };
                    }
                },
                State::Data(left) => {
                    if rest.is_empty() {
                        return Ok(i);
                    }
                    let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    data(&rest[..n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(i);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(Invalid);
                    }
                    i += 2;
                    self.state = State::Size;
                }
                State::Trailer => match line(rest)? {
                    None => return Ok(i),
                    Some(0) => {
                        i += 2;
                        self.state = State::Done;
                    }
                    Some(len) => {
                        trailer_field(&rest[..len])?;
                        i += len + 2;
                    }
                },
            }
        }
    }
}

/// The length of the line at the start of `buf` (without its CRLF); `None` while its
/// end hasn't arrived. A CR or LF anywhere but in the final CRLF is refused, as is a
/// line longer than [`MAX_LINE`].
fn line(buf: &[u8]) -> Result<Option<usize>, Invalid> {
    match buf.iter().position(|b| *b == b'\r' || *b == b'\n') {
        Some(i) if i > MAX_LINE => Err(Invalid),
        Some(i) => match buf.get(i..i + 2) {
            Some(b"\r\n") => Ok(Some(i)),
            // A CR at the very end: its LF may be on the way.
            None if buf[i] == b'\r' => Ok(None),
            _ => Err(Invalid),
        },
        None if buf.len() > MAX_LINE => Err(Invalid),
        None => Ok(None),
    }
}

/// `1*HEXDIG *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn chunk_size(line: &[u8]) -> Result<u64, Invalid> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(Invalid);
    }
    let mut size = 0u64;
    for b in &line[..digits] {
        let d = (*b as char).to_digit(16).ok_or(Invalid)?;
        size = size.checked_mul(16).ok_or(Invalid)? + u64::from(d);
    }
    extensions(&line[digits..])?;
    Ok(size)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
    &s[n..]
}

fn token(s: &[u8]) -> Result<&[u8], Invalid> {
    let n = s.iter().take_while(|b| is_tchar(**b)).count();
    if n == 0 { Err(Invalid) } else { Ok(&s[n..]) }
}

fn quoted(s: &[u8]) -> Result<&[u8], Invalid> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Ok(&s[i + 1..]),
            b'\\'
                if i + 1 < s.len()
                    && (s[i + 1] == b'\t' || s[i + 1] >= 0x20)
                    && s[i + 1] != 0x7f =>
            {
                i += 2
            }
            b if b == b'\t' || (b >= 0x20 && b != 0x7f && b != b'\\') => i += 1,
            _ => return Err(Invalid),
        }
    }
    Err(Invalid)
}

fn extensions(mut s: &[u8]) -> Result<(), Invalid> {
    loop {
        s = skip_ws(s);
        if s.is_empty() {
            return Ok(());
        }
        if s[0] != b';' {
            return Err(Invalid);
        }
        s = token(skip_ws(&s[1..]))?;
        let after = skip_ws(s);
        if after.first() == Some(&b'=') {
            let v = skip_ws(&after[1..]);
            s = if v.first() == Some(&b'"') {
                quoted(v)?
            } else {
                token(v)?
            };
        }
    }
}

/// `field-name ":" OWS field-value OWS`, the value free of control characters.
fn trailer_field(line: &[u8]) -> Result<(), Invalid> {
    let rest = token(line)?;
    if rest.first() != Some(&b':') {
        return Err(Invalid);
    }
    let ok = rest[1..]
        .iter()
        .all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f));
    if ok { Ok(()) } else { Err(Invalid) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, as a socket might deliver it.
    fn feed(input: &[u8], step: usize) -> (Result<usize, Invalid>, Vec<u8>, bool) {
        let mut c = Chunked::default();
        let mut payload = Vec::new();
        let mut pending = Vec::new();
        let mut total = 0;
        for piece in input.chunks(step) {
            pending.extend_from_slice(piece);
            match c.scan(&pending, |d| payload.extend_from_slice(d)) {
                Ok(n) => {
                    total += n;
                    pending.drain(..n);
                }
                Err(e) => return (Err(e), payload, false),
            }
            if c.is_done() {
                break;
            }
        }
        (Ok(total), payload, c.is_done())
    }

    #[test]
    fn finds_the_end_whatever_the_pieces() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        let mut input = body.to_vec();
        input.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        for step in 1..=input.len() {
            let (n, payload, done) = feed(&input, step);
            assert_eq!(n, Ok(body.len()), "step {step}");
            assert_eq!(payload, b"hello world", "step {step}");
            assert!(done);
        }
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(feed(b"zz\r\nhello\r\n", 64).0, Err(Invalid));
        assert_eq!(feed(b"5\r\nhelloXX0\r\n\r\n", 64).0, Err(Invalid));
        let endless = vec![b'1'; MAX_LINE + 1];
        assert_eq!(feed(&endless, 64).0, Err(Invalid));
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (n, payload, done) = feed(b"5\r\nhel", 64);
        assert_eq!((n, payload.as_slice(), done), (Ok(6), &b"hel"[..], false));
    }

    #[test]
    fn bare_line_feeds_and_bad_extensions_or_trailers_are_refused() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\r\n0\nGET /x HTTP/1.1\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx: y\nGET /x HTTP/1.1\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx: y\r\n\n",
            b"5\rX\nhello\r\n0\r\n\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nno-colon\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx: \x01\r\n\r\n",
            b"11111111111111111\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
        ] {
            assert_eq!(
                feed(bad, 64).0,
                Err(Invalid),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for good in [
            &b"5;a=b;c\r\nhello\r\n0\r\n\r\n"[..],
            b"5 ; a = \"q \\\" x\"\r\nhello\r\n0\r\n\r\n",
            b"005\r\nhello\r\n0\r\nx-t: 1\t2\r\n\r\n",
        ] {
            let (n, payload, done) = feed(good, 3);
            assert_eq!(
                (n, done),
                (Ok(good.len()), true),
                "{:?}",
                String::from_utf8_lossy(good)
            );
            assert_eq!(payload, b"hello");
        }
    }

    /// A lenient reading, as many app servers do: a bare LF ends a line, anything after
    /// the size's hex digits is ignored. Where it says the body ends, given the bytes.
    fn lenient_end(buf: &[u8]) -> Option<usize> {
        let mut i = 0;
        let line_end = |from: usize| {
            buf[from..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|p| from + p + 1)
        };
        loop {
            let end = line_end(i)?;
            let hex: String = buf[i..end]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .map(|b| *b as char)
                .collect();
            let size = u64::from_str_radix(&hex, 16).ok()?;
            i = end;
            if size == 0 {
                loop {
                    let end = line_end(i)?;
                    let blank = buf[i..end] == *b"\n" || buf[i..end] == *b"\r\n";
                    i = end;
                    if blank {
                        return Some(i);
                    }
                }
            }
            i = i.checked_add(usize::try_from(size).ok()?)?;
            if i > buf.len() {
                return None;
            }
            i = line_end(i)?;
        }
    }

    fn piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let eol = prop_oneof![
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b" \r\n".to_vec()),
            Just(b"\r\r\n".to_vec()),
        ];
        let ext = prop_oneof![
            Just(Vec::new()),
            Just(b";a=b".to_vec()),
            Just(b"; q=\"x\\ny\"".to_vec()),
            Just(b";\n".to_vec()),
            Just(b";x\nGET / HTTP/1.1".to_vec()),
        ];
        let data =
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\n'), Just(b'\r')], 1..8);
        let trailer = prop_oneof![
            Just(b"x-a: 1".to_vec()),
            Just(b"x-b: 2\nGET /smuggled HTTP/1.1".to_vec()),
            Just(b"bad line".to_vec()),
        ];
        prop_oneof![
            (data, ext.clone(), eol.clone(), eol.clone()).prop_map(|(d, x, e1, e2)| {
                let mut v = format!("{:x}", d.len()).into_bytes();
                v.extend(x);
                v.extend(e1);
                v.extend(d);
                v.extend(e2);
                v
            }),
            (
                ext,
                eol.clone(),
                proptest::collection::vec((trailer, eol.clone()), 0..3),
                eol
            )
                .prop_map(|(x, e1, trailers, last)| {
                    let mut v = b"0".to_vec();
                    v.extend(x);
                    v.extend(e1);
                    for (t, e) in trailers {
                        v.extend(t);
                        v.extend(e);
                    }
                    v.extend(last);
                    v
                }),
        ]
    }

    proptest::proptest! {
        /// Whatever framing arrives, when the proxy takes a body as whole, a lenient
        /// parser given the same bytes finds it ending at the same byte: nothing the
        /// proxy passes on can hide a request it didn't see.
        #[test]
        fn a_body_the_proxy_accepts_ends_where_any_parser_says(
            pieces in proptest::collection::vec(piece(), 1..5),
            step in 1usize..16,
        ) {
            let mut input: Vec<u8> = pieces.concat();
            input.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
            let (n, _, done) = feed(&input, step);
            if let (Ok(n), true) = (n, done) {
                proptest::prop_assert_eq!(lenient_end(&input), Some(n));
                proptest::prop_assert_eq!(lenient_end(&input[..n]), Some(n));
                proptest::prop_assert!(!input[..n].windows(4).any(|w| w == b"GET "), "a request inside the body");
            }
        }
    }
}

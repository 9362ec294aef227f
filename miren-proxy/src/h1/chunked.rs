//! Chunked transfer coding (RFC 9112 §7.1), scanned as it streams by: the proxy passes
//! chunked bodies through unchanged and only needs to know where they end, or, for an
//! HTTP/1.0 client, the payload without the framing.

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
                State::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        i += n;
                        self.state = if size == 0 {
                            State::Trailer
                        } else {
                            State::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if rest.len() < MAX_LINE => return Ok(i),
                    _ => return Err(Invalid),
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
                State::Trailer => match rest.windows(2).position(|w| w == b"\r\n") {
                    Some(0) => {
                        i += 2;
                        self.state = State::Done;
                    }
                    Some(line) => i += line + 2,
                    None if rest.len() < MAX_LINE => return Ok(i),
                    None => return Err(Invalid),
                },
            }
        }
    }
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
}

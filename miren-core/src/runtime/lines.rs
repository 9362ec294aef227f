//! A sandbox's output, line by line, whatever the runtime reads it from (a pipe, the
//! Engine's log stream): each line capped so a program that writes without newlines
//! can't grow the server's memory.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{LogLine, Stream};

/// Longest line kept; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 64 * 1024;

/// A line without its newline yet is shown after this long without more output (a
/// prompt, a progress dot); what follows comes as the next line.
pub const PARTIAL_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// Splits one stream's bytes into lines as they arrive, in chunks of any size.
#[derive(Debug)]
pub struct Lines {
    stream: Stream,
    line: Vec<u8>,
}

impl Lines {
    /// Lines of `stream`.
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            line: Vec::new(),
        }
    }

    /// Takes the next bytes; every line they complete goes to `emit` (without its
    /// `\n` or `\r\n`).
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(LogLine)) {
        while !bytes.is_empty() {
            let (chunk, newline) = match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            let room = MAX_LINE.saturating_sub(self.line.len());
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            bytes = &bytes[chunk.len() + usize::from(newline)..];
            if newline {
                emit(self.take());
            }
        }
    }

    /// Whether part of a line waits for its newline.
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty()
    }

    /// The stream ended, or went quiet in the middle of a line: that line, if any.
    pub fn finish(&mut self, mut emit: impl FnMut(LogLine)) {
        if !self.line.is_empty() {
            emit(self.take());
        }
    }

    fn take(&mut self) -> LogLine {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let text = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        LogLine {
            stream: self.stream,
            line: text,
        }
    }
}

/// Reads `r` to its end, passing each line to `emit`; a partial line is passed on
/// once `r` has been quiet for [`PARTIAL_AFTER`].
pub async fn read_lines<R: AsyncRead + Unpin>(
    mut r: R,
    stream: Stream,
    mut emit: impl FnMut(LogLine),
) {
    let mut lines = Lines::new(stream);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = if lines.has_partial() {
            match tokio::time::timeout(PARTIAL_AFTER, r.read(&mut buf)).await {
                Ok(read) => read,
                Err(_) => {
                    lines.finish(&mut emit);
                    continue;
                }
            }
        } else {
            r.read(&mut buf).await
        };
        match read {
            Ok(n) if n > 0 => lines.push(&buf[..n], &mut emit),
            _ => break,
        }
    }
    lines.finish(emit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_lines_caps_long_ones_and_keeps_a_last_partial_line() {
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("one\r\ntwo\n{long}\nlast");
        let mut got = Vec::new();
        read_lines(input.as_bytes(), Stream::Stdout, |l| got.push(l.line)).await;
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], "one");
        assert_eq!(got[1], "two");
        assert_eq!(got[2].len(), MAX_LINE);
        assert_eq!(got[3], "last");
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_line_is_shown_once_output_goes_quiet() {
        let (mut w, r) = tokio::io::duplex(64);
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = tokio::spawn({
            let got = got.clone();
            async move {
                read_lines(r, Stream::Stdout, |l| {
                    got.lock().unwrap_or_else(|e| e.into_inner()).push(l.line)
                })
                .await
            }
        });
        use tokio::io::AsyncWriteExt;
        w.write_all(b"Password: ")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let lines = || got.lock().unwrap_or_else(|e| e.into_inner()).clone();
        tokio::time::sleep(PARTIAL_AFTER / 2).await;
        assert!(lines().is_empty(), "not before it went quiet");
        tokio::time::sleep(PARTIAL_AFTER).await;
        assert_eq!(lines(), ["Password: "]);
        w.write_all(b"ok\n").await.unwrap_or_else(|e| panic!("{e}"));
        drop(w);
        reader.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lines(), ["Password: ", "ok"]);
    }

    #[test]
    fn a_line_split_across_chunks_is_one_line() {
        let mut l = Lines::new(Stream::Stderr);
        let mut got = Vec::new();
        for chunk in ["hel", "lo\r", "\nwor", "ld\n\n"] {
            l.push(chunk.as_bytes(), |x| got.push(x));
        }
        l.finish(|x| got.push(x));
        let text: Vec<&str> = got.iter().map(|x| x.line.as_str()).collect();
        assert_eq!(text, ["hello", "world", ""]);
        assert!(got.iter().all(|x| x.stream == Stream::Stderr));
    }
}

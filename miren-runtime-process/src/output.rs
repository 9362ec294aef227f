//! Reading a sandbox's output line by line, with a cap on line length so a process
//! writing without newlines can't grow our memory.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use miren_core::runtime::{LogLine, Stream};

/// Longest line kept; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads `r` to its end, passing each line (without its newline) to `emit`.
pub async fn read_lines<R: AsyncRead + Unpin>(r: R, stream: Stream, emit: impl Fn(LogLine)) {
    let mut r = BufReader::new(r);
    let mut line: Vec<u8> = Vec::new();
    while let Ok(buf) = r.fill_buf().await {
        if buf.is_empty() {
            break;
        }
        let (chunk, newline) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(newline);
        r.consume(used);
        if newline {
            emit(finish(&mut line, stream));
        }
    }
    if !line.is_empty() {
        emit(finish(&mut line, stream));
    }
}

fn finish(line: &mut Vec<u8>, stream: Stream) -> LogLine {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let text = String::from_utf8_lossy(line).into_owned();
    line.clear();
    LogLine { stream, line: text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn splits_lines_caps_long_ones_and_keeps_a_last_partial_line() {
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("one\r\ntwo\n{long}\nlast");
        let got = Mutex::new(Vec::new());
        read_lines(input.as_bytes(), Stream::Stdout, |l| {
            got.lock().unwrap_or_else(|e| e.into_inner()).push(l.line)
        })
        .await;
        let got = got.into_inner().unwrap_or_else(|e| e.into_inner());
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], "one");
        assert_eq!(got[1], "two");
        assert_eq!(got[2].len(), MAX_LINE);
        assert_eq!(got[3], "last");
    }
}

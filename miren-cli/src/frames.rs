//! The attach protocol (`app run`, `sandbox exec`): after the API upgrades the
//! connection (`Upgrade: miren-attach`), both sides send frames — a kind byte, a
//! big-endian u32 length, the payload — until the server's `exit` frame.
//!
//! Client to server: `stdin` bytes, `eof` (the input ended), `resize` (cols, rows as
//! u16). Server to client: `stdout` and `stderr` bytes, then one `exit` with a JSON
//! [`Exited`].

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `Upgrade` token.
pub const PROTOCOL: &str = "miren-attach";

/// Payloads larger than this are refused (a confused or hostile peer).
const MAX_FRAME: u32 = 1 << 20;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Input for the command.
    Stdin(Vec<u8>),
    /// The caller's input ended.
    Eof,
    /// The caller's terminal size.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// The command wrote to stdout (or its terminal).
    Stdout(Vec<u8>),
    /// The command wrote to stderr.
    Stderr(Vec<u8>),
    /// The end.
    Exit(Exited),
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    /// The command's exit code; `None` when it could not run (see `error`).
    pub code: Option<i32>,
    /// Why it could not run.
    pub error: Option<String>,
}

impl Frame {
    /// Writes it.
    pub async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W) -> std::io::Result<()> {
        let (kind, payload): (u8, Vec<u8>) = match self {
            Frame::Stdin(d) => (0, d.clone()),
            Frame::Eof => (1, Vec::new()),
            Frame::Resize { cols, rows } => (2, [cols.to_be_bytes(), rows.to_be_bytes()].concat()),
            Frame::Stdout(d) => (3, d.clone()),
            Frame::Stderr(d) => (4, d.clone()),
            Frame::Exit(e) => (5, serde_json::to_vec(e).map_err(std::io::Error::other)?),
        };
        let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
        let mut buf = Vec::with_capacity(5 + payload.len());
        buf.push(kind);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&payload);
        w.write_all(&buf).await?;
        w.flush().await
    }

    /// Reads the next one; `None` at the end of the stream.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
        let mut head = [0u8; 5];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_FRAME {
            return Err(bad(format!("a frame of {len} bytes")));
        }
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload).await?;
        Ok(Some(match head[0] {
            0 => Frame::Stdin(payload),
            1 => Frame::Eof,
            2 if payload.len() == 4 => Frame::Resize {
                cols: u16::from_be_bytes([payload[0], payload[1]]),
                rows: u16::from_be_bytes([payload[2], payload[3]]),
            },
            3 => Frame::Stdout(payload),
            4 => Frame::Stderr(payload),
            5 => Frame::Exit(serde_json::from_slice(&payload).map_err(|e| bad(e.to_string()))?),
            k => return Err(bad(format!("a frame of unknown kind {k}"))),
        }))
    }
}

fn bad(what: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("attach protocol: {what}"),
    )
}

/// What `app run` / `sandbox exec` asks for, as the `spec` query parameter (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachSpec {
    /// What was typed after `--`: one word is a shell command line.
    pub command: Vec<String>,
    /// `app run`: whose code, image and env.
    #[serde(default)]
    pub service: Option<String>,
    /// A terminal of this size (cols, rows).
    #[serde(default)]
    pub tty: Option<(u16, u16)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_read_back_as_written_and_junk_is_refused() {
        let frames = vec![
            Frame::Stdin(b"hello\n".to_vec()),
            Frame::Eof,
            Frame::Resize {
                cols: 120,
                rows: 40,
            },
            Frame::Stdout(vec![0, 255, 10]),
            Frame::Stderr(Vec::new()),
            Frame::Exit(Exited {
                code: Some(3),
                error: None,
            }),
        ];
        let mut buf = Vec::new();
        for f in &frames {
            f.write(&mut buf).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let mut r = buf.as_slice();
        let mut back = Vec::new();
        while let Some(f) = Frame::read(&mut r).await.unwrap_or_else(|e| panic!("{e}")) {
            back.push(f);
        }
        assert_eq!(back, frames);
        let mut huge: &[u8] = &[3, 0xff, 0xff, 0xff, 0xff];
        assert!(Frame::read(&mut huge).await.is_err());
        let mut unknown: &[u8] = &[9, 0, 0, 0, 0];
        assert!(Frame::read(&mut unknown).await.is_err());
    }
}

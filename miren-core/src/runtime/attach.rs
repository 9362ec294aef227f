//! Commands attached to their caller (SPEC §14): `miren app run` starts a one-off
//! sandbox and `miren sandbox exec` a process in a running one; both stream input and
//! output both ways and end with the command's exit code. The runtime sees only these
//! channels; the API carries them over an upgraded connection.

use tokio::sync::mpsc;

use super::Stream;

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// What the caller sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes for the command's stdin.
    Data(Vec<u8>),
    /// The caller's input ended: the command's stdin is closed.
    Eof,
    /// The caller's terminal changed size.
    Resize(TermSize),
}

/// What the command wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Which stream (a terminal has only stdout).
    pub stream: Stream,
    /// The bytes, as written.
    pub data: Vec<u8>,
}

/// A command to run attached.
#[derive(Debug)]
pub struct Attach {
    /// The program and its arguments (`["/bin/sh", "-c", "…"]` for a command line).
    pub argv: Vec<String>,
    /// Run it on a terminal of this size (stdout and stderr then are one stream).
    pub tty: Option<TermSize>,
    /// From the caller. Closed without [`Input::Eof`]: the caller went away, and the
    /// command is killed.
    pub input: mpsc::Receiver<Input>,
    /// To the caller.
    pub output: mpsc::Sender<Output>,
}

impl Attach {
    /// The argv of what a user typed after `--`: one word is a shell command line
    /// (`miren app run -- 'echo $HOME'`), more are a program and its arguments.
    pub fn argv_of(words: &[String]) -> Vec<String> {
        match words {
            [line] => vec!["/bin/sh".into(), "-c".into(), line.clone()],
            more => more.to_vec(),
        }
    }
}

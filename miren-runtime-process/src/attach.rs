//! Commands attached to a caller (`app run`, `sandbox exec`): a process group of its
//! own in a sandbox's code directory and environment, fed from the caller's input and
//! streaming its output back, on pipes or on a terminal.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use miren_core::runtime::{Attach, Input, Output, RuntimeError, Stream};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::user::SandboxUser;

/// How long output may still arrive after the command exited (from what it left
/// running with its pipes open) before what is left of its group is killed.
const DRAIN: Duration = Duration::from_secs(2);

/// The process groups of the commands running now.
#[derive(Default)]
pub(crate) struct Groups(std::sync::Mutex<std::collections::HashSet<u32>>);

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u32>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kills every one (the server is going away).
    pub fn kill_all(&self) {
        for pgid in self.lock().drain() {
            kill(pgid);
        }
    }
}

/// Keeps a group in [`Groups`] while its command runs.
struct Member<'a>(&'a Groups, u32);

impl<'a> Member<'a> {
    fn new(groups: &'a Groups, pgid: u32) -> Self {
        groups.lock().insert(pgid);
        Self(groups, pgid)
    }
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

/// Where the command runs: a sandbox's code and environment.
pub(crate) struct Place {
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

/// Runs `attach.argv` at `place` until it exits; its exit code (128 + the signal).
pub(crate) async fn run(
    place: Place,
    user: Option<&SandboxUser>,
    groups: &Groups,
    attach: Attach,
) -> Result<i32, RuntimeError> {
    let Attach {
        argv,
        tty,
        input,
        output,
    } = attach;
    let Some((program, args)) = argv.split_first() else {
        return Err(RuntimeError::Start("no command to run".into()));
    };
    let spawn_err =
        |e: &dyn std::fmt::Display| RuntimeError::Start(format!("running `{program}`: {e}"));
    match tty {
        None => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .current_dir(&place.cwd)
                .env_clear()
                .envs(place.env)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true);
            if let Some(u) = user {
                cmd.uid(u.uid).gid(u.gid);
            }
            let mut child = cmd.spawn().map_err(|e| spawn_err(&e))?;
            let pgid = child.id().unwrap_or_default();
            let _member = Member::new(groups, pgid);
            let mut readers = Vec::new();
            if let Some(p) = child.stdout.take() {
                readers.push(tokio::spawn(pump(p, Stream::Stdout, output.clone(), pgid)));
            }
            if let Some(p) = child.stderr.take() {
                readers.push(tokio::spawn(pump(p, Stream::Stderr, output.clone(), pgid)));
            }
            let stdin = child.stdin.take();
            let feeder = tokio::spawn(feed(input, stdin, pgid, false, |_, _| {}));
            let status = child.wait().await;
            finish(readers, feeder, pgid).await;
            status
                .map(code)
                .map_err(|e| RuntimeError::io("waiting for the command", e))
        }
        Some(size) => {
            let (pty, pts) = pty_process::open().map_err(|e| spawn_err(&e))?;
            pty.resize(pty_process::Size::new(size.rows, size.cols))
                .map_err(|e| spawn_err(&e))?;
            let mut cmd = pty_process::Command::new(program)
                .args(args)
                .current_dir(&place.cwd)
                .env_clear()
                .envs(place.env)
                .kill_on_drop(true);
            if let Some(u) = user {
                cmd = cmd.uid(u.uid).gid(u.gid);
            }
            let mut child = cmd.spawn(pts).map_err(|e| spawn_err(&e))?;
            // A session leader: its group is its own.
            let pgid = child.id().unwrap_or_default();
            let _member = Member::new(groups, pgid);
            let (read, write) = pty.into_split();
            let reader = tokio::spawn(pump(read, Stream::Stdout, output, pgid));
            let resize = |s: miren_core::runtime::TermSize, w: &pty_process::OwnedWritePty| {
                let _ = w.resize(pty_process::Size::new(s.rows, s.cols));
            };
            let feeder = tokio::spawn(feed(input, Some(write), pgid, true, resize));
            let status = child.wait().await;
            finish(vec![reader], feeder, pgid).await;
            status
                .map(code)
                .map_err(|e| RuntimeError::io("waiting for the command", e))
        }
    }
}

/// The caller's input into the command; the caller gone (its channel closed without
/// an end of input): the command is killed.
async fn feed<W: AsyncWrite + Unpin>(
    mut input: mpsc::Receiver<Input>,
    mut stdin: Option<W>,
    pgid: u32,
    tty: bool,
    resize: impl Fn(miren_core::runtime::TermSize, &W),
) {
    loop {
        match input.recv().await {
            Some(Input::Data(d)) => {
                if let Some(w) = stdin.as_mut()
                    && (w.write_all(&d).await.is_err() || w.flush().await.is_err())
                {
                    stdin = None;
                }
            }
            Some(Input::Eof) => match stdin.as_mut() {
                // On a terminal the end of input is the EOF character; a pipe closes.
                Some(w) if tty => {
                    let _ = w.write_all(b"\x04").await;
                    let _ = w.flush().await;
                }
                _ => stdin = None,
            },
            Some(Input::Resize(s)) => {
                if let Some(w) = stdin.as_ref() {
                    resize(s, w);
                }
            }
            None => {
                kill(pgid);
                return;
            }
        }
    }
}

/// The command's output to the caller; the caller gone: the command is killed.
async fn pump<R: AsyncRead + Unpin>(
    mut r: R,
    stream: Stream,
    out: mpsc::Sender<Output>,
    pgid: u32,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // A terminal whose other side closed reads as an error (EIO): the end.
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let sent = out
            .send(Output {
                stream,
                data: buf[..n].to_vec(),
            })
            .await;
        if sent.is_err() {
            kill(pgid);
            return;
        }
    }
}

/// After the command exited: its remaining output, then nothing of it left.
async fn finish(
    readers: Vec<tokio::task::JoinHandle<()>>,
    feeder: tokio::task::JoinHandle<()>,
    pgid: u32,
) {
    let drained = tokio::time::timeout(DRAIN, async {
        for r in readers {
            let _ = r.await;
        }
    })
    .await;
    feeder.abort();
    if drained.is_err() {
        kill(pgid);
    }
}

fn kill(pgid: u32) {
    if let Ok(p) = i32::try_from(pgid)
        && p > 0
    {
        let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
    }
}

fn code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

//! `miren app run` and `miren sandbox exec` (SPEC §14): the command's output here as it
//! is written, this side's input there, and its exit code as ours.

use std::io::{IsTerminal, Read, Write};

use tokio::sync::mpsc;

use crate::Exit;
use crate::cli::AttachArgs;
use crate::client::{Client, ClientError, encode};
use crate::frames::{AttachSpec, Frame, PROTOCOL};

pub async fn run_in(
    c: &Client,
    app: &str,
    service: Option<String>,
    args: AttachArgs,
) -> Result<Exit, ClientError> {
    let spec = spec_of(&args, service)?;
    let path = format!("/v1/apps/{}/run?spec={}", encode(app), encode(&spec));
    attach(c, &path, &args).await
}

pub async fn exec_in(c: &Client, id: &str, args: AttachArgs) -> Result<Exit, ClientError> {
    let spec = spec_of(&args, None)?;
    let path = format!("/v1/sandboxes/{}/exec?spec={}", encode(id), encode(&spec));
    attach(c, &path, &args).await
}

fn spec_of(args: &AttachArgs, service: Option<String>) -> Result<String, ClientError> {
    let tty = args.tty.then(|| size().unwrap_or((80, 24)));
    serde_json::to_string(&AttachSpec {
        command: args.command.clone(),
        service,
        tty,
    })
    .map_err(|e| ClientError::Local(e.to_string()))
}

async fn attach(c: &Client, path: &str, args: &AttachArgs) -> Result<Exit, ClientError> {
    let conn = c.upgrade(path, PROTOCOL).await?;
    let (mut rd, mut wr) = tokio::io::split(conn);
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    // Raw keys to a remote terminal; restored however this ends.
    let _raw = (args.tty && terminal).then(RawMode::enter).flatten();
    let (tx, mut rx) = mpsc::channel::<Frame>(16);
    if terminal && !args.interactive && !args.tty {
        // Not asked to read this terminal: the command's input is empty.
        let _ = tx.send(Frame::Eof).await;
    } else {
        read_stdin(tx.clone());
    }
    if args.tty {
        watch_size(tx.clone());
    }
    drop(tx);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if f.write(&mut wr).await.is_err() {
                return;
            }
        }
        // All input sent; the connection stays open for the output.
        std::future::pending::<()>().await;
    });
    let result = loop {
        let frame = Frame::read(&mut rd)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let written = match frame {
            Some(Frame::Stdout(d)) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&d).and_then(|()| out.flush())
            }
            Some(Frame::Stderr(d)) => std::io::stderr().write_all(&d),
            Some(Frame::Exit(e)) => {
                break match (e.code, e.error) {
                    (Some(code), _) => Ok(Exit::of_remote(Some(code))),
                    (None, Some(err)) => Err(ClientError::Invalid(err)),
                    (None, None) => Ok(Exit::Failed),
                };
            }
            Some(_) => Ok(()),
            None => {
                break Err(ClientError::Protocol(
                    "the server closed the connection before the command ended".into(),
                ));
            }
        };
        if let Err(e) = written {
            // `… | head`: the reader left; the command is stopped with the connection.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break Ok(Exit::Ok);
            }
            break Err(ClientError::Local(format!("writing the output: {e}")));
        }
    };
    writer.abort();
    result
}

/// This side's stdin, on a thread of its own (a read of a terminal can't be
/// cancelled, and must not keep the runtime from ending), as frames.
fn read_stdin(tx: mpsc::Sender<Frame>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(Frame::Eof);
                    return;
                }
                Ok(n) => {
                    if tx.blocking_send(Frame::Stdin(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Sends the terminal's new size whenever it changes.
fn watch_size(tx: mpsc::Sender<Frame>) {
    let Ok(mut changes) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    tokio::spawn(async move {
        while changes.recv().await.is_some() {
            if let Some((cols, rows)) = size()
                && tx.send(Frame::Resize { cols, rows }).await.is_err()
            {
                return;
            }
        }
    });
}

/// This terminal's (cols, rows).
fn size() -> Option<(u16, u16)> {
    let w = rustix::termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    (w.ws_col > 0 && w.ws_row > 0).then_some((w.ws_col, w.ws_row))
}

/// The terminal in raw mode while it lives.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enter() -> Option<Self> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(Self(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

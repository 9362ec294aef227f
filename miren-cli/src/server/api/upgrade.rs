//! The attach protocol's side of a connection (SPEC §14): a request asking for it is
//! answered 101, and the upgraded connection carries a command's input and output
//! ([`crate::frames`]) while a runner — the controller's attach, or a node's runtime
//! — runs it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use miren_core::runtime::{Attach, Input, Stream, TermSize};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{ApiError, R};
use crate::frames::{AttachSpec, Exited, Frame, PROTOCOL};

#[derive(Deserialize)]
pub struct SpecQuery {
    pub(crate) spec: String,
}

/// What runs the command once the connection is upgraded.
pub(crate) type Runner = Box<
    dyn FnOnce(
            Attach,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, String>> + Send>>
        + Send,
>;

/// The 101 answer.
pub(crate) fn switching() -> R<Response> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .header(header::UPGRADE, HeaderValue::from_static(PROTOCOL))
        .body(Body::empty())
        .map_err(ApiError::internal)
}

pub(crate) fn spec(q: &SpecQuery) -> R<AttachSpec> {
    let spec: AttachSpec = serde_json::from_str(&q.spec)
        .map_err(|e| ApiError::invalid(format!("`spec` is not an attach spec: {e}")))?;
    if spec.command.is_empty() || spec.command[0].is_empty() {
        return Err(ApiError::invalid("say what to run after `--`"));
    }
    Ok(spec)
}

/// Answers 101 and runs the command over the upgraded connection with `run`.
pub(crate) fn upgrade(
    spec: AttachSpec,
    mut req: Request,
    run: impl FnOnce(
        Attach,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, String>> + Send>>
    + Send
    + 'static,
) -> R<Response> {
    let asked = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(PROTOCOL));
    if !asked {
        return Err(ApiError::invalid(format!(
            "this call streams both ways: it needs `Connection: upgrade` and `Upgrade: {PROTOCOL}` (the miren CLI sends them)"
        )));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(conn) => attached(Box::new(run), spec, TokioIo::new(conn)).await,
            Err(e) => tracing::warn!("attach: the upgrade failed: {e}"),
        }
    });
    switching()
}

async fn attached<T>(run: Runner, spec: AttachSpec, conn: T)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(conn);
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, mut out_rx) = mpsc::channel(64);
    // The caller's frames in. Its connection gone: the input channel closes and the
    // runtime kills the command.
    let reader = tokio::spawn(async move {
        while let Ok(Some(f)) = Frame::read(&mut rd).await {
            let input = match f {
                Frame::Stdin(d) => Input::Data(d),
                Frame::Eof => Input::Eof,
                Frame::Resize { cols, rows } => Input::Resize(TermSize { cols, rows }),
                _ => continue,
            };
            if in_tx.send(input).await.is_err() {
                return;
            }
        }
    });
    let attach = Attach {
        argv: Attach::argv_of(&spec.command),
        tty: spec.tty.map(|(cols, rows)| TermSize { cols, rows }),
        input: in_rx,
        output: out_tx,
    };
    let run = tokio::spawn(run(attach));
    // Output until the runtime lets go of its sender (the command ended).
    let mut gone = false;
    while let Some(o) = out_rx.recv().await {
        let f = match o.stream {
            Stream::Stdout => Frame::Stdout(o.data),
            Stream::Stderr => Frame::Stderr(o.data),
        };
        if f.write(&mut wr).await.is_err() {
            gone = true;
            break;
        }
    }
    // Dropping the receiver makes a runtime still writing see the caller gone.
    drop(out_rx);
    let exited = match run.await {
        Ok(Ok(code)) => Exited {
            code: Some(code),
            error: None,
        },
        Ok(Err(e)) => Exited {
            code: None,
            error: Some(e),
        },
        Err(e) => Exited {
            code: None,
            error: Some(format!("the command's task failed: {e}")),
        },
    };
    reader.abort();
    if !gone {
        let _ = Frame::Exit(exited).write(&mut wr).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut wr).await;
    }
}

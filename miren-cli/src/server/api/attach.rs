//! `GET /v1/apps/{app}/run` and `/v1/sandboxes/{id}/exec` (SPEC §14): the request is
//! checked like any other (404 with did-you-mean, 409 when nothing runs), then the
//! connection is upgraded to the attach protocol ([`crate::frames`]) and carries the
//! command's input and output until it exits.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use miren_core::controller::{Controller, Target};
use miren_core::runtime::{Attach, Input, Stream, TermSize};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::extract::{Path, Query};
use super::{ApiError, R, S, lookup};
use crate::frames::{AttachSpec, Exited, Frame, PROTOCOL};

#[derive(Deserialize)]
pub struct SpecQuery {
    spec: String,
}

pub async fn run(
    state: S,
    Path(app): Path<String>,
    Query(q): Query<SpecQuery>,
    req: Request,
) -> R<Response> {
    let spec = spec(&q)?;
    let s = lookup::app(&state, &app).await?;
    if let Some(svc) = &spec.service {
        lookup::service(&s, &app, svc)?;
    }
    let active = s
        .apps
        .iter()
        .find(|a| a.name == app)
        .and_then(|a| a.active_version.clone());
    if active.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("app `{app}` has no active version: deploy it first"),
        ));
    }
    let target = Target::OneOff {
        app,
        service: spec.service.clone(),
    };
    upgrade(state.controller.clone(), target, spec, req)
}

pub async fn exec(
    state: S,
    Path(given): Path<String>,
    Query(q): Query<SpecQuery>,
    req: Request,
) -> R<Response> {
    let spec = spec(&q)?;
    let s = state.controller.snapshot(None).await?;
    let running = s
        .runs
        .iter()
        .filter(|r| r.status == miren_core::model::RunStatus::Running)
        .map(|r| r.id.as_str());
    let live = s
        .sandboxes
        .iter()
        .filter(|x| x.is_live())
        .map(|x| x.id.as_str())
        .chain(running);
    let Some(id) = lookup::one_of("sandbox", &given, live)? else {
        return Err(ApiError::not_found(format!(
            "no running sandbox `{}`: `miren sandbox list --status running` shows them",
            super::clip(&given)
        )));
    };
    let id = super::parse(id)?;
    upgrade(state.controller.clone(), Target::Sandbox(id), spec, req)
}

fn spec(q: &SpecQuery) -> R<AttachSpec> {
    let spec: AttachSpec = serde_json::from_str(&q.spec)
        .map_err(|e| ApiError::invalid(format!("`spec` is not an attach spec: {e}")))?;
    if spec.command.is_empty() || spec.command[0].is_empty() {
        return Err(ApiError::invalid("say what to run after `--`"));
    }
    Ok(spec)
}

/// Answers 101 and runs the command over the upgraded connection.
fn upgrade(
    controller: Controller,
    target: Target,
    spec: AttachSpec,
    mut req: Request,
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
            Ok(conn) => attached(controller, target, spec, TokioIo::new(conn)).await,
            Err(e) => tracing::warn!("attach: the upgrade failed: {e}"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .header(header::UPGRADE, HeaderValue::from_static(PROTOCOL))
        .body(Body::empty())
        .map_err(ApiError::internal)
}

async fn attached<T>(controller: Controller, target: Target, spec: AttachSpec, conn: T)
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
    let run = tokio::spawn(async move { controller.attach(target, attach).await });
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
            error: Some(e.to_string()),
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

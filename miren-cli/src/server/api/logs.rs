//! `GET /v1/logs`: an app's, a service's or a sandbox's lines, then (with `follow`)
//! new ones as they are written, streamed as NDJSON.

use axum::response::Response;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::extract::Query;
use super::stream::{line, ndjson};
use super::{ApiError, R, S, lookup, quoting};
use crate::server::logs::Filter;

/// Lines returned without `last`.
const DEFAULT_LOG_LINES: usize = 1000;

#[derive(Deserialize)]
pub struct LogQuery {
    app: Option<String>,
    service: Option<String>,
    sandbox: Option<String>,
    last: Option<String>,
    #[serde(default)]
    follow: bool,
}

pub async fn read(state: S, Query(q): Query<LogQuery>) -> R<Response> {
    for (name, v) in [
        ("app", &q.app),
        ("service", &q.service),
        ("sandbox", &q.sandbox),
    ] {
        if v.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::invalid(format!(
                "`{name}` is empty: name one, or leave it out"
            )));
        }
    }
    if q.app.is_none() && q.sandbox.is_none() {
        return Err(ApiError::invalid(
            "say which logs: an app (and maybe a service) or a sandbox",
        ));
    }
    let mut sandbox = q.sandbox.clone();
    if let Some(a) = &q.app {
        let s = lookup::app(&state, a).await?;
        if let Some(svc) = &q.service {
            lookup::service(&s, a, svc)?;
        }
    }
    if let Some(given) = &q.sandbox {
        let s = state.controller.snapshot(None).await?;
        match lookup::sandbox(&s, given, false)? {
            Some(id) => sandbox = Some(id.to_string()),
            // One the state forgot may still have lines (the end of an id matches).
            None => {
                let any = Filter {
                    sandbox: Some(given.clone()),
                    ..Filter::default()
                };
                let found = state.logs.read(any, 1).await.map_err(ApiError::internal)?;
                if found.is_empty() {
                    return Err(ApiError::not_found(format!(
                        "no sandbox `{}`: `miren sandbox list` shows them",
                        super::clip(given)
                    )));
                }
            }
        }
    }
    let since = match &q.last {
        None => None,
        Some(d) => {
            let d = miren_core::config::duration::parse(d).map_err(|e| {
                ApiError::invalid(quoting(
                    d,
                    format!("--last {d}: {e} (for example `--last 10m`, `--last 2h`, `--last 1d`)"),
                ))
            })?;
            Some(miren_core::runtime::now_millis().saturating_sub(d.as_millis() as u64))
        }
    };
    let filter = Filter {
        app: q.app.clone(),
        service: q.service.clone(),
        sandbox,
        since,
    };
    let limit = if since.is_some() {
        usize::MAX
    } else {
        DEFAULT_LOG_LINES
    };
    // Subscribe before reading, so nothing falls between history and live.
    let mut live = state.logs.subscribe();
    let history = state
        .logs
        .read(filter.clone(), limit)
        .await
        .map_err(ApiError::internal)?;
    let mut last_seq = history.last().map_or(0, |s| s.seq);
    // Bounded: a client that reads slowly slows the sender, never the server's memory.
    let (tx, rx) = mpsc::channel(256);
    let follow = q.follow;
    tokio::spawn(async move {
        for s in history {
            if tx.send(line(&s)).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        loop {
            match live.recv().await {
                Ok(s) if s.seq > last_seq && filter.matches(&s.record) => {
                    last_seq = s.seq;
                    if tx.send(line(s.as_ref())).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    Ok(ndjson(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

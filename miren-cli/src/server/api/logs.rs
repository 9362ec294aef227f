//! `GET /v1/logs`: an app's, a service's or a sandbox's lines, then (with `follow`)
//! new ones as they are written, streamed as NDJSON.

use super::extract::Query;
use super::{ApiError, R, S, lookup, quoting};
use crate::server::logs::Filter;
use crate::server::node_api;
use axum::response::Response;
use serde::Deserialize;

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
    let live = state.logs.subscribe();
    let history = state
        .logs
        .read(filter.clone(), limit)
        .await
        .map_err(ApiError::internal)?;
    // In a cluster, the other nodes' lines too (their sandboxes log where they run).
    let peers = match (&state.cluster_store, &state.cluster_key) {
        (Some(store), Some(key)) => node_api::peers(store.as_ref(), key, &state.node).await,
        _ => Vec::new(),
    };
    Ok(node_api::lines(
        live, history, limit, filter, q.follow, peers,
    ))
}

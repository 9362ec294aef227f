//! `GET /metrics`: Prometheus' text format (SPEC §16) — the proxy's request metrics
//! and the pools' desired and ready instances. On the API (token on TCP) and, without
//! a token, on `--metrics-addr`.

use std::fmt::Write as _;

use axum::http::header;
use axum::response::IntoResponse;

use super::{R, S};

/// The exposition's content type (text format 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn get(state: S) -> R<impl IntoResponse> {
    let mut out = String::with_capacity(16 * 1024);
    miren_proxy::metrics::render(&state.proxy_table.load(), &mut out);
    let snapshot = state.controller.snapshot(None).await?;
    let active: std::collections::BTreeSet<_> = snapshot
        .apps
        .iter()
        .filter_map(|a| a.active_version.clone())
        .collect();
    let pools: Vec<_> = snapshot
        .pools
        .iter()
        .filter(|p| p.versions.iter().any(|v| active.contains(v)))
        .collect();
    for (name, help, value) in [
        (
            "miren_pool_desired_instances",
            "Instances the controller wants for a service of an app's active version.",
            (|p: &miren_core::model::SandboxPool| p.desired) as fn(&_) -> u32,
        ),
        (
            "miren_pool_ready_instances",
            "Instances ready for a service of an app's active version.",
            |p: &miren_core::model::SandboxPool| p.ready,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in &pools {
            let _ = writeln!(
                out,
                "{name}{{app=\"{}\",service=\"{}\"}} {}",
                p.app,
                p.service,
                value(p)
            );
        }
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out))
}

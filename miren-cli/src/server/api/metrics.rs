//! `GET /metrics`: Prometheus' text format (SPEC §16) — the proxy's request metrics,
//! the pools' desired and ready instances, and each sandbox's CPU and memory (where
//! its runtime can tell: processes, from `/proc`). On the API (token on TCP) and, without
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
    // Each running sandbox's CPU and memory, labelled with its app and service.
    let services: std::collections::HashMap<_, _> = snapshot
        .pools
        .iter()
        .map(|p| (&p.id, (p.app.as_str(), p.service.as_str())))
        .collect();
    let of: std::collections::HashMap<_, _> = snapshot
        .sandboxes
        .iter()
        .filter_map(|s| Some((s.id.as_str(), *services.get(&s.pool)?)))
        .collect();
    let usage = match state.runtime.usage().await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!("measuring sandboxes for /metrics: {e}");
            Vec::new()
        }
    };
    let measured: Vec<_> = usage
        .iter()
        .filter_map(|u| Some((u, *of.get(u.sandbox.as_str())?)))
        .collect();
    let _ = writeln!(
        out,
        "# HELP miren_sandbox_cpu_seconds_total CPU time of a sandbox's processes (user and system).\n# TYPE miren_sandbox_cpu_seconds_total counter"
    );
    for (u, (app, service)) in &measured {
        let _ = writeln!(
            out,
            "miren_sandbox_cpu_seconds_total{{app=\"{app}\",service=\"{service}\",sandbox=\"{}\"}} {}",
            u.sandbox, u.cpu_seconds
        );
    }
    let _ = writeln!(
        out,
        "# HELP miren_sandbox_memory_bytes Resident memory of a sandbox's processes.\n# TYPE miren_sandbox_memory_bytes gauge"
    );
    for (u, (app, service)) in &measured {
        let _ = writeln!(
            out,
            "miren_sandbox_memory_bytes{{app=\"{app}\",service=\"{service}\",sandbox=\"{}\"}} {}",
            u.sandbox, u.memory_bytes
        );
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out))
}

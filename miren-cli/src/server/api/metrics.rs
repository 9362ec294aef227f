//! `GET /metrics`: Prometheus' text format (SPEC §16) — the proxy's request metrics,
//! the pools' desired and ready instances, each sandbox's CPU and memory (where its
//! runtime can tell: processes from `/proc`, containers from the Engine) and restarts,
//! the apps' versions by state, pool size changes, and service DNS's answers. On the
//! API (token on TCP) and, without a token, on `--metrics-addr`.

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
    let usage = match state.usage.all().await {
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
    let restarts = snapshot
        .sandboxes
        .iter()
        .filter(|s| s.status.is_live())
        .filter_map(|s| Some((s, *services.get(&s.pool)?)));
    family(
        &mut out,
        "miren_sandbox_restarts_total",
        "counter",
        "How many times a live sandbox's slot was restarted after a crash.",
    );
    for (s, (app, service)) in restarts {
        let _ = writeln!(
            out,
            "miren_sandbox_restarts_total{{app=\"{app}\",service=\"{service}\",sandbox=\"{}\"}} {}",
            s.id, s.restarts
        );
    }
    // The controller: versions by state (deploys and their outcomes), decisions.
    let mut versions: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
    for v in &snapshot.versions {
        *versions
            .entry((v.app.as_str(), crate::server::status::state_name(v.state)))
            .or_default() += 1;
    }
    family(
        &mut out,
        "miren_app_versions",
        "gauge",
        "An app's versions (deploys, rollbacks, config changes) by state.",
    );
    for ((app, state), n) in versions {
        let _ = writeln!(
            out,
            "miren_app_versions{{app=\"{app}\",state=\"{state}\"}} {n}"
        );
    }
    family(
        &mut out,
        "miren_pool_size_changes_total",
        "counter",
        "Changes of a service's desired instances or their reason (autoscaler decisions, set-desired, deploys) since the server started.",
    );
    for (app, service, n) in state.decisions.counts() {
        let _ = writeln!(
            out,
            "miren_pool_size_changes_total{{app=\"{app}\",service=\"{service}\"}} {n}"
        );
    }
    // Service DNS.
    if let Some(dns) = &state.dns_stats {
        let c = dns.counts();
        family(
            &mut out,
            "miren_dns_responses_total",
            "counter",
            "Answers service DNS sent (UDP and TCP), by response code.",
        );
        for (code, n) in &c.by_code {
            let _ = writeln!(out, "miren_dns_responses_total{{code=\"{code}\"}} {n}");
        }
        family(
            &mut out,
            "miren_dns_forwarded_total",
            "counter",
            "Questions from sandboxes about names outside the zone, sent upstream.",
        );
        let _ = writeln!(out, "miren_dns_forwarded_total {}", c.forwarded);
        family(
            &mut out,
            "miren_dns_cached_responses_total",
            "counter",
            "Answers the UDP loop sent from its cache without decoding the question.",
        );
        let _ = writeln!(out, "miren_dns_cached_responses_total {}", c.cached);
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out))
}

/// A metric family's HELP and TYPE lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

//! What `app list` and `app status` say about an app, computed from the state.

use miren_core::controller::Snapshot;
use miren_core::model::{App, SandboxStatus, VersionState};
use miren_core::runtime::now_millis;

use crate::api::AppSummary;

/// One app's summary line.
pub fn summary(app: &App, s: &Snapshot) -> AppSummary {
    let active = app
        .active_version
        .as_ref()
        .and_then(|id| s.versions.iter().find(|v| &v.id == id));
    let pools: Vec<_> = s.pools.iter().filter(|p| p.app == app.name).collect();
    let deploying = s
        .versions
        .iter()
        .any(|v| v.app == app.name && v.state == VersionState::Deploying);
    // Now, not the past: a pool that crashed and is whole again is running (its crash
    // count is in `app status`).
    let crashing = pools
        .iter()
        .filter(|p| p.quick_crashes > 0 && p.ready < p.desired)
        .max_by_key(|p| p.quick_crashes);
    let status = if let Some(p) = crashing {
        match p.retry_at {
            Some(at) if at > now_millis() => format!(
                "crashing ({}, retry in {})",
                p.service,
                crate::table::duration_short((at - now_millis()).div_ceil(1000))
            ),
            _ => format!("crashing ({})", p.service),
        }
    } else if deploying {
        "deploying".to_string()
    } else if active.is_none() {
        let last_failed = s
            .versions
            .iter()
            .rev()
            .find(|v| v.app == app.name)
            .is_some_and(|v| v.state == VersionState::Failed);
        if last_failed {
            "failed"
        } else {
            "not deployed"
        }
        .to_string()
    } else {
        let serving: Vec<_> = pools.iter().filter(|p| !p.versions.is_empty()).collect();
        let (ready, want): (u32, u32) = serving.iter().fold((0, 0), |(r, w), p| {
            (r + p.ready.min(p.desired), w + p.desired)
        });
        if ready >= want {
            "running".to_string()
        } else {
            format!("starting ({ready}/{want} ready)")
        }
    };
    AppSummary {
        name: app.name.clone(),
        version: active.map(|v| v.id.to_string()),
        number: active.map(|v| v.number),
        deployed: active.map(|v| v.created),
        commit: active.and_then(|v| v.source.git_commit.clone()),
        status,
    }
}

/// A version's state as the API and the CLI write it.
pub fn state_name(s: VersionState) -> &'static str {
    match s {
        VersionState::Deploying => "deploying",
        VersionState::Active => "active",
        VersionState::Superseded => "superseded",
        VersionState::Failed => "failed",
    }
}

/// A sandbox's status as the API and the CLI write it.
pub fn sandbox_state(s: SandboxStatus) -> &'static str {
    match s {
        SandboxStatus::Pending => "pending",
        SandboxStatus::Running => "running",
        SandboxStatus::Stopping => "stopping",
        SandboxStatus::Stopped => "stopped",
        SandboxStatus::Dead => "dead",
    }
}

/// Per service, how its latest instance that died on its own ended ("exit 1: …").
pub fn last_exits(s: &Snapshot) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut dead: Vec<_> = s
        .sandboxes
        .iter()
        .filter(|x| x.status == SandboxStatus::Dead)
        .collect();
    dead.sort_by_key(|x| x.updated);
    for x in dead {
        let code = x
            .exit_code
            .map_or_else(|| "did not start".to_string(), |c| format!("exit {c}"));
        let why = x.reason.as_deref().unwrap_or("");
        let ago = crate::table::duration_short(now_millis().saturating_sub(x.updated) / 1000);
        let line = if why.is_empty() {
            format!("{code}, {ago} ago")
        } else {
            format!("{code}: {why}, {ago} ago")
        };
        out.insert(x.service.clone(), line);
    }
    out
}

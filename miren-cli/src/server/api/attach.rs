//! `GET /v1/apps/{app}/run` and `/v1/sandboxes/{id}/exec` (SPEC §14): the request is
//! checked like any other (404 with did-you-mean, 409 when nothing runs), then the
//! connection is upgraded to the attach protocol (`upgrade.rs`) and carries the
//! command's input and output until it exits — through to the node that runs the
//! sandbox, in a cluster.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use hyper_util::rt::TokioIo;
use miren_core::controller::Target;

use super::extract::{Path, Query};
use super::upgrade::{SpecQuery, spec, switching, upgrade};
use super::{ApiError, R, S, lookup};

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
    let controller = state.controller.clone();
    upgrade(spec, req, move |attach| {
        Box::pin(async move {
            controller
                .attach(target, attach)
                .await
                .map_err(|e| e.to_string())
        })
    })
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
    let id: miren_core::model::SandboxId = super::parse(id)?;
    // On another node of a cluster: the connection goes through to that node, which
    // runs the command in its sandbox.
    let elsewhere = s
        .sandboxes
        .iter()
        .find(|x| x.id == id)
        .and_then(|x| x.node.clone())
        .filter(|n| *n != state.node);
    if let (Some(node), Some(store), Some(key)) =
        (elsewhere, &state.cluster_store, &state.cluster_key)
    {
        let peers = crate::server::node_api::peers(store.as_ref(), key, &state.node).await;
        let Some(peer) = peers.into_iter().find(|p| p.name() == node) else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{id} runs on node `{node}`, which does not answer now"),
            ));
        };
        return through(peer, id, &q.spec, req).await;
    }
    let controller = state.controller.clone();
    upgrade(spec, req, move |attach| {
        Box::pin(async move {
            controller
                .attach(Target::Sandbox(id), attach)
                .await
                .map_err(|e| e.to_string())
        })
    })
}

/// Connects the caller's upgraded connection to `peer`'s, where `id` runs.
async fn through(
    peer: crate::server::node_api::Peer,
    id: miren_core::model::SandboxId,
    spec: &str,
    mut req: Request,
) -> R<Response> {
    let mut upstream = peer
        .open_exec(&id, spec)
        .await
        .map_err(|e| ApiError::internal(format!("reaching the node that runs {id}: {e}")))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(conn) => {
                let mut conn = TokioIo::new(conn);
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
            }
            Err(e) => tracing::warn!("attach: the upgrade failed: {e}"),
        }
    });
    switching()
}

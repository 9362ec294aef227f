//! The control API's handlers (axum). See [`crate::api`] for the routes.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use miren_core::artifact::ArtifactStore;
use miren_core::controller::{Controller, ControllerError, DeployRequest, Event};
use miren_core::model::{PoolId, Route, SandboxId, SourceInfo, Version, VersionId, VersionState};
use miren_core::store::keys;
use miren_core::store::{Op, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::logs::{Filter, LogStore};
use crate::api::{
    AppStatus, DeployBody, DeployLine, DesiredBody, ErrorBody, ErrorDetail, RollbackBody,
    RouteBody, Uploaded, VersionRow,
};

/// What every handler can reach.
#[derive(Clone)]
pub struct State {
    pub controller: Controller,
    pub store: Arc<dyn Store>,
    pub logs: LogStore,
    pub artifacts: ArtifactStore,
    /// Route and rollout changes take effect in the proxy and DNS before the API
    /// answers.
    pub visible: super::Visibility,
    /// Required as `Authorization: Bearer <token>` when set (TCP).
    pub token: Option<String>,
}

type S = axum::extract::State<Arc<State>>;

/// Uploads bigger than this are refused.
const MAX_UPLOAD: usize = 1 << 30;
/// Log lines returned without `--last`.
const DEFAULT_LOG_LINES: usize = 1000;

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(
            "/v1/health",
            get(|| async { Json(serde_json::json!({"ok": true})) }),
        )
        .route("/v1/artifacts", put(upload))
        .route("/v1/deploys", post(deploy))
        .route("/v1/apps", get(list_apps))
        .route("/v1/apps/{app}", get(app_status).delete(delete_app))
        .route("/v1/apps/{app}/versions", get(history))
        .route("/v1/apps/{app}/rollback", post(rollback))
        .route("/v1/pools", get(list_pools))
        .route("/v1/pools/{id}/desired", put(set_desired))
        .route("/v1/sandboxes", get(list_sandboxes))
        .route("/v1/sandboxes/{id}/stop", post(stop_sandbox))
        .route("/v1/logs", get(logs))
        .route("/v1/routes", get(list_routes))
        .route("/v1/routes/{host}", put(put_route).delete(delete_route))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
        })
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(state: S, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this API needs `Authorization: Bearer <token>` (the token is in <data-dir>/api-token; pass it with --token or MIREN_TOKEN)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<ControllerError> for ApiError {
    fn from(e: ControllerError) -> Self {
        match e {
            ControllerError::NotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ControllerError::Invalid(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            ControllerError::Stopped => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string())
            }
            _ => Self::internal(e),
        }
    }
}

type R<T> = Result<T, ApiError>;

fn app_name(app: &str) -> R<()> {
    miren_core::config::names::dns_label(app)
        .map_err(|p| ApiError::invalid(format!("`{app}` is not an app name: {}", p.reason)))
}

fn parse<T: std::str::FromStr>(s: &str) -> R<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| ApiError::invalid(e.to_string()))
}

async fn upload(state: S, body: Bytes) -> R<Json<Uploaded>> {
    let bytes = body.len() as u64;
    let artifacts = state.artifacts.clone();
    let art = tokio::task::spawn_blocking(move || artifacts.put(&body))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("storing the upload: {e}")))?;
    Ok(Json(Uploaded {
        digest: art.digest,
        bytes,
    }))
}

/// A response streaming one JSON object per line from `rx`.
fn ndjson(rx: mpsc::Receiver<Vec<u8>>) -> Response {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let stream = tokio_stream::StreamExt::map(stream, Ok::<_, std::convert::Infallible>);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| ApiError::internal(e).into_response())
}

fn line<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b
}

async fn deploy(state: S, Json(body): Json<DeployBody>) -> R<Response> {
    let v = miren_core::config::validate(&body.app_toml);
    let Some(mut config) = v.resolved.clone() else {
        let report = v.report(".miren/app.toml", &body.app_toml).render(false);
        return Err(ApiError::invalid(report));
    };
    if let Some(app) = body.app {
        app_name(&app)?;
        config.name = app;
    }
    let digest: miren_core::model::Digest = parse(&body.artifact)?;
    let path = state.artifacts.artifact(&digest).path;
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(ApiError::invalid(format!(
            "no uploaded code with digest {digest}: upload it first (PUT /v1/artifacts)"
        )));
    }
    let events = state.controller.subscribe();
    let version = state
        .controller
        .deploy(DeployRequest {
            config,
            artifact_digest: digest,
            source: SourceInfo {
                git_commit: body.git_commit,
            },
        })
        .await?;
    Ok(progress(
        state.controller.clone(),
        state.visible.clone(),
        version,
        events,
        body.no_wait,
    ))
}

async fn rollback(
    state: S,
    Path(app): Path<String>,
    body: Option<Json<RollbackBody>>,
) -> R<Response> {
    app_name(&app)?;
    let to = match body.and_then(|b| b.0.version) {
        Some(v) => Some(parse::<VersionId>(&v)?),
        None => None,
    };
    let events = state.controller.subscribe();
    let version = state.controller.rollback(&app, to).await?;
    Ok(progress(
        state.controller.clone(),
        state.visible.clone(),
        version,
        events,
        false,
    ))
}

/// Streams a rollout: created, progress lines, then the version as it ended.
fn progress(
    ctl: Controller,
    visible: super::Visibility,
    version: VersionId,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    no_wait: bool,
) -> Response {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let _ = tx
            .send(line(&DeployLine::Created {
                version: version.to_string(),
            }))
            .await;
        let app = version.app().to_string();
        let done = async {
            if no_wait {
                ctl.snapshot(Some(&app))
                    .await
                    .ok()
                    .and_then(|s| s.versions.into_iter().find(|v| v.id == version))
            } else {
                ctl.wait(&version).await.ok()
            }
        };
        tokio::pin!(done);
        // Say each sandbox's status once, when it changes.
        let mut said = std::collections::HashMap::new();
        let finished: Option<Version> = loop {
            tokio::select! {
                v = &mut done => break v,
                ev = events.recv() => {
                    if let Ok(Event::Sandbox { app: a, service, id, status, reason }) = ev
                        && a == app
                        && said.insert(id.clone(), status) != Some(status) {
                            let msg = match reason {
                                Some(r) if status != miren_core::model::SandboxStatus::Running => {
                                    format!("{service}: sandbox {} {:?}: {r}", id.short(), status)
                                }
                                _ => format!("{service}: sandbox {} {}", id.short(), format!("{status:?}").to_lowercase()),
                            };
                            let _ = tx.send(line(&DeployLine::Progress { message: msg })).await;
                        }
                }
            }
        };
        if let Some(v) = finished {
            // An active version takes traffic by the time the caller hears so.
            visible.sync().await;
            let _ = tx
                .send(line(&DeployLine::Done {
                    version: Box::new(v),
                }))
                .await;
        }
    });
    ndjson(rx)
}

async fn list_apps(state: S) -> R<Json<Vec<crate::api::AppSummary>>> {
    let s = state.controller.snapshot(None).await?;
    Ok(Json(
        s.apps
            .iter()
            .map(|a| super::status::summary(a, &s))
            .collect(),
    ))
}

async fn app_status(state: S, Path(app): Path<String>) -> R<Json<AppStatus>> {
    app_name(&app)?;
    let s = state.controller.snapshot(Some(&app)).await?;
    let a = s.apps.first().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no app `{app}`"),
        )
    })?;
    Ok(Json(AppStatus {
        app: super::status::summary(a, &s),
        pools: s.pools.clone(),
    }))
}

async fn history(state: S, Path(app): Path<String>) -> R<Json<Vec<VersionRow>>> {
    app_name(&app)?;
    let s = state.controller.snapshot(Some(&app)).await?;
    if s.apps.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no app `{app}`"),
        ));
    }
    Ok(Json(
        s.versions
            .iter()
            .rev()
            .map(|v| VersionRow {
                id: v.id.to_string(),
                state: state_name(v.state).to_string(),
                created: v.created,
                commit: v.source.git_commit.clone(),
                failure: v.failure.clone(),
            })
            .collect(),
    ))
}

fn state_name(s: VersionState) -> &'static str {
    match s {
        VersionState::Deploying => "deploying",
        VersionState::Active => "active",
        VersionState::Superseded => "superseded",
        VersionState::Failed => "failed",
    }
}

#[derive(Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    purge_disks: bool,
}

async fn delete_app(
    state: S,
    Path(app): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> R<Json<serde_json::Value>> {
    app_name(&app)?;
    state.controller.delete_app(&app, q.purge_disks).await?;
    state.logs.remove_app(&app).await;
    state.visible.sync().await;
    Ok(Json(serde_json::json!({})))
}

#[derive(Deserialize)]
struct AppQuery {
    app: Option<String>,
    status: Option<String>,
}

async fn list_pools(
    state: S,
    Query(q): Query<AppQuery>,
) -> R<Json<Vec<miren_core::model::SandboxPool>>> {
    if let Some(a) = &q.app {
        app_name(a)?;
    }
    let s = state.controller.snapshot(q.app.as_deref()).await?;
    Ok(Json(s.pools))
}

async fn set_desired(
    state: S,
    Path(id): Path<String>,
    Json(b): Json<DesiredBody>,
) -> R<Json<miren_core::model::SandboxPool>> {
    let id: PoolId = parse(&id)?;
    if b.desired > 1000 {
        return Err(ApiError::invalid("desired must be at most 1000"));
    }
    let p = state
        .controller
        .set_desired(&id, b.desired, format!("set by an operator: {}", b.desired))
        .await?;
    Ok(Json(p))
}

async fn list_sandboxes(
    state: S,
    Query(q): Query<AppQuery>,
) -> R<Json<Vec<miren_core::model::Sandbox>>> {
    if let Some(a) = &q.app {
        app_name(a)?;
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<miren_core::model::SandboxStatus>(serde_json::Value::String(
                s.to_string(),
            ))
            .map_err(|_| {
                ApiError::invalid(format!(
                    "unknown status `{s}`: expected pending, running, stopped or dead"
                ))
            })?,
        ),
    };
    let s = state.controller.snapshot(q.app.as_deref()).await?;
    Ok(Json(
        s.sandboxes
            .into_iter()
            .filter(|x| status.is_none_or(|st| x.status == st))
            .collect(),
    ))
}

async fn stop_sandbox(state: S, Path(id): Path<String>) -> R<Json<serde_json::Value>> {
    let id: SandboxId = parse(&id)?;
    state.controller.stop_sandbox(&id).await?;
    Ok(Json(serde_json::json!({})))
}

#[derive(Deserialize)]
struct LogQuery {
    app: Option<String>,
    service: Option<String>,
    sandbox: Option<String>,
    last: Option<String>,
    #[serde(default)]
    follow: bool,
}

async fn logs(state: S, Query(q): Query<LogQuery>) -> R<Response> {
    if q.app.is_none() && q.sandbox.is_none() {
        return Err(ApiError::invalid(
            "say which logs: an app (and maybe a service) or a sandbox",
        ));
    }
    if let Some(a) = &q.app {
        app_name(a)?;
    }
    let since = match &q.last {
        None => None,
        Some(d) => {
            let d = miren_core::config::duration::parse(d)
                .map_err(|e| ApiError::invalid(format!("--last {d}: {e}")))?;
            Some(miren_core::runtime::now_millis().saturating_sub(d.as_millis() as u64))
        }
    };
    let filter = Filter {
        app: q.app.clone(),
        service: q.service.clone(),
        sandbox: q.sandbox.clone(),
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
    Ok(ndjson(rx))
}

async fn list_routes(state: S) -> R<Json<Vec<Route>>> {
    let routes = keys::list::<Route>(state.store.as_ref(), keys::ROUTES)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(routes))
}

/// The key holding the default route (hostless).
pub const DEFAULT_ROUTE: &str = "*";

fn host_name(host: &str) -> R<String> {
    let h = host.to_ascii_lowercase();
    let h = h
        .split(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_string();
    if h == DEFAULT_ROUTE {
        return Ok(h);
    }
    if h.is_empty() || h.len() > 253 {
        return Err(ApiError::invalid(format!("`{host}` is not a host name")));
    }
    for label in h.split('.') {
        miren_core::config::names::dns_label(label).map_err(|p| {
            ApiError::invalid(format!(
                "`{host}` is not a host name: `{label}`: {}",
                p.reason
            ))
        })?;
    }
    Ok(h)
}

async fn put_route(
    state: S,
    Path(host): Path<String>,
    headers: HeaderMap,
    Json(b): Json<RouteBody>,
) -> R<Json<Route>> {
    let _ = headers;
    let host = host_name(&host)?;
    app_name(&b.app)?;
    let s = state.controller.snapshot(Some(&b.app)).await?;
    if s.apps.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no app `{}`", b.app),
        ));
    }
    let default = b.default || host == DEFAULT_ROUTE;
    let route = Route {
        host: host.clone(),
        app: b.app.clone(),
        default,
    };
    let mut ops = vec![Op::put(keys::route(&host), keys::encode(&route))];
    if default {
        // One default: the others lose the flag (the hostless one goes).
        for r in keys::list::<Route>(state.store.as_ref(), keys::ROUTES)
            .await
            .map_err(ApiError::internal)?
        {
            if r.host != host && r.default {
                if r.host == DEFAULT_ROUTE {
                    ops.push(Op::delete(keys::route(&r.host)));
                } else {
                    let plain = Route {
                        default: false,
                        ..r
                    };
                    ops.push(Op::put(keys::route(&plain.host), keys::encode(&plain)));
                }
            }
        }
    }
    state.store.txn(ops).await.map_err(ApiError::internal)?;
    state.visible.sync().await;
    Ok(Json(route))
}

async fn delete_route(state: S, Path(host): Path<String>) -> R<Json<serde_json::Value>> {
    let host = host_name(&host)?;
    let key = keys::route(&host);
    if state
        .store
        .get(&key)
        .await
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for `{host}`"),
        ));
    }
    state
        .store
        .txn(vec![Op::delete(key)])
        .await
        .map_err(ApiError::internal)?;
    state.visible.sync().await;
    Ok(Json(serde_json::json!({})))
}

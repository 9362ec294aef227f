//! The control API (SPEC §10), one module per resource. Each handler is thin: parse
//! and check the request, call the controller (or the log or artifact store), answer
//! JSON. [`crate::api`] has the wire types and the table of routes.
//!
//! - `addons`: the addon catalog, an app's addons, `addon create|destroy`.
//! - `artifacts`: uploads.
//! - `attach`: `app run` and `sandbox exec`, over an upgraded connection.
//! - `deploys`: deploys and rollbacks, streamed as they progress.
//! - `env`: config vars and secrets, restarts.
//! - `apps`: listing, status, history, deletion.
//! - `pools`, `sandboxes`: listings, desired counts, stopping one sandbox.
//! - `logs`: reading and following logs.
//! - `tasks`: tasks, running one by hand, their runs.
//! - `routes`: hosts → apps.
//! - `nodes`: the cluster's nodes.
//! - `metrics`: Prometheus' text format, here and on `--metrics-addr`.
//! - `secrets`: the server's own secret store.
//! - `lookup`: what a request names (apps, services, hosts; ids by prefix or suffix).
//! - `error`: the JSON error answer and what each failure maps to.
//! - `extract`: request extractors whose rejections are JSON errors too.
//! - `stream`: NDJSON answers.
//! - `serve`: the sockets, with a head timeout and a connection cap.

mod addons;
mod apps;
mod artifacts;
mod attach;
mod deploys;
mod env;
mod error;
mod extract;
mod logs;
mod lookup;
mod metrics;
mod nodes;
mod pools;
mod routes;
mod sandboxes;
mod secrets;
pub(crate) mod serve;
pub(crate) mod stream;
mod tasks;
pub(crate) mod upgrade;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use miren_core::artifact::ArtifactStore;
use miren_core::controller::Controller;

use super::Visibility;
use super::logs::LogStore;
pub use error::ApiError;
use extract::{Json, clip, quoting};
pub use serve::{serve_tcp, serve_unix};

/// What every handler can reach.
#[derive(Clone)]
pub struct State {
    pub controller: Controller,
    pub logs: LogStore,
    pub artifacts: ArtifactStore,
    /// Route and rollout changes take effect in the proxy and DNS before the API
    /// answers.
    pub visible: Visibility,
    /// Required as `Authorization: Bearer <token>` when set (TCP).
    pub token: Option<String>,
    /// In a cluster, uploads are copied into the state store too, for the node that
    /// leads next (`artifact::replica`).
    pub cluster_store: Option<Arc<dyn miren_core::store::Store>>,
    /// This node's name, and where its proxy listens (`miren node list`).
    pub node: String,
    pub http: String,
    /// The proxy's routing table, whose targets carry the request metrics.
    pub proxy_table: miren_proxy::table::Shared,
    /// Every sandbox's CPU and memory, wherever it runs (`/metrics`).
    pub usage: crate::server::usage::Measure,
    /// The last minute of traffic and instances' usage (`app status`, `top`).
    pub traffic: crate::server::traffic::Traffic,
    /// The latest changes of pools' sizes, and why.
    pub decisions: crate::server::decisions::Decisions,
    /// The cluster's key, in a cluster: other nodes' log tokens open with it.
    pub cluster_key: Option<Arc<miren_core::secret::SecretKey>>,
    /// Service DNS's query counts, when it runs.
    pub dns_stats: Option<Arc<miren_dns::stats::QueryStats>>,
    /// The web dashboard, when served: `miren dashboard` asks for a login link.
    pub dashboard: Option<crate::server::dashboard::Dashboard>,
}

type S = axum::extract::State<Arc<State>>;
type R<T> = Result<T, ApiError>;

/// `/metrics` alone, without a token (`--metrics-addr`).
pub fn metrics_router(state: Arc<State>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::get))
        .with_state(state)
}

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(
            "/v1/health",
            get(|| async { Json(serde_json::json!({"ok": true})) }),
        )
        .route("/v1/artifacts", put(artifacts::upload))
        .route("/v1/deploys", post(deploys::deploy))
        .route("/v1/apps", get(apps::list))
        .route("/v1/status", get(apps::status_all))
        .route("/v1/apps/{app}", get(apps::status).delete(apps::delete))
        .route("/v1/apps/{app}/versions", get(apps::history))
        .route("/v1/apps/{app}/rollback", post(deploys::rollback))
        .route("/v1/apps/{app}/env", get(env::list).post(env::change))
        .route("/v1/apps/{app}/restart", post(env::restart))
        .route("/v1/addons", get(addons::catalog))
        .route(
            "/v1/apps/{app}/addons",
            get(addons::list).post(addons::create),
        )
        .route(
            "/v1/apps/{app}/addons/{name}",
            axum::routing::delete(addons::destroy),
        )
        .route("/v1/apps/{app}/run", get(attach::run))
        .route("/v1/sandboxes/{id}/exec", get(attach::exec))
        .route("/v1/apps/{app}/tasks", get(tasks::list))
        .route("/v1/apps/{app}/tasks/{task}/runs", post(tasks::run))
        .route("/v1/apps/{app}/runs", get(tasks::history))
        .route("/v1/pools", get(pools::list))
        .route("/v1/pools/{id}/desired", put(pools::set_desired))
        .route("/v1/sandboxes", get(sandboxes::list))
        .route("/v1/sandboxes/{id}/stop", post(sandboxes::stop))
        .route("/v1/logs", get(logs::read))
        .route("/v1/secrets", get(secrets::list))
        .route(
            "/v1/secrets/{*path}",
            put(secrets::set).delete(secrets::destroy),
        )
        .route("/v1/secret-states", post(secrets::enable))
        .route("/v1/routes", get(routes::list))
        .route("/v1/nodes", get(nodes::list))
        .route(
            "/v1/nodes/{name}/drain",
            post(nodes::drain).delete(nodes::undrain),
        )
        .route("/v1/dashboard/logins", post(login_link))
        .route("/metrics", get(metrics::get))
        .route("/v1/routes/{host}", put(routes::put).delete(routes::remove))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
        })
        .method_not_allowed_fallback(extract::method_not_allowed)
        // Uploads stream to disk with their own limit (`artifacts`).
        .layer(DefaultBodyLimit::max(extract::MAX_JSON))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(state: S, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token
        && !serve::bearer_is(&req, token)
    {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this API needs `Authorization: Bearer <token>` (the token is in <data-dir>/api-token; pass it with --token or MIREN_TOKEN)",
        )
        .into_response();
    }
    next.run(req).await
}

/// `POST /v1/dashboard/logins`: a one-time link into the dashboard.
async fn login_link(state: S) -> R<Json<crate::api::DashboardLogin>> {
    let Some(d) = &state.dashboard else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_dashboard",
            "this server serves no dashboard: start it with --ui-addr (its default, 127.0.0.1:8081, was taken or turned off)",
        ));
    };
    let url = d.login_link().map_err(ApiError::internal)?;
    Ok(Json(crate::api::DashboardLogin {
        url,
        expires_in_secs: crate::server::dashboard::CODE_TTL.as_secs(),
    }))
}

/// Checks an app name from a path or query.
fn app_name(app: &str) -> R<()> {
    miren_core::config::names::dns_label(app)
        .map_err(|p| ApiError::invalid(format!("`{}` is not an app name: {}", clip(app), p.reason)))
}

/// Parses an id or another value from a path.
fn parse<T: std::str::FromStr>(s: &str) -> R<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| {
        let m = e.to_string();
        ApiError::invalid(if s.len() > 300 {
            m.replace(s, &clip(s))
        } else {
            m
        })
    })
}

/// The empty JSON object, for calls with nothing to say.
fn done() -> Json<serde_json::Value> {
    Json(serde_json::json!({}))
}

//! `/v1/routes`: hosts → apps. The controller writes them; this checks the host and
//! waits until the proxy routes by the change before answering.

use miren_core::config::names::{self, DEFAULT_HOST};
use miren_core::model::Route;

use super::extract::{Json, Path};
use super::{ApiError, R, S, done, lookup};
use crate::api::RouteBody;

pub async fn list(state: S) -> R<Json<Vec<Route>>> {
    Ok(Json(state.controller.snapshot(None).await?.routes))
}

/// A host as routes store it: lowercase, no trailing dot; a URL, path or port is
/// refused with the host it would be.
fn host_name(host: &str) -> R<String> {
    names::route_host_from(host)
        .map_err(|p| ApiError::invalid(format!("`{}` {}", super::clip(host), p.reason)))
}

pub async fn put(state: S, Path(host): Path<String>, Json(b): Json<RouteBody>) -> R<Json<Route>> {
    let host = host_name(&host)?;
    lookup::app(&state, &b.app).await?;
    let route = state
        .controller
        .put_route(Route {
            default: b.default || host == DEFAULT_HOST,
            host,
            app: b.app,
        })
        .await?;
    state.visible.sync().await;
    Ok(Json(route))
}

pub async fn remove(state: S, Path(host): Path<String>) -> R<Json<serde_json::Value>> {
    let host = host_name(&host)?;
    lookup::route_host(&state.controller.snapshot(None).await?, &host)?;
    state
        .controller
        .remove_route(&host)
        .await
        .map_err(|e| match e {
            miren_core::controller::ControllerError::NotFound { .. } => {
                ApiError::not_found(format!("no route for `{host}`"))
            }
            e => e.into(),
        })?;
    state.visible.sync().await;
    Ok(done())
}

//! `/v1/apps/{app}/env` and `/restart` (SPEC §14): config vars and restarts, each a
//! rollout of the active code. Secret values are written to the store and to the
//! sandboxes' environment, and nowhere else: every answer shows `(secret)`.

use axum::response::Response;
use miren_core::controller::AppChange;
use miren_core::model::{ConfigVar, SECRET_SHOWN};

use super::deploys::streamed;
use super::extract::{Json, Path};
use super::stream::{line, ndjson};
use super::{ApiError, R, S, lookup};
use crate::api::{ConfigVarRow, DeployLine, EnvChange, RestartBody};
use crate::server::rollout::Rollout;

pub async fn list(state: S, Path(app): Path<String>) -> R<Json<Vec<ConfigVarRow>>> {
    let s = lookup::app(&state, &app).await?;
    let vars = s
        .apps
        .iter()
        .find(|a| a.name == app)
        .map(|a| a.config_vars.clone())
        .unwrap_or_default();
    Ok(Json(vars.into_iter().map(shown).collect()))
}

pub async fn change(state: S, Path(app): Path<String>, Json(b): Json<EnvChange>) -> R<Response> {
    let s = lookup::app(&state, &app).await?;
    for v in &b.set {
        key(&v.key)?;
        if let Some(svc) = &v.service {
            lookup::service(&s, &app, svc)?;
        }
    }
    if let Some(svc) = &b.service {
        lookup::service(&s, &app, svc)?;
    }
    let change = match (b.set.is_empty(), b.unset.is_empty()) {
        (false, true) => AppChange::SetVars(b.set),
        (true, false) => AppChange::UnsetVars {
            keys: b.unset,
            service: b.service,
        },
        _ => {
            return Err(ApiError::invalid(
                "say either which vars to set or which to unset",
            ));
        }
    };
    rollout(state, &app, change).await
}

pub async fn restart(
    state: S,
    Path(app): Path<String>,
    body: Option<Json<RestartBody>>,
) -> R<Response> {
    let s = lookup::app(&state, &app).await?;
    let service = body.and_then(|b| b.0.service);
    if let Some(svc) = &service {
        lookup::service(&s, &app, svc)?;
    }
    rollout(state, &app, AppChange::Restart { service }).await
}

/// Rolls a change of the app out as a new version of its active code, streamed.
pub(super) async fn rollout(state: S, app: &str, change: AppChange) -> R<Response> {
    match Rollout::change(&state.controller, &state.visible, app, change).await? {
        Some(r) => Ok(streamed(r, true)),
        None => {
            let said = DeployLine::Progress {
                message: format!(
                    "app `{app}` runs no version yet: the change applies from its first deploy"
                ),
            };
            Ok(ndjson(tokio_stream::iter([line(&said)])))
        }
    }
}

/// A var as it may leave the server.
fn shown(mut v: ConfigVar) -> ConfigVar {
    if v.secret {
        v.value = SECRET_SHOWN.to_string();
    }
    v
}

/// The key rules of app.toml's env.
fn key(k: &str) -> R<()> {
    let ok = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(ApiError::invalid(format!(
            "`{}` is not an environment variable name: letters, digits and `_`, not starting with a digit",
            super::clip(k)
        )));
    }
    if k.starts_with("MIREN_") {
        return Err(ApiError::invalid(format!(
            "`{k}` is reserved: `MIREN_*` variables are the platform's"
        )));
    }
    if k == "PORT" {
        return Err(ApiError::invalid(
            "`PORT` is set by the platform for every instance",
        ));
    }
    Ok(())
}

//! `/v1/secrets` (SPEC §17): the server's own secret store (`backend = "cluster"`).
//! Values go in and never come out: a listing shows paths and versions.

use miren_core::model::{Secret, SecretRef};

use super::extract::{Json, Path};
use super::{ApiError, R, S};
use crate::api::{SecretRow, SecretState, SecretValue, SecretVersionRow};
use miren_core::controller::SecretSet;

fn row(s: Secret) -> SecretRow {
    SecretRow {
        current: s.current().map(|v| v.id.clone()),
        backend: "cluster".into(),
        versions: s
            .versions
            .iter()
            .rev()
            .map(|v| SecretVersionRow {
                id: v.id.clone(),
                created: v.created,
                disabled: v.disabled,
            })
            .collect(),
        path: s.path,
    }
}

pub async fn list(state: S) -> R<Json<Vec<SecretRow>>> {
    let all = state.controller.secrets().await?;
    Ok(Json(all.into_iter().map(row).collect()))
}

pub async fn set(
    state: S,
    Path(path): Path<String>,
    Json(b): Json<SecretValue>,
) -> R<Json<SecretSet>> {
    let r = SecretRef::parse(&path).map_err(ApiError::invalid)?;
    if r.version.is_some() {
        return Err(ApiError::invalid(format!(
            "`{path}`: a new value makes a new version of `{}`; name it without `@`",
            r.path
        )));
    }
    Ok(Json(
        state
            .controller
            .set_secret(&r.path, b.value.into_bytes())
            .await?,
    ))
}

pub async fn destroy(state: S, Path(path): Path<String>) -> R<Json<serde_json::Value>> {
    let r = SecretRef::parse(&path).map_err(ApiError::invalid)?;
    known(&state, &r).await?;
    state.controller.destroy_secret(r.clone()).await?;
    Ok(Json(serde_json::json!({ "destroyed": r.to_string() })))
}

pub async fn enable(state: S, Json(b): Json<SecretState>) -> R<Json<serde_json::Value>> {
    let r = SecretRef::parse(&b.secret).map_err(ApiError::invalid)?;
    known(&state, &r).await?;
    state.controller.enable_secret(r.clone(), b.enabled).await?;
    Ok(Json(
        serde_json::json!({ "secret": r.to_string(), "enabled": b.enabled }),
    ))
}

/// A 404 with did-you-mean for a secret (or version) that doesn't exist.
async fn known(state: &S, r: &SecretRef) -> R<()> {
    let all = state.controller.secrets().await?;
    let Some(s) = all.iter().find(|s| s.path == r.path) else {
        let names: Vec<&str> = all.iter().map(|s| s.path.as_str()).collect();
        return Err(ApiError::not_found(super::lookup::unknown(
            "secret", &r.path, &names, "secrets",
        )));
    };
    if let Some(v) = &r.version
        && !s.versions.iter().any(|x| &x.id == v)
    {
        let ids: Vec<&str> = s.versions.iter().map(|x| x.id.as_str()).collect();
        return Err(ApiError::not_found(super::lookup::unknown(
            &format!("version of secret `{}`", r.path),
            v,
            &ids,
            "versions",
        )));
    }
    Ok(())
}

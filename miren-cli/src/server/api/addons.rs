//! `/v1/addons` and `/v1/apps/{app}/addons` (SPEC §17): the catalog, an app's addons
//! with how their servers are doing, and `addon create|destroy`, each a rollout of
//! the active code. Passwords never leave: an addon row names the variables its
//! services get, not their values.

use axum::response::Response;
use miren_core::config::addons::{self, ADDONS};
use miren_core::controller::{AddonRequest, AppChange};

use super::extract::{Json, Path};
use super::{ApiError, R, S, env, lookup};
use crate::api::{AddonCatalogRow, AddonCreate, AddonRow};

pub async fn catalog() -> Json<Vec<AddonCatalogRow>> {
    Json(
        ADDONS
            .iter()
            .map(|a| AddonCatalogRow {
                name: a.name.to_string(),
                description: a.description.to_string(),
                image: a.image.map(str::to_string),
                versions: a.versions.iter().map(|v| v.to_string()).collect(),
                default_version: a.default_version().map(str::to_string),
                variants: a
                    .variants
                    .iter()
                    .map(|(v, d)| (v.to_string(), d.to_string()))
                    .collect(),
                default_variant: a.default_variant().to_string(),
            })
            .collect(),
    )
}

pub async fn list(state: S, Path(app): Path<String>) -> R<Json<Vec<AddonRow>>> {
    let s = lookup::app(&state, &app).await?;
    let Some(a) = s.apps.iter().find(|a| a.name == app) else {
        return Ok(Json(Vec::new()));
    };
    let active = a
        .active_version
        .as_ref()
        .and_then(|v| s.versions.iter().find(|x| &x.id == v));
    let rows = a
        .addons
        .iter()
        .map(|i| {
            let catalog = i.addon();
            // Its server's pool of the active version, when it has a server.
            let pool = active.and_then(|v| {
                s.pools
                    .iter()
                    .find(|p| p.app == app && p.service == i.name && p.versions.contains(&v.id))
            });
            let status = match (catalog.map(|c| c.has_server()), pool, active) {
                (Some(false), _, Some(_)) => "active".to_string(),
                (Some(false), _, None) | (Some(true), None, _) => "pending".to_string(),
                (Some(true), Some(p), _) if p.ready >= 1 => "active".to_string(),
                (Some(true), Some(_), _) => "provisioning".to_string(),
                (None, _, _) => "unknown addon".to_string(),
            };
            let variables = catalog
                .map(|c| {
                    addons::client_env(c.kind, "", c.port, i)
                        .into_iter()
                        .map(|(k, _, _)| k)
                        .collect()
                })
                .unwrap_or_default();
            AddonRow {
                name: i.name.clone(),
                variant: i.variant.clone(),
                image: i.image(),
                services: i.services.clone(),
                from_file: i.from_file,
                status,
                host: catalog
                    .filter(|c| c.has_server())
                    .map(|c| format!("{}.app.miren:{}", i.name, c.port)),
                disk: i.disk.clone(),
                variables,
                created: i.created,
            }
        })
        .collect();
    Ok(Json(rows))
}

pub async fn create(state: S, Path(app): Path<String>, Json(b): Json<AddonCreate>) -> R<Response> {
    let s = lookup::app(&state, &app).await?;
    if addons::addon(&b.name).is_none() {
        let names: Vec<&str> = ADDONS.iter().map(|a| a.name).collect();
        return Err(ApiError::not_found(lookup::unknown(
            "addon", &b.name, &names, "addons",
        )));
    }
    for svc in &b.services {
        lookup::service(&s, &app, svc)?;
    }
    let request = AddonRequest {
        name: b.name,
        variant: b.variant,
        version: b.version,
        services: b.services,
    };
    env::rollout(state, &app, AppChange::AddAddon(request)).await
}

pub async fn destroy(state: S, Path((app, name)): Path<(String, String)>) -> R<Response> {
    let s = lookup::app(&state, &app).await?;
    let have: Vec<&str> = s
        .apps
        .iter()
        .filter(|a| a.name == app)
        .flat_map(|a| a.addons.iter().map(|i| i.name.as_str()))
        .collect();
    if !have.contains(&name.as_str()) {
        return Err(ApiError::not_found(lookup::unknown(
            &format!("addon of app `{app}`"),
            &name,
            &have,
            "addons",
        )));
    }
    env::rollout(state, &app, AppChange::RemoveAddon(name)).await
}

//! One bridge network per app: its containers reach each other and the host's
//! gateway address (where service DNS answers them), and no other app's containers.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::Docker;
use bollard::models::NetworkCreateRequest;
use miren_core::runtime::RuntimeError;

use crate::engine::{failed, is_conflict, is_not_found};
use crate::names::{self, LABEL_APP};

/// An app's network as the Engine made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppNetwork {
    /// Its name (`miren-<app>`).
    pub name: String,
    /// The host's address on it: containers' gateway, and their resolver.
    pub gateway: IpAddr,
}

/// The app's network, made when missing.
pub async fn ensure(docker: &Docker, app: &str) -> Result<AppNetwork, RuntimeError> {
    let name = names::network(app);
    if let Some(n) = inspect(docker, &name).await? {
        return Ok(n);
    }
    let request = NetworkCreateRequest {
        name: name.clone(),
        driver: Some("bridge".into()),
        labels: Some(HashMap::from([(LABEL_APP.to_string(), app.to_string())])),
        ..Default::default()
    };
    match docker.create_network(request).await {
        Ok(_) => {}
        // Made meanwhile by a concurrent prepare: fine.
        Err(e) if is_conflict(&e) => {}
        Err(e) => return Err(failed(format!("creating the network {name}"), e)),
    }
    inspect(docker, &name).await?.ok_or_else(|| {
        RuntimeError::Backend(format!(
            "the network {name} vanished right after it was made"
        ))
    })
}

/// The app's network, if it exists.
pub async fn inspect(docker: &Docker, name: &str) -> Result<Option<AppNetwork>, RuntimeError> {
    let n = match docker.inspect_network(name, None).await {
        Ok(n) => n,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(failed(format!("inspecting the network {name}"), e)),
    };
    let gateway = n
        .ipam
        .and_then(|i| i.config)
        .into_iter()
        .flatten()
        .find_map(|c| c.gateway.and_then(|g| g.parse::<IpAddr>().ok()))
        .ok_or_else(|| {
            RuntimeError::Backend(format!("the network {name} has no gateway address"))
        })?;
    Ok(Some(AppNetwork {
        name: name.to_string(),
        gateway,
    }))
}

/// Removes the app's network (its containers are gone by then).
pub async fn remove(docker: &Docker, app: &str) -> Result<(), RuntimeError> {
    let name = names::network(app);
    match docker.remove_network(&name).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(failed(format!("removing the network {name}"), e)),
    }
}

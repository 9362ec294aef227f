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
    /// The app.
    pub app: String,
    /// Its name (`miren-<app>`).
    pub name: String,
    /// The host's address on it: containers' gateway, and their resolver.
    pub gateway: IpAddr,
    /// Its subnet: only the app's containers have addresses in it.
    pub subnet: (IpAddr, u8),
}

/// The app's network, made when missing.
pub async fn ensure(docker: &Docker, app: &str) -> Result<AppNetwork, RuntimeError> {
    let name = names::network(app);
    if let Some(n) = inspect(docker, app).await? {
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
    inspect(docker, app).await?.ok_or_else(|| {
        RuntimeError::Backend(format!(
            "the network {name} vanished right after it was made"
        ))
    })
}

/// The app's network, if it exists.
pub async fn inspect(docker: &Docker, app: &str) -> Result<Option<AppNetwork>, RuntimeError> {
    let name = names::network(app);
    let n = match docker.inspect_network(&name, None).await {
        Ok(n) => n,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(failed(format!("inspecting the network {name}"), e)),
    };
    let (gateway, subnet) = n
        .ipam
        .and_then(|i| i.config)
        .into_iter()
        .flatten()
        .find_map(|c| Some((c.gateway?.parse::<IpAddr>().ok()?, subnet(&c.subnet?)?)))
        .ok_or_else(|| {
            RuntimeError::Backend(format!("the network {name} has no gateway or subnet"))
        })?;
    Ok(Some(AppNetwork {
        app: app.to_string(),
        name,
        gateway,
        subnet,
    }))
}

/// `172.18.0.0/16` → (address, prefix length).
fn subnet(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = s.split_once('/')?;
    Some((addr.parse().ok()?, prefix.parse().ok()?))
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

#[cfg(test)]
mod tests {
    #[test]
    fn subnets_parse_as_the_engine_writes_them() {
        assert_eq!(
            super::subnet("172.18.0.0/16"),
            Some(("172.18.0.0".parse().expect("an address"), 16))
        );
        assert_eq!(super::subnet("fd00:1::/64").map(|s| s.1), Some(64));
        assert_eq!(super::subnet("172.18.0.0"), None);
    }
}

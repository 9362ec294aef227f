//! Where each object lives in the [`Store`](crate::store::Store): one JSON value per
//! key, keys grouped by app so one prefix lists an app's objects.
//!
//! | object | key |
//! |---|---|
//! | App | `apps/<name>` |
//! | Version | `versions/<app>/<id>` |
//! | SandboxPool | `pools/<app>/<id>` |
//! | Sandbox | `sandboxes/<app>/<id>` |
//! | Route | `routes/<host>` |

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{PoolId, SandboxId, VersionId};
use crate::store::{Store, StoreError};

/// Prefix of every app.
pub const APPS: &str = "apps/";
/// Prefix of every version.
pub const VERSIONS: &str = "versions/";
/// Prefix of every pool.
pub const POOLS: &str = "pools/";
/// Prefix of every sandbox.
pub const SANDBOXES: &str = "sandboxes/";
/// Prefix of every route.
pub const ROUTES: &str = "routes/";

/// Key of an app.
pub fn app(name: &str) -> String {
    format!("{APPS}{name}")
}

/// Key of a version.
pub fn version(app: &str, id: &VersionId) -> String {
    format!("{VERSIONS}{app}/{id}")
}

/// Key of a pool.
pub fn pool(app: &str, id: &PoolId) -> String {
    format!("{POOLS}{app}/{id}")
}

/// Key of a sandbox.
pub fn sandbox(app: &str, id: &SandboxId) -> String {
    format!("{SANDBOXES}{app}/{id}")
}

/// Key of a route.
pub fn route(host: &str) -> String {
    format!("{ROUTES}{host}")
}

/// Encodes an object.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // The model is plain data with string keys: serializing it cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Every object under `prefix`, decoded. A value that doesn't decode is a backend
/// error naming its key (a newer server's data, or corruption).
pub async fn list<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<T>, StoreError> {
    let (items, _) = store.list(prefix).await?;
    items
        .into_iter()
        .map(|(key, v)| {
            serde_json::from_slice(&v.value)
                .map_err(|e| StoreError::Backend(format!("`{key}` does not decode: {e}").into()))
        })
        .collect()
}

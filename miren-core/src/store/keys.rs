//! Where each object lives in the [`Store`]: one JSON value per key, keys grouped by
//! app so one prefix lists an app's objects. Writers build keys with the functions
//! here; readers that follow the store turn a key back into what it names with
//! [`Key::parse`], so nobody splits key strings by hand.
//!
//! | object | key |
//! |---|---|
//! | App | `apps/<name>` |
//! | Version | `versions/<app>/<id>` |
//! | SandboxPool | `pools/<app>/<id>` |
//! | Sandbox | `sandboxes/<app>/<id>` |
//! | Route | `routes/<host>` |
//! | TaskRun | `runs/<app>/<id>` |
//! | Secret | `secrets/<path>` (the path may hold `/`) |

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
/// Prefix of every task run.
pub const RUNS: &str = "runs/";
/// Prefix of every secret.
pub const SECRETS: &str = "secrets/";
/// Prefix of every node's record (a cluster).
pub const NODES: &str = "nodes/";
/// Prefix of every live node's heartbeat key (a cluster; on the node's lease).
pub const ALIVE: &str = "alive/";

/// The kinds of object the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `apps/<name>`.
    App,
    /// `versions/<app>/<id>`.
    Version,
    /// `pools/<app>/<id>`.
    Pool,
    /// `sandboxes/<app>/<id>`.
    Sandbox,
    /// `routes/<host>`.
    Route,
    /// `runs/<app>/<id>`.
    Run,
    /// `secrets/<path>`.
    Secret,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::App,
        Kind::Version,
        Kind::Pool,
        Kind::Sandbox,
        Kind::Route,
        Kind::Run,
        Kind::Secret,
    ];

    /// The prefix its keys start with.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::App => APPS,
            Kind::Version => VERSIONS,
            Kind::Pool => POOLS,
            Kind::Sandbox => SANDBOXES,
            Kind::Route => ROUTES,
            Kind::Run => RUNS,
            Kind::Secret => SECRETS,
        }
    }
}

/// What a store key names. Borrowed from the key: parsing allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// An app, by name.
    App(&'a str),
    /// A version of an app.
    Version {
        /// The app.
        app: &'a str,
        /// The version id, as written in the key.
        id: &'a str,
    },
    /// A pool of an app.
    Pool {
        /// The app.
        app: &'a str,
        /// The pool id, as written in the key.
        id: &'a str,
    },
    /// A sandbox of an app.
    Sandbox {
        /// The app.
        app: &'a str,
        /// The sandbox id, as written in the key.
        id: &'a str,
    },
    /// A route, by host.
    Route(&'a str),
    /// A task run of an app.
    Run {
        /// The app.
        app: &'a str,
        /// The run's sandbox id, as written in the key.
        id: &'a str,
    },
    /// A secret, by path.
    Secret(&'a str),
}

impl<'a> Key<'a> {
    /// What `key` names; `None` for a key outside the layout above (another
    /// program's, or a newer server's).
    pub fn parse(key: &'a str) -> Option<Key<'a>> {
        let per_app = |rest: &'a str| {
            rest.split_once('/')
                .filter(|(app, id)| !app.is_empty() && !id.is_empty() && !id.contains('/'))
        };
        if let Some(name) = key.strip_prefix(APPS) {
            return (!name.is_empty() && !name.contains('/')).then_some(Key::App(name));
        }
        if let Some(host) = key.strip_prefix(ROUTES) {
            return (!host.is_empty() && !host.contains('/')).then_some(Key::Route(host));
        }
        if let Some((app, id)) = key.strip_prefix(VERSIONS).and_then(per_app) {
            return Some(Key::Version { app, id });
        }
        if let Some((app, id)) = key.strip_prefix(POOLS).and_then(per_app) {
            return Some(Key::Pool { app, id });
        }
        if let Some((app, id)) = key.strip_prefix(SANDBOXES).and_then(per_app) {
            return Some(Key::Sandbox { app, id });
        }
        if let Some((app, id)) = key.strip_prefix(RUNS).and_then(per_app) {
            return Some(Key::Run { app, id });
        }
        if let Some(path) = key.strip_prefix(SECRETS) {
            return (!path.is_empty()).then_some(Key::Secret(path));
        }
        None
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Key::App(_) => Kind::App,
            Key::Version { .. } => Kind::Version,
            Key::Pool { .. } => Kind::Pool,
            Key::Sandbox { .. } => Kind::Sandbox,
            Key::Route(_) => Kind::Route,
            Key::Run { .. } => Kind::Run,
            Key::Secret(_) => Kind::Secret,
        }
    }

    /// The app it belongs to (routes belong to none: they name theirs in their value).
    pub fn app(&self) -> Option<&'a str> {
        match *self {
            Key::App(name) => Some(name),
            Key::Version { app, .. }
            | Key::Pool { app, .. }
            | Key::Sandbox { app, .. }
            | Key::Run { app, .. } => Some(app),
            Key::Route(_) | Key::Secret(_) => None,
        }
    }
}

/// Key of an app.
pub fn app(name: &str) -> String {
    format!("{APPS}{name}")
}

/// Key of a node's record.
pub fn node(name: &str) -> String {
    format!("{NODES}{name}")
}

/// Key of a node's heartbeat.
pub fn alive(name: &str) -> String {
    format!("{ALIVE}{name}")
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

/// Key of a task run.
pub fn run(app: &str, id: &SandboxId) -> String {
    format!("{RUNS}{app}/{id}")
}

/// Key of a secret.
pub fn secret(path: &str) -> String {
    format!("{SECRETS}{path}")
}

/// Key of a route.
pub fn route(host: &str) -> String {
    format!("{ROUTES}{host}")
}

/// Encodes an object.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // The model is plain data whose maps have string keys: serializing it can't fail,
    // and an empty value written instead would be a corrupt object.
    #[allow(clippy::expect_used)]
    serde_json::to_vec(value).expect("the model serializes to JSON")
}

/// A value that doesn't decode as the object its key names (a newer server's data, or
/// corruption).
#[derive(Debug, thiserror::Error)]
#[error("`{key}` does not decode: {source}")]
pub struct Undecodable {
    /// The key.
    pub key: String,
    /// Why.
    #[source]
    pub source: serde_json::Error,
}

impl From<Undecodable> for StoreError {
    fn from(e: Undecodable) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// Decodes the value stored at `key`.
pub fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, Undecodable> {
    serde_json::from_slice(value).map_err(|source| Undecodable {
        key: key.to_string(),
        source,
    })
}

/// Every object under `prefix`, decoded. A value that doesn't decode is a backend
/// error naming its key.
pub async fn list<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<T>, StoreError> {
    let (items, _) = store.list(prefix).await?;
    items
        .into_iter()
        .map(|(key, v)| decode(&key, &v.value).map_err(StoreError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_writers_build_parses_back_to_what_it_names() {
        let v = VersionId::new("shop");
        let p = PoolId::new();
        let s = SandboxId::new("shop", "web");
        assert_eq!(Key::parse(&app("shop")), Some(Key::App("shop")));
        assert_eq!(
            Key::parse(&version("shop", &v)),
            Some(Key::Version {
                app: "shop",
                id: v.as_str()
            })
        );
        assert_eq!(
            Key::parse(&pool("shop", &p)),
            Some(Key::Pool {
                app: "shop",
                id: p.as_str()
            })
        );
        let sk = sandbox("shop", &s);
        let parsed = Key::parse(&sk);
        assert_eq!(
            parsed,
            Some(Key::Sandbox {
                app: "shop",
                id: s.as_str()
            })
        );
        assert_eq!(parsed.map(|k| k.kind()), Some(Kind::Sandbox));
        assert_eq!(parsed.and_then(|k| k.app()), Some("shop"));
        assert_eq!(Key::parse(&route("*")), Some(Key::Route("*")));
        assert_eq!(Key::parse(&route("a.example")).and_then(|k| k.app()), None);
    }

    #[test]
    fn keys_outside_the_layout_name_nothing() {
        for k in [
            "",
            "apps/",
            "apps/a/b",
            "pools/shop",
            "pools/shop/",
            "pools//x",
            "sandboxes/shop/a/b",
            "routes/",
            "other/x",
        ] {
            assert_eq!(Key::parse(k), None, "{k:?}");
        }
    }
}

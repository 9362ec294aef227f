//! Every sandbox's CPU and memory, wherever it runs: this node's runtime measures its
//! own (`/proc`, the Engine's stats); in a cluster, each other live node is asked for
//! what its own runtime measures (`node_api`).

use std::sync::Arc;

use miren_core::runtime::{Runtime, RuntimeError, Usage};
use miren_core::secret::SecretKey;
use miren_core::store::Store;

use super::node_api;

/// Where usage comes from.
#[derive(Clone)]
pub struct Measure {
    local: Arc<dyn Runtime>,
    cluster: Option<Cluster>,
}

#[derive(Clone)]
struct Cluster {
    store: Arc<dyn Store>,
    key: Arc<SecretKey>,
    me: String,
}

impl Measure {
    /// This node's runtime's sandboxes; in a cluster (`store`, its key, this node's
    /// name), every live node's.
    pub fn new(
        local: Arc<dyn Runtime>,
        cluster: Option<(Arc<dyn Store>, Arc<SecretKey>, String)>,
    ) -> Self {
        Self {
            local,
            cluster: cluster.map(|(store, key, me)| Cluster { store, key, me }),
        }
    }

    /// What every sandbox uses now (a node that does not answer is left out, and the
    /// log says so).
    pub async fn all(&self) -> Result<Vec<Usage>, RuntimeError> {
        let mut all = self.local.usage().await?;
        if let Some(c) = &self.cluster {
            let peers = node_api::peers(c.store.as_ref(), &c.key, &c.me).await;
            for p in &peers {
                all.extend(p.usage().await);
            }
        }
        Ok(all)
    }
}

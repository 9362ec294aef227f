//! A node's heartbeat: a key on a lease it keeps alive, gone within the lease's TTL of
//! the node's death — how the others tell a live node from a lost one.

use etcd_client::{Client, PutOptions};
use miren_core::store::StoreError;

use crate::call::retried;
use crate::lease::KeptLease;

/// A live key; dropped, it goes.
pub struct Heartbeat {
    lease: KeptLease,
    client: Client,
    key: String,
}

impl Heartbeat {
    /// Puts `key` = `value` on a lease of its own.
    pub(crate) async fn start(
        client: &Client,
        key: String,
        value: Vec<u8>,
    ) -> Result<Self, StoreError> {
        let lease = KeptLease::grant(client).await?;
        let hb = Self {
            lease,
            client: client.clone(),
            key,
        };
        hb.set(value).await?;
        Ok(hb)
    }

    /// Changes what it says.
    pub async fn set(&self, value: Vec<u8>) -> Result<(), StoreError> {
        let options = PutOptions::new().with_lease(self.lease.id);
        retried(|| {
            let (mut c, value, options) = (self.client.clone(), value.clone(), options.clone());
            async move { c.put(self.key.as_str(), value, Some(options)).await }
        })
        .await?;
        Ok(())
    }

    /// Resolves, saying why, when the heartbeat stopped (its lease lapsed).
    pub async fn stopped(&mut self) -> String {
        self.lease.lost().await
    }
}

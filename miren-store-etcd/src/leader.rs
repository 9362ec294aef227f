//! Which node runs the controller: the one holding the cluster's leader key, attached
//! to a lease it keeps alive (`lease`). When the node dies or is cut off, the lease
//! lapses and the key goes with it; when the holder cannot renew the lease before it
//! lapses, it learns it has lost ([`Leadership::lost`]) and must stop acting as leader
//! at once.

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use miren_core::store::StoreError;

use crate::call::retried;
use crate::lease::KeptLease;

/// Why [`lead`] did not make this node the leader.
#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    /// Another node holds the key.
    #[error("node `{holder}` leads this cluster")]
    Held {
        /// Its name.
        holder: String,
    },
    /// etcd failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This node's leadership; dropping it gives it up (the key goes with the lease).
pub struct Leadership {
    lease: KeptLease,
}

impl Leadership {
    /// Resolves when leadership is lost, saying why; never while it is held.
    pub async fn lost(&mut self) -> String {
        self.lease.lost().await
    }
}

/// Makes `node` the leader, under `key`, when nobody holds it — even when the holder
/// has this node's name: a node restarting waits for its old lease to lapse, so two
/// processes given one name never both lead.
pub(crate) async fn lead(client: &Client, key: &str, node: &str) -> Result<Leadership, LeadError> {
    let lease = KeptLease::grant(client).await?;
    let put = TxnOp::put(key, node, Some(PutOptions::new().with_lease(lease.id)));
    let txn = Txn::new()
        .when([Compare::version(key, CompareOp::Equal, 0)])
        .and_then([put])
        .or_else([TxnOp::get(key, None)]);
    let resp = retried(|| {
        let (mut c, txn) = (client.clone(), txn.clone());
        async move { c.txn(txn).await }
    })
    .await?;
    if resp.succeeded() {
        return Ok(Leadership { lease });
    }
    let holder = resp
        .op_responses()
        .into_iter()
        .find_map(|r| match r {
            TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
            _ => None,
        })
        .unwrap_or_default();
    // `lease` is revoked as it is dropped.
    Err(LeadError::Held { holder })
}

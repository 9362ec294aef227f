//! Which node runs the controller: the one holding the cluster's leader key, attached
//! to an etcd lease (TTL [`LEASE_TTL`] s) that it keeps alive. When the node dies or is
//! cut off, the lease lapses and the key goes with it; when the holder cannot renew the
//! lease before it lapses, it learns it has lost ([`Leadership::lost`]) and must stop
//! acting as leader at once.

use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use miren_core::store::StoreError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::bounded;

/// Seconds a leader's lease lives without renewal.
pub const LEASE_TTL: i64 = 5;
/// How often the leader renews it.
const RENEW_EVERY: Duration = Duration::from_millis(1500);

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

/// This node's leadership; dropping it gives it up (the key is removed with the lease).
pub struct Leadership {
    lost: watch::Receiver<Option<String>>,
    renew: JoinHandle<()>,
    client: Client,
    lease: i64,
}

impl Leadership {
    /// Resolves when leadership is lost, saying why; never while it is held.
    pub async fn lost(&mut self) -> String {
        match self.lost.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "the lease's keeper stopped".into(),
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.renew.abort();
        let (mut client, lease) = (self.client.clone(), self.lease);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client.lease_revoke(lease).await;
            });
        }
    }
}

/// Makes `node` the leader, under `key`, when nobody holds it.
pub(crate) async fn lead(client: &Client, key: &str, node: &str) -> Result<Leadership, LeadError> {
    let mut c = client.clone();
    let lease = bounded(c.lease_grant(LEASE_TTL, None)).await?.id();
    let put = TxnOp::put(key, node, Some(PutOptions::new().with_lease(lease)));
    let txn = Txn::new()
        .when([Compare::version(key, CompareOp::Equal, 0)])
        .and_then([put])
        .or_else([TxnOp::get(key, None)]);
    let resp = bounded(c.txn(txn)).await?;
    if !resp.succeeded() {
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
        // Even when `holder` is this node's name: a node restarting waits for its old
        // lease to lapse, so two processes given one name never both lead.
        let _ = c.lease_revoke(lease).await;
        return Err(LeadError::Held { holder });
    }
    let (tx, lost) = watch::channel(None);
    let renew = tokio::spawn(keep(client.clone(), lease, tx));
    Ok(Leadership {
        lost,
        renew,
        client: client.clone(),
        lease,
    })
}

/// Renews the lease until it cannot any more before it lapses.
async fn keep(mut client: Client, lease: i64, lost: watch::Sender<Option<String>>) {
    let mut renewed = Instant::now();
    let lapse = Duration::from_secs(LEASE_TTL as u64);
    let say = |why: String| {
        lost.send_replace(Some(why));
    };
    loop {
        let attempt = async {
            let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok::<_, etcd_client::Error>(stream.message().await?.map(|r| r.ttl()))
        };
        match tokio::time::timeout(RENEW_EVERY, attempt).await {
            Ok(Ok(Some(ttl))) if ttl > 0 => renewed = Instant::now(),
            Ok(Ok(_)) => return say("the cluster let its lease lapse".into()),
            Ok(Err(e)) if renewed.elapsed() >= lapse => {
                return say(format!(
                    "its lease could not be renewed for {LEASE_TTL} s: {e}"
                ));
            }
            Err(_) if renewed.elapsed() >= lapse => {
                return say(format!("etcd did not renew its lease for {LEASE_TTL} s"));
            }
            _ => {}
        }
        tokio::time::sleep(
            RENEW_EVERY
                .saturating_sub(renewed.elapsed())
                .max(Duration::from_millis(100)),
        )
        .await;
    }
}

//! An etcd lease kept alive by a task of its own, for as long as it is held: what a
//! leader's key and a node's heartbeat hang on. When it cannot be renewed before it
//! would lapse, its holder is told ([`KeptLease::lost`]); dropped, it is revoked, and
//! every key attached to it goes.

use std::time::{Duration, Instant};

use etcd_client::Client;
use miren_core::store::StoreError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::call::retried;

/// Seconds a lease lives without renewal: a dead node's keys go within this.
pub const LEASE_TTL: i64 = 5;
/// How often it is renewed.
const RENEW_EVERY: Duration = Duration::from_millis(1500);

/// A lease and the task renewing it.
pub(crate) struct KeptLease {
    pub(crate) id: i64,
    lost: watch::Receiver<Option<String>>,
    renew: JoinHandle<()>,
    client: Client,
}

impl KeptLease {
    /// A new lease, renewed from now on.
    pub(crate) async fn grant(client: &Client) -> Result<Self, StoreError> {
        let id = retried(|| {
            let mut c = client.clone();
            async move { c.lease_grant(LEASE_TTL, None).await }
        })
        .await?
        .id();
        let (tx, lost) = watch::channel(None);
        let renew = tokio::spawn(keep(client.clone(), id, tx));
        Ok(Self {
            id,
            lost,
            renew,
            client: client.clone(),
        })
    }

    /// Resolves when the lease is lost, saying why; never while it is held.
    pub(crate) async fn lost(&mut self) -> String {
        match self.lost.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "the lease's keeper stopped".into(),
        }
    }
}

impl Drop for KeptLease {
    fn drop(&mut self) {
        self.renew.abort();
        let (mut client, id) = (self.client.clone(), self.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client.lease_revoke(id).await;
            });
        }
    }
}

/// Renews the lease until it cannot any more before it lapses.
async fn keep(mut client: Client, lease: i64, lost: watch::Sender<Option<String>>) {
    let mut renewed = Instant::now();
    let lapse = Duration::from_secs(LEASE_TTL.unsigned_abs());
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
        let next = RENEW_EVERY.saturating_sub(renewed.elapsed());
        tokio::time::sleep(next.max(Duration::from_millis(100))).await;
    }
}

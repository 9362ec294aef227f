//! A server that is one node of a cluster whose state is in etcd (SPEC §15): it waits
//! its turn to lead, checks that it holds the cluster's secret key, and copies the
//! code of every version from the store before its controller starts — so the node
//! that leads after another runs what that one ran.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use miren_core::artifact::ArtifactStore;
use miren_core::model::{Node, NodeRole, Sealed, Version};
use miren_core::secret::SecretKey;
use miren_core::store::{Expect, Op, Store, StoreError, keys};
use miren_store_etcd::{EtcdStore, Heartbeat, LeadError, Leadership};

use super::ClusterOptions;

/// How often a standing-by node tries to lead (the leader's lease lapses within
/// `LEASE_TTL` s of its death).
const TRY_EVERY: Duration = Duration::from_millis(500);

/// Where a value sealed with the cluster's secret key is kept, to check a node's.
const KEY_CHECK: &str = "cluster/secret-key-check";
const KEY_CHECK_TEXT: &[u8] = b"miren cluster secret key";

/// The cluster's store, for a node holding the cluster's secret key (a node without
/// it does not join: the secrets in the store were sealed with it).
pub async fn connect(
    cluster: &ClusterOptions,
    key: &SecretKey,
    key_path: &Path,
) -> anyhow::Result<EtcdStore> {
    let store = EtcdStore::connect(cluster.store.clone())
        .await
        .context("--store")?;
    check_secret_key(&store, key, key_path).await?;
    Ok(store)
}

/// This node in the cluster's list: its record (`nodes/<name>`) and its heartbeat
/// (`alive/<name>`, on a lease of its own), kept while the node runs.
pub struct Presence {
    record: Node,
    _heartbeat: Heartbeat,
}

/// Says this node is here, standing by until it leads.
pub async fn announce(
    store: &EtcdStore,
    cluster: &ClusterOptions,
    http: SocketAddr,
    dns: Option<SocketAddr>,
    (logs, logs_token): (String, Sealed),
) -> anyhow::Result<Presence> {
    let record = Node {
        name: cluster.node.clone(),
        http: http.to_string(),
        dns: dns.map(|d| d.to_string()),
        role: NodeRole::StandingBy,
        since: miren_core::runtime::now_millis(),
        logs: Some(logs),
        logs_token: Some(logs_token),
    };
    write_record(store, &record).await?;
    let heartbeat = store
        .heartbeat(&keys::alive(&cluster.node), b"alive".to_vec())
        .await
        .context("starting this node's heartbeat in etcd")?;
    Ok(Presence {
        record,
        _heartbeat: heartbeat,
    })
}

impl Presence {
    /// Says this node leads now.
    pub async fn leading(&mut self, store: &EtcdStore) -> anyhow::Result<()> {
        self.record.role = NodeRole::Leading;
        self.record.since = miren_core::runtime::now_millis();
        write_record(store, &self.record).await
    }
}

async fn write_record(store: &EtcdStore, node: &Node) -> anyhow::Result<()> {
    store
        .txn(vec![Op::put(keys::node(&node.name), keys::encode(node))])
        .await
        .context("writing this node's record in etcd")?;
    Ok(())
}

/// Waits until this node leads. While another node leads (even one of the same
/// name: a node restarting waits for its old lease to lapse), it stands by, saying so
/// once, its proxy and DNS (already up, at the addresses given) serving the cluster's
/// apps; it takes over when that node's lease lapses.
pub async fn lead(
    store: &EtcdStore,
    cluster: &ClusterOptions,
    http: SocketAddr,
    dns: Option<SocketAddr>,
) -> Leadership {
    let mut standing_by = None;
    loop {
        match store.lead(&cluster.node).await {
            Ok(lead) => {
                tracing::info!(
                    "node `{}` leads the cluster in etcd at {} (keys under {})",
                    cluster.node,
                    store.endpoints(),
                    cluster.store.prefix
                );
                return lead;
            }
            Err(LeadError::Held { holder }) => {
                if standing_by.as_ref() != Some(&holder) {
                    tracing::info!(
                        "standing by: node `{holder}` leads the cluster at {}; this node takes over within {} s of it stopping, and meanwhile serves the cluster's apps on its proxy (http://{http}){}",
                        store.endpoints(),
                        miren_store_etcd::LEASE_TTL + 1,
                        dns.map(|d| format!(" and DNS ({d})")).unwrap_or_default()
                    );
                    standing_by = Some(holder);
                }
            }
            Err(e) => tracing::warn!("electing the cluster's leader in etcd: {e}"),
        }
        tokio::time::sleep(TRY_EVERY).await;
    }
}

/// Refuses to start with a secret key other than the cluster's: the secrets in the
/// store were sealed with the first node's key, which every node needs a copy of.
async fn check_secret_key(store: &dyn Store, key: &SecretKey, path: &Path) -> anyhow::Result<()> {
    let mismatch = || {
        anyhow::anyhow!(
            "{} is not the cluster's secret key: the secrets in the cluster store were sealed with another one. Copy the first node's secrets.key here (mode 0600) and start again",
            path.display()
        )
    };
    match store
        .get(KEY_CHECK)
        .await
        .context("reading the cluster store")?
    {
        Some(v) => {
            let sealed: Sealed = keys::decode(KEY_CHECK, &v.value).map_err(|_| mismatch())?;
            match key.open(KEY_CHECK, &sealed) {
                Ok(text) if text == KEY_CHECK_TEXT => Ok(()),
                _ => Err(mismatch()),
            }
        }
        None => {
            let sealed = key.seal(KEY_CHECK_TEXT).context("sealing the key check")?;
            let put = Op::put(KEY_CHECK, keys::encode(&sealed)).expecting(Expect::Absent);
            match store.txn(vec![put]).await {
                Ok(_) => Ok(()),
                // Another node wrote its check first: this key must open it.
                Err(StoreError::Conflict { .. }) => {
                    Box::pin(check_secret_key(store, key, path)).await
                }
                Err(e) => Err(e).context("writing the cluster's secret key check"),
            }
        }
    }
}

/// Copies the code of every stored version that this node lacks from the store.
pub async fn fetch_code(store: &dyn Store, artifacts: &ArtifactStore) -> anyhow::Result<()> {
    let (items, _) = store
        .list(keys::VERSIONS)
        .await
        .context("listing the cluster's versions")?;
    let mut wanted = BTreeSet::new();
    for (key, v) in items {
        match keys::decode::<Version>(&key, &v.value) {
            Ok(version) => {
                wanted.insert(version.artifact_digest);
            }
            Err(e) => bail!("reading {key} from the cluster store: {e}"),
        }
    }
    let copied = miren_core::artifact::replica::fetch_missing(store, artifacts, &wanted).await?;
    if copied > 0 {
        tracing::info!("copied the code of {copied} version(s) from the cluster store");
    }
    Ok(())
}

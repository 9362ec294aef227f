//! [`EtcdStore`]: the [`Store`] contract on etcd.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, ConnectOptions, GetOptions, KvClient};
use miren_core::store::{Op, Revision, Store, StoreError, Versioned, Watch, WatchHub};

use crate::address::EtcdAddress;
use crate::call::{bounded, current_revision, retried};
use crate::follow::Follower;
use crate::txn::{self, from_etcd};

/// Keys per page of a listing (etcd answers are capped in size; a page is one
/// revision, so the whole listing is one consistent snapshot).
const PAGE: i64 = 500;

/// The cluster state in etcd, under one key prefix.
pub struct EtcdStore {
    client: Client,
    kv: KvClient,
    prefix: String,
    endpoints: String,
    hub: Arc<WatchHub>,
    follower: Follower,
    /// The newest revision this store's calls have seen: a watch begun after them
    /// leaves out changes that old (the follower may still be delivering them).
    seen: AtomicU64,
}

/// Why [`EtcdStore::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[error(
    "no etcd answers at {endpoints} ({why}): is etcd running there, and reachable from this machine?"
)]
pub struct ConnectError {
    endpoints: String,
    why: String,
}

impl EtcdStore {
    /// Connects to the cluster and starts following it; fails clearly when no member
    /// answers within a few seconds.
    pub async fn connect(address: EtcdAddress) -> Result<Self, ConnectError> {
        let endpoints = address
            .endpoints
            .iter()
            .map(|e| e.trim_start_matches("http://"))
            .collect::<Vec<_>>()
            .join(",");
        let failed = |why: String| ConnectError {
            endpoints: endpoints.clone(),
            why,
        };
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            // A member cut off from the others fails calls instead of answering stale.
            .with_require_leader(true);
        let client = bounded(Client::connect(&address.endpoints, Some(options)))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let kv = client.kv_client();
        let now = current_revision(&kv, &address.prefix)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let hub = Arc::new(WatchHub::new());
        let follower =
            Follower::start(client.clone(), address.prefix.clone(), hub.clone(), now + 1);
        Ok(Self {
            client,
            kv,
            prefix: address.prefix,
            endpoints,
            hub,
            follower,
            seen: AtomicU64::new(from_etcd(now)),
        })
    }

    /// Makes `node` the cluster's leader (the one node that runs the controller), or
    /// says which node is.
    pub async fn lead(&self, node: &str) -> Result<crate::Leadership, crate::LeadError> {
        crate::leader::lead(&self.client, &format!("{}leader", self.prefix), node).await
    }

    /// Keeps `key` = `value` alive on a lease of its own (a node's heartbeat).
    pub async fn heartbeat(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> Result<crate::Heartbeat, StoreError> {
        crate::heartbeat::Heartbeat::start(&self.client, self.key(key), value).await
    }

    /// The members it was given, for messages.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Records a revision a call saw.
    fn saw(&self, revision: Revision) -> Revision {
        self.seen.fetch_max(revision, Ordering::Relaxed);
        revision
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A key read back, without the prefix.
    fn ours(&self, raw: &[u8]) -> Result<String, StoreError> {
        let key = raw.strip_prefix(self.prefix.as_bytes()).unwrap_or(raw);
        String::from_utf8(key.to_vec()).map_err(|_| {
            StoreError::Backend(
                format!(
                    "a key under {} is not UTF-8: {}",
                    self.prefix,
                    String::from_utf8_lossy(raw)
                )
                .into(),
            )
        })
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let key = self.key(key);
        let resp = retried(|| {
            let (mut kv, key) = (self.kv.clone(), key.clone());
            async move { kv.get(key, None).await }
        })
        .await?;
        self.saw(from_etcd(resp.header().map_or(0, |h| h.revision())));
        Ok(resp.kvs().first().map(|kv| Versioned {
            value: kv.value().to_vec(),
            revision: from_etcd(kv.mod_revision()),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<(String, Versioned)>, Revision), StoreError> {
        let kv = self.kv.clone();
        let start = self.key(prefix).into_bytes();
        let end = range_end(&start);
        let mut items = Vec::new();
        let mut from = start;
        let mut at = 0;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if at > 0 {
                options = options.with_revision(at);
            }
            let resp = retried(|| {
                let (mut kv, from, options) = (kv.clone(), from.clone(), options.clone());
                async move { kv.get(from, Some(options)).await }
            })
            .await?;
            if at == 0 {
                at = resp.header().map_or(0, |h| h.revision());
            }
            for kv in resp.kvs() {
                items.push((
                    self.ours(kv.key())?,
                    Versioned {
                        value: kv.value().to_vec(),
                        revision: from_etcd(kv.mod_revision()),
                    },
                ));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok((items, self.saw(from_etcd(at))))
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        if ops.is_empty() {
            return self.revision().await;
        }
        let kv = self.kv.clone();
        let built = txn::build(&self.prefix, &ops);
        let resp = retried(|| {
            let (mut kv, built) = (kv.clone(), built.clone());
            async move { kv.txn(built).await }
        })
        .await
            .map_err(|e| match e {
                StoreError::Backend(b) if b.to_string().contains("too many operations") => {
                    StoreError::Backend(
                        format!(
                            "{b}: a transaction here writes {} keys; start etcd with a larger --max-txn-ops",
                            ops.len()
                        )
                        .into(),
                    )
                }
                e => e,
            })?;
        if resp.succeeded() {
            Ok(self.saw(from_etcd(resp.header().map_or(0, |h| h.revision()))))
        } else {
            Err(txn::conflict(&ops, &resp))
        }
    }

    fn watch(&self, prefix: &str) -> Watch {
        self.hub
            .subscribe_after(prefix, self.seen.load(Ordering::Relaxed))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        let kv = self.kv.clone();
        let now = current_revision(&kv, &self.prefix).await?;
        // Watchers learn they have everything up to now even when the last writes
        // were not theirs (etcd's revision counts every key of the cluster).
        self.follower.ask_progress();
        Ok(self.saw(from_etcd(now)))
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `range_end`).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

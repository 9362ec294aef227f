//! Group commit of the records nodes and the leader write per sandbox (placements,
//! reports): each write waits for the transaction that carries it, and whatever
//! queued while one was in flight (under a burst, also within [`LINGER`]) goes in the
//! next, so a burst of starts costs a few transactions instead of one each, and a
//! lone write waits for nothing.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Op, Store, StoreError};

/// Ops per transaction at most (etcd's default `--max-txn-ops` is 128).
const MAX_OPS: usize = 100;
/// How long a group waits for company under a burst.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

type Queued = (Vec<Op>, oneshot::Sender<Result<(), String>>);

/// A writer of ops without expectations, batching them.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Queued>,
}

impl Batcher {
    /// Writes to `store` until every clone is dropped.
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
        tokio::spawn(async move {
            let mut busy = false;
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let mut ops = batch[0].0.len();
                // Under a burst (the last group had company), a moment for more to
                // join: far fewer commits for a little latency. A lone write goes now.
                if busy {
                    tokio::time::sleep(LINGER).await;
                }
                while ops < MAX_OPS {
                    match rx.try_recv() {
                        Ok(q) => {
                            ops += q.0.len();
                            batch.push(q);
                        }
                        Err(_) => break,
                    }
                }
                busy = batch.len() > 1;
                let all: Vec<Op> = batch.iter().flat_map(|(o, _)| o.iter().cloned()).collect();
                let result = store.txn(all).await.map(|_| ()).map_err(|e| e.to_string());
                for (_, reply) in batch {
                    let _ = reply.send(result.clone());
                }
            }
        });
        Self { tx }
    }

    /// Writes `ops` (none with an expectation), in a transaction with others.
    pub(crate) async fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Backend("the placement writer stopped".into());
        self.tx.send((ops, tx)).map_err(|_| gone())?;
        rx.await
            .map_err(|_| gone())?
            .map_err(|e| StoreError::Backend(e.into()))
    }
}

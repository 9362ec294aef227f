//! One etcd watch stream per store, over its whole prefix, fanned out to the store's
//! watchers by a [`WatchHub`]. When the stream breaks (a member restarts, the network
//! drops) it is opened again from the revision after the last one delivered, so
//! watchers miss nothing and see nothing twice; when that revision has been compacted
//! away, watchers are told they lagged ([`WatchEvent::Lagged`]) and list again.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchResponse};
use miren_core::store::{WatchEvent, WatchHub};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::call::current_revision;
use crate::txn::from_etcd;

/// Waits between attempts to open the stream again, doubling up to the last. The
/// client may hand an attempt to a member that is down (it fails at once), so the cap
/// stays short: a member lost must not leave the proxy seconds behind the store.
const RETRY: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_millis(500);

/// The following task; it stops when this is dropped.
pub(crate) struct Follower {
    task: JoinHandle<()>,
    progress: mpsc::UnboundedSender<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    /// Follows every key under `prefix` from revision `from` on.
    pub(crate) fn start(client: Client, prefix: String, hub: Arc<WatchHub>, from: i64) -> Self {
        let (progress, asks) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(client, prefix, hub, from, asks));
        Self { task, progress }
    }

    /// Asks etcd to say, once everything up to its current revision is delivered,
    /// which revision that is (watchers get [`WatchEvent::Progress`]).
    pub(crate) fn ask_progress(&self) {
        let _ = self.progress.send(());
    }
}

/// How one stream ended.
enum Ended {
    /// The revision to resume from was compacted.
    Compacted,
    /// The stream failed or closed.
    Broken(String),
}

async fn run(
    client: Client,
    prefix: String,
    hub: Arc<WatchHub>,
    mut next: i64,
    mut asks: mpsc::UnboundedReceiver<()>,
) {
    let mut wait = RETRY;
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        match follow(&client, &prefix, &hub, &mut next, &mut asks, &mut wait).await {
            Ended::Compacted => {
                // Resume from now; watchers list again, at a revision at least this
                // one, so the events between come twice at most and are skipped.
                let kv = client.kv_client();
                match current_revision(&kv, &prefix).await {
                    Ok(now) => {
                        tracing::warn!(
                            "etcd compacted the revisions this server had not seen yet (from {next}); listing everything again"
                        );
                        next = now + 1;
                        hub.publish(vec![WatchEvent::Lagged]);
                    }
                    Err(e) => {
                        tracing::warn!("following etcd: {e}");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            Ended::Broken(why) => {
                if down_since.is_none() {
                    tracing::warn!("following etcd: {why}; trying again from revision {next}");
                    down_since = Some(std::time::Instant::now());
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
                continue;
            }
        }
        down_since = None;
    }
}

/// Follows one stream until it ends; `next` is the revision to resume from, `wait`
/// goes back to its start once the stream is up.
async fn follow(
    client: &Client,
    prefix: &str,
    hub: &WatchHub,
    next: &mut i64,
    asks: &mut mpsc::UnboundedReceiver<()>,
    wait: &mut Duration,
) -> Ended {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(*next)
        .with_progress_notify();
    let stream = match client.watch_client().watch(prefix, Some(options)).await {
        Ok(s) => s,
        Err(e) => return Ended::Broken(e.to_string()),
    };
    let (mut requests, mut responses) = stream.split();
    loop {
        tokio::select! {
            resp = responses.message() => match resp {
                Ok(Some(resp)) => {
                    if resp.compact_revision() > 0 {
                        return Ended::Compacted;
                    }
                    if resp.canceled() {
                        return Ended::Broken(format!("the watch was cancelled: {}", resp.cancel_reason()));
                    }
                    if resp.created() {
                        tracing::debug!("following etcd from revision {next}");
                        *wait = RETRY;
                        // An ask may have gone down with the last stream: report
                        // progress on this one, so nobody waiting on it waits longer.
                        if let Err(e) = requests.request_progress().await {
                            return Ended::Broken(e.to_string());
                        }
                        continue;
                    }
                    deliver(&resp, prefix, hub, next);
                }
                Ok(None) => return Ended::Broken("the watch stream closed".into()),
                Err(e) => return Ended::Broken(e.to_string()),
            },
            Some(()) = asks.recv() => {
                // Several asks in a row need one answer.
                while asks.try_recv().is_ok() {}
                if let Err(e) = requests.request_progress().await {
                    return Ended::Broken(e.to_string());
                }
            }
        }
    }
}

/// Publishes a response's events, a batch per revision (one transaction), or the
/// progress it reports.
fn deliver(resp: &WatchResponse, prefix: &str, hub: &WatchHub, next: &mut i64) {
    if resp.events().is_empty() {
        // A progress report: every event up to its revision has been delivered. It
        // does not move `next`: etcd before 3.4.25/3.5.8 may report a revision whose
        // events are still on their way, and a stream broken then must resume before
        // them (a quiet prefix compacted meanwhile costs a relist, never an event).
        if let Some(rev) = resp.header().map(|h| h.revision())
            && rev >= *next - 1
        {
            hub.publish(vec![WatchEvent::Progress {
                revision: from_etcd(rev),
            }]);
        }
        return;
    }
    let mut batch = Vec::new();
    let mut batch_rev = 0;
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        let rev = kv.mod_revision();
        if rev != batch_rev && !batch.is_empty() {
            hub.publish(std::mem::take(&mut batch));
        }
        batch_rev = rev;
        let raw = kv.key();
        let Ok(key) =
            String::from_utf8(raw.strip_prefix(prefix.as_bytes()).unwrap_or(raw).to_vec())
        else {
            tracing::warn!(
                "following etcd: a key that is not UTF-8 was skipped: {}",
                String::from_utf8_lossy(raw)
            );
            continue;
        };
        let revision = from_etcd(rev);
        batch.push(match ev.event_type() {
            EventType::Put => WatchEvent::Put {
                key,
                value: kv.value().to_vec(),
                revision,
            },
            EventType::Delete => WatchEvent::Delete { key, revision },
        });
    }
    hub.publish(batch);
    *next = (*next).max(batch_rev + 1);
}

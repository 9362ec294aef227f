//! One call to etcd, bounded in time: [`CALL_TIMEOUT`] at most, and tried again while
//! it reaches no member (the client still marks a member that just came back as down
//! for a moment). A call that may have reached a member is never repeated.

use std::future::Future;
use std::time::Duration;

use etcd_client::{GetOptions, KvClient};
use miren_core::store::StoreError;

/// How long one call may wait for the cluster (a member down is noticed by the keep-
/// alive, and the client goes on to another member; no quorum fails the call).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The cluster's revision now.
pub(crate) async fn current_revision(kv: &KvClient, prefix: &str) -> Result<i64, StoreError> {
    let resp = retried(|| {
        let mut kv = kv.clone();
        async move {
            kv.get(prefix, Some(GetOptions::new().with_count_only()))
                .await
        }
    })
    .await?;
    Ok(resp.header().map_or(0, |h| h.revision()))
}

/// A call to etcd that is not repeated (connecting), at most [`CALL_TIMEOUT`].
pub(crate) async fn bounded<T>(
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StoreError::Backend(Box::new(e))),
        Err(_) => Err(timed_out()),
    }
}

/// A call to etcd, at most [`CALL_TIMEOUT`] in all, tried again (on another member)
/// while it fails without having reached any: a member just back is still marked down
/// by the client for a moment. A call that may have reached a member is not repeated.
pub(crate) async fn retried<T, F, Fut>(mut call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, call()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e))
                if never_sent(&e) && tokio::time::Instant::now() + RETRY_AFTER < deadline =>
            {
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Ok(Err(e)) => return Err(StoreError::Backend(Box::new(e))),
            Err(_) => return Err(timed_out()),
        }
    }
}

/// Waits between tries of a call that reached no member.
const RETRY_AFTER: Duration = Duration::from_millis(50);

/// Whether the call failed before any member got it (no connection).
fn never_sent(e: &etcd_client::Error) -> bool {
    let shown = format!("{e:?}");
    shown.contains("ConnectError") || shown.contains("tcp connect error")
}

fn timed_out() -> StoreError {
    StoreError::Backend(
        format!(
            "etcd did not answer within {} s (a majority of its members down?); a change \
             sent may still be applied once they are back",
            CALL_TIMEOUT.as_secs()
        )
        .into(),
    )
}

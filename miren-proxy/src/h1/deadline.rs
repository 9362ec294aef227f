//! A timeout that is cheap to apply to every request of a connection.
//!
//! `tokio::time::timeout` registers a timer per call; a proxy would do that twice per
//! request. Here one timer per connection and purpose is armed once and moved lazily:
//! a later deadline costs nothing until the timer fires early, and then it re-arms.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio::time::{Instant, Sleep};

#[derive(Default)]
pub struct Deadline {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Runs `fut` to completion, or gives `None` once `deadline` passes.
    pub async fn run<F: Future>(&mut self, deadline: Instant, fut: F) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() > deadline {
                sleep.as_mut().reset(deadline);
            }
            while sleep.as_mut().poll(cx).is_ready() {
                if Instant::now() >= deadline {
                    return Poll::Ready(None);
                }
                // Armed for an earlier request's deadline: move on to this one.
                sleep.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn fires_at_each_deadline_not_the_first_one() {
        let mut d = Deadline::default();
        let t0 = Instant::now();
        // Completes in time: a value.
        let v = d.run(t0 + Duration::from_secs(1), async { 7 }).await;
        assert_eq!(v, Some(7));
        // A later deadline, while the timer is still armed for the first.
        let later = t0 + Duration::from_secs(5);
        let r = d.run(later, std::future::pending::<()>()).await;
        assert_eq!((r, Instant::now()), (None, later));
        // An earlier one than the timer's: honoured too.
        let sooner = Instant::now() + Duration::from_millis(10);
        d.sleep
            .as_mut()
            .expect("armed")
            .as_mut()
            .reset(sooner + Duration::from_secs(60));
        let r = d.run(sooner, std::future::pending::<()>()).await;
        assert_eq!((r, Instant::now()), (None, sooner));
    }
}

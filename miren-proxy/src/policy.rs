//! The request policy, written once for both protocols, as plain decisions: which
//! instance a request goes to first, and after a failed try whether it is safe to
//! send again and where — or what the proxy answers instead. Each protocol's driver
//! does the sending (HTTP/1 on its own connections, HTTP/2 through hyper) and asks
//! [`Tries`] what next; it never decides a retry itself.
//!
//! The rules:
//! - a connection refused before a byte went out: another instance, for any request
//!   whose body the protocol still has;
//! - a kept-alive connection the instance had closed meanwhile: a fresh connection,
//!   for requests that are whole and safe to repeat (idempotent);
//! - an instance that died without a byte of answer: another instance, same rule;
//! - at most [`ATTEMPTS`] instances per request; what can't be retried is a 502
//!   naming why, a 504 after the upstream timeout, a 503 when no instance is ready.
//!
//! Kept as a state machine the driver's loop calls, rather than a loop that awaits the
//! protocol's send: the HTTP/1 path stays one flat future, which is measurably
//! cheaper per request than a generic loop wrapping the protocol's future.

use std::net::SocketAddr;
use std::time::Duration;

use crate::access::LogLine;
use crate::forwarder::Forwarder;
use crate::reply::LocalReply;
use crate::table::{AppTarget, Backend, pick};

/// Instances tried for one request at most.
pub const ATTEMPTS: usize = 3;

/// How a try failed.
pub enum Failure {
    /// No connection could be made: nothing was sent.
    Refused(String),
    /// Sent (maybe partly), and nothing came back; `reused`: on a kept-alive
    /// connection, which the instance may have closed meanwhile.
    NoAnswer { why: String, reused: bool },
    /// A broken answer.
    Bad(String),
    /// No answer within the upstream timeout.
    TimedOut,
}

/// What the driver does next.
pub enum Next<'t> {
    /// Send to this instance (`fresh`: on a new connection).
    Send { backend: &'t Backend, fresh: bool },
    /// Answer the client with this, on behalf of this sandbox (`-`: none).
    Reply { reply: LocalReply, sandbox: &'t str },
}

/// One request's way through an app's instances.
pub struct Tries<'t> {
    target: &'t AppTarget,
    seed: usize,
    /// Instances tried and given up on (allocated only on a retry).
    tried: Vec<SocketAddr>,
    /// Tries that reached an instance without an answer.
    unanswered: usize,
    replayable: bool,
    resendable: bool,
    upstream_timeout: Duration,
}

impl<'t> Tries<'t> {
    /// Tries for a request to `target`. `replayable`: it is whole here and repeating
    /// it can't matter; `resendable`: after a refused connection it can still go
    /// elsewhere (the protocol did not hand its body over).
    #[inline]
    pub fn new(fwd: &Forwarder, target: &'t AppTarget, replayable: bool, resendable: bool) -> Self {
        Self {
            target,
            seed: fwd.seed(),
            tried: Vec::new(),
            unanswered: 0,
            replayable,
            resendable,
            upstream_timeout: fwd.config.upstream_timeout,
        }
    }

    /// The first instance (`given`, when the request was given one while held), or
    /// the reply when none is ready.
    #[inline]
    pub fn first(&mut self, given: Option<&'t Backend>) -> Next<'t> {
        match given {
            Some(backend) => Next::Send {
                backend,
                fresh: false,
            },
            None => self.pick(),
        }
    }

    /// After a failed try on `backend`: where to send again, or what to answer.
    pub fn after(&mut self, backend: &'t Backend, failure: Failure) -> Next<'t> {
        let app = &*self.target.name;
        let others = self.target.backends.len() > 1;
        let reply = match failure {
            Failure::Refused(e) => {
                if self.resendable && others && self.tried.len() + 1 < ATTEMPTS {
                    self.tried.push(backend.addr);
                    return self.pick();
                }
                LocalReply::failed(app, format_args!("connecting: {e}"))
            }
            Failure::NoAnswer { why, reused } => {
                self.unanswered += 1;
                let again = self.replayable && self.unanswered <= ATTEMPTS;
                if again && reused {
                    // A kept-alive connection the instance had closed meanwhile.
                    return Next::Send {
                        backend,
                        fresh: true,
                    };
                }
                if again && others && self.tried.len() + 1 < ATTEMPTS {
                    // The instance died mid-request (killed): another one answers.
                    self.tried.push(backend.addr);
                    return self.pick();
                }
                LocalReply::failed(app, why)
            }
            Failure::Bad(why) => LocalReply::new(502, format!("app {app}: {why}\n")),
            Failure::TimedOut => LocalReply::too_slow(app, self.upstream_timeout),
        };
        Next::Reply {
            reply,
            sandbox: &backend.sandbox,
        }
    }

    #[inline]
    fn pick(&self) -> Next<'t> {
        let seed = self.seed.wrapping_add(self.tried.len());
        match pick(self.target, &self.tried, seed) {
            Some(backend) => Next::Send {
                backend,
                fresh: false,
            },
            None => Next::Reply {
                reply: LocalReply::retry_later(format!(
                    "app {} has no ready web instance; try again shortly\n",
                    self.target.name
                )),
                sandbox: "-",
            },
        }
    }
}

/// Writes a request's access line, when access lines are on (`log` is then `Some`).
#[inline]
pub fn log(log: Option<&LogLine>, app: &str, sandbox: &str, status: u16) {
    if let Some(l) = log {
        l.write(app, sandbox, status);
    }
}

/// A request for `target` answered (by `backend`, or by the proxy for it): counted in
/// its metrics, and its access line written.
#[inline]
pub fn answered(
    log: Option<&LogLine>,
    started: std::time::Instant,
    target: &AppTarget,
    backend: Option<&Backend>,
    sandbox: &str,
    status: u16,
) {
    target.stats.record(status, started.elapsed());
    if let Some(b) = backend {
        b.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    self::log(log, &target.name, sandbox, status);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::table::Table;

    fn target(n: u16) -> AppTarget {
        AppTarget {
            name: "shop".into(),
            has_web: true,
            backends: (0..n)
                .map(|i| {
                    let addr = SocketAddr::from(([127, 0, 0, 1], 9000 + i));
                    Arc::new(Backend::new(format!("shop-web-{i}"), addr))
                })
                .collect(),
            ..AppTarget::default()
        }
    }

    fn fwd() -> Forwarder {
        let table = Arc::new(arc_swap::ArcSwap::from_pointee(Table::default()));
        let (_tx, rx) = tokio::sync::watch::channel(0);
        Forwarder::new(table, rx, Default::default(), Default::default())
    }

    fn sent<'t>(n: Next<'t>) -> (&'t Backend, bool) {
        match n {
            Next::Send { backend, fresh } => (backend, fresh),
            Next::Reply { reply, .. } => panic!("replied {} {}", reply.status, reply.body),
        }
    }

    fn replied(n: Next<'_>) -> (u16, String, &str) {
        match n {
            Next::Reply { reply, sandbox } => (reply.status, reply.body, sandbox),
            Next::Send { backend, .. } => panic!("sent to {}", backend.addr),
        }
    }

    fn refused() -> Failure {
        Failure::Refused("connection refused".into())
    }

    fn died(reused: bool) -> Failure {
        Failure::NoAnswer {
            why: "the connection closed".into(),
            reused,
        }
    }

    #[test]
    fn a_refused_connection_goes_to_another_instance_for_any_request() {
        let (f, t) = (fwd(), target(2));
        let mut tries = Tries::new(&f, &t, false, true);
        let (a, _) = sent(tries.first(None));
        let (b, fresh) = sent(tries.after(a, refused()));
        assert_ne!(a.addr, b.addr);
        assert!(!fresh);
        let (status, body, sandbox) = replied(tries.after(b, refused()));
        assert_eq!(
            (status, sandbox),
            (503, "-"),
            "every instance tried: {body}"
        );
    }

    #[test]
    fn a_single_instance_that_refuses_is_a_502_naming_why() {
        let (f, t) = (fwd(), target(1));
        let mut tries = Tries::new(&f, &t, true, true);
        let (a, _) = sent(tries.first(None));
        let (status, body, sandbox) = replied(tries.after(a, refused()));
        assert_eq!(status, 502);
        assert!(body.contains("connecting: connection refused"), "{body}");
        assert_eq!(sandbox, "shop-web-0");
    }

    #[test]
    fn a_body_already_handed_over_is_not_sent_elsewhere() {
        let (f, t) = (fwd(), target(2));
        let mut tries = Tries::new(&f, &t, false, false);
        let (a, _) = sent(tries.first(None));
        assert_eq!(replied(tries.after(a, refused())).0, 502);
    }

    #[test]
    fn a_closed_kept_alive_connection_is_retried_fresh_on_the_same_instance() {
        let (f, t) = (fwd(), target(1));
        let mut tries = Tries::new(&f, &t, true, true);
        let (a, _) = sent(tries.first(None));
        let (b, fresh) = sent(tries.after(a, died(true)));
        assert_eq!(a.addr, b.addr);
        assert!(fresh);
        // Dead on a fresh connection too, and nowhere else to go.
        assert_eq!(replied(tries.after(b, died(false))).0, 502);
    }

    #[test]
    fn only_whole_idempotent_requests_are_sent_again_after_no_answer() {
        let (f, t) = (fwd(), target(3));
        let mut post = Tries::new(&f, &t, false, true);
        let (a, _) = sent(post.first(None));
        let (status, body, _) = replied(post.after(a, died(true)));
        assert_eq!(status, 502);
        assert!(body.contains("the web instance failed: the connection closed"));

        let mut get = Tries::new(&f, &t, true, true);
        let (a, _) = sent(get.first(None));
        let (b, _) = sent(get.after(a, died(false)));
        let (c, _) = sent(get.after(b, died(false)));
        assert!(a.addr != b.addr && b.addr != c.addr && a.addr != c.addr);
        // Three instances tried: no fourth.
        assert_eq!(replied(get.after(c, died(false))).0, 502);
    }

    #[test]
    fn timeouts_and_broken_answers_are_never_retried() {
        let (f, t) = (fwd(), target(2));
        let mut tries = Tries::new(&f, &t, true, true);
        let (a, _) = sent(tries.first(None));
        let (status, body, _) = replied(tries.after(a, Failure::TimedOut));
        assert_eq!(status, 504);
        assert!(body.contains("did not answer within 60s"), "{body}");
        let mut tries = Tries::new(&f, &t, true, true);
        let (a, _) = sent(tries.first(None));
        let (status, body, _) = replied(tries.after(a, Failure::Bad("a broken head".into())));
        assert_eq!((status, body.as_str()), (502, "app shop: a broken head\n"));
    }

    #[test]
    fn no_ready_instance_is_a_503_to_retry() {
        let (f, t) = (fwd(), target(0));
        let mut tries = Tries::new(&f, &t, true, true);
        match tries.first(None) {
            Next::Reply { reply, sandbox } => {
                assert_eq!((reply.status, reply.retry_after, sandbox), (503, true, "-"));
            }
            Next::Send { .. } => panic!("sent to nobody"),
        }
    }
}

//! The request policy, written once for both protocols: route the request (holding
//! it while its pool starts), pick an instance, send, decide from how that went
//! whether it is safe to send again and where, turn what can't be retried into the
//! proxy's own answer, and write the one access line.
//!
//! A protocol says how to send one request to one instance ([`Attempt`]) and what can
//! be sent again; the rules of when to are here:
//! - a connection refused before a byte went out: another instance, for any request
//!   whose body the protocol still has;
//! - a kept-alive connection the instance had closed meanwhile: a fresh connection,
//!   for requests that are whole and safe to repeat (idempotent);
//! - an instance that died without a byte of answer: another instance, same rule;
//! - at most [`ATTEMPTS`] instances per request.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::access::LogLine;
use crate::forwarder::{Forwarder, InFlight, OnBackend};
use crate::reply::LocalReply;
use crate::table::{AppTarget, Backend, pick};

/// Instances tried for one request at most.
pub const ATTEMPTS: usize = 3;

/// How one protocol sends one request to one instance.
pub trait Attempt {
    /// What an answered request leaves for the protocol to finish.
    type Answer;

    /// Sends the request to `backend` and reads its answer; `fresh`: on a new
    /// connection, not a kept-alive one.
    fn send(
        &mut self,
        backend: &Backend,
        fresh: bool,
    ) -> impl Future<Output = Sent<Self::Answer>> + Send;

    /// Whether the request can go out again after nothing came back: it is whole
    /// here and repeating it can't matter.
    fn replayable(&self) -> bool;

    /// Whether it can go to another instance after a refused connection (nothing was
    /// sent, but the protocol may have handed its body over already).
    fn resendable(&self) -> bool;
}

/// How one send went.
pub enum Sent<A> {
    /// Answered with this status.
    Answered(A, u16),
    /// No connection could be made: nothing was sent.
    Refused(String),
    /// Sent (maybe partly), and nothing came back; `reused`: on a kept-alive
    /// connection, which the instance may have closed meanwhile.
    NoAnswer { why: String, reused: bool },
    /// A broken answer.
    Bad(String),
    /// No answer within the upstream timeout.
    TimedOut,
    /// The proxy answers instead (the request can't be sent as it is).
    Reply(LocalReply),
    /// Failed while the answer was under way: nothing more can be said to the
    /// client, the connection just closes.
    Aborted,
}

/// How a request ended.
pub enum Outcome<A> {
    /// An instance answered; the protocol finishes it.
    Answered(A),
    /// The proxy answers itself.
    Reply(LocalReply),
    /// The connection closes.
    Aborted,
}

/// A routed request: where it goes, counted as demand on its pool until dropped.
pub struct Routed {
    target: Arc<AppTarget>,
    _demand: InFlight,
}

/// Finds the request's app, holding it while its pool starts an instance. A request
/// that can't be routed gets its access line here.
pub async fn route(
    fwd: &Forwarder,
    host: &str,
    log: Option<&LogLine>,
) -> Result<Routed, LocalReply> {
    match fwd.route(host).await {
        Ok((target, demand)) => Ok(Routed {
            target,
            _demand: demand,
        }),
        Err(r) => {
            if let Some(l) = log {
                l.write(host, "-", r.status);
            }
            Err(r)
        }
    }
}

/// Sends a routed request until an instance answers or the rules above say stop;
/// writes its access line. The request stops counting as demand when this returns.
pub async fn forward<X: Attempt>(
    fwd: &Forwarder,
    routed: Routed,
    log: Option<&LogLine>,
    x: &mut X,
) -> Outcome<X::Answer> {
    let target = &routed.target;
    let app: &str = &target.name;
    let others = target.backends.len() > 1;
    let seed = fwd.seed();
    let mut tried = Tried::default();
    let mut fresh = false;
    let mut sends = 0;
    let (outcome, sandbox, status) = loop {
        let Some(backend) = pick(target, tried.as_slice(), seed.wrapping_add(tried.len())) else {
            let r = LocalReply::retry_later(format!(
                "app {app} has no ready web instance; try again shortly\n"
            ));
            let status = r.status;
            break (Outcome::Reply(r), "-", status);
        };
        let counted = OnBackend::new(&backend.in_flight);
        let sent = x.send(backend, std::mem::take(&mut fresh)).await;
        drop(counted);
        let sandbox = backend.sandbox.as_str();
        let r = match sent {
            Sent::Answered(a, status) => break (Outcome::Answered(a), sandbox, status),
            Sent::Aborted => return Outcome::Aborted,
            Sent::Refused(e) => {
                if x.resendable() && others && tried.len() + 1 < ATTEMPTS {
                    tried.push(backend.addr);
                    continue;
                }
                LocalReply::failed(app, format_args!("connecting: {e}"))
            }
            Sent::NoAnswer { why, reused } => {
                sends += 1;
                let again = x.replayable() && sends <= ATTEMPTS;
                if again && reused {
                    // A kept-alive connection the instance had closed meanwhile.
                    fresh = true;
                    continue;
                }
                if again && others && tried.len() + 1 < ATTEMPTS {
                    // The instance died mid-request (killed): another one answers.
                    tried.push(backend.addr);
                    continue;
                }
                LocalReply::failed(app, why)
            }
            Sent::Bad(why) => LocalReply::new(502, format!("app {app}: {why}\n")),
            Sent::TimedOut => LocalReply::too_slow(app, fwd.config.upstream_timeout),
            Sent::Reply(r) => r,
        };
        let status = r.status;
        break (Outcome::Reply(r), sandbox, status);
    };
    if let Some(l) = log {
        l.write(app, sandbox, status);
    }
    outcome
}

/// The instances a request was tried on, without an allocation.
struct Tried {
    addrs: [SocketAddr; ATTEMPTS],
    n: usize,
}

impl Default for Tried {
    fn default() -> Self {
        Self {
            addrs: [SocketAddr::from(([0, 0, 0, 0], 0)); ATTEMPTS],
            n: 0,
        }
    }
}

impl Tried {
    fn push(&mut self, a: SocketAddr) {
        if self.n < ATTEMPTS {
            self.addrs[self.n] = a;
            self.n += 1;
        }
    }

    fn len(&self) -> usize {
        self.n
    }

    fn as_slice(&self) -> &[SocketAddr] {
        &self.addrs[..self.n]
    }
}

//! The threads that serve connections when [`ProxyConfig::threads`] asks for them:
//! one current-thread runtime each. The accept loop hands every new connection to the
//! next thread, and it stays there: its requests, the instance connections they use
//! (kept idle per thread, see `conns`) and their timers never wake another thread.
//! On a runtime shared with other work, each wake-up could be picked up by whichever
//! worker was free, and a request could hop between threads at every await.
//!
//! [`ProxyConfig::threads`]: crate::ProxyConfig::threads

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::forwarder::Forwarder;

type NewConn = (std::net::TcpStream, SocketAddr);

/// Running threads; they stop, closing their connections, when this is dropped.
pub(crate) struct Workers {
    inboxes: Vec<mpsc::UnboundedSender<NewConn>>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `n` threads serving with `fwd`.
    pub(crate) fn start(n: usize, fwd: &Arc<Forwarder>) -> std::io::Result<Self> {
        let mut inboxes = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = mpsc::unbounded_channel();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let fwd = fwd.clone();
            std::thread::Builder::new()
                .name(format!("miren-proxy-{i}"))
                .spawn(move || {
                    crate::conns::use_shard(i);
                    rt.block_on(serve(rx, fwd));
                    // Dropping the runtime here cancels the connections' tasks.
                })?;
            inboxes.push(tx);
        }
        Ok(Self {
            inboxes,
            next: AtomicUsize::new(0),
        })
    }

    /// Gives a new connection to the next thread.
    pub(crate) fn hand(&self, conn: TcpStream, peer: SocketAddr) {
        let conn = match conn.into_std() {
            Ok(c) => c,
            Err(e) => return tracing::debug!("a connection from {peer} was lost: {e}"),
        };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.inboxes.len();
        if self.inboxes[i].send((conn, peer)).is_err() {
            tracing::error!("proxy thread {i} has stopped; a connection from {peer} was closed");
        }
    }
}

/// One thread's loop: serves what it is handed until the proxy stops.
async fn serve(mut inbox: mpsc::UnboundedReceiver<NewConn>, fwd: Arc<Forwarder>) {
    while let Some((conn, peer)) = inbox.recv().await {
        match TcpStream::from_std(conn) {
            Ok(conn) => {
                tokio::spawn(crate::h1::serve(fwd.clone(), conn, peer));
            }
            Err(e) => tracing::debug!("a connection from {peer} was lost: {e}"),
        }
    }
}

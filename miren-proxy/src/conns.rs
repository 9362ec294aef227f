//! Kept-alive HTTP/1 connections to one web instance. Each
//! [`Backend`](crate::table::Backend) owns its idle lists, so a request takes a
//! connection without a map lookup, and an instance that leaves the table takes its
//! connections with it. There is a list per proxy thread (`workers`): a connection
//! is reused by the thread whose reactor watches it.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Idle connections kept per instance and thread at most.
const MAX_IDLE: usize = 256;
/// Idle lists per instance: threads beyond this share lists.
const SHARDS: usize = 8;

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// The idle lists this thread takes from and gives back to: a proxy thread's own.
pub fn use_shard(i: usize) {
    SHARD.with(|s| s.set(i % SHARDS));
}

fn shard() -> usize {
    SHARD.with(Cell::get)
}
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Starting size of a connection's read buffer (grows for large heads, up to the
/// head limit, and for streamed bodies, up to a streaming chunk).
const READ_BUF: usize = 8 * 1024;

/// A connection to an instance and what was read from it but not used yet.
pub struct UpConn {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

/// An instance's idle connections, a list per proxy thread.
#[derive(Default)]
pub struct IdleConns([Mutex<Vec<UpConn>>; SHARDS]);

impl std::fmt::Debug for IdleConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self.0.iter().map(|l| l.lock().map_or(0, |l| l.len())).sum();
        write!(f, "IdleConns({n})")
    }
}

impl IdleConns {
    /// An idle connection the instance has not closed meanwhile (as far as the
    /// reactor knows: checking costs no system call unless the socket turned readable).
    pub fn take(&self) -> Option<UpConn> {
        loop {
            let conn = self.0[shard()]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()?;
            let mut probe = [0u8; 1];
            match conn.stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(conn),
                // Closed, reset, or bytes nobody asked for: not reusable.
                _ => continue,
            }
        }
    }

    /// Gives a connection back after a complete exchange.
    pub fn put(&self, conn: UpConn) {
        let mut idle = self.0[shard()].lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// A new connection.
pub async fn connect(addr: SocketAddr) -> std::io::Result<UpConn> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    Ok(UpConn {
        stream,
        buf: BytesMut::with_capacity(READ_BUF),
    })
}

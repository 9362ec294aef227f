//! Out-of-zone questions from sandboxes go to the upstream resolver (the host's, by
//! default), so a container resolving `api.github.com` works with only miren-dns in its
//! resolv.conf. Anyone else gets REFUSED ([`crate::answer`]): never an open resolver.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::Message;
use tokio::net::UdpSocket;

/// Why forwarding gave no answer: the client gets SERVFAIL.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No upstream resolver is configured.
    #[error("no upstream resolver is configured")]
    NoUpstream,
    /// The upstream did not answer in time.
    #[error("upstream {0} did not answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    /// Sending or receiving failed.
    #[error("upstream {0}: {1}")]
    Io(SocketAddr, #[source] std::io::Error),
    /// The upstream's answer is not a DNS message.
    #[error("upstream {0} sent an undecodable answer")]
    Garbage(SocketAddr),
}

/// Sends `query` (a whole DNS message) to `upstream` over UDP and returns its answer.
pub async fn forward(
    query: &[u8],
    upstream: Option<SocketAddr>,
    timeout: Duration,
) -> Result<Message, ForwardError> {
    let upstream = upstream.ok_or(ForwardError::NoUpstream)?;
    let io = |e| ForwardError::Io(upstream, e);
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // A fresh socket per query: its random port and the connected peer are what keep a
    // spoofed answer out (the id alone is 16 bits).
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(upstream).await.map_err(io)?;
    socket.send(query).await.map_err(io)?;
    let id = query.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut buf = vec![0u8; 65535];
    let wait = async {
        loop {
            let n = socket.recv(&mut buf).await.map_err(io)?;
            match Message::from_vec(&buf[..n]) {
                Ok(m) if Some(m.metadata.id) == id => return Ok(m),
                // Not the answer to this query (late, or not DNS): keep waiting.
                Ok(_) => continue,
                Err(_) => return Err(ForwardError::Garbage(upstream)),
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| ForwardError::Timeout(upstream, timeout))?
}

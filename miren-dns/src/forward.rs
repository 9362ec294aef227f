//! Out-of-zone questions from sandboxes go to the upstream resolver (the host's, by
//! default), so a container resolving `api.github.com` works with only miren-dns in its
//! resolv.conf. Anyone else gets REFUSED ([`crate::answer`]): never an open resolver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
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

/// The first `nameserver` of a resolv.conf (port 53): the host's resolver, the natural
/// upstream. `None` when the file is missing or names none.
pub fn system_resolver(resolv_conf: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(resolv_conf).ok()?;
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == "nameserver")
            .then(|| words.next())?
            // A scoped IPv6 address (`fe80::1%eth0`) names its interface: not ours to use.
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_usable_nameserver_of_resolv_conf_is_the_upstream() {
        let dir = std::env::temp_dir().join(format!("miren-dns-resolv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let f = dir.join("resolv.conf");
        let cases = [
            (
                "# generated\nsearch lan\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n",
                Some("10.0.0.1:53"),
            ),
            (
                "nameserver fe80::1%eth0\nnameserver ::1\n",
                Some("[::1]:53"),
            ),
            ("options edns0\n", None),
            ("nameserver\n", None),
        ];
        for (text, want) in cases {
            std::fs::write(&f, text).expect("write");
            assert_eq!(
                system_resolver(&f),
                want.map(|w| w.parse().expect("addr")),
                "{text}"
            );
        }
        assert_eq!(system_resolver(&dir.join("missing")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

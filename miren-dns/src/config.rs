//! How a DNS server is set up: its options, and the app networks whose addresses tell
//! who asks.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How the DNS server behaves.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Where out-of-zone questions from sandboxes go; `None`: they get SERVFAIL.
    pub upstream: Option<SocketAddr>,
    /// How long the upstream may take.
    pub forward_timeout: Duration,
    /// How long a TCP client may stay idle between queries.
    pub tcp_idle: Duration,
    /// UDP served by miren's own loop, which answers a question it answered before
    /// for the same caller and zone from the bytes it sent then (`crate::udp`); off:
    /// by hickory-server's, a task per query. Both answer the same bytes; the second
    /// is kept as the reference the first is tested against.
    pub fast_path: bool,
    /// The UDP loop on a thread of its own, with a single-threaded tokio runtime: a
    /// datagram's wake-up stays on one thread (no hand-off between the caller's
    /// worker threads, no waking an idle one to steal it), and nothing else the
    /// process does sits in its queue. Off: on the runtime that runs the server.
    pub udp_thread: bool,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            upstream: None,
            forward_timeout: Duration::from_secs(2),
            tcp_idle: Duration::from_secs(10),
            fast_path: true,
            udp_thread: true,
        }
    }
}

/// The largest UDP answer we send to a client that speaks EDNS (the DNS flag day 2020
/// figure, which avoids IP fragmentation).
pub(crate) const EDNS_PAYLOAD: u16 = 1232;

/// An app network: the callers whose address is in it are that app's sandboxes, as
/// soon as they exist (the Engine gives the network's addresses to its containers
/// only), before the store records their address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSubnet {
    /// The app.
    pub app: String,
    /// The network's address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

impl AppSubnet {
    /// Whether `ip` is in it.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AppSubnet;

    fn net(addr: &str, prefix: u8) -> AppSubnet {
        AppSubnet {
            app: "a".into(),
            addr: addr.parse().expect("an address"),
            prefix,
        }
    }

    #[test]
    fn a_subnet_holds_exactly_its_addresses() {
        let ip = |s: &str| s.parse().expect("an address");
        let n = net("172.18.0.0", 16);
        assert!(n.contains(ip("172.18.255.3")) && n.contains(ip("172.18.0.1")));
        assert!(!n.contains(ip("172.19.0.2")) && !n.contains(ip("10.0.0.1")));
        assert!(!n.contains(ip("::1")), "another family");
        assert!(net("10.1.2.3", 32).contains(ip("10.1.2.3")));
        assert!(!net("10.1.2.3", 32).contains(ip("10.1.2.4")));
        assert!(net("0.0.0.0", 0).contains(ip("8.8.8.8")));
        assert!(net("fd00::", 64).contains(ip("fd00::7")));
        assert!(!net("fd00::", 64).contains(ip("fd01::7")));
    }
}

//! Where a sandbox can be reached.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A sandbox's address: its IP, and its port when it listens on one (a worker may
/// not, and still has an address that DNS and caller identification need). Stored as
/// `ip`, `ip:port` or `[v6]:port`, parsed once where it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    /// The IP.
    pub ip: IpAddr,
    /// The port it listens on, if any.
    pub port: Option<u16>,
}

impl Address {
    /// An address without a port.
    pub fn ip(ip: IpAddr) -> Self {
        Self { ip, port: None }
    }

    /// Where to connect, when it listens.
    pub fn socket(&self) -> Option<SocketAddr> {
        self.port.map(|p| SocketAddr::new(self.ip, p))
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Self {
            ip: a.ip(),
            port: Some(a.port()),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.socket() {
            Some(s) => s.fmt(f),
            None => self.ip.fmt(f),
        }
    }
}

/// Text that is not `ip`, `ip:port` or `[v6]:port`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not an address: expected `ip`, `ip:port` or `[v6]:port`")]
pub struct BadAddress(pub String);

impl FromStr for Address {
    type Err = BadAddress;

    fn from_str(s: &str) -> Result<Self, BadAddress> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(sa.into());
        }
        let bare = s
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(s);
        bare.parse::<IpAddr>()
            .map(Address::ip)
            .map_err(|_| BadAddress(s.to_string()))
    }
}

impl TryFrom<String> for Address {
    type Error = BadAddress;
    fn try_from(s: String) -> Result<Self, BadAddress> {
        s.parse()
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_a_runtime_writes_parses_and_prints_back() {
        for s in ["10.1.0.2:5432", "[fd00::2]:80", "10.1.0.3", "fd00::3"] {
            let a: Address = s.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(a.to_string(), s);
        }
        let a: Address = "[fd00::3]".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a.to_string(), a.port), ("fd00::3".to_string(), None));
        assert_eq!(
            "10.1.0.2:5432"
                .parse::<Address>()
                .ok()
                .and_then(|a| a.socket()),
            "10.1.0.2:5432".parse().ok()
        );
        assert!("".parse::<Address>().is_err());
        assert!("not an address".parse::<Address>().is_err());
        assert!("10.0.0.1:99999".parse::<Address>().is_err());
    }

    #[test]
    fn it_is_stored_as_text() {
        let a: Address = "10.0.0.7:80".parse().unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_string(&a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json, "\"10.0.0.7:80\"");
        assert_eq!(serde_json::from_str::<Address>(&json).ok(), Some(a));
        assert!(serde_json::from_str::<Address>("\"nope\"").is_err());
    }
}

//! Where the cluster state lives: `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`.

use std::str::FromStr;

/// The keys of a miren cluster live under this prefix unless the address names one.
pub const DEFAULT_PREFIX: &str = "/miren/";

/// A parsed `--store etcd://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdAddress {
    /// The members to reach, as `http://HOST:PORT`.
    pub endpoints: Vec<String>,
    /// What every key is stored under (ends with `/`).
    pub prefix: String,
}

/// Why an address was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{given}` is not an etcd address: {why} (expected etcd://HOST:PORT[,HOST:PORT…][/PREFIX])"
)]
pub struct BadAddress {
    given: String,
    why: &'static str,
}

impl FromStr for EtcdAddress {
    type Err = BadAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadAddress {
            given: s.to_string(),
            why,
        };
        let rest = s
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("it must start with etcd://"))?;
        let (hosts, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let mut endpoints = Vec::new();
        for member in hosts.split(',') {
            let (host, port) = member
                .rsplit_once(':')
                .ok_or_else(|| bad("each member needs HOST:PORT"))?;
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad("each member needs a host and a port from 1 to 65535"));
            }
            endpoints.push(format!("http://{member}"));
        }
        let prefix = match path.trim_matches('/') {
            "" => DEFAULT_PREFIX.to_string(),
            p if p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) =>
            {
                format!("/{p}/")
            }
            _ => {
                return Err(bad(
                    "the prefix may hold letters, digits, `-`, `_`, `.` and `/`",
                ));
            }
        };
        Ok(Self { endpoints, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_prefix_are_read_and_mistakes_are_named() {
        let a: EtcdAddress = "etcd://127.0.0.1:2379,127.0.0.2:2379"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            a.endpoints,
            ["http://127.0.0.1:2379", "http://127.0.0.2:2379"]
        );
        assert_eq!(a.prefix, "/miren/");
        let a: EtcdAddress = "etcd://[::1]:2379/prod/eu"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (a.endpoints[0].as_str(), a.prefix.as_str()),
            ("http://[::1]:2379", "/prod/eu/")
        );
        for (bad, why) in [
            ("http://127.0.0.1:2379", "it must start with etcd://"),
            ("etcd://127.0.0.1", "each member needs HOST:PORT"),
            (
                "etcd://127.0.0.1:0",
                "each member needs a host and a port from 1 to 65535",
            ),
            (
                "etcd://:2379",
                "each member needs a host and a port from 1 to 65535",
            ),
            (
                "etcd://h:1/a b",
                "the prefix may hold letters, digits, `-`, `_`, `.` and `/`",
            ),
        ] {
            let e = bad
                .parse::<EtcdAddress>()
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.why, why, "{bad}");
            assert!(
                e.to_string()
                    .starts_with(&format!("`{bad}` is not an etcd address"))
            );
        }
    }
}

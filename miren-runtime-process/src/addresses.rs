//! Stable per-service loopback addresses, and `<svc>.app.miren` in env values.
//!
//! Every service with a port gets its own loopback IP (`127.77.x.y`) for the app's
//! lifetime, kept in `addresses.json` so it survives restarts; a balancer listens
//! there on the service's port. So `DATABASE_URL = "postgres://…@postgres.app.miren:5432/db"`
//! is rewritten to `…@127.77.0.3:5432/db` and works unchanged, whichever instance
//! serves and however often it restarts.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use regex::{Captures, Regex};

/// Allocated addresses, persisted.
#[derive(Debug)]
pub struct Addresses {
    file: PathBuf,
    /// `app/service` → IP.
    map: BTreeMap<String, Ipv4Addr>,
    /// Where allocation starts: derived from the file's path, so two servers on one
    /// machine (other data dirs) rarely meet; when they do, binding tells.
    start: u32,
}

/// First octets of the range; the last two count up from `127.77.0.1`.
const NET: [u8; 2] = [127, 77];

impl Addresses {
    /// Loads `file` (missing: empty).
    pub fn load(file: PathBuf) -> io::Result<Self> {
        let map = match fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b).map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        // FNV-1a of the path: stable across restarts, spread across data dirs.
        let start = file.to_string_lossy().bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        }) % 0xF000;
        Ok(Self { file, map, start })
    }

    /// The service's IP, allocated on first use.
    pub fn ip(&mut self, app: &str, service: &str) -> io::Result<Ipv4Addr> {
        let key = format!("{app}/{service}");
        if let Some(ip) = self.map.get(&key) {
            return Ok(*ip);
        }
        let ip = self.next_free(&[])?;
        self.map.insert(key, ip);
        self.save()?;
        Ok(ip)
    }

    /// Gives the service another IP: its own is taken by someone else on this machine.
    pub fn reassign(
        &mut self,
        app: &str,
        service: &str,
        taken: &[Ipv4Addr],
    ) -> io::Result<Ipv4Addr> {
        let ip = self.next_free(taken)?;
        self.map.insert(format!("{app}/{service}"), ip);
        self.save()?;
        Ok(ip)
    }

    fn next_free(&self, taken: &[Ipv4Addr]) -> io::Result<Ipv4Addr> {
        let used: std::collections::BTreeSet<Ipv4Addr> = self.map.values().copied().collect();
        (0u32..0xFFFF)
            .map(|i| 1 + (self.start + i) % 0xFFFE)
            .map(|n| Ipv4Addr::new(NET[0], NET[1], (n >> 8) as u8, n as u8))
            .find(|ip| {
                ip.octets()[3] != 0
                    && ip.octets()[3] != 255
                    && !used.contains(ip)
                    && !taken.contains(ip)
            })
            .ok_or_else(|| io::Error::other("no free loopback address left in 127.77.0.0/16"))
    }

    /// Forgets an app's addresses.
    pub fn remove_app(&mut self, app: &str) -> io::Result<()> {
        let prefix = format!("{app}/");
        self.map.retain(|k, _| !k.starts_with(&prefix));
        self.save()
    }

    fn save(&self) -> io::Result<()> {
        let tmp = self.file.with_extension("tmp");
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&self.map).map_err(io::Error::other)?,
        )?;
        fs::rename(tmp, &self.file)
    }
}

/// Where a service's stable address listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    /// Its IP.
    pub ip: IpAddr,
    /// Each declared port → where its listener is: the same port of `ip`, or a free
    /// one when the declared one is privileged here.
    pub ports: BTreeMap<u16, SocketAddr>,
}

/// Rewrites `<svc>.app.miren[:port]` and `<svc>.<app>.app.miren[:port]` in `value`
/// to the service's stable address. `services` says where each service's listeners
/// are. Names of services without an address stay as they are.
pub fn rewrite(value: &str, app: &str, services: &BTreeMap<String, Listening>) -> String {
    if !value.contains(".app.miren") {
        return value.to_string();
    }
    let re = pattern();
    re.replace_all(value, |c: &Captures<'_>| {
        let whole = c.get(0).map_or("", |m| m.as_str());
        let svc = c.name("svc").map_or("", |m| m.as_str());
        if c.name("app").is_some_and(|a| a.as_str() != app) {
            return whole.to_string();
        }
        let Some(at) = services.get(svc) else {
            return whole.to_string();
        };
        match c.name("port").and_then(|p| p.as_str().parse::<u16>().ok()) {
            // A declared port reaches its listener, wherever it had to listen.
            Some(p) => match at.ports.get(&p) {
                Some(l) => l.to_string(),
                None => SocketAddr::new(at.ip, p).to_string(),
            },
            None => at.ip.to_string(),
        }
    })
    .into_owned()
}

fn pattern() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        #[allow(clippy::unwrap_used)] // a constant pattern
        Regex::new(r"\b(?P<svc>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.(?P<app>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?))?\.app\.miren\b(?::(?P<port>\d{1,5}))?").unwrap()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> BTreeMap<String, Listening> {
        let at = |ip: &str, ports: &[(u16, &str)]| Listening {
            ip: ip.parse().unwrap_or_else(|_| unreachable!()),
            ports: ports
                .iter()
                .map(|(p, a)| (*p, a.parse().unwrap_or_else(|_| unreachable!())))
                .collect(),
        };
        BTreeMap::from([
            (
                "postgres".to_string(),
                at("127.77.0.3", &[(5432, "127.77.0.3:5432")]),
            ),
            (
                "redis".to_string(),
                at(
                    "127.77.0.4",
                    &[(6379, "127.77.0.4:40000"), (16379, "127.77.0.4:16379")],
                ),
            ),
        ])
    }

    #[test]
    fn names_become_the_stable_address() {
        let s = services();
        assert_eq!(
            rewrite("postgres://u:p@postgres.app.miren:5432/db", "shop", &s),
            "postgres://u:p@127.77.0.3:5432/db"
        );
        assert_eq!(rewrite("postgres.app.miren", "shop", &s), "127.77.0.3");
        assert_eq!(
            rewrite("redis://redis.shop.app.miren:6379/0", "shop", &s),
            "redis://127.77.0.4:40000/0"
        );
        assert_eq!(
            rewrite("redis.other.app.miren:6379", "shop", &s),
            "redis.other.app.miren:6379"
        );
        assert_eq!(
            rewrite("mongo.app.miren:27017", "shop", &s),
            "mongo.app.miren:27017"
        );
        assert_eq!(rewrite("plain value", "shop", &s), "plain value");
        // Each declared port has its own listener; another port keeps its number.
        assert_eq!(
            rewrite("redis.app.miren:16379 redis.app.miren:7", "shop", &s),
            "127.77.0.4:16379 127.77.0.4:7"
        );
    }

    #[test]
    fn addresses_are_stable_and_distinct() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("addresses.json");
        let mut a = Addresses::load(file.clone())?;
        let pg = a.ip("shop", "postgres")?;
        let web = a.ip("shop", "web")?;
        assert_ne!(pg, web);
        assert_eq!(pg.octets()[..2], [127, 77]);
        let mut again = Addresses::load(file)?;
        assert_eq!(again.ip("shop", "postgres")?, pg);
        let moved = again.reassign("shop", "postgres", &[pg])?;
        assert_ne!(moved, pg);
        assert_eq!(again.ip("shop", "postgres")?, moved);
        again.remove_app("shop")?;
        assert_eq!(again.ip("blog", "web")?, pg);
        Ok(())
    }
}

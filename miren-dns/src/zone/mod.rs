//! What the DNS answers from: per app, each service's serving instances, and which
//! addresses belong to which app's sandboxes (to know who is asking). Plain data,
//! rebuilt per app from the store's changes ([`projection`]) and swapped in whole, so
//! a query reads one immutable snapshot without a lock.

pub mod projection;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use miren_core::model::Sandbox;
#[cfg(test)]
use miren_core::model::SandboxStatus;

/// One ready instance of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instance {
    /// Its address.
    pub ip: IpAddr,
    /// Where it listens, when it does (a worker may not).
    pub port: Option<u16>,
}

impl Instance {
    /// The instance of a sandbox whose address is known.
    pub fn of(sandbox: &Sandbox) -> Option<Instance> {
        let a = sandbox.address?;
        Some(Instance {
            ip: a.ip,
            port: a.port,
        })
    }
}

/// One app's part of the zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppZone {
    /// Every service the app has a pool for, with its serving instances (sorted, no
    /// duplicates; booting and draining ones are not answers); a service scaled to
    /// zero is here with none.
    pub services: BTreeMap<String, Vec<Instance>>,
    /// The addresses of its live sandboxes (booting ones included: they resolve their
    /// database at start; draining ones too: they still run).
    pub callers: Vec<IpAddr>,
    /// SRV names: (port name, `tcp`/`udp`) → the services' ports it names (sorted):
    /// the service and, for an extra named port (`ports`), its name. Each service's
    /// port is `(<service>, tcp)` unless its pools name its ports otherwise; two
    /// services that give their ports one name share the SRV name, as two record sets
    /// of one name are one in DNS.
    pub ports: BTreeMap<(String, String), Vec<PortOf>>,
    /// The serving instances at each extra named port: (service, port name) → the
    /// instances, each with its port of that name.
    pub extra: BTreeMap<(String, String), Vec<Instance>>,
}

/// What an SRV name reaches: a service, at the port `PORT` names or an extra one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortOf {
    /// The service.
    pub service: String,
    /// `None`: the port `PORT` names; else the extra port's name.
    pub extra: Option<String>,
}

impl PortOf {
    fn service(service: &str) -> Self {
        Self {
            service: service.to_string(),
            extra: None,
        }
    }
}

/// A service's SRV names as its pool gives them: (port name, `tcp`/`udp`, the extra
/// port's name or `None`).
pub type SrvNames = Vec<(String, String, Option<String>)>;

impl AppZone {
    /// Names the services' ports as their pools say (`port_name`, `port_type`,
    /// `ports`), replacing the default `(<service>, tcp)` of each service named. A
    /// service with several pools (a deploy under way) has the names of all of them,
    /// whatever order they come in.
    pub fn with_ports(mut self, ports: impl IntoIterator<Item = (String, SrvNames)>) -> Self {
        let ports: Vec<(String, SrvNames)> = ports.into_iter().collect();
        for (service, _) in &ports {
            for of in self.ports.values_mut() {
                of.retain(|p| &p.service != service);
            }
        }
        for (service, names) in ports {
            for (name, proto, extra) in names {
                self.ports.entry((name, proto)).or_default().push(PortOf {
                    service: service.clone(),
                    extra,
                });
            }
        }
        self.ports.retain(|_, of| {
            of.sort_unstable();
            of.dedup();
            !of.is_empty()
        });
        self
    }

    /// Builds an app's zone from its pools' services and its sandboxes.
    pub fn build<'a>(
        services: impl IntoIterator<Item = &'a str>,
        sandboxes: impl IntoIterator<Item = &'a Sandbox>,
    ) -> AppZone {
        let mut z = AppZone::default();
        for s in services {
            z.services.entry(s.to_string()).or_default();
            z.ports
                .entry((s.to_string(), "tcp".to_string()))
                .or_default()
                .push(PortOf::service(s));
        }
        for sb in sandboxes {
            let Some(inst) = Instance::of(sb).filter(|_| sb.is_live()) else {
                continue;
            };
            z.callers.push(inst.ip);
            if sb.is_serving() {
                z.services.entry(sb.service.clone()).or_default().push(inst);
                z.ports
                    .entry((sb.service.clone(), "tcp".to_string()))
                    .or_default()
                    .push(PortOf::service(&sb.service));
                for (name, port) in &sb.ports {
                    z.extra
                        .entry((sb.service.clone(), name.clone()))
                        .or_default()
                        .push(Instance {
                            ip: inst.ip,
                            port: Some(*port),
                        });
                }
            }
        }
        for instances in z.services.values_mut().chain(z.extra.values_mut()) {
            instances.sort_unstable();
            instances.dedup();
        }
        for of in z.ports.values_mut() {
            of.sort_unstable();
            of.dedup();
        }
        z.callers.sort_unstable();
        z.callers.dedup();
        z
    }
}

/// The whole zone at one moment.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    /// By app name.
    pub apps: HashMap<Arc<str>, Arc<AppZone>>,
    /// Which app a source address belongs to. An address that tells nothing about the
    /// caller is not here, and such callers are treated as outsiders, which can never
    /// widen what they see: one that sandboxes of two apps share, and the host's own
    /// loopback address, from which every local process speaks (the process runtime's
    /// sandboxes listen on 127.0.0.1, and so does the operator's `dig`).
    pub callers: HashMap<IpAddr, Arc<str>>,
    /// Bumped with every change: the SOA serial.
    pub serial: u32,
}

impl Zone {
    /// A zone of these apps.
    pub fn new(apps: HashMap<Arc<str>, Arc<AppZone>>, serial: u32) -> Zone {
        let mut owners: HashMap<IpAddr, Option<Arc<str>>> = HashMap::new();
        for (name, app) in &apps {
            for ip in app.callers.iter().filter(|ip| identifies(**ip)) {
                owners
                    .entry(*ip)
                    .and_modify(|o| {
                        if o.as_ref() != Some(name) {
                            *o = None;
                        }
                    })
                    .or_insert_with(|| Some(name.clone()));
            }
        }
        let callers = owners
            .into_iter()
            .filter_map(|(ip, o)| Some((ip, o?)))
            .collect();
        Zone {
            apps,
            callers,
            serial,
        }
    }

    /// The app whose sandbox asks from `ip`, if any.
    pub fn caller(&self, ip: IpAddr) -> Option<&str> {
        self.callers.get(&ip).map(|a| &**a)
    }
}

/// A sandbox of `app` at `addr` (empty: none yet), for tests.
#[cfg(test)]
pub(crate) fn sandbox(app: &str, svc: &str, addr: &str, status: SandboxStatus) -> Sandbox {
    miren_core::testing::sandbox(app, svc, (!addr.is_empty()).then_some(addr), status)
}

/// Whether a sandbox's address can tell who asks.
fn identifies(ip: IpAddr) -> bool {
    !(ip.is_unspecified()
        || ip == IpAddr::from([127, 0, 0, 1])
        || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_serving_sandboxes_answer_but_booting_and_draining_ones_are_callers() {
        use SandboxStatus::*;
        let sbs = [
            sandbox("a", "web", "10.0.0.2:80", Running),
            sandbox("a", "web", "10.0.0.3:80", Pending),
            sandbox("a", "web", "10.0.0.4:80", Stopped),
            sandbox("a", "db", "10.0.0.5:5432", Dead),
            sandbox("a", "web", "10.0.0.6:80", Stopping),
        ];
        let z = AppZone::build(["web", "db", "worker"], &sbs);
        let ips = |s: &str| {
            z.services[s]
                .iter()
                .map(|i| i.ip.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ips("web"),
            ["10.0.0.2"],
            "a draining instance is not an answer"
        );
        assert!(ips("db").is_empty(), "a dead database is not an answer");
        assert!(ips("worker").is_empty());
        let callers: Vec<_> = z.callers.iter().map(|i| i.to_string()).collect();
        assert_eq!(callers, ["10.0.0.2", "10.0.0.3", "10.0.0.6"]);
    }

    #[test]
    fn an_address_two_apps_share_identifies_nobody() {
        use SandboxStatus::Running;
        let a = AppZone::build(
            ["web"],
            &[
                sandbox("a", "web", "127.0.0.1:4001", Running),
                sandbox("a", "web", "10.0.0.2:80", Running),
            ],
        );
        let b = AppZone::build(["web"], &[sandbox("b", "web", "127.0.0.1:4002", Running)]);
        let zone = Zone::new(
            [("a".into(), Arc::new(a)), ("b".into(), Arc::new(b))].into(),
            1,
        );
        assert_eq!(zone.caller("127.0.0.1".parse().expect("an address")), None);
        assert_eq!(
            zone.caller("10.0.0.2".parse().expect("an address")),
            Some("a")
        );
        assert_eq!(zone.caller("10.0.0.9".parse().expect("an address")), None);
        // Even when one app alone listens there: everything on the host speaks from it.
        let a = AppZone::build(
            ["web"],
            &[
                sandbox("a", "web", "127.0.0.1:4001", Running),
                sandbox("a", "web", "[::1]:4002", Running),
            ],
        );
        let zone = Zone::new([("a".into(), Arc::new(a))].into(), 1);
        assert!(zone.callers.is_empty());
    }
}

//! The listeners of each app's stable service addresses: for every port a service
//! declares, a TCP balancer or a UDP forwarder on the service's loopback IP, reaching
//! whichever instances serve that port.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};

use miren_core::config::PortType;
use miren_core::model::PoolSpec;
use miren_core::runtime::RuntimeError;

use crate::addresses::Listening;
use crate::balancer::Balancer;
use crate::listen::Target;
use crate::udp::UdpForwarder;
use crate::{ProcessRuntime, lock};

/// A port a service listens on, as its stable address offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredPort {
    /// `None`: the port `PORT` names; else an extra port's name.
    pub name: Option<String>,
    /// Its number.
    pub port: u16,
    /// UDP rather than TCP.
    pub udp: bool,
}

/// The ports of a service, the one `PORT` names first: `primary` is where it
/// listens (the spec's `port`, or what the image exposes), then the spec's extra
/// named ports.
pub fn declared_ports(spec: &PoolSpec, primary: Option<u16>) -> Vec<DeclaredPort> {
    let mut out: Vec<DeclaredPort> = primary
        .map(|port| DeclaredPort {
            name: None,
            port,
            udp: spec.udp_only(),
        })
        .into_iter()
        .collect();
    out.extend(spec.extra_ports.iter().map(|p| DeclaredPort {
        name: Some(p.name.clone()),
        port: p.port,
        udp: p.kind == PortType::Udp,
    }));
    out
}

/// One listener.
pub(crate) enum Listener {
    Tcp(Balancer),
    Udp(UdpForwarder),
}

impl Listener {
    /// Listens on `ip:port` (TCP or UDP) for `target`; when that port is privileged
    /// here, on a free port of `ip` instead.
    pub(crate) async fn bind(
        ip: IpAddr,
        port: u16,
        udp: bool,
        target: Target,
        rt: &ProcessRuntime,
    ) -> io::Result<Listener> {
        let serving = rt.inner.serving.reader();
        if !udp {
            return Balancer::bind(ip, port, target, serving)
                .await
                .map(Listener::Tcp);
        }
        match UdpForwarder::bind(SocketAddr::new(ip, port), target.clone(), serving.clone()).await {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                UdpForwarder::bind(SocketAddr::new(ip, 0), target, serving)
                    .await
                    .map(Listener::Udp)
            }
            r => r.map(Listener::Udp),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Listener::Tcp(b) => b.addr(),
            Listener::Udp(u) => u.addr(),
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Listener::Tcp(b) => b.close().await,
            Listener::Udp(u) => u.close().await,
        }
    }
}

/// An app's stable service addresses.
#[derive(Default)]
pub(crate) struct AppNet {
    /// Where each service's listeners are, for rewriting `<svc>.app.miren`.
    pub(crate) services: BTreeMap<String, Listening>,
    /// By (service, declared port, UDP).
    listeners: HashMap<(String, u16, bool), Listener>,
}

impl AppNet {
    pub(crate) async fn close(&self) {
        for l in self.listeners.values() {
            l.close().await;
        }
    }
}

impl ProcessRuntime {
    /// Makes sure each of `services`' declared ports has its listener on the service's
    /// stable IP.
    pub(crate) async fn ensure_net(
        &self,
        app: &str,
        services: &[(String, Vec<DeclaredPort>)],
    ) -> Result<(), RuntimeError> {
        for (service, ports) in services {
            for p in ports {
                let key = (service.clone(), p.port, p.udp);
                let known = lock(&self.inner.apps)
                    .get(app)
                    .is_some_and(|n| n.listeners.contains_key(&key));
                if known {
                    continue;
                }
                let target = Target {
                    app: app.to_string(),
                    service: service.clone(),
                    port: p.name.clone(),
                };
                let listener = self.bind_stable(app, service, p, target).await?;
                let mut apps = lock(&self.inner.apps);
                let net = apps.entry(app.to_string()).or_default();
                let addr = listener.addr();
                let at = net
                    .services
                    .entry(service.clone())
                    .or_insert_with(|| Listening {
                        ip: addr.ip(),
                        ports: BTreeMap::new(),
                    });
                // TCP's listener answers for the number when both are declared.
                if !p.udp || !at.ports.contains_key(&p.port) {
                    at.ports.insert(p.port, addr);
                }
                net.listeners.insert(key, listener);
            }
        }
        Ok(())
    }

    /// Binds a listener for one port on the service's IP, moving the service to
    /// another IP when another server on this machine has its own.
    async fn bind_stable(
        &self,
        app: &str,
        service: &str,
        p: &DeclaredPort,
        target: Target,
    ) -> Result<Listener, RuntimeError> {
        let alloc = |e| RuntimeError::io("allocating a service address", e);
        let mut ip = lock(&self.inner.addresses)
            .ip(app, service)
            .map_err(alloc)?;
        let has_others = lock(&self.inner.apps)
            .get(app)
            .is_some_and(|n| n.services.contains_key(service));
        let mut taken = Vec::new();
        loop {
            match Listener::bind(IpAddr::V4(ip), p.port, p.udp, target.clone(), self).await {
                Ok(l) => return Ok(l),
                // Another server on this machine has it: take the next one (only
                // while the service has no listener yet: they share the IP).
                Err(e)
                    if e.kind() == io::ErrorKind::AddrInUse && !has_others && taken.len() < 64 =>
                {
                    taken.push(ip);
                    ip = lock(&self.inner.addresses)
                        .reassign(app, service, &taken)
                        .map_err(alloc)?;
                }
                Err(e) => {
                    let proto = if p.udp { "udp" } else { "tcp" };
                    return Err(RuntimeError::io(
                        format!(
                            "listening on {ip}:{}/{proto} for service `{service}`",
                            p.port
                        ),
                        e,
                    ));
                }
            }
        }
    }
}

//! The sockets: UDP and TCP on one address, served by hickory-server, answering from
//! the zone snapshot the reflector keeps current.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{Name, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use miren_core::store::{Progress, Reflector, Store};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::answer::{Outcome, answer, answer_as};
use crate::forward::forward;
use crate::zone::Zone;
use crate::zone::projection::ZoneProjection;

/// How the DNS server behaves.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Where out-of-zone questions from sandboxes go; `None`: they get SERVFAIL.
    pub upstream: Option<SocketAddr>,
    /// How long the upstream may take.
    pub forward_timeout: Duration,
    /// How long a TCP client may stay idle between queries.
    pub tcp_idle: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            upstream: None,
            forward_timeout: Duration::from_secs(2),
            tcp_idle: Duration::from_secs(10),
        }
    }
}

/// The largest UDP answer we send to a client that speaks EDNS (the DNS flag day 2020
/// figure, which avoids IP fragmentation).
const EDNS_PAYLOAD: u16 = 1232;

/// A bound DNS server.
pub struct Dns {
    udp: UdpSocket,
    tcp: TcpListener,
    /// Where it was bound (and its extra listeners serve).
    runtime: tokio::runtime::Handle,
    /// Keeps the zone in step with the store while the server lives.
    zone: Reflector<Zone>,
    config: DnsConfig,
    /// Dropped when the server stops: the extra [`Listeners`] stop with it.
    running: watch::Sender<()>,
}

/// More addresses the server answers on while it runs: each app network's gateway,
/// for the containers on it. Cheap to clone.
#[derive(Clone)]
pub struct Listeners {
    zone: Arc<ArcSwap<Zone>>,
    config: DnsConfig,
    running: watch::Receiver<()>,
    listening: Arc<Mutex<HashSet<SocketAddr>>>,
    /// The runtime the server was bound on: the extra listeners serve there too,
    /// whoever asks for them (the Docker runtime, from the control plane's threads).
    runtime: tokio::runtime::Handle,
}

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

impl Listeners {
    /// Answers on `addr` too, UDP and TCP (nothing to do when it does already);
    /// where UDP listens (with port 0, UDP and TCP get a free port each). Binds at
    /// once, so a taken address is an error here. With `subnet`, a question from an
    /// address in it is its app's; any other is known by its address as everywhere.
    pub fn listen(
        &self,
        addr: SocketAddr,
        subnet: Option<AppSubnet>,
    ) -> std::io::Result<SocketAddr> {
        let mut listening = self.listening.lock().unwrap_or_else(|e| e.into_inner());
        if listening.contains(&addr) {
            return Ok(addr);
        }
        let udp = std::net::UdpSocket::bind(addr)?;
        let bound = udp.local_addr()?;
        udp.set_nonblocking(true)?;
        let tcp = std::net::TcpListener::bind(addr)?;
        tcp.set_nonblocking(true)?;
        let _on = self.runtime.enter();
        let (udp, tcp) = (UdpSocket::from_std(udp)?, TcpListener::from_std(tcp)?);
        let handler = Handler {
            zone: self.zone.clone(),
            config: self.config.clone(),
            subnet: subnet.map(|s| (Arc::from(s.app.as_str()), s)),
        };
        let mut server = hickory_server::Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, self.config.tcp_idle, 64);
        let mut running = self.running.clone();
        self.runtime.spawn(async move {
            tokio::select! {
                r = server.block_until_done() => {
                    if let Err(e) = r {
                        tracing::error!("DNS on {addr} stopped: {e}");
                    }
                }
                // The main server stopped.
                _ = running.changed() => {}
            }
        });
        listening.insert(addr);
        listening.insert(bound);
        Ok(bound)
    }
}

impl Dns {
    /// Binds UDP and TCP on `addr` (port 0: one free port for both) and loads the zone.
    pub async fn bind(
        addr: SocketAddr,
        store: Arc<dyn Store>,
        config: DnsConfig,
    ) -> std::io::Result<Dns> {
        let (udp, tcp) = bind_both(addr).await?;
        let zone = Reflector::start(store, ZoneProjection::default())
            .await
            .map_err(std::io::Error::other)?;
        Ok(Dns {
            udp,
            tcp,
            runtime: tokio::runtime::Handle::current(),
            zone,
            config,
            running: watch::channel(()).0,
        })
    }

    /// A handle to answer on more addresses while the server runs.
    pub fn listeners(&self) -> Listeners {
        Listeners {
            zone: self.zone.reader().cell(),
            config: self.config.clone(),
            running: self.running.subscribe(),
            listening: Arc::default(),
            runtime: self.runtime.clone(),
        }
    }

    /// Which store revision the zone reflects: the API waits on it so a change is in
    /// the answers before it answers.
    pub fn progress(&self) -> Progress {
        self.zone.reader().progress()
    }

    /// Where it listens (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.udp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until the task is dropped.
    pub async fn run(self) {
        let handler = Handler {
            zone: self.zone.reader().cell(),
            config: self.config.clone(),
            subnet: None,
        };
        let mut server = hickory_server::Server::new(handler);
        server.register_socket(self.udp);
        server.register_listener(self.tcp, self.config.tcp_idle, 64);
        // `self.zone` lives as long as this future: dropping the task stops following,
        // and the extra listeners stop with `self.running`.
        let _following = self.zone;
        let _running = self.running;
        if let Err(e) = server.block_until_done().await {
            tracing::error!("DNS server stopped: {e}");
        }
    }
}

/// UDP and TCP on the same port; with port 0 the kernel picks the UDP one, and TCP
/// follows (retrying with a new pick if another program holds that TCP port).
async fn bind_both(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr).await?;
        let at = udp.local_addr()?;
        match TcpListener::bind(at).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for both UDP and TCP")))
}

struct Handler {
    zone: Arc<ArcSwap<Zone>>,
    config: DnsConfig,
    /// An app network this listener serves.
    subnet: Option<(Arc<str>, AppSubnet)>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|_| {
            let mut e = Edns::new();
            e.set_max_payload(EDNS_PAYLOAD);
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let mut meta = Metadata::response_from_request(&request.metadata);
        let info = match request.request_info() {
            Ok(info)
                if request.metadata.op_code == OpCode::Query
                    && request.metadata.message_type == MessageType::Query =>
            {
                info
            }
            Ok(_) => return send_code(response, builder, meta, ResponseCode::NotImp).await,
            Err(_) => return send_code(response, builder, meta, ResponseCode::FormErr).await,
        };
        let qname = Name::from(info.query.name());
        let zone = self.zone.load();
        let outcome = match &self.subnet {
            Some((app, net)) if net.contains(info.src.ip()) => {
                answer_as(&zone, &qname, info.query.query_type(), Some(app))
            }
            _ => answer(&zone, &qname, info.query.query_type(), info.src.ip()),
        };
        let sent = match outcome {
            Outcome::Reply(r) => {
                meta.authoritative = r.code != ResponseCode::Refused;
                meta.response_code = r.code;
                let msg = builder.build(
                    meta,
                    &r.answers,
                    &r.authority,
                    &[] as &[Record],
                    &r.additionals,
                );
                response.send_response(msg).await
            }
            Outcome::Forward => {
                match forward(
                    request.as_slice(),
                    self.config.upstream,
                    self.config.forward_timeout,
                )
                .await
                {
                    Ok(up) => {
                        meta.response_code = up.metadata.response_code;
                        meta.recursion_available = up.metadata.recursion_available;
                        meta.authentic_data = up.metadata.authentic_data;
                        let msg = builder.build(
                            meta,
                            &up.answers,
                            &up.authorities,
                            &[] as &[Record],
                            &up.additionals,
                        );
                        response.send_response(msg).await
                    }
                    Err(e) => {
                        tracing::debug!("forwarding {qname} for {}: {e}", info.src);
                        return send_code(response, builder, meta, ResponseCode::ServFail).await;
                    }
                }
            }
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!("answering {}: {e}", info.src);
            failed(&request.metadata)
        })
    }
}

async fn send_code<R: ResponseHandler>(
    mut response: R,
    builder: MessageResponseBuilder<'_>,
    mut meta: Metadata,
    code: ResponseCode,
) -> ResponseInfo {
    meta.response_code = code;
    let id = meta.id;
    let op = meta.op_code;
    match response.send_response(builder.build_no_records(meta)).await {
        Ok(info) => info,
        Err(_) => failed(&Metadata::new(id, MessageType::Query, op)),
    }
}

fn failed(req: &Metadata) -> ResponseInfo {
    let mut metadata = Metadata::new(req.id, MessageType::Response, req.op_code);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
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

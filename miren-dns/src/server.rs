//! The sockets: UDP and TCP on one address — UDP by the loop of [`crate::udp`], TCP
//! by hickory-server — answering from the zone snapshot the reflector keeps current.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use miren_core::store::{Progress, Reflector, Store};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::config::{AppSubnet, DnsConfig};
use crate::handler::{Handler, Shared};
use crate::stats::QueryStats;
use crate::zone::Zone;
use crate::zone::projection::ZoneProjection;

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
    /// Queries answered on every listener.
    stats: Arc<QueryStats>,
}

/// More addresses the server answers on while it runs: each app network's gateway,
/// for the containers on it. Cheap to clone.
#[derive(Clone)]
pub struct Listeners {
    zone: Arc<ArcSwap<Zone>>,
    config: DnsConfig,
    running: watch::Receiver<()>,
    listening: Arc<Mutex<HashSet<SocketAddr>>>,
    stats: Arc<QueryStats>,
    /// The runtime the server was bound on: the extra listeners serve there too,
    /// whoever asks for them (the Docker runtime, from the control plane's threads).
    runtime: tokio::runtime::Handle,
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
            stats: self.stats.clone(),
        };
        let serving = serve(handler, udp, tcp, addr);
        let mut running = self.running.clone();
        self.runtime.spawn(async move {
            tokio::select! {
                () = serving => {}
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
            stats: Arc::default(),
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
            stats: self.stats.clone(),
        }
    }

    /// Its query counts, for `/metrics`.
    pub fn stats(&self) -> Arc<QueryStats> {
        self.stats.clone()
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
            stats: self.stats.clone(),
        };
        let at = self.local_addr();
        // `self.zone` lives as long as this future: dropping the task stops following,
        // and the extra listeners stop with `self.running`.
        let _following = self.zone;
        let _running = self.running;
        serve(handler, self.udp, self.tcp, at).await;
    }
}

/// Answers on `udp` and `tcp` until either stops for good.
async fn serve(handler: Handler, udp: UdpSocket, tcp: TcpListener, at: SocketAddr) {
    let (fast, idle, thread) = (
        handler.config.fast_path,
        handler.config.tcp_idle,
        handler.config.udp_thread,
    );
    let handler = Arc::new(handler);
    let mut server = hickory_server::Server::new(Shared(handler.clone()));
    server.register_listener(tcp, idle, 64);
    let udp = match fast {
        true => Some(udp),
        false => {
            server.register_socket(udp);
            None
        }
    };
    let udp = async move {
        match udp {
            Some(udp) if thread => crate::udp::serve_on_thread(udp, handler).await,
            Some(udp) => crate::udp::serve(udp, handler).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = server.block_until_done() => {
            if let Err(e) = r {
                tracing::error!("DNS on {at} stopped: {e}");
            }
        }
        () = udp => {}
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

//! UDP, served by a loop of its own: each wake-up drains every datagram queued on the
//! socket, a batch per system call ([`batch`]), and a plain question about the zone ([`question`]) asked before by the same
//! caller, with the zone unchanged, is answered from the bytes sent then ([`cache`]):
//! no decoding, no task, no allocation. The first time, and for everything else, the
//! datagram goes the full way ([`slow`]) — in line when it is about the zone (the
//! answer is at hand), on a task of its own otherwise (forwarding waits on the
//! upstream), at most [`SLOW_IN_FLIGHT`] at once.
//!
//! The zone is loaded per batch, so a change is answered from the next batch on:
//! microseconds, as on the full path.

mod batch;
mod cache;
mod question;
mod slow;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, oneshot};

use crate::handler::Handler;
use cache::AnswerCache;

/// Queries on the full path off the loop at once (forwarded ones); more are dropped,
/// and their clients ask again.
pub(crate) const SLOW_IN_FLIGHT: usize = 1024;

/// The largest datagram read; a longer one is cut, fails to decode and gets FORMERR.
const MAX_DATAGRAM: usize = 4096;

/// Serves `socket` on a thread of its own (`DnsConfig::udp_thread`) until the future
/// is dropped or the socket fails for good.
pub(crate) async fn serve_on_thread(socket: UdpSocket, handler: Arc<Handler>) {
    let socket = match socket.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("DNS over UDP: {e}");
            return;
        }
    };
    // Dropped with this future: the thread's loop stops.
    let (_stop, stopped) = oneshot::channel::<()>();
    let (done, finished) = oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("miren-dns-udp".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return tracing::error!("DNS over UDP: no runtime for its thread: {e}"),
            };
            rt.block_on(async move {
                let socket = match UdpSocket::from_std(socket) {
                    Ok(s) => s,
                    Err(e) => return tracing::error!("DNS over UDP: {e}"),
                };
                tokio::select! {
                    () = serve(socket, handler) => {}
                    _ = stopped => {}
                }
            });
            drop(done);
        });
    match spawned {
        Ok(_) => {
            let _ = finished.await;
        }
        Err(e) => tracing::error!("DNS over UDP: no thread for it: {e}"),
    }
}

/// Serves `socket` until the future is dropped or the socket fails for good.
pub(crate) async fn serve(socket: UdpSocket, handler: Arc<Handler>) {
    let socket = Arc::new(socket);
    let fd = socket.as_raw_fd();
    let mut cache = AnswerCache::new();
    let mut zone = handler.zone.load_full();
    let mut bufs = vec![vec![0u8; MAX_DATAGRAM]; batch::BATCH];
    let mut got = Vec::with_capacity(batch::BATCH);
    let mut answers: Vec<Vec<u8>> = (0..batch::BATCH).map(|_| Vec::with_capacity(512)).collect();
    let mut to = Vec::with_capacity(batch::BATCH);
    let off_loop = Arc::new(Semaphore::new(SLOW_IN_FLIGHT));
    loop {
        if let Err(e) = socket.readable().await {
            tracing::error!("DNS over UDP stopped: {e}");
            return;
        }
        loop {
            match socket.try_io(Interest::READABLE, || {
                batch::receive(fd, &mut bufs, &mut got)
            }) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::NotConnected | ErrorKind::ConnectionAborted
                    ) =>
                {
                    tracing::error!("DNS over UDP stopped: {e}");
                    return;
                }
                Err(e) => {
                    tracing::debug!("receiving DNS queries: {e}");
                    continue;
                }
            }
            cache.follow(&mut zone, &handler.zone.load());
            to.clear();
            for &(i, n, src) in &got {
                let Some(packet) = bufs.get(i).and_then(|b| b.get(..n)) else {
                    continue;
                };
                if !answerable(src) {
                    continue;
                }
                if !question::is_plain(packet) {
                    off_the_loop(&socket, &handler, &off_loop, packet, src);
                    continue;
                }
                let caller = handler.caller(&zone, src.ip());
                let Some(out) = answers.get_mut(to.len()) else {
                    continue;
                };
                if let Some(answer) = cache.get(caller, packet) {
                    out.clear();
                    out.extend_from_slice(answer);
                    out[..2].copy_from_slice(&packet[..2]);
                    handler.stats.cached();
                } else if let Some(answer) = slow::answer(&handler, &zone, packet, src).await {
                    cache.insert(caller, packet, &answer);
                    *out = answer;
                } else {
                    continue;
                }
                handler.stats.answered_bytes(out);
                to.push(src);
            }
            flush(&socket, &answers[..to.len()], &to).await;
            // Other tasks of the thread (forwarded queries) get their turn.
            tokio::task::yield_now().await;
        }
    }
}

/// Sends `answers[i]` to `to[i]`, a batch per system call, waiting while the socket's
/// buffer is full.
async fn flush(socket: &UdpSocket, answers: &[Vec<u8>], to: &[SocketAddr]) {
    let fd = socket.as_raw_fd();
    let mut at = 0;
    while at < to.len() {
        match socket.try_io(Interest::WRITABLE, || {
            batch::send(fd, &answers[at..], &to[at..])
        }) {
            Ok(n) => at += n.max(1),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!("answering DNS queries: {e}");
                at += 1;
            }
        }
    }
}

/// The full path on a task of its own, if there is room for one.
fn off_the_loop(
    socket: &Arc<UdpSocket>,
    handler: &Arc<Handler>,
    slots: &Arc<Semaphore>,
    packet: &[u8],
    src: SocketAddr,
) {
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        tracing::debug!("dropped a DNS query from {src}: {SLOW_IN_FLIGHT} are being answered");
        return;
    };
    let (socket, handler, packet) = (socket.clone(), handler.clone(), packet.to_vec());
    tokio::spawn(async move {
        let zone = handler.zone.load_full();
        if let Some(answer) = slow::answer(&handler, &zone, &packet, src).await {
            handler.stats.answered_bytes(&answer);
            send(&socket, &answer, src).await;
        }
        drop(slot);
    });
}

async fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    let sent = match socket.try_send_to(bytes, to) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => socket.send_to(bytes, to).await,
        other => other,
    };
    if let Err(e) = sent {
        tracing::debug!("answering {to}: {e}");
    }
}

/// Whether a reply can go to `src` (as hickory-server checks): not port 0, not the
/// unspecified or broadcast address — spoofed sources a reply would only harm.
fn answerable(src: SocketAddr) -> bool {
    src.port() != 0
        && match src.ip() {
            IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_broadcast(),
            IpAddr::V6(ip) => !ip.is_unspecified(),
        }
}

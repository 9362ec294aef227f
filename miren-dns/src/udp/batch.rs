//! Datagrams a batch at a time: `recvmmsg` takes every queued query (up to
//! [`BATCH`]) in one system call and `sendmmsg` sends their answers in one, through
//! nix's safe wrappers. Under load dozens of queries wait per wake-up, and each
//! system call saved is kernel time the server does not spend per query.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;

/// Reads up to [`BATCH`] datagrams into `bufs` without blocking; `got` gets each one's
/// length and sender (a sender that is not an IP address is left out). WouldBlock
/// when none is queued.
pub(crate) fn receive(
    fd: RawFd,
    bufs: &mut [Vec<u8>],
    got: &mut Vec<(usize, usize, SocketAddr)>,
) -> io::Result<()> {
    got.clear();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(bufs.len(), None);
    let mut slices: Vec<[IoSliceMut<'_>; 1]> =
        bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
    let received = recvmmsg(
        fd,
        &mut headers,
        slices.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )?;
    for (i, msg) in received.enumerate() {
        if let Some(src) = msg.address.as_ref().and_then(socket_addr) {
            got.push((i, msg.bytes, src));
        }
    }
    Ok(())
}

/// Sends `answers[i]` to `to[i]` without blocking: how many went (at least one).
/// WouldBlock when the first could not go yet; an error of the first one's own (a
/// destination the kernel refuses) counts it as gone, so one bad address never holds
/// up the rest.
pub(crate) fn send(fd: RawFd, answers: &[Vec<u8>], to: &[SocketAddr]) -> io::Result<usize> {
    let n = answers.len().min(to.len());
    if n == 0 {
        return Ok(0);
    }
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(n, None);
    let slices: Vec<[IoSlice<'_>; 1]> = answers[..n].iter().map(|b| [IoSlice::new(b)]).collect();
    let to: Vec<Option<SockaddrStorage>> = to[..n]
        .iter()
        .map(|a| Some(SockaddrStorage::from(*a)))
        .collect();
    match sendmmsg(
        fd,
        &mut headers,
        slices.iter(),
        &to,
        [],
        MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(sent) => Ok(sent.count().max(1)),
        Err(nix::errno::Errno::EAGAIN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => {
            if let Some(Some(first)) = to.first() {
                tracing::debug!("answering {first}: {e}");
            }
            Ok(1)
        }
    }
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

//! The UDP fast path answers exactly what the full path answers: two servers on one
//! store, one with miren's UDP loop and answer cache, one with hickory-server's UDP
//! listener (the reference), asked the same bytes from the same addresses over real
//! loopback sockets, for random zones and random questions — plain ones the cache
//! serves, and odd ones (other types, EDNS options, flags, mangled bytes) it must
//! leave to the full path. Each question goes twice to the fast server (the second
//! answer comes from the cache) and the zone changes from case to case under the
//! same servers, so a stale cached answer would differ from the reference's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use miren_core::model::SandboxStatus;
use miren_core::store::keys;
use miren_core::store::{MemoryStore, Op, Progress, Store};
use miren_core::testing::{pool, sandbox};
use miren_dns::{Dns, DnsConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::net::UdpSocket;

const APPS: [&str; 3] = ["shop", "blog", "api"];
const SERVICES: [&str; 4] = ["web", "db", "worker", "cache"];
/// A, AAAA, SRV, TXT, SOA, ANY, MX, NS, CNAME.
const TYPES: [u16; 9] = [1, 28, 33, 16, 6, 255, 15, 2, 5];

/// One sandbox: app, service, address, status, its pool's port name.
type SandboxCase = (usize, usize, u8, usize, bool);

#[derive(Debug, Clone)]
struct QuestionCase {
    name: usize,
    app: usize,
    svc: usize,
    ip: u8,
    qtype: usize,
    /// Which letters are upper case.
    case: u64,
    edns: usize,
    flags: u8,
    /// Asked from 127.0.0.<from>, then from 127.0.0.<other>.
    from: u8,
    other: u8,
    /// One byte changed: (position, value).
    mangle: Option<(usize, u8)>,
    id: u16,
}

fn question() -> impl Strategy<Value = QuestionCase> {
    (
        (
            0usize..11,
            0usize..3,
            0usize..4,
            2u8..9,
            // Types past SRV, TXT and SOA (ANY, MX, NS, CNAME) less often.
            prop_oneof![3 => 0usize..5, 1 => 5usize..TYPES.len()],
        ),
        (any::<u64>(), 0usize..8, any::<u8>(), 1u8..9, 1u8..9),
        (
            proptest::option::weighted(0.1, (0usize..64, any::<u8>())),
            any::<u16>(),
        ),
    )
        .prop_map(
            |((name, app, svc, ip, qtype), (case, edns, flags, from, other), (mangle, id))| {
                QuestionCase {
                    name,
                    app,
                    svc,
                    ip,
                    qtype,
                    case: if case % 8 == 0 { case } else { 0 },
                    edns,
                    flags,
                    from,
                    other,
                    mangle,
                    id,
                }
            },
        )
}

/// A host address that identifies a sandbox (not 127.0.0.1) or an IPv6 one.
fn address(ip: u8) -> String {
    match ip {
        8 => "[fd00::8]:7000".to_string(),
        _ => format!("127.0.0.{ip}:7000"),
    }
}

impl QuestionCase {
    fn name(&self) -> String {
        let (app, svc) = (APPS[self.app], SERVICES[self.svc]);
        let ip = match self.ip {
            8 => "fd00--8".to_string(),
            n => format!("127-0-0-{n}"),
        };
        match self.name {
            0 => format!("{svc}.app.miren"),
            1 => format!("{svc}.{app}.app.miren"),
            2 => format!("_{svc}._tcp.app.miren"),
            3 => format!("_{svc}._tcp.{app}.app.miren"),
            4 => format!("_http._tcp.{app}.app.miren"),
            5 => format!("{ip}.{svc}.{app}.app.miren"),
            6 => "app.miren".to_string(),
            7 => format!("{app}.app.miren"),
            8 => "example.com".to_string(),
            9 => format!("nothing.here.{app}.app.miren"),
            _ => format!("_{svc}._udp.{app}.app.miren"),
        }
    }

    /// The query's bytes, as a client would send them.
    fn packet(&self) -> Vec<u8> {
        // RD, AD and CD as drawn; now and then the Z bit too.
        let f1 = self.flags & 0x01;
        let f2 = self.flags & 0x30 | if self.flags & 0xE0 == 0xE0 { 0x40 } else { 0 };
        let with_opt = self.edns > 2;
        let mut p = vec![0, 0, f1, f2, 0, 1, 0, 0, 0, 0, 0, u8::from(with_opt)];
        p[..2].copy_from_slice(&self.id.to_be_bytes());
        let mut letter = 0;
        for label in self.name().split('.') {
            p.push(label.len() as u8);
            for b in label.bytes() {
                let upper = b.is_ascii_alphabetic() && self.case >> (letter % 64) & 1 == 1;
                letter += 1;
                p.push(if upper { b.to_ascii_uppercase() } else { b });
            }
        }
        p.push(0);
        p.extend_from_slice(&TYPES[self.qtype].to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        match self.edns {
            0..=2 => {}
            // Plain; with DO; with a cookie option; version 1.
            3 | 4 => p.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]),
            5 => p.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0]),
            6 => p.extend_from_slice(&[
                0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8,
            ]),
            _ => p.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 1, 0, 0, 0, 0]),
        }
        if let Some((at, value)) = self.mangle {
            // Past the id; never the QR bit (a response gets no answer at all).
            let at = 2 + at % (p.len() - 2);
            p[at] = if at == 2 { value & 0x7F } else { value };
        }
        p
    }
}

struct Servers {
    store: Arc<MemoryStore>,
    fast: SocketAddr,
    reference: SocketAddr,
    progress: [Progress; 2],
    written: Vec<String>,
}

impl Servers {
    async fn start() -> Servers {
        let store = Arc::new(MemoryStore::new());
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let mut at = vec![];
        let mut progress = vec![];
        for fast_path in [true, false] {
            let config = DnsConfig {
                fast_path,
                forward_timeout: Duration::from_millis(200),
                ..DnsConfig::default()
            };
            let dns = Dns::bind(any, store.clone(), config)
                .await
                .expect("DNS binds");
            at.push(dns.local_addr());
            progress.push(dns.progress());
            tokio::spawn(dns.run());
        }
        let [p0, p1]: [Progress; 2] = progress.try_into().unwrap_or_else(|_| unreachable!());
        Servers {
            store,
            fast: at[0],
            reference: at[1],
            progress: [p0, p1],
            written: vec![],
        }
    }

    /// Replaces the store's apps with these sandboxes (and a pool for each service
    /// named, plus one with no sandbox), waiting until both servers answer from them.
    async fn zone(&mut self, sandboxes: &[SandboxCase], idle: usize) {
        let mut ops: Vec<Op> = self.written.drain(..).map(Op::delete).collect();
        let mut pools = std::collections::BTreeMap::new();
        let (idle_app, idle_svc) = (APPS[idle % 3], SERVICES[idle % 4]);
        pools.insert((idle_app, idle_svc), (pool(idle_app, idle_svc), false));
        for &(app, svc, ip, status, named) in sandboxes {
            let (app, svc) = (APPS[app], SERVICES[svc]);
            let (p, _) = pools
                .entry((app, svc))
                .or_insert_with(|| (pool(app, svc), named));
            let status = [
                SandboxStatus::Running,
                SandboxStatus::Pending,
                SandboxStatus::Stopping,
            ][status];
            let mut s = sandbox(app, svc, Some(&address(ip)), status);
            s.pool = p.id.clone();
            let key = keys::sandbox(app, &s.id);
            ops.push(Op::put(key.clone(), keys::encode(&s)));
            self.written.push(key);
        }
        for ((app, _), (mut p, named)) in pools {
            if named {
                p.spec.port_name = Some("http".into());
            }
            let key = keys::pool(app, &p.id);
            ops.push(Op::put(key.clone(), keys::encode(&p)));
            self.written.push(key);
        }
        self.store.txn(ops).await.expect("store write");
        for p in &self.progress {
            let caught_up = p.caught_up(Duration::from_secs(5)).await;
            assert!(caught_up.expect("revision"), "the zone caught up");
        }
    }
}

/// Sends `packet` from 127.0.0.<from> to `server`; its answer, if one comes.
async fn ask(server: SocketAddr, from: u8, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((IpAddr::from([127, 0, 0, from]), 0))
        .await
        .expect("loopback I/O");
    socket.send_to(packet, server).await.expect("loopback I/O");
    let mut buf = vec![0u8; 4096];
    let got = tokio::time::timeout(Duration::from_millis(400), socket.recv_from(&mut buf)).await;
    let (n, _) = got.ok()?.expect("loopback I/O");
    Some(buf[..n].to_vec())
}

#[test]
fn the_fast_path_answers_what_the_full_path_answers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // The runner wants a `Fn`: the servers and counts are behind cells.
    let servers = std::cell::RefCell::new(rt.block_on(Servers::start()));
    let zone = || {
        proptest::collection::vec(
            (0usize..3, 0usize..4, 2u8..9, 0usize..3, any::<bool>()),
            0..10,
        )
    };
    let strategy = (
        [zone(), zone()],
        0usize..12,
        proptest::collection::vec(question(), 1..16),
    );
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let (asked, answered) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let result = runner.run(&strategy, |(zones, idle, questions)| {
        let mut servers = servers.borrow_mut();
        rt.block_on(async {
            // The same questions about one zone, then about another: an answer
            // cached for the first is wrong for the second.
            for zone in &zones {
                servers.zone(zone, idle).await;
                for q in &questions {
                    let packet = q.packet();
                    // From one address twice (the second from the cache, with another
                    // id), then from another (another caller, or another app's, may
                    // get another answer), then with the RD bit the other way.
                    let mut again = packet.clone();
                    again[1] ^= 0x5A;
                    let mut rd = packet.clone();
                    rd[2] ^= 0x01;
                    for (from, packet) in [
                        (q.from, &packet),
                        (q.from, &again),
                        (q.other, &packet),
                        (q.from, &rd),
                    ] {
                        let expected = ask(servers.reference, from, packet).await;
                        let got = ask(servers.fast, from, packet).await;
                        asked.set(asked.get() + 1);
                        answered.set(answered.get() + usize::from(expected.is_some()));
                        prop_assert_eq!(&got, &expected, "asked from 127.0.0.{}: {:?}", from, q);
                    }
                }
            }
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The comparison means something only if most questions got answers.
    let (asked, answered) = (asked.get(), answered.get());
    assert!(
        answered * 10 >= asked * 9,
        "{answered} of {asked} questions answered"
    );
}

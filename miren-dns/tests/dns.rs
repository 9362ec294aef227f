//! miren-dns over real UDP and TCP on loopback. Sandboxes are simulated by the source
//! address: a client socket bound to 127.0.0.x asks as the sandbox with that address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Message, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use miren_core::model::{Sandbox, SandboxId, SandboxPool, SandboxStatus};
use miren_core::store::keys;
use miren_core::store::{MemoryStore, Op, Progress, Store};
use miren_core::testing::{self, pool};
use miren_dns::{Dns, DnsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Sandboxes of `shop` ask from 127.0.0.2/.3, `blog`'s from 127.0.0.4; 127.0.0.1 is an
/// operator.
const SHOP_WEB: &str = "127.0.0.2";
const SHOP_DB: &str = "127.0.0.3";
const BLOG_WEB: &str = "127.0.0.4";
const OPERATOR: &str = "127.0.0.1";

struct Fixture {
    store: Arc<MemoryStore>,
    addr: SocketAddr,
    db: Sandbox,
    /// Which store revision the zone reflects.
    progress: Progress,
    _task: tokio::task::JoinHandle<()>,
}

impl Fixture {
    /// Writes a sandbox and waits until the zone has it.
    async fn put_sandbox(&self, app: &str, s: &Sandbox) {
        put_sandbox(&self.store, app, s).await;
        let caught_up = self.progress.caught_up(Duration::from_secs(5)).await;
        assert!(caught_up.expect("revision"), "the zone caught up");
    }
}

fn sandbox(app: &str, p: &SandboxPool, addr: &str) -> Sandbox {
    let mut s = testing::sandbox(app, &p.service, Some(addr), SandboxStatus::Running);
    s.pool = p.id.clone();
    s
}

async fn put_sandbox(store: &MemoryStore, app: &str, s: &Sandbox) {
    store
        .txn(vec![Op::put(keys::sandbox(app, &s.id), keys::encode(s))])
        .await
        .expect("store write");
}

async fn start(upstream: Option<SocketAddr>) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let (web, db, blog) = (
        pool("shop", "web"),
        pool("shop", "postgres"),
        pool("blog", "web"),
    );
    let web_sb = sandbox("shop", &web, &format!("{SHOP_WEB}:8080"));
    let db_sb = sandbox("shop", &db, &format!("{SHOP_DB}:5432"));
    let blog_sb = sandbox("blog", &blog, &format!("{BLOG_WEB}:8080"));
    let mut ops = vec![];
    for (app, p) in [("shop", &web), ("shop", &db), ("blog", &blog)] {
        ops.push(Op::put(keys::pool(app, &p.id), keys::encode(p)));
    }
    for (app, s) in [("shop", &web_sb), ("shop", &db_sb), ("blog", &blog_sb)] {
        ops.push(Op::put(keys::sandbox(app, &s.id), keys::encode(s)));
    }
    store.txn(ops).await.expect("store write");
    let config = DnsConfig {
        upstream,
        forward_timeout: Duration::from_millis(500),
        ..DnsConfig::default()
    };
    let dns = Dns::bind(
        "127.0.0.1:0".parse().expect("an address"),
        store.clone(),
        config,
    )
    .await
    .expect("DNS server binds");
    let addr = dns.local_addr();
    Fixture {
        store,
        addr,
        db: db_sb,
        progress: dns.progress(),
        _task: tokio::spawn(dns.run()),
    }
}

fn query(name: &str, t: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("a valid name"),
        t,
    ));
    m
}

/// Asks over UDP from `from`, waiting at most 2 s.
async fn udp(server: SocketAddr, from: &str, name: &str, t: RecordType) -> Message {
    let socket = UdpSocket::bind((from.parse::<std::net::IpAddr>().expect("an address"), 0))
        .await
        .expect("loopback I/O");
    let q = query(name, t);
    socket
        .send_to(&q.to_vec().expect("encodable"), server)
        .await
        .expect("loopback I/O");
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer to {name} from {from}"))
        .expect("loopback I/O");
    let m = Message::from_vec(&buf[..n]).expect("a DNS message");
    assert_eq!(m.metadata.id, q.metadata.id);
    m
}

/// Asks over TCP (2-byte length prefix) from `from`.
async fn tcp(server: SocketAddr, from: &str, names: &[&str]) -> Vec<Message> {
    let sock = tokio::net::TcpSocket::new_v4().expect("loopback I/O");
    sock.bind(format!("{from}:0").parse().expect("an address"))
        .expect("loopback I/O");
    let mut conn: TcpStream = sock.connect(server).await.expect("loopback I/O");
    let mut out = vec![];
    // Several queries on one connection, as resolvers do after a truncated answer.
    for name in names {
        let q = query(name, RecordType::A).to_vec().expect("encodable");
        conn.write_all(&(q.len() as u16).to_be_bytes())
            .await
            .expect("loopback I/O");
        conn.write_all(&q).await.expect("loopback I/O");
        let len = tokio::time::timeout(Duration::from_secs(2), conn.read_u16())
            .await
            .expect("TCP answer in time")
            .expect("loopback I/O");
        let mut buf = vec![0u8; len as usize];
        conn.read_exact(&mut buf).await.expect("loopback I/O");
        out.push(Message::from_vec(&buf).expect("a DNS message"));
    }
    out
}

fn addrs(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.to_string(),
            RData::AAAA(a) => a.to_string(),
            RData::SRV(s) => format!("{}:{}", s.target, s.port),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_sandbox_resolves_its_apps_services_over_udp_and_tcp() {
    let f = start(None).await;
    let m = udp(f.addr, SHOP_WEB, "postgres.app.miren.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(addrs(&m), [SHOP_DB]);
    assert_eq!(m.answers[0].ttl, 5);

    let m = udp(f.addr, SHOP_DB, "_web._tcp.app.miren.", RecordType::SRV).await;
    assert_eq!(addrs(&m), ["127-0-0-2.web.shop.app.miren.:8080"]);
    assert_eq!(m.additionals.len(), 1, "the target's address comes along");

    let answers = tcp(
        f.addr,
        SHOP_WEB,
        &[
            "postgres.app.miren.",
            "web.app.miren.",
            "web.shop.app.miren.",
        ],
    )
    .await;
    let got: Vec<Vec<String>> = answers.iter().map(addrs).collect();
    assert_eq!(got, [vec![SHOP_DB], vec![SHOP_WEB], vec![SHOP_WEB]]);

    // blog's sandbox: its own web under the same short name; shop's names refused.
    assert_eq!(
        addrs(&udp(f.addr, BLOG_WEB, "web.app.miren.", RecordType::A).await),
        [BLOG_WEB]
    );
    let m = udp(f.addr, BLOG_WEB, "postgres.shop.app.miren.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
    let m = udp(f.addr, BLOG_WEB, "postgres.app.miren.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities.len(), 1, "NXDOMAIN carries the SOA");

    // An operator uses the qualified names.
    assert_eq!(
        addrs(&udp(f.addr, OPERATOR, "postgres.shop.app.miren.", RecordType::A).await),
        [SHOP_DB]
    );
}

#[tokio::test]
async fn a_stopped_sandbox_is_gone_from_answers_within_a_second() {
    let f = start(None).await;
    assert_eq!(
        addrs(&udp(f.addr, SHOP_WEB, "postgres.app.miren.", RecordType::A).await),
        [SHOP_DB]
    );
    let mut stopped = f.db.clone();
    stopped.status = SandboxStatus::Stopped;
    let t = Instant::now();
    put_sandbox(&f.store, "shop", &stopped).await;
    loop {
        let m = udp(f.addr, SHOP_WEB, "postgres.app.miren.", RecordType::A).await;
        if m.answers.is_empty() {
            // The service still exists (its pool does): NODATA, not NXDOMAIN.
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still answered after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // And back when a new one is running.
    let mut again = f.db.clone();
    again.id = SandboxId::new("shop", "postgres");
    again.address = Some("127.0.0.5:5432".parse().expect("an address"));
    put_sandbox(&f.store, "shop", &again).await;
    let t = Instant::now();
    while addrs(&udp(f.addr, SHOP_WEB, "postgres.app.miren.", RecordType::A).await) != ["127.0.0.5"]
    {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the new instance is not answered within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_draining_instance_leaves_the_answers_at_once_but_can_still_ask() {
    let f = start(None).await;
    let mut draining = f.db.clone();
    draining.status = SandboxStatus::Stopping;
    draining.reason = Some("drained: no active version uses it any more".into());
    f.put_sandbox("shop", &draining).await;
    let m = udp(f.addr, SHOP_WEB, "postgres.app.miren.", RecordType::A).await;
    assert!(m.answers.is_empty(), "answered a draining instance: {m:?}");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "NODATA");
    let srv = udp(
        f.addr,
        SHOP_WEB,
        "_postgres._tcp.app.miren.",
        RecordType::SRV,
    )
    .await;
    assert!(
        srv.answers.is_empty(),
        "SRV of a draining instance: {srv:?}"
    );
    // It still runs, and may still look its app's services up.
    assert_eq!(
        addrs(&udp(f.addr, SHOP_DB, "web.app.miren.", RecordType::A).await),
        [SHOP_WEB]
    );
}

#[tokio::test]
async fn it_answers_on_more_addresses_while_it_runs() {
    let store = Arc::new(MemoryStore::new());
    let p = pool("shop", "postgres");
    let db = sandbox("shop", &p, &format!("{SHOP_DB}:5432"));
    let web = sandbox("shop", &pool("shop", "web"), &format!("{SHOP_WEB}:8080"));
    store
        .txn(vec![
            Op::put(keys::pool("shop", &p.id), keys::encode(&p)),
            Op::put(keys::sandbox("shop", &db.id), keys::encode(&db)),
            Op::put(keys::sandbox("shop", &web.id), keys::encode(&web)),
        ])
        .await
        .expect("store write");
    let dns = Dns::bind(
        "127.0.0.1:0".parse().expect("an address"),
        store,
        DnsConfig::default(),
    )
    .await
    .expect("DNS server binds");
    let listeners = dns.listeners();
    let task = tokio::spawn(dns.run());
    // As on an app network's gateway: the same answers, for the same callers.
    let extra = listeners
        .listen("127.0.0.9:0".parse().expect("an address"), None)
        .expect("listens");
    assert_eq!(
        listeners.listen(extra, None).expect("again"),
        extra,
        "once is enough"
    );
    assert_eq!(
        addrs(&udp(extra, SHOP_WEB, "postgres.app.miren.", RecordType::A).await),
        [SHOP_DB]
    );
    // For an app network: a caller from its subnet is that app's, known or not yet.
    let blogs = miren_dns::AppSubnet {
        app: "blog".into(),
        addr: "127.0.3.0".parse().expect("an address"),
        prefix: 24,
    };
    let gateway = listeners
        .listen("127.0.3.1:0".parse().expect("an address"), Some(blogs))
        .expect("listens");
    let m = udp(
        gateway,
        "127.0.3.77",
        "postgres.shop.app.miren.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::Refused,
        "blog's, not an operator"
    );
    let m = udp(gateway, OPERATOR, "postgres.shop.app.miren.", RecordType::A).await;
    assert_eq!(
        addrs(&m),
        [SHOP_DB],
        "outside the subnet: known by its address"
    );
    // Stopped with the server: its extra listeners stop as the server's task goes (on
    // their own threads, a moment later), then answer nothing.
    task.abort();
    let _ = task.await;
    let socket = UdpSocket::bind("127.0.0.2:0").await.expect("loopback I/O");
    let q = query("postgres.app.miren.", RecordType::A);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        socket
            .send_to(&q.to_vec().expect("encodable"), extra)
            .await
            .expect("loopback I/O");
        let mut buf = [0u8; 512];
        let answer =
            tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await;
        if answer.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still answering 5 s after the server stopped"
        );
    }
}

/// An upstream resolver on loopback: answers every question with 192.0.2.7 and counts
/// them.
async fn fake_upstream() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("loopback I/O");
    let addr = socket.local_addr().expect("loopback I/O");
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let q = Message::from_vec(&buf[..n]).expect("a DNS message");
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_available = true;
            r.add_queries(q.queries.clone());
            let name = q.queries[0].name().clone();
            r.add_answer(Record::from_rdata(
                name,
                300,
                RData::A(A([192, 0, 2, 7].into())),
            ));
            socket
                .send_to(&r.to_vec().expect("encodable"), from)
                .await
                .expect("loopback I/O");
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (addr, served, task)
}

#[tokio::test]
async fn out_of_zone_names_are_forwarded_for_sandboxes_only() {
    let (upstream, served, _upstream) = fake_upstream().await;
    let f = start(Some(upstream)).await;
    let m = udp(f.addr, SHOP_WEB, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&m), ["192.0.2.7"]);
    assert!(m.metadata.recursion_available);
    assert!(!m.metadata.authoritative);
    // Not an open resolver: an outsider is refused and the upstream never asked.
    let m = udp(f.addr, OPERATOR, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "only the sandbox's question went upstream"
    );
}

#[tokio::test]
async fn a_dead_upstream_gives_servfail_not_silence() {
    // A port nothing listens on: the upstream is unreachable.
    let dead = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("loopback I/O")
        .local_addr()
        .expect("loopback I/O");
    let f = start(Some(dead)).await;
    let t = Instant::now();
    let m = udp(f.addr, SHOP_WEB, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the 500 ms forward timeout bounds it, well before a stub resolver's 5 s retry"
    );
    let f = start(None).await;
    let m = udp(f.addr, SHOP_WEB, "example.com.", RecordType::A).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "no upstream configured"
    );
}

#[tokio::test]
async fn garbage_does_not_stop_the_server() {
    let f = start(None).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("loopback I/O");
    for junk in [
        &b""[..],
        b"\x00",
        &[0xffu8; 12],
        &[
            0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c,
        ][..],
        &[7u8; 600],
    ] {
        socket.send_to(junk, f.addr).await.expect("loopback I/O");
    }
    let mut conn = TcpStream::connect(f.addr).await.expect("loopback I/O");
    conn.write_all(&[0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .expect("loopback I/O");
    drop(conn);
    assert_eq!(
        addrs(&udp(f.addr, OPERATOR, "postgres.shop.app.miren.", RecordType::A).await),
        [SHOP_DB]
    );
}

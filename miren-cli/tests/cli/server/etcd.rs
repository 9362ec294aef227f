//! `miren server --store etcd://…`: the cluster state in a real etcd (started here on
//! loopback): one node leads, another stands by and takes over when it is lost, with
//! the deployed code copied through the store. Skipped, saying so, where etcd is not
//! installed; `MIREN_TEST_ETCD=1` (CI) requires it.

use std::process::Stdio;

use miren_core::store::{Store, keys};
use miren_dns::proto::op::ResponseCode;
use miren_dns::proto::rr::RecordType;
use miren_store_etcd::testing::{Cluster, etcd_installed};

use super::{TestServer, demo_copy, get, wait_exit};

/// `n` etcd members on loopback, and the `--store` address of prefix `prefix` on them.
fn etcd_cluster(n: usize, prefix: &str) -> (tokio::runtime::Runtime, Cluster, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let etcd = rt.block_on(Cluster::start(n));
    let members: Vec<String> = etcd
        .address(prefix)
        .endpoints
        .iter()
        .map(|e| e.trim_start_matches("http://").to_string())
        .collect();
    let url = format!("etcd://{}/{prefix}", members.join(","));
    (rt, etcd, url)
}

/// A node standing by while `leader` (named `a`) leads: a data dir of its own with a
/// copy of the cluster's secret key (as the operator gives every node). Where its proxy
/// and DNS serve meanwhile.
fn standby(leader: &TestServer, url: &str, args: &[&str]) -> (super::Launch, String, String) {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        leader.data.path().join("secrets.key"),
        data.path().join("secrets.key"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut all = vec!["--store", url];
    all.extend_from_slice(args);
    let mut node = TestServer::launch(
        data,
        &all,
        std::process::Command::new(assert_cmd::cargo::cargo_bin("miren")),
    );
    node.wait_for("standing by: node `a` leads the cluster at");
    let line = node.startup.last().cloned().unwrap_or_default();
    let addr = |marker: &str| {
        super::after(&line, marker)
            .map(|a| a.trim_end_matches(')').to_string())
            .unwrap_or_else(|| panic!("{line}"))
    };
    let (http, dns) = (addr("proxy (http://"), addr("DNS ("));
    (node, http, dns)
}

#[test]
fn on_etcd_one_node_leads_a_standby_takes_over_with_the_code_and_a_node_that_loses_the_lead_stops()
{
    if !etcd_installed() {
        return;
    }
    let (rt, mut etcd, url) = etcd_cluster(1, "it");

    let mut a = TestServer::start(&["--store", &url, "--node", "a", "--node-addr", "127.0.1.1"]);
    assert!(
        a.startup
            .iter()
            .any(|l| l.contains("node `a` leads the cluster in etcd")),
        "{:?}",
        a.startup
    );
    let app = demo_copy();
    let v1 = a.deploy(app.path());
    a.ok(["route", "add", "demo.example", "--app", "demo"]);
    assert_eq!(get(&a.http, "demo.example").0, 200);
    // Its instances with a port (web, store) are recorded at the address other nodes
    // reach it at.
    let on = |s: &TestServer| -> Vec<String> {
        let list = s.json(&["sandbox", "list", "-a", "demo", "--status", "running"]);
        list.as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                x["address"]
                    .as_str()
                    .unwrap_or_default()
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .filter(|ip| !ip.is_empty())
            .collect()
    };
    assert_eq!(on(&a), ["127.0.1.1"; 2]);
    // The state is in etcd, under the prefix given.
    let store = rt.block_on(etcd.store("it"));
    let in_etcd = rt.block_on(store.get(&keys::app("demo")));
    assert!(matches!(in_etcd, Ok(Some(_))), "{in_etcd:?}");

    // A second node stands by while `a` leads; meanwhile its proxy and DNS serve the
    // cluster's apps, from the store.
    let (b, b_http, b_dns) = standby(&a, &url, &["--node", "b", "--node-addr", "127.0.1.2"]);
    // (the same instance: the visit counter goes on from a's answer to b's)
    let (_, through_a) = get(&a.http, "demo.example");
    let (status, through_b) = get(&b_http, "demo.example");
    assert_eq!(status, 200, "{through_b}");
    let visit = |body: &str| {
        super::after(body, "visit ")
            .and_then(|n| n.trim_end_matches(';').parse::<u32>().ok())
            .unwrap_or_else(|| panic!("{body}"))
    };
    assert_eq!(visit(&through_b), visit(&through_a) + 1);
    // `node list`: a leads and runs the demo's three sandboxes, b stands by.
    let nodes = a.json(&["node", "list"]);
    let row = |v: &serde_json::Value, i: usize| {
        (
            v[i]["name"].as_str().unwrap_or_default().to_string(),
            v[i]["status"].as_str().unwrap_or_default().to_string(),
            v[i]["sandboxes"].as_u64(),
            v[i]["address"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(
        row(&nodes, 0),
        ("a".into(), "leading".into(), Some(3), a.http.clone())
    );
    assert_eq!(
        row(&nodes, 1),
        ("b".into(), "standing by".into(), Some(0), b_http.clone())
    );
    let (code, a_dns) = super::dig(&a.dns, "web.demo.app.miren", RecordType::A);
    assert_eq!(code, ResponseCode::NoError);
    assert!(!a_dns.is_empty(), "web's instances");
    assert_eq!(
        super::dig(&b_dns, "web.demo.app.miren", RecordType::A),
        (code, a_dns)
    );

    // `a`'s machine is lost (kill -9 of the server and of what it ran): `b` leads
    // within the lease's 5 s and a little, copies the deployed code from the cluster
    // store, and serves the deploy `a` made.
    let lost = std::time::Instant::now();
    let _ = a.child.kill();
    let _ = a.child.wait();
    super::kill_processes_under(a.data.path());
    let b = b.ready();
    assert_eq!(b.http, b_http, "the same proxy goes on serving");
    let took = lost.elapsed();
    assert!(
        took < std::time::Duration::from_secs(10),
        "b led after {took:?}"
    );
    assert!(
        b.startup
            .iter()
            .any(|l| l.contains("copied the code of 1 version(s) from the cluster store")),
        "{:#?}",
        b.startup
    );
    let apps = b.until(&["app", "list"], |v| v[0]["status"] == "running");
    assert_eq!(apps[0]["version"], v1.as_str(), "the deploy survived");
    assert_eq!(b.json(&["route", "list"])[0]["host"], "demo.example");
    let nodes = b.until(&["node", "list"], |v| v[1]["sandboxes"] == 3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while on(&b) != ["127.0.1.2"; 2] {
        assert!(std::time::Instant::now() < deadline, "{:?}", on(&b));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(row(&nodes, 0).1, "lost", "a's heartbeat is gone: {nodes:#}");
    assert_eq!(row(&nodes, 1).1, "leading");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get(&b.http, "demo.example").0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "b never served the app"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(a);

    // A node whose secret key is not the cluster's does not start, and says what to do.
    let stranger = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(stranger.path().join("secrets.key"), [7u8; 32])
        .unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("miren"))
        .args([
            "server",
            "--runtime",
            "process",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--dns-addr", "127.0.0.1:0", "--store", &url, "--node", "c"])
        .arg("--data-dir")
        .arg(stranger.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("is not the cluster's secret key"), "{said}");
    let mut again = b;

    // etcd gone: once its lease would have lapsed, the node knows it may no longer
    // lead, and stops (exit 1) instead of acting on a cluster another node may lead.
    etcd.kill(0);
    let status = wait_exit(&mut again.child, 90);
    assert_eq!(status.code(), Some(1));
    let lines: Vec<String> = again.log.try_iter().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("this node no longer leads the cluster")),
        "{lines:#?}"
    );
}

#[test]
fn a_server_on_its_own_is_one_node() {
    let server = TestServer::start(&[]);
    let nodes = server.json(&["node", "list"]);
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes:#}");
    assert_eq!(nodes[0]["status"], "ready");
    assert_eq!(nodes[0]["address"], server.http.as_str());
    assert_eq!(nodes[0]["sandboxes"], 0);
    let table = server.ok(["node", "list"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(server.stop().success());
}

/// Until one of `nodes` logs that it leads; which one (its other lines kept).
fn first_to_lead(nodes: &mut [super::Launch], within: std::time::Duration) -> usize {
    let deadline = std::time::Instant::now() + within;
    loop {
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Ok(l) = n.stderr.try_recv() {
                let leads = l.contains("leads the cluster in etcd");
                n.startup.push(l);
                if leads {
                    return i;
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no node led within {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn three_nodes_on_three_etcd_members_fail_over_under_load_and_outlive_a_member() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    if !etcd_installed() {
        return;
    }
    let (_rt, mut etcd, url) = etcd_cluster(3, "three");

    let mut a = TestServer::start(&["--store", &url, "--node", "a"]);
    let app = demo_copy();
    a.deploy(app.path());
    a.ok(["route", "add", "demo.example", "--app", "demo"]);
    let (mut standbys, mut proxies) = (Vec::new(), Vec::new());
    for name in ["b", "c"] {
        let (node, http, _) = standby(&a, &url, &["--node", name]);
        standbys.push(node);
        proxies.push(http);
    }

    // A bounded load loop against c's proxy (at most 40 s, 4,000 requests).
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, target) = (stop.clone(), proxies[1].clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed)
                && seen.len() < 4000
                && started.elapsed() < Duration::from_secs(40)
            {
                let (status, _) = get(&target, "demo.example");
                seen.push((Instant::now(), status));
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    // kill -9 of the leader and of what it ran (its machine lost).
    let killed = Instant::now();
    let _ = a.child.kill();
    let _ = a.child.wait();
    super::kill_processes_under(a.data.path());
    let i = first_to_lead(&mut standbys, Duration::from_secs(10));
    let led = killed.elapsed();
    let leader = standbys.remove(i).ready();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&proxies[1], "demo.example").0 != 200 {
        assert!(Instant::now() < deadline, "the app never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let seen = load
        .join()
        .unwrap_or_else(|_| panic!("the load loop panicked"));
    assert!(led < Duration::from_secs(10), "a new leader after {led:?}");
    let before: Vec<u16> = seen
        .iter()
        .filter(|(t, _)| *t < killed)
        .map(|(_, s)| *s)
        .collect();
    assert!(
        !before.is_empty() && before.iter().all(|s| *s == 200),
        "{before:?}"
    );
    let after: Vec<u16> = seen
        .iter()
        .filter(|(t, _)| *t > back)
        .map(|(_, s)| *s)
        .collect();
    assert!(!after.is_empty(), "requests after the app came back");
    assert!(
        after.iter().all(|s| *s == 200),
        "a request failed after the takeover: {after:?}"
    );

    // One etcd member of three lost: the cluster goes on writing.
    etcd.kill(2);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = leader
            .cli()
            .args(["route", "add", "more.example", "--app", "demo"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The leader's proxy may have been following the member killed: it follows
    // another within a few seconds (the API waits up to 5 s for it, then answers).
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&leader.http, "more.example").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the new route never reached the proxy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(standbys);
    drop(a);
}

//! `miren server --store etcd://…`: the cluster state in a real etcd (started here on
//! loopback), one node leading. Skipped, saying so, where etcd is not installed;
//! `MIREN_TEST_ETCD=1` (CI) requires it.

use std::process::Stdio;

use miren_core::store::{Store, keys};
use miren_store_etcd::testing::{Cluster, etcd_installed};

use super::{TestServer, demo_copy, get, wait_exit};

#[test]
fn a_server_on_etcd_keeps_its_state_there_leads_alone_and_stops_when_it_no_longer_leads() {
    if !etcd_installed() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut etcd = rt.block_on(Cluster::start(1));
    let address = etcd.address("it");
    let url = format!(
        "etcd://{}/it",
        address.endpoints[0].trim_start_matches("http://")
    );

    let mut a = TestServer::start(&["--store", &url, "--node", "a"]);
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
    // The state is in etcd, under the prefix given.
    let store = rt.block_on(etcd.store("it"));
    let in_etcd = rt.block_on(store.get(&keys::app("demo")));
    assert!(matches!(in_etcd, Ok(Some(_))), "{in_etcd:?}");

    // A second node finds `a` leading: it does not start, and says why.
    let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("miren"))
        .args([
            "server",
            "--runtime",
            "process",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--dns-addr", "127.0.0.1:0", "--store", &url, "--node", "b"])
        .arg("--data-dir")
        .arg(other.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("node `a` leads the cluster at"), "{said}");

    // kill -9, and the same node again on its data dir: it leads at once (its old
    // lease has not lapsed yet) and serves the deploy it made.
    let _ = a.child.kill();
    let _ = a.child.wait();
    let data = std::mem::replace(
        &mut a.data,
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
    );
    drop(a);
    let mut again = TestServer::start_in(data, &["--store", &url, "--node", "a"]);
    let apps = again.until(&["app", "list"], |v| v[0]["status"] == "running");
    assert_eq!(apps[0]["version"], v1.as_str(), "the deploy survived");
    assert_eq!(get(&again.http, "demo.example").0, 200);

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

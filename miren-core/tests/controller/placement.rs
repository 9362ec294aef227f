//! The unchanged controller on a cluster of three nodes, through the store alone: its
//! runtime places sandboxes (`PlacementRuntime`), an agent on each node runs them on
//! that node's (fake) runtime and reports back. Spread, disk pinning, and a lost
//! node's sandboxes replaced on the others.

use std::sync::Arc;
use std::time::Duration;

use miren_core::artifact::{ArtifactStore, replica};
use miren_core::config::resolve;
use miren_core::controller::{Controller, ControllerConfig, DeployRequest, Snapshot};
use miren_core::model::{SandboxStatus, SourceInfo};
use miren_core::placement::{Agent, AgentParts, PlacementRuntime, records};
use miren_core::runtime::fake::FakeRuntime;
use miren_core::secret::SecretKey;
use miren_core::store::{MemoryStore, Op, Store, keys};

const APP: &str = r#"
name = "shop"

[services.web]
command = "web"
[services.web.concurrency]
mode = "fixed"
num_instances = 3

[services.db]
command = "db"
port = 5432
[[services.db.disks]]
name = "data"
mount_path = "/data"
size_gb = 1
"#;

struct Node {
    rt: FakeRuntime,
    _agent: Agent,
    _dir: tempfile::TempDir,
}

struct Cluster {
    ctl: Controller,
    store: Arc<MemoryStore>,
    nodes: Vec<(&'static str, Node)>,
}

async fn cluster() -> Cluster {
    let store = Arc::new(MemoryStore::new());
    let key = Arc::new(SecretKey::from_bytes(&SecretKey::generate()));
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        store
            .txn(vec![Op::put(keys::alive(name), b"alive".to_vec())])
            .await
            .expect("heartbeat");
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = FakeRuntime::new();
        let agent = Agent::start(AgentParts {
            store: store.clone(),
            key: key.clone(),
            node: name.to_string(),
            local: Arc::new(rt.clone()),
            artifacts: ArtifactStore::open(dir.path()).expect("artifacts"),
            logs: Arc::new(()),
        })
        .await
        .expect("agent");
        nodes.push((
            name,
            Node {
                rt,
                _agent: agent,
                _dir: dir,
            },
        ));
    }
    // Node a leads: its controller runs on the placement runtime.
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let artifacts = ArtifactStore::open(leader_dir.path()).expect("artifacts");
    let placement =
        PlacementRuntime::start(store.clone(), key, "a", Arc::new(nodes[0].1.rt.clone()));
    let mut cfg = ControllerConfig::new(artifacts.clone());
    cfg.stop_grace = Duration::from_millis(10);
    cfg.code_in_store = true;
    let ctl = Controller::start(store.clone(), Arc::new(placement), cfg)
        .await
        .expect("controller");
    let digest = artifacts.put(b"code").expect("put").digest;
    replica::publish(store.as_ref(), &artifacts, &digest)
        .await
        .expect("publish");
    ctl.deploy(DeployRequest {
        config: resolve(APP).expect("valid"),
        artifact_digest: digest,
        source: SourceInfo::default(),
    })
    .await
    .expect("deploy");
    std::mem::forget(leader_dir);
    Cluster { ctl, store, nodes }
}

impl Cluster {
    async fn until(&self, what: &str, cond: impl Fn(&Snapshot) -> bool) -> Snapshot {
        match self
            .ctl
            .wait_for(Some("shop"), Duration::from_secs(120), cond)
            .await
        {
            Ok(Some(s)) => s,
            _ => panic!(
                "timed out waiting for: {what}\n{:#?}",
                self.ctl.snapshot(Some("shop")).await
            ),
        }
    }

    fn rt(&self, node: &str) -> &FakeRuntime {
        &self
            .nodes
            .iter()
            .find(|(n, _)| *n == node)
            .expect("node")
            .1
            .rt
    }
}

fn running_on<'a>(s: &'a Snapshot, service: &str) -> Vec<&'a str> {
    let mut nodes: Vec<&str> = s
        .sandboxes
        .iter()
        .filter(|x| x.service == service && x.status == SandboxStatus::Running)
        .filter_map(|x| x.node.as_deref())
        .collect();
    nodes.sort_unstable();
    nodes
}

#[tokio::test]
async fn sandboxes_spread_over_the_nodes_and_a_lost_nodes_start_on_the_others() {
    let c = cluster().await;
    let s = c
        .until("3 web and the db running", |s| {
            running_on(s, "web").len() == 3 && running_on(s, "db").len() == 1
        })
        .await;
    // One web instance per node, each run by that node's runtime.
    assert_eq!(running_on(&s, "web"), ["a", "b", "c"]);
    for node in ["a", "b", "c"] {
        assert_eq!(c.rt(node).running_of("shop", "web").len(), 1, "{node}");
    }
    // The db's disk is pinned to the node it started on.
    let db_node = running_on(&s, "db")[0].to_string();
    let home = c
        .store
        .get(&records::disk_home_key("shop", "data"))
        .await
        .expect("get")
        .map(|v| String::from_utf8_lossy(&v.value).into_owned());
    assert_eq!(home.as_deref(), Some(db_node.as_str()));
    // Nothing secret in the store's placements: the specs are sealed.
    let (placed, _) = c.store.list(records::PLACEMENTS).await.expect("list");
    assert_eq!(placed.len(), 4);
    assert!(
        placed
            .iter()
            .all(|(_, v)| !String::from_utf8_lossy(&v.value).contains("\"command\"")),
        "a placement holds its spec in clear"
    );

    // A node that is not the db's is lost: its web instance starts on the others.
    let lost = ["b", "c"]
        .into_iter()
        .find(|n| *n != db_node)
        .expect("a node without the db");
    c.store
        .txn(vec![Op::delete(keys::alive(lost))])
        .await
        .expect("heartbeat lapses");
    let s = c
        .until("3 web running again, none on the lost node", |s| {
            let on = running_on(s, "web");
            on.len() == 3 && !on.contains(&lost)
        })
        .await;
    let dead = s
        .sandboxes
        .iter()
        .find(|x| x.node.as_deref() == Some(lost) && x.service == "web")
        .expect("the lost node's instance is recorded");
    assert!(
        dead.reason
            .as_deref()
            .is_some_and(|r| r.contains("was lost")),
        "{dead:?}"
    );
    assert_eq!(running_on(&s, "db"), [db_node.as_str()], "the db stays");
}

#[tokio::test]
async fn a_drained_nodes_sandbox_stopped_is_replaced_on_another_node() {
    let c = cluster().await;
    let s = c
        .until("3 web running", |s| running_on(s, "web").len() == 3)
        .await;
    let on_c = s
        .sandboxes
        .iter()
        .find(|x| x.service == "web" && x.node.as_deref() == Some("c"))
        .expect("a web instance on c")
        .id
        .clone();
    c.store
        .txn(vec![Op::put(records::drain_key("c"), b"now".to_vec())])
        .await
        .expect("drain");
    c.ctl.stop_sandbox(&on_c).await.expect("stop");
    let s = c
        .until("3 web running, none on c", |s| {
            let on = running_on(s, "web");
            on.len() == 3 && !on.contains(&"c")
        })
        .await;
    assert!(c.rt("c").running_of("shop", "web").is_empty(), "{s:#?}");
}

#[tokio::test]
async fn a_deleted_app_is_forgotten_on_every_node_its_disks_too_when_purged() {
    let c = cluster().await;
    c.until("3 web and the db running", |s| {
        running_on(s, "web").len() == 3 && running_on(s, "db").len() == 1
    })
    .await;
    c.ctl.delete_app("shop", true).await.expect("delete");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for node in ["a", "b", "c"] {
        while !c
            .rt(node)
            .removed_apps()
            .contains(&("shop".to_string(), true))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {node} did not forget the app: {:?}",
                c.rt(node).removed_apps()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(c.rt(node).running().is_empty(), "{node}");
    }
}

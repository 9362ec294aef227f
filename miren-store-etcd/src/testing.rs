//! Real etcd members on loopback for tests and benchmarks (feature `test-util`): each
//! on free ports with its own data dir, killed when the [`Cluster`] is dropped. Its
//! calls panic when etcd misbehaves: they are for tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{EtcdAddress, EtcdStore};

/// Whether `etcd` can be run here. When not, says the test skips, and panics instead
/// when `MIREN_TEST_ETCD=1` (CI) requires it.
pub fn etcd_installed() -> bool {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let required = std::env::var("MIREN_TEST_ETCD").is_ok_and(|v| v == "1");
    assert!(
        found || !required,
        "MIREN_TEST_ETCD=1, but `etcd` is not installed"
    );
    if !found {
        eprintln!("skipping: `etcd` is not installed (Debian: etcd-server)");
    }
    found
}

/// One member of a [`Cluster`].
struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// A cluster of members on 127.0.0.1.
pub struct Cluster {
    members: Vec<Member>,
    dir: tempfile::TempDir,
    token: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free port: {e}"))
}

impl Cluster {
    /// Starts `n` members and waits until the cluster answers (20 s at most).
    pub async fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let token = format!("miren-test-{}", std::process::id());
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_port(),
                peer: free_port(),
                child: None,
            })
            .collect();
        let mut c = Self {
            members,
            dir,
            token,
        };
        for i in 0..n {
            c.spawn(i);
        }
        c.wait_ready(Duration::from_secs(20)).await;
        c
    }

    fn spawn(&mut self, i: usize) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect();
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", m.name)))
            .unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", m.client),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{}", m.client),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer),
                "--initial-cluster",
                &initial.join(","),
                "--initial-cluster-token",
                &self.token,
                "--initial-cluster-state",
                "new",
                // miren writes up to a few thousand keys in one transaction.
                "--max-txn-ops",
                "10000",
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting etcd: {e}"));
        self.members[i].child = Some(child);
    }

    /// The address of the whole cluster.
    pub fn address(&self, prefix: &str) -> EtcdAddress {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect();
        format!("etcd://{}/{prefix}", members.join(","))
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A store on the whole cluster, under `prefix`.
    pub async fn store(&self, prefix: &str) -> EtcdStore {
        EtcdStore::connect(self.address(prefix))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Kills member `i` at once (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data dir.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Until a store on the cluster answers.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if EtcdStore::connect(self.address("ready")).await.is_ok() {
                return;
            }
            let logs: String = self
                .members
                .iter()
                .map(|m| {
                    std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name)))
                        .unwrap_or_default()
                })
                .collect();
            assert!(Instant::now() < deadline, "etcd did not come up:\n{logs}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

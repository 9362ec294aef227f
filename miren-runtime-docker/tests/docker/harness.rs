//! A controller on the Docker runtime, an app name of its own per test, and cleanup
//! of everything a test made in the Engine, whatever happens.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use miren_core::artifact::ArtifactStore;
use miren_core::controller::{Controller, ControllerConfig, Snapshot};
use miren_core::model::{Address, Sandbox, SandboxId, SandboxStatus, Version};
use miren_core::runtime::{LogRecord, LogSink};
use miren_core::store::{MemoryStore, Store};
use miren_runtime_docker::{DockerOptions, DockerRuntime, socket_path};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every image the tests run (the examples' names are tags of the test images).
const IMAGES: &[&str] = &["miren-test/busybox", "redis:7-alpine", "postgres:16"];

#[derive(Default)]
pub struct Logs(pub Mutex<Vec<LogRecord>>);

impl LogSink for Logs {
    fn write(&self, r: LogRecord) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }
}

pub struct Harness {
    pub ctl: Controller,
    pub rt: DockerRuntime,
    store: Arc<MemoryStore>,
    owner: String,
    pub artifacts: ArtifactStore,
    pub logs: Arc<Logs>,
    pub dir: tempfile::TempDir,
    apps: Mutex<Vec<String>>,
}

/// The runtime on this machine's Engine, or `None` (the test skips) when there is none
/// and `MIREN_TEST_DOCKER=1` doesn't require one.
pub async fn engine(owner: &str) -> Option<DockerRuntime> {
    let required = std::env::var("MIREN_TEST_DOCKER").is_ok_and(|v| v == "1");
    let options = DockerOptions {
        owner: owner.to_string(),
        dns: None,
        dir: std::env::temp_dir().join("miren-docker-tests"),
    };
    let rt = match DockerRuntime::connect(&socket_path(), options).await {
        Ok(rt) => rt,
        Err(e) if required => panic!("MIREN_TEST_DOCKER=1, but {e}"),
        Err(e) => {
            eprintln!("skipping a Docker test: {e} (MIREN_TEST_DOCKER=1 requires one)");
            return None;
        }
    };
    for image in IMAGES {
        if rt.engine().inspect_image(image).await.is_err() {
            let why =
                format!("the test image {image} is missing: run `bash tests/images/build.sh`");
            if required {
                panic!("{why}");
            }
            eprintln!("skipping a Docker test: {why}");
            return None;
        }
    }
    Some(rt)
}

impl Harness {
    pub async fn new() -> Option<Self> {
        // A server of its own per test: tests running at once don't adopt or stop each
        // other's containers.
        let owner = format!("test-{}", miren_core::model::new_suffix());
        let rt = engine(&owner).await?;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MemoryStore::new());
        let artifacts = ArtifactStore::open(dir.path().join("artifacts")).expect("artifacts");
        let logs = Arc::new(Logs::default());
        let ctl = start(&store, &rt, &artifacts, &logs).await;
        Some(Self {
            ctl,
            rt,
            store,
            owner,
            artifacts,
            logs,
            dir,
            apps: Mutex::new(Vec::new()),
        })
    }

    /// A server restart: the controller stops every sandbox and ends; a new runtime
    /// and controller start on the same state, as the next server would.
    pub async fn restart(&mut self) {
        self.ctl.shutdown().await.expect("shutdown");
        self.rt = engine(&self.owner).await.expect("the Engine again");
        self.ctl = start(&self.store, &self.rt, &self.artifacts, &self.logs).await;
    }

    /// A fresh app name, cleaned up after the test.
    pub fn app(&self) -> String {
        let suffix: String = miren_core::model::new_suffix()
            .chars()
            .rev()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { 'x' })
            .collect();
        let name = format!("t{suffix}");
        self.apps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        name
    }

    /// Deploys `app_toml` with an empty app dir; the outcome.
    pub async fn deploy(&self, app_toml: &str) -> Version {
        self.deploy_dir(app_toml, &[]).await
    }

    /// Deploys an app dir holding `files` (path, content) and `app_toml`; the outcome.
    pub async fn deploy_dir(&self, app_toml: &str, files: &[(&str, &str)]) -> Version {
        let dir = self
            .dir
            .path()
            .join(format!("app-{}", miren_core::model::new_suffix()));
        std::fs::create_dir_all(dir.join(".miren")).expect("app dir");
        std::fs::write(dir.join(".miren/app.toml"), app_toml).expect("app.toml");
        for (path, content) in files {
            std::fs::write(dir.join(path), content).expect("a file");
        }
        let bytes = miren_core::artifact::pack_dir(&dir).expect("pack");
        let art = self.artifacts.put(&bytes).expect("store");
        let config = miren_core::config::resolve(app_toml).expect("a valid app.toml");
        let id = self
            .ctl
            .deploy(miren_core::controller::DeployRequest {
                config,
                artifact_digest: art.digest,
                source: Default::default(),
            })
            .await
            .expect("deploy accepted");
        self.ctl.wait(&id).await.expect("deploy ended")
    }

    /// Runs `cmd` in the container of `sandbox`; its output (stdout and stderr).
    pub async fn exec(&self, sandbox: &SandboxId, cmd: &[&str]) -> String {
        use futures_util::StreamExt;
        let docker = self.rt.engine();
        let config = bollard::models::ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        };
        let exec = docker
            .create_exec(sandbox.as_str(), config)
            .await
            .expect("exec");
        let mut out = String::new();
        if let Ok(bollard::exec::StartExecResults::Attached { mut output, .. }) =
            docker.start_exec(&exec.id, None).await
        {
            while let Some(Ok(chunk)) = output.next().await {
                out.push_str(&chunk.to_string());
            }
        }
        out
    }

    /// Whether the Engine has this volume.
    pub async fn volume_exists(&self, name: &str) -> bool {
        self.rt.engine().inspect_volume(name).await.is_ok()
    }

    pub async fn snap(&self) -> Snapshot {
        self.ctl.snapshot(None).await.expect("snapshot")
    }

    /// Waits (real time, 60 s at most) until `cond` holds.
    pub async fn until(&self, what: &str, cond: impl Fn(&Snapshot) -> bool) -> Snapshot {
        match self.ctl.wait_for(None, Duration::from_secs(60), cond).await {
            Ok(Some(s)) => s,
            _ => panic!(
                "timed out waiting for: {what}\nlast state: {:#?}",
                self.snap().await
            ),
        }
    }

    /// Waits (5 s at most, polling every 20 ms) until the logs say what `cond` wants.
    pub async fn until_logs(&self, what: &str, cond: impl Fn(&[LogRecord]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if cond(&self.logs.0.lock().unwrap_or_else(|e| e.into_inner())) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line: {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn container_exists(&self, id: &SandboxId) -> bool {
        self.rt
            .engine()
            .inspect_container(id.as_str(), None)
            .await
            .is_ok()
    }
}

impl Drop for Harness {
    /// Whatever the test left in the Engine goes: containers, networks, images, volumes.
    /// The controller stops first, so no start still in flight creates a container
    /// after the cleanup (the tests run on two worker threads: the other one runs the
    /// controller while this one waits).
    fn drop(&mut self) {
        let apps = std::mem::take(&mut *self.apps.lock().unwrap_or_else(|e| e.into_inner()));
        let ctl = self.ctl.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(60), ctl.shutdown()).await;
                cleanup(apps).await;
            });
        })
        .join();
    }
}

/// Removes the apps' containers, networks, images and volumes.
async fn cleanup(apps: Vec<String>) {
    use std::collections::HashMap;
    let Ok(docker) = bollard::Docker::connect_with_unix(
        &socket_path().display().to_string(),
        30,
        bollard::API_DEFAULT_VERSION,
    ) else {
        return;
    };
    let Ok(docker) = docker.negotiate_version().await else {
        return;
    };
    for app in apps {
        let filter = HashMap::from([("label".to_string(), vec![format!("dev.miren.app={app}")])]);
        let list = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        };
        for c in docker.list_containers(Some(list)).await.unwrap_or_default() {
            if let Some(id) = c.id {
                let rm = bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                };
                let _ = docker.remove_container(&id, Some(rm)).await;
            }
        }
        let _ = docker.remove_network(&format!("miren-{app}")).await;
        let images = bollard::query_parameters::ListImagesOptions {
            filters: Some(filter.clone()),
            ..Default::default()
        };
        for i in docker.list_images(Some(images)).await.unwrap_or_default() {
            let rm = bollard::query_parameters::RemoveImageOptions {
                force: true,
                ..Default::default()
            };
            let _ = docker.remove_image(&i.id, Some(rm), None).await;
        }
        let vols = bollard::query_parameters::ListVolumesOptions {
            filters: Some(filter),
        };
        if let Ok(v) = docker.list_volumes(Some(vols)).await {
            for v in v.volumes.unwrap_or_default() {
                let _ = docker
                    .remove_volume(
                        &v.name,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await;
            }
        }
    }
}

pub async fn start(
    store: &Arc<MemoryStore>,
    rt: &DockerRuntime,
    artifacts: &ArtifactStore,
    logs: &Arc<Logs>,
) -> Controller {
    let mut cfg = ControllerConfig::new(artifacts.clone());
    cfg.stop_grace = Duration::from_secs(10);
    cfg.logs = logs.clone();
    Controller::start(store.clone() as Arc<dyn Store>, Arc::new(rt.clone()), cfg)
        .await
        .expect("controller")
}

pub fn running(s: &Snapshot, service: &str) -> Vec<Sandbox> {
    s.sandboxes
        .iter()
        .filter(|x| x.service == service && x.status == SandboxStatus::Running)
        .cloned()
        .collect()
}

/// What a Redis server answers to one inline command.
pub async fn redis(addr: &Address, command: &str) -> String {
    let sa = addr.socket().expect("a port");
    let mut s = tokio::net::TcpStream::connect(sa).await.expect("connect");
    s.write_all(format!("{command}\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
}

/// One HTTP/1.0 GET of `/` from `addr`; the body.
pub async fn get(addr: &Address) -> String {
    let sa = addr.socket().expect("a port");
    let mut s = tokio::net::TcpStream::connect(sa).await.expect("connect");
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.expect("write");
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out)
}

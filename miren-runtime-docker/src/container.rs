//! One sandbox as a container: what it is created with (plain data from the spec),
//! and watching it once it runs — its output, its readiness, its exit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{LogsOptions, RemoveContainerOptions, WaitContainerOptions};
use futures_util::StreamExt;
use miren_core::model::Address;
use miren_core::runtime::{EventSink, Lines, SandboxSpec, Stream};

use crate::names::{self, SEARCH_DOMAIN};

/// A container's `/etc/resolv.conf` for service DNS on `gateway`.
pub fn resolv_conf(gateway: IpAddr) -> String {
    format!("nameserver {gateway}\nsearch {SEARCH_DOMAIN}\noptions ndots:1\n")
}

/// Label recording the port a container listens on, so an adopting server knows it.
pub const LABEL_PORT: &str = "dev.miren.port";

/// Label marking a UDP-only port: ready when started, never probed.
pub const LABEL_UDP: &str = "dev.miren.udp";

/// Readiness polling: first delay and the longest. A container takes ~200 ms to
/// start listening, and a connect to one that doesn't listen yet is refused at once:
/// polling every few milliseconds costs little and answers a held request sooner
/// (at 50 ms, the wait after it listened averaged 25 ms).
const PROBE_FIRST: Duration = Duration::from_millis(1);
const PROBE_MAX: Duration = Duration::from_millis(4);

/// What a container is created with, beyond the spec.
pub struct Plan<'a> {
    pub spec: &'a SandboxSpec,
    /// The image it runs.
    pub image: &'a str,
    /// Where it listens (declared, or the image's first exposed port).
    pub port: Option<u16>,
    /// The app's network.
    pub network: &'a str,
    /// Its `/etc/resolv.conf` (service DNS on the network's gateway), if there is one.
    pub resolv_conf: Option<&'a std::path::Path>,
    /// The server that runs it ([`names::LABEL_OWNER`]).
    pub owner: &'a str,
}

/// The container's configuration: the spec's env plus the platform's, the command run
/// by `/bin/sh -c` (or the image's own), an init as PID 1, its disks as volumes, the
/// app's network, never privileged.
pub fn config(p: &Plan<'_>) -> ContainerCreateBody {
    let spec = p.spec;
    let mut env: Vec<String> = spec
        .spec
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.push(format!("MIREN_APP={}", spec.app));
    env.push(format!("MIREN_SERVICE={}", spec.spec.service));
    env.push(format!("MIREN_SANDBOX={}", spec.id));
    env.push(format!("MIREN_VERSION={}", spec.version));
    if let Some(port) = p.port {
        env.push(format!("PORT={port}"));
    }
    // In a container every port is where it is declared; `$PORT_<NAME>` says so, as
    // it says each instance's own on the process runtime.
    for extra in &spec.spec.extra_ports {
        env.push(format!("{}={}", extra.var(), extra.port));
    }
    let mut mounts = Vec::new();
    for d in &spec.spec.disks {
        let name = d.name.to_ascii_uppercase().replace('-', "_");
        env.push(format!("MIREN_DISK_{name}={}", d.mount_path));
        mounts.push(Mount {
            typ: Some(MountType::VOLUME),
            source: Some(names::volume(&spec.app, &d.name)),
            target: Some(d.mount_path.clone()),
            read_only: Some(d.read_only),
            ..Default::default()
        });
    }
    // The resolver file replaces the Engine's, which points at the Engine's own DNS:
    // that one forwards from an address of its own, and service DNS must see the
    // container's to know which app asks.
    if let Some(file) = p.resolv_conf {
        mounts.push(Mount {
            typ: Some(MountType::BIND),
            source: Some(file.display().to_string()),
            target: Some("/etc/resolv.conf".into()),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    if let Some(port) = p.port {
        labels.insert(LABEL_PORT.to_string(), port.to_string());
    }
    if spec.spec.udp_only() {
        labels.insert(LABEL_UDP.to_string(), "1".to_string());
    }
    labels.insert(names::LABEL_OWNER.to_string(), p.owner.to_string());
    let (entrypoint, cmd) = match &spec.spec.command {
        Some(c) => (
            Some(vec!["/bin/sh".to_string(), "-c".to_string()]),
            Some(vec![c.clone()]),
        ),
        // `args`: the image's entrypoint with these arguments.
        None if !spec.spec.args.is_empty() => (None, Some(spec.spec.args.clone())),
        None => (None, None),
    };
    ContainerCreateBody {
        image: Some(p.image.to_string()),
        entrypoint,
        cmd,
        env: Some(env),
        labels: Some(labels),
        host_config: Some(HostConfig {
            init: Some(true),
            privileged: Some(false),
            network_mode: Some(p.network.to_string()),
            mounts: (!mounts.is_empty()).then_some(mounts),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container's address on the app's network, from an inspection.
pub fn address_on(
    inspect: &bollard::models::ContainerInspectResponse,
    network: &str,
) -> Option<IpAddr> {
    inspect
        .network_settings
        .as_ref()?
        .networks
        .as_ref()?
        .get(network)?
        .ip_address
        .as_deref()?
        .parse()
        .ok()
}

/// The sink a watched container reports to; replaced when a restarted server adopts it.
pub type SharedSink = Arc<Mutex<EventSink>>;

fn current(sink: &SharedSink) -> EventSink {
    sink.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Follows a started (or adopted) container until it exits: its output line by line
/// from `since` (Unix seconds; 0: from its start), readiness once its port accepts a
/// connection on its own address (at once without a port or with a UDP one; also recorded in `ready`;
/// never without an address: it exited before it had one), then its exit, after
/// which the container is removed and `gone` runs.
#[allow(clippy::too_many_arguments)]
pub fn watch(
    docker: Docker,
    name: String,
    address: Option<Address>,
    udp: bool,
    since: i32,
    sink: SharedSink,
    ready: Arc<Mutex<Option<Address>>>,
    gone: impl FnOnce() + Send + 'static,
) {
    tokio::spawn(async move {
        let logs = tokio::spawn(stream_logs(
            docker.clone(),
            name.clone(),
            since,
            sink.clone(),
        ));
        let exited = wait_exit(&docker, &name);
        tokio::pin!(exited);
        let code = match address {
            None => exited.await,
            Some(address) => tokio::select! {
                code = &mut exited => code,
                // A UDP port accepts no connection: ready once it runs.
                () = probe(address.socket().filter(|_| !udp)) => {
                    *ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(address);
                    current(&sink).ready(Some(address));
                    exited.await
                }
            },
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), logs).await;
        let oom = docker
            .inspect_container(&name, None)
            .await
            .ok()
            .and_then(|i| i.state?.oom_killed)
            .unwrap_or(false);
        let remove = RemoveContainerOptions {
            force: true,
            // Its anonymous volumes (an image's VOLUME nothing was mounted on) too;
            // the named ones, its disks, stay.
            v: true,
            ..Default::default()
        };
        let _ = docker.remove_container(&name, Some(remove)).await;
        gone();
        let (code, reason) = exit_reason(code, oom);
        current(&sink).exited(code, reason);
    });
}

/// Waits until the port accepts a connection (polled from 1 ms, doubling to 4 ms);
/// at once without one.
async fn probe(addr: Option<SocketAddr>) {
    let Some(addr) = addr else { return };
    let mut delay = PROBE_FIRST;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(PROBE_MAX);
    }
}

/// The container's exit code once it no longer runs (`None`: the Engine lost it).
async fn wait_exit(docker: &Docker, name: &str) -> Option<i64> {
    let options = WaitContainerOptions {
        condition: "not-running".into(),
    };
    let mut wait = docker.wait_container(name, Some(options));
    match wait.next().await {
        Some(Ok(r)) => Some(r.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
        _ => None,
    }
}

/// Copies the container's output into the sink, line by line and stream by stream.
async fn stream_logs(docker: Docker, name: String, since: i32, sink: SharedSink) {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        since,
        ..Default::default()
    };
    let mut logs = docker.logs(&name, Some(options));
    let mut out = Lines::new(Stream::Stdout);
    let mut err = Lines::new(Stream::Stderr);
    while let Some(Ok(chunk)) = logs.next().await {
        let s = current(&sink);
        match chunk {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                out.push(&message, |l| s.log(l))
            }
            LogOutput::StdErr { message } => err.push(&message, |l| s.log(l)),
            LogOutput::StdIn { .. } => {}
        }
    }
    let s = current(&sink);
    out.finish(|l| s.log(l));
    err.finish(|l| s.log(l));
}

/// How an exit reads: the code, and what it means (128 + n is signal n, as the
/// Engine reports a container killed by one).
fn exit_reason(code: Option<i64>, oom: bool) -> (Option<i32>, String) {
    let Some(code) = code.and_then(|c| i32::try_from(c).ok()) else {
        return (None, "the container is gone".into());
    };
    if oom {
        return (Some(code), "killed: out of memory".into());
    }
    let reason = match code {
        137 => "exited with code 137 (killed by SIGKILL)".to_string(),
        143 => "exited with code 143 (killed by SIGTERM)".to_string(),
        130 => "exited with code 130 (killed by SIGINT)".to_string(),
        c => format!("exited with code {c}"),
    };
    (Some(code), reason)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use miren_core::config::Disk;
    use miren_core::model::{CodeSource, PoolId, PoolSpec, SandboxId, VersionId};

    use super::*;

    fn spec(command: Option<&str>) -> SandboxSpec {
        let id = SandboxId::new("shop", "postgres");
        let version = VersionId::new("shop");
        let pool = PoolId::new();
        SandboxSpec {
            labels: SandboxSpec::standard_labels(&id, "shop", &version, &pool, "postgres"),
            id,
            app: "shop".into(),
            version,
            pool: Some(pool),
            spec: PoolSpec {
                service: "postgres".into(),
                source: CodeSource::Image("postgres:16".into()),
                command: command.map(str::to_string),
                args: Vec::new(),
                env: BTreeMap::from([("POSTGRES_PASSWORD".into(), "pw".into())]),
                port: None,
                port_name: None,
                port_type: None,
                node_port: None,
                extra_ports: Vec::new(),
                disks: vec![Disk {
                    name: "pg-data".into(),
                    mount_path: "/var/lib/postgresql/data".into(),
                    size_gb: 10,
                    read_only: false,
                    provider: Default::default(),
                    filesystem: None,
                    owner: None,
                }],
                onbuild: Vec::new(),
                health: None,
                port_timeout: None,
                shutdown_timeout: None,
                secret_env: Default::default(),
                secret_refs: Default::default(),
                restarted: None,
            },
        }
    }

    #[test]
    fn a_container_gets_the_platform_env_its_disk_an_init_and_the_app_network() {
        let s = spec(None);
        let c = config(&Plan {
            spec: &s,
            image: "postgres:16",
            port: Some(5432),
            network: "miren-shop",
            resolv_conf: Some(std::path::Path::new("/srv/miren/resolv/shop.conf")),
            owner: "server-1",
        });
        let env = c.env.clone().unwrap_or_default();
        for want in [
            "POSTGRES_PASSWORD=pw",
            "PORT=5432",
            "MIREN_APP=shop",
            "MIREN_SERVICE=postgres",
            "MIREN_DISK_PG_DATA=/var/lib/postgresql/data",
        ] {
            assert!(env.iter().any(|e| e == want), "{want} in {env:?}");
        }
        assert_eq!(
            (c.entrypoint.clone(), c.cmd.clone()),
            (None, None),
            "the image's own"
        );
        let h = c.host_config.expect("host config");
        assert_eq!(h.init, Some(true));
        assert_eq!(h.privileged, Some(false));
        assert_eq!(h.network_mode.as_deref(), Some("miren-shop"));
        let mounts = h.mounts.expect("mounts");
        assert_eq!(mounts[0].source.as_deref(), Some("miren-shop-pg-data"));
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[1].target.as_deref(), Some("/etc/resolv.conf"));
        assert_eq!(mounts[1].typ, Some(MountType::BIND));
        assert_eq!(mounts[1].read_only, Some(true));
        assert_eq!(
            resolv_conf("172.18.0.1".parse().expect("an address")),
            "nameserver 172.18.0.1\nsearch app.miren\noptions ndots:1\n"
        );
        let labels = c.labels.expect("labels");
        assert_eq!(labels.get(LABEL_PORT).map(String::as_str), Some("5432"));
        assert!(labels.contains_key(miren_core::runtime::LABEL_SANDBOX));
        assert_eq!(
            labels.get(names::LABEL_OWNER).map(String::as_str),
            Some("server-1")
        );
    }

    /// The config of `s` with no port and no resolver file.
    fn plain_config(s: &SandboxSpec) -> ContainerCreateBody {
        config(&Plan {
            spec: s,
            image: "postgres:16",
            port: None,
            network: "miren-shop",
            resolv_conf: None,
            owner: "server-1",
        })
    }

    #[test]
    fn a_command_runs_under_sh() {
        let s = spec(Some("exec postgres -c fsync=off"));
        let c = plain_config(&s);
        assert_eq!(c.entrypoint, Some(vec!["/bin/sh".into(), "-c".into()]));
        assert_eq!(c.cmd, Some(vec!["exec postgres -c fsync=off".into()]));
        let mounts = c.host_config.and_then(|h| h.mounts).unwrap_or_default();
        assert_eq!(mounts.len(), 1, "its disk, and no resolver file");
        assert!(
            !c.env
                .unwrap_or_default()
                .iter()
                .any(|e| e.starts_with("PORT="))
        );
    }

    #[test]
    fn args_keep_the_images_entrypoint() {
        let mut s = spec(None);
        s.spec.args = vec!["-c".into(), "max_connections=200".into()];
        let c = plain_config(&s);
        assert_eq!(c.entrypoint, None, "the image's own");
        assert_eq!(c.cmd, Some(vec!["-c".into(), "max_connections=200".into()]));
    }

    #[test]
    fn exits_say_which_signal_ended_them() {
        assert_eq!(
            exit_reason(Some(0), false),
            (Some(0), "exited with code 0".into())
        );
        assert!(exit_reason(Some(137), false).1.contains("SIGKILL"));
        assert!(exit_reason(Some(137), true).1.contains("out of memory"));
        assert_eq!(exit_reason(None, false).0, None);
    }
}

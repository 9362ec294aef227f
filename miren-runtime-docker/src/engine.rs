//! Reaching the Docker Engine: its socket, the API version both sides speak, and what
//! its errors mean for a deploy.

use std::path::{Path, PathBuf};

use bollard::Docker;
use miren_core::runtime::RuntimeError;

/// Where the Engine listens unless `DOCKER_HOST` says otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long one Engine call may take (a pull or a build streams, and is not bound
/// by it as a whole).
const TIMEOUT_SECS: u64 = 120;

/// The Engine's socket: `DOCKER_HOST` when it names a Unix socket, else the default.
pub fn socket_path() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(h.trim_start_matches("unix://")),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// Connects to the Engine at `socket`, agrees on an API version (down to the
/// Engine's: Docker 20.10 speaks 1.41) and checks it answers.
pub async fn connect(socket: &Path) -> Result<Docker, RuntimeError> {
    let shown = socket.display();
    let unreachable = |why: String| {
        RuntimeError::Backend(format!(
            "no Docker Engine answers at {shown} ({why}): start one (`dockerd`, or \
             `systemctl start docker`), or run the server with `--runtime process`"
        ))
    };
    let path = socket
        .to_str()
        .ok_or_else(|| unreachable("not a UTF-8 path".into()))?;
    let docker = Docker::connect_with_unix(path, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        .map_err(|e| unreachable(e.to_string()))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    docker
        .ping()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(docker)
}

/// Whether the Engine said "no such thing".
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether the Engine said "that exists already" (or, for a stop, "not running").
pub fn is_conflict(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 304 | 409,
            ..
        }
    )
}

/// An Engine failure while doing `what`.
pub fn failed(what: impl std::fmt::Display, e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Backend(format!("{what}: {}", message(&e)))
}

/// What the Engine said, without bollard's framing.
pub fn message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

//! Builds with `[[build.secrets]]`: the Engine's BuildKit (through its `/session`
//! and `/grpc` endpoints), the builder that mounts a secret into the one `RUN
//! --mount=type=secret,id=…` step that asks for it and puts it in no layer, no
//! history and no build log. Each value is handed over from a file of a private
//! directory (0700, files 0600) that is removed when the build ends, whatever its
//! outcome.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::grpc::build::{ImageBuildFrontendOptions, ImageBuildLoadInput, SecretSource};
use bollard::grpc::driver::Build;
use bollard::grpc::driver::moby::Moby;
use miren_core::runtime::{Artifact, BuildSecret, LABEL_APP, PrepareLog, RuntimeError};

use crate::names;

/// The secrets' files, gone when dropped.
struct SecretFiles(PathBuf);

impl Drop for SecretFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_secrets(
    secrets: &[BuildSecret],
) -> std::io::Result<(SecretFiles, Vec<(String, PathBuf)>)> {
    let dir = std::env::temp_dir().join(format!(
        "miren-build-secrets-{}",
        miren_core::model::new_suffix()
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let guard = SecretFiles(dir.clone());
    let mut files = Vec::with_capacity(secrets.len());
    for (i, s) in secrets.iter().enumerate() {
        let path = dir.join(i.to_string());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        std::io::Write::write_all(&mut f, s.value.as_bytes())?;
        files.push((s.id.clone(), path));
    }
    Ok((guard, files))
}

/// Builds `tag` from the version's code with BuildKit, giving it `secrets`.
#[allow(clippy::too_many_arguments)]
pub async fn build(
    docker: &Docker,
    app: &str,
    owner: &str,
    artifact: &Artifact,
    dockerfile: &str,
    tag: &str,
    secrets: &[BuildSecret],
    log: &PrepareLog,
) -> Result<(), RuntimeError> {
    let context = tokio::fs::read(&artifact.path).await.map_err(|e| {
        RuntimeError::Prepare(format!(
            "the code of this version ({}) can't be read: {e}",
            artifact.digest
        ))
    })?;
    let s = secrets.to_vec();
    let (guard, files) = miren_core::runtime::blocking(move || {
        write_secrets(&s).map_err(|e| RuntimeError::io("handing the build its secrets", e))
    })
    .await?;
    let mut options = ImageBuildFrontendOptions::builder()
        .dockerfile(Path::new(dockerfile))
        .label(LABEL_APP, app)
        .label(names::LABEL_OWNER, owner);
    for (id, path) in &files {
        options = options.set_secret(id, &SecretSource::File(path.clone()));
    }
    let ids: Vec<&str> = secrets.iter().map(|s| s.id.as_str()).collect();
    log.line(&format!(
        "building {tag} with {dockerfile} (BuildKit, build secrets: {})",
        ids.join(", ")
    ));
    // bollard's BuildKit session is not `Send`: it runs on a blocking thread of its
    // own, driven there, on the same Engine connection and reactor.
    let (docker_, tag_, options) = (docker.clone(), tag.to_string(), options.build());
    let handle = tokio::runtime::Handle::current();
    let built = tokio::task::spawn_blocking(move || {
        handle.block_on(Moby::new(&docker_).docker_build(
            &tag_,
            options,
            ImageBuildLoadInput::Upload(bytes::Bytes::from(context)),
            None::<HashMap<&str, bollard::auth::DockerCredentials>>,
            None,
        ))
    })
    .await
    .map_err(|e| RuntimeError::Backend(format!("the build's thread failed: {e}")))?;
    drop(guard);
    built.map_err(|e| {
        RuntimeError::Prepare(format!(
            "building the app's image failed: {}",
            grpc_message(&e)
        ))
    })?;
    if crate::image::exists(docker, tag).await? {
        Ok(())
    } else {
        Err(RuntimeError::Prepare(format!(
            "building the app's image ended without {tag}"
        )))
    }
}

/// What BuildKit said, without the transport's framing.
fn grpc_message(e: &bollard::grpc::error::GrpcError) -> String {
    let s = e.to_string();
    match s.split_once("message: \"") {
        Some((_, rest)) => rest
            .split_once("\", ")
            .map_or(rest, |(m, _)| m)
            .replace("\\\"", "\"")
            .replace("\\n", "\n"),
        None => s,
    }
}

//! `[static]`'s directory copied out of a version's built image: a container of the
//! image is made (never started), the Engine archives the directory, and the archive
//! is unpacked on this machine for the proxy to serve. Only regular files and
//! directories come out: a link in the image points into the image, not here.

use std::collections::HashMap;
use std::path::{Component, Path};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, RemoveContainerOptions,
};
use futures_util::StreamExt;
use miren_core::runtime::RuntimeError;
use tokio::io::AsyncWriteExt;

use crate::engine;
use crate::names::LABEL_OWNER;
use miren_core::runtime::LABEL_APP;

/// Copies `dir` of `image` to `dest`, which doesn't exist yet.
pub async fn export(
    docker: &Docker,
    owner: &str,
    app: &str,
    image: &str,
    dir: &str,
    dest: &Path,
) -> Result<(), RuntimeError> {
    let name = format!("miren-export-{}", miren_core::model::new_suffix());
    let create = CreateContainerOptions {
        name: Some(name.clone()),
        ..Default::default()
    };
    let config = ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some(HashMap::from([
            (LABEL_OWNER.to_string(), owner.to_string()),
            (LABEL_APP.to_string(), app.to_string()),
        ])),
        ..Default::default()
    };
    docker
        .create_container(Some(create), config)
        .await
        .map_err(|e| {
            RuntimeError::Prepare(format!(
                "`[static]`: a container of {image}: {}",
                engine::message(&e)
            ))
        })?;
    let result = download(docker, &name, dir, dest).await;
    let remove = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    let _ = docker.remove_container(&name, Some(remove)).await;
    result
}

async fn download(
    docker: &Docker,
    container: &str,
    dir: &str,
    dest: &Path,
) -> Result<(), RuntimeError> {
    let options = DownloadFromContainerOptions {
        path: dir.to_string(),
    };
    let mut archive = docker.download_from_container(container, Some(options));
    let parent = dest.parent().unwrap_or(Path::new("."));
    let tar_path = parent.join(format!(
        ".{}.tar",
        dest.file_name()
            .map_or("export".into(), |n| n.to_string_lossy())
    ));
    let io = |e| RuntimeError::io("writing the exported archive", e);
    let mut file = tokio::fs::File::create(&tar_path).await.map_err(io)?;
    while let Some(chunk) = archive.next().await {
        let chunk = chunk.map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => RuntimeError::Prepare(format!(
                "`static.dir = \"{dir}\"`: the built image has no such directory"
            )),
            e => engine::failed(format!("archiving {dir} of the built image"), e),
        });
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tar_path).await;
                return Err(e);
            }
        };
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    drop(file);
    let (t, d) = (tar_path.clone(), dest.to_path_buf());
    let what = format!("unpacking {dir} of the built image");
    let unpacked = miren_core::runtime::blocking(move || {
        unpack(&t, &d).map_err(|e| RuntimeError::io(what, e))
    })
    .await;
    let _ = tokio::fs::remove_file(&tar_path).await;
    unpacked
}

/// Unpacks the Engine's archive of a directory (its entries start with the
/// directory's own name) into `dest`: regular files and directories only.
fn unpack(tar: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut archive = tar::Archive::new(std::fs::File::open(tar)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        // Without the top directory; nothing that climbs out.
        let rel: std::path::PathBuf = path.components().skip(1).collect();
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            continue;
        }
        let kind = entry.header().entry_type();
        let target = dest.join(&rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if kind.is_file() {
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p)?;
            }
            let mut out = std::fs::File::create(&target)?;
            std::io::copy(&mut entry, &mut out)?;
        }
    }
    Ok(())
}

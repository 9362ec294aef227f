//! The images sandboxes run: the app's own, built by the Engine from the version's
//! code and its Dockerfile; and `image` services', used when present and pulled when
//! not. Both report as they go (build steps, pull progress).

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use futures_util::StreamExt;
use miren_core::runtime::{Artifact, PrepareLog, RuntimeError};

use crate::engine::{failed, is_conflict, is_not_found, message};
use crate::names::{self, LABEL_APP};

/// Lines of a failed build kept for its message.
const LAST_LINES: usize = 15;

/// The image's first exposed TCP port (lowest), if it exposes one: what an `image`
/// service without `port` listens on.
pub async fn exposed_port(docker: &Docker, image: &str) -> Result<Option<u16>, RuntimeError> {
    let inspect = docker
        .inspect_image(image)
        .await
        .map_err(|e| failed(format!("inspecting the image {image}"), e))?;
    let ports = inspect
        .config
        .and_then(|c| c.exposed_ports)
        .unwrap_or_default();
    Ok(ports
        .iter()
        .filter_map(|p| match p.split_once('/') {
            Some((n, "tcp")) => n.parse::<u16>().ok(),
            None => p.parse::<u16>().ok(),
            _ => None,
        })
        .min())
}

/// Whether the Engine has the image.
pub async fn exists(docker: &Docker, image: &str) -> Result<bool, RuntimeError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(failed(format!("inspecting the image {image}"), e)),
    }
}

/// The image, pulled when the Engine doesn't have it.
pub async fn ensure(docker: &Docker, image: &str, log: &PrepareLog) -> Result<(), RuntimeError> {
    if exists(docker, image).await? {
        return Ok(());
    }
    let (from, tag) = names::split_reference(image);
    log.line(&format!("pulling {image}"));
    let options = CreateImageOptions {
        from_image: Some(from.to_string()),
        tag: (!tag.is_empty()).then(|| tag.to_string()),
        ..Default::default()
    };
    let mut pull = docker.create_image(Some(options), None, None);
    let mut last_status = String::new();
    while let Some(item) = pull.next().await {
        match item {
            Ok(info) => {
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(pull_failed(image, &e));
                }
                // One line per layer and status change, not per progress tick.
                if let Some(status) = info.status {
                    let line = match info.id {
                        Some(id) => format!("{id}: {status}"),
                        None => status,
                    };
                    if line != last_status {
                        log.line(&line);
                        last_status = line;
                    }
                }
            }
            Err(e) => return Err(pull_failed(image, &message(&e))),
        }
    }
    if exists(docker, image).await? {
        Ok(())
    } else {
        Err(pull_failed(image, "the pull ended without the image"))
    }
}

fn pull_failed(image: &str, answer: &str) -> RuntimeError {
    RuntimeError::Prepare(format!(
        "the image {image} is not on this machine and pulling it failed: {answer}"
    ))
}

/// Builds `tag` from the version's code with its Dockerfile, the build's output going
/// to `log`; a failed build fails with its last lines.
pub async fn build(
    docker: &Docker,
    app: &str,
    owner: &str,
    artifact: &Artifact,
    dockerfile: &str,
    tag: &str,
    log: &PrepareLog,
) -> Result<(), RuntimeError> {
    let file = tokio::fs::File::open(&artifact.path).await.map_err(|e| {
        RuntimeError::Prepare(format!(
            "the code of this version ({}) can't be read: {e}",
            artifact.digest
        ))
    })?;
    build_context(
        docker,
        app,
        owner,
        Context::File(file),
        dockerfile,
        tag,
        log,
    )
    .await
}

/// What a build is sent: the version's archive, or a few generated files.
enum Context {
    File(tokio::fs::File),
    Bytes(Vec<u8>),
}

/// `build.onbuild`: the built image again, each command a `RUN` step on top of it,
/// under the same tag.
pub async fn onbuild(
    docker: &Docker,
    app: &str,
    owner: &str,
    tag: &str,
    commands: &[String],
    log: &PrepareLog,
) -> Result<(), RuntimeError> {
    let mut dockerfile = format!("FROM {tag}\n");
    for c in commands {
        // Exec form with a JSON string: any command, newlines and quotes included.
        let json = serde_json::Value::String(c.clone()).to_string();
        dockerfile.push_str(&format!("RUN [\"/bin/sh\", \"-c\", {json}]\n"));
    }
    let context = miren_core::artifact::tar_of(&[("Dockerfile.onbuild", dockerfile.as_bytes())])
        .map_err(|e| RuntimeError::Prepare(format!("making the onbuild context: {e}")))?;
    log.line(&format!("onbuild: {} command(s) on {tag}", commands.len()));
    build_context(
        docker,
        app,
        owner,
        Context::Bytes(context),
        "Dockerfile.onbuild",
        tag,
        log,
    )
    .await
}

async fn build_context(
    docker: &Docker,
    app: &str,
    owner: &str,
    context: Context,
    dockerfile: &str,
    tag: &str,
    log: &PrepareLog,
) -> Result<(), RuntimeError> {
    let body = match context {
        Context::File(f) => bollard::body_try_stream(tokio_util::io::ReaderStream::new(f)),
        Context::Bytes(b) => bollard::body_full(b.into()),
    };
    let options = BuildImageOptions {
        dockerfile: dockerfile.to_string(),
        t: Some(tag.to_string()),
        rm: true,
        forcerm: true,
        labels: Some(HashMap::from([
            (LABEL_APP.to_string(), app.to_string()),
            (names::LABEL_OWNER.to_string(), owner.to_string()),
        ])),
        ..Default::default()
    };
    log.line(&format!("building {tag} with {dockerfile}"));
    let mut steps = docker.build_image(options, None, Some(body));
    let mut last: std::collections::VecDeque<String> = Default::default();
    let mut keep = |line: &str| {
        log.line(line);
        if last.len() == LAST_LINES {
            last.pop_front();
        }
        last.push_back(line.to_string());
    };
    while let Some(item) = steps.next().await {
        let failure = match item {
            Ok(info) => {
                if let Some(s) = info.stream {
                    for line in s.lines().filter(|l| !l.trim().is_empty()) {
                        keep(line.trim_end());
                    }
                }
                info.error_detail.and_then(|d| d.message)
            }
            Err(e) => Some(message(&e)),
        };
        if let Some(why) = failure {
            let mut msg = format!("building the app's image failed: {why}");
            if !last.is_empty() {
                msg.push_str("\nits last output:");
                for l in &last {
                    msg.push_str("\n  | ");
                    msg.push_str(l);
                }
            }
            return Err(RuntimeError::Prepare(msg));
        }
    }
    if exists(docker, tag).await? {
        Ok(())
    } else {
        Err(RuntimeError::Prepare(format!(
            "building the app's image ended without {tag}"
        )))
    }
}

/// Removes the images this server built for versions not in `keep` (an image a
/// container still uses stays: the Engine refuses).
pub async fn remove_built_except(
    docker: &Docker,
    owner: &str,
    keep: &std::collections::BTreeSet<miren_core::model::VersionId>,
) -> Result<usize, RuntimeError> {
    let options = bollard::query_parameters::ListImagesOptions {
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![format!("{}={owner}", names::LABEL_OWNER)],
        )])),
        ..Default::default()
    };
    let images = docker
        .list_images(Some(options))
        .await
        .map_err(|e| failed("listing the app images", e))?;
    let mut removed = 0;
    for tag in images.iter().flat_map(|i| &i.repo_tags) {
        let (repo, version) = names::split_reference(tag);
        let Ok(version) = version.parse::<miren_core::model::VersionId>() else {
            continue;
        };
        if !repo.starts_with("miren/") || keep.contains(&version) {
            continue;
        }
        match docker
            .remove_image(
                tag,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
        {
            Ok(_) => removed += 1,
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => return Err(failed(format!("removing the image {tag}"), e)),
        }
    }
    Ok(removed)
}

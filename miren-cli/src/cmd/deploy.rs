//! `miren deploy`: validate here (nothing is uploaded when the config is invalid),
//! pack the app dir, upload it, follow the rollout, print the version id.

use std::io::{IsTerminal, Write};
use std::path::Path;

use miren_core::config::{self, ResolvedApp};
use miren_core::model::{Version, VersionState};

use super::print_json;
use crate::Exit;
use crate::api::{DeployBody, DeployLine};
use crate::cli::{ColorChoice, DeployArgs, Format};
use crate::client::{Client, ClientError};
use crate::output::{display_path, stderr_color};

/// Reads and validates `dir`'s app.toml, printing every diagnostic (warnings too).
/// `Err` says why it can't be deployed: no file (usage), or an invalid one.
pub fn check_locally(dir: &Path, color: ColorChoice) -> Result<(String, ResolvedApp), ClientError> {
    let path = config::app_toml_in(dir);
    let source = config::read(&path)
        .map_err(|e| ClientError::Usage(format!("{e}\n  create one with `miren init`")))?;
    let v = config::validate_in(&source, config::dir_name_of(&path).as_deref());
    if !v.diagnostics.is_empty() {
        eprint!(
            "{}",
            v.report(&display_path(&path), &source)
                .render(stderr_color(color))
        );
    }
    v.resolved.map(|r| (source, r)).ok_or_else(|| {
        ClientError::Invalid("nothing was deployed: fix the config first".to_string())
    })
}

/// The app directory `given` names, or the one of the current directory (searching
/// parents).
pub fn app_dir(given: Option<&Path>) -> Result<std::path::PathBuf, ClientError> {
    crate::here::app_dir(given).map_err(|e| {
        ClientError::Usage(format!(
            "{e}\n  create one with `miren init`, or pass the app directory"
        ))
    })
}

/// The git commit of `dir`, when it is in a repository.
pub async fn git_commit(dir: &Path) -> Option<String> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Packs `dir` off the async threads.
pub async fn pack(dir: &Path, include: &[String]) -> std::io::Result<Vec<u8>> {
    let (dir, include) = (dir.to_path_buf(), include.to_vec());
    tokio::task::spawn_blocking(move || miren_core::artifact::pack_dir_including(&dir, &include))
        .await
        .map_err(std::io::Error::other)?
}

/// Progress on stderr: a spinner on a terminal, plain lines otherwise.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn new() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            Self(Some(bar))
        } else {
            Self(None)
        }
    }

    pub fn say(&self, msg: &str) {
        match &self.0 {
            Some(bar) => bar.set_message(msg.to_string()),
            None => eprintln!("{msg}"),
        }
    }

    pub fn done(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

pub async fn run(
    c: &Client,
    args: &DeployArgs,
    color: ColorChoice,
    format: Format,
) -> Result<Exit, ClientError> {
    let dir = app_dir(args.path.as_deref().or(args.dir.as_deref()))?;
    let (source, resolved) = check_locally(&dir, color)?;
    if let Some(app) = &args.app
        && let Err(p) = config::names::dns_label(app)
    {
        return Err(ClientError::Usage(format!(
            "`{app}` is not an app name: {}",
            p.reason
        )));
    }
    // A server that isn't there is said before any work is done.
    c.health().await?;
    let progress = Progress::new();
    progress.say("packing the app directory");
    let bytes = pack(&dir, &resolved.include)
        .await
        .map_err(|e| ClientError::Local(format!("packing {}: {e}", dir.display())))?;
    progress.say(&format!("uploading {} KiB", bytes.len().div_ceil(1024)));
    let up = c.upload(bytes).await?;
    let body = DeployBody {
        app_toml: source,
        artifact: up.digest.to_string(),
        git_commit: git_commit(&dir).await,
        no_wait: args.no_wait,
        // A file without `name` is deployed under its directory's.
        app: args
            .app
            .clone()
            .or_else(|| resolved.inferred_name.then(|| resolved.name.clone())),
    };
    let app = args.app.clone().unwrap_or(resolved.name);
    progress.say(&format!("deploying {app}"));
    let mut end = None;
    c.deploy(&body, |l| {
        match l {
            DeployLine::Created { version } => progress.say(&format!("created {version}")),
            DeployLine::Progress { message } => progress.say(&message),
            DeployLine::Done { version } => end = Some(version),
        }
        true
    })
    .await?;
    progress.done();
    finish(end, format)
}

/// Reports how a rollout ended: the version id on stdout, or why it failed.
pub fn finish(end: Option<Box<Version>>, format: Format) -> Result<Exit, ClientError> {
    let Some(v) = end else {
        return Err(ClientError::Protocol(
            "the server closed the stream before the rollout ended".into(),
        ));
    };
    if format == Format::Json {
        print_json(&v)?;
    }
    match v.state {
        VersionState::Failed => {
            eprintln!(
                "error: {} failed: {}",
                v.id,
                v.failure.as_deref().unwrap_or("no reason given")
            );
            Ok(Exit::Failed)
        }
        _ => {
            if format == Format::Table {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", v.id)
                    .map_err(|e| ClientError::Local(format!("writing the version: {e}")))?;
            }
            Ok(Exit::Ok)
        }
    }
}

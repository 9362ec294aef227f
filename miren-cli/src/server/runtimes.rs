//! Which runtime runs what (SPEC §8). `--runtime process` and `--runtime docker` use
//! one backend for every service; `--runtime auto` (the default) picks per service:
//! `image` services in containers; code in containers when the app has its Dockerfile,
//! else as local processes. A process service reaches a container service through the
//! service's stable address, which balances over the containers' addresses.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use miren_core::model::{CodeSource, PoolSpec, SandboxId, VersionId};
use miren_core::runtime::{
    Attach, EventSink, Listed, PrepareApp, PrepareLog, Retained, Runtime, RuntimeError,
    SandboxSpec, Started,
};
use miren_runtime_docker::DockerRuntime;
use miren_runtime_process::ProcessRuntime;

/// One of the two backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Process,
    Docker,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Process => "process",
            Backend::Docker => "docker",
        }
    }
}

/// `--runtime auto`.
pub struct Auto {
    process: ProcessRuntime,
    /// `None`: no Engine answered at start; `image` services can't run.
    docker: Option<DockerRuntime>,
    /// Why there is no Engine, for the deploys that need one.
    no_docker: String,
    /// Which backend runs each sandbox.
    runs: Mutex<HashMap<SandboxId, Backend>>,
    /// Per version: whether its code runs in containers (the app has its Dockerfile).
    containerized: Mutex<HashMap<VersionId, bool>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Auto {
    /// Both backends, or the process one alone when `docker` is an error (its
    /// message says why there is no Engine).
    pub fn new(process: ProcessRuntime, docker: Result<DockerRuntime, RuntimeError>) -> Self {
        let (docker, no_docker) = match docker {
            Ok(d) => (Some(d), String::new()),
            Err(e) => (None, e.to_string()),
        };
        Self {
            process,
            docker,
            no_docker,
            runs: Mutex::new(HashMap::new()),
            containerized: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an Engine answers.
    pub fn has_docker(&self) -> bool {
        self.docker.is_some()
    }

    /// Where a service of `version` runs.
    fn backend_for(&self, version: &VersionId, spec: &PoolSpec) -> Backend {
        match spec.source {
            CodeSource::Image(_) => Backend::Docker,
            CodeSource::Artifact(_) => {
                if lock(&self.containerized)
                    .get(version)
                    .copied()
                    .unwrap_or(false)
                {
                    Backend::Docker
                } else {
                    Backend::Process
                }
            }
        }
    }

    fn docker(&self) -> Result<&DockerRuntime, RuntimeError> {
        self.docker.as_ref().ok_or_else(|| {
            RuntimeError::Unsupported(format!("this needs a Docker Engine: {}", self.no_docker))
        })
    }

    fn backend(&self, b: Backend) -> Result<&dyn Runtime, RuntimeError> {
        Ok(match b {
            Backend::Process => &self.process,
            Backend::Docker => self.docker()?,
        })
    }
}

#[async_trait]
impl Runtime for Auto {
    fn name(&self) -> &str {
        "auto"
    }

    async fn prepare(&self, app: &PrepareApp, log: &PrepareLog) -> Result<(), RuntimeError> {
        // Code in containers only when the app brings its Dockerfile and an Engine runs.
        let dockerfile = match &self.docker {
            None => false,
            Some(_) => {
                let (archive, file) = (app.artifact.path.clone(), app.dockerfile.clone());
                miren_core::runtime::blocking(move || {
                    miren_core::artifact::contains_file(&archive, &file)
                        .map_err(|e| RuntimeError::Prepare(format!("reading the app's code: {e}")))
                })
                .await?
            }
        };
        lock(&self.containerized).insert(app.version.clone(), dockerfile);
        let (in_docker, as_process): (Vec<PoolSpec>, Vec<PoolSpec>) = app
            .services
            .iter()
            .cloned()
            .partition(|s| self.backend_for(&app.version, s) == Backend::Docker);
        if !in_docker.is_empty() && self.docker.is_none() {
            let images: Vec<String> = in_docker
                .iter()
                .map(|s| match &s.source {
                    CodeSource::Image(i) => format!("service `{}` runs the image `{i}`", s.service),
                    CodeSource::Artifact(_) => format!("service `{}`", s.service),
                })
                .collect();
            return Err(RuntimeError::Unsupported(format!(
                "{}, which needs a Docker Engine: {}",
                images.join("; "),
                self.no_docker
            )));
        }
        if let Some(docker) = &self.docker
            && !in_docker.is_empty()
        {
            let part = PrepareApp {
                services: in_docker.clone(),
                ..app.clone()
            };
            docker.prepare(&part, log).await?;
        }
        if !as_process.is_empty() {
            let part = PrepareApp {
                services: as_process,
                ..app.clone()
            };
            self.process.prepare(&part, log).await?;
            // Processes reach the containers through stable addresses.
            if let Some(docker) = &self.docker {
                let mut ports = Vec::new();
                for s in &in_docker {
                    let primary = docker.listening_port(&app.app, &app.version, s).await?;
                    let declared = miren_runtime_process::declared_ports(s, primary);
                    if !declared.is_empty() {
                        ports.push((s.service.clone(), declared));
                    }
                }
                self.process.serve_addresses(&app.app, &ports).await?;
            }
        }
        Ok(())
    }

    async fn start(&self, spec: &SandboxSpec, events: EventSink) -> Result<Started, RuntimeError> {
        let b = self.backend_for(&spec.version, &spec.spec);
        let started = self.backend(b)?.start(spec, events).await?;
        lock(&self.runs).insert(spec.id.clone(), b);
        Ok(Started {
            runtime: Some(b.name().to_string()),
            ..started
        })
    }

    async fn stop(&self, sandbox: &SandboxId, grace: Duration) -> Result<(), RuntimeError> {
        let known = lock(&self.runs).get(sandbox).copied();
        let r = match known {
            Some(b) => self.backend(b)?.stop(sandbox, grace).await,
            // Not started by this server (a leftover): whichever has it.
            None => match self.process.stop(sandbox, grace).await {
                Err(RuntimeError::NotFound(_)) if self.docker.is_some() => {
                    self.docker()?.stop(sandbox, grace).await
                }
                r => r,
            },
        };
        if !matches!(r, Err(ref e) if !matches!(e, RuntimeError::NotFound(_))) {
            lock(&self.runs).remove(sandbox);
        }
        r
    }

    async fn exec(&self, sandbox: &SandboxId, attach: Attach) -> Result<i32, RuntimeError> {
        let known = lock(&self.runs).get(sandbox).copied();
        match known {
            Some(b) => self.backend(b)?.exec(sandbox, attach).await,
            None => Err(RuntimeError::NotFound(sandbox.clone())),
        }
    }

    async fn export_dir(
        &self,
        app: &PrepareApp,
        dir: &str,
        dest: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        // Where the app's code was built: its image, or its unpacked code.
        let containerized = lock(&self.containerized)
            .get(&app.version)
            .copied()
            .unwrap_or(false);
        match containerized {
            true => self.docker()?.export_dir(app, dir, dest).await,
            false => self.process.export_dir(app, dir, dest).await,
        }
    }

    async fn run_attached(&self, spec: &SandboxSpec, attach: Attach) -> Result<i32, RuntimeError> {
        let b = self.backend_for(&spec.version, &spec.spec);
        self.backend(b)?.run_attached(spec, attach).await
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let mut all = Vec::new();
        let mut backends = vec![(Backend::Process, &self.process as &dyn Runtime)];
        if let Some(d) = &self.docker {
            backends.push((Backend::Docker, d));
        }
        for (b, rt) in backends {
            for l in rt.list().await? {
                lock(&self.runs).insert(l.id.clone(), b);
                all.push(Listed {
                    runtime: Some(b.name().to_string()),
                    ..l
                });
            }
        }
        Ok(all)
    }

    async fn adopt(&self, sandbox: &SandboxId, events: EventSink) -> Result<(), RuntimeError> {
        let b = lock(&self.runs)
            .get(sandbox)
            .copied()
            .ok_or_else(|| RuntimeError::NotFound(sandbox.clone()))?;
        self.backend(b)?.adopt(sandbox, events).await
    }

    async fn remove_app(&self, app: &str, purge_disks: bool) -> Result<(), RuntimeError> {
        self.process.remove_app(app, purge_disks).await?;
        if let Some(d) = &self.docker {
            d.remove_app(app, purge_disks).await?;
        }
        Ok(())
    }

    async fn usage(&self) -> Result<Vec<miren_core::runtime::Usage>, RuntimeError> {
        let mut all = self.process.usage().await?;
        if let Some(d) = &self.docker {
            all.extend(d.usage().await?);
        }
        Ok(all)
    }

    async fn collect(&self, retained: &Retained) -> Result<(), RuntimeError> {
        lock(&self.containerized).retain(|v, _| retained.versions.contains(v));
        self.process.collect(retained).await?;
        if let Some(d) = &self.docker {
            d.collect(retained).await?;
        }
        Ok(())
    }
}

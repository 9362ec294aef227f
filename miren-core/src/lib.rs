//! miren-core: the Miren app platform as a library.
//!
//! An app is a set of services described by one `.miren/app.toml`. This crate owns
//! that file (parsing, rustc-style diagnostics, defaults, JSON Schema) and, behind the
//! default `platform` feature, the platform itself as plain data and one task: the
//! model, the state store, the controller, and the [`Runtime`](runtime::Runtime) trait
//! a backend implements. Processes, containers and VMs live in other crates.
//!
//! # Layout
//! - [`config`]: `.miren/app.toml`: parse, validate, explain, resolve.
//! - `model`: apps, versions, pools, sandboxes, task runs, routes and their ids.
//! - `store`: the transactional, watchable state store (in memory, or durable on redb),
//!   where each object lives (`store::keys`), and the one way to follow it
//!   (`store::reflector`).
//! - `runtime`: the `Runtime` trait, the plain data it is given, and (feature
//!   `test-util`) a fake runtime for tests and simulations.
//! - `controller`: deploys, pool reuse, rollouts, crash backoff, restart adoption,
//!   tasks, commands attached to a caller.
//! - `autoscale`: request-based scaling decisions, fed by the proxy.
//! - `placement`: a cluster's sandboxes on every node, through the store: the
//!   leader's placement runtime and each node's agent.
//! - `artifact`: app code as content-addressed tar archives.
//! - `secret`: the server's own secret store: values sealed at rest, references
//!   resolved in memory.
//!
//! # Validating a config
//!
//! ```
//! let source = r#"
//! name = "shop"
//!
//! [services.web]
//! command = "node server.js"
//!
//! [services.worker]
//! command = "node worker.js"
//! "#;
//! let app = miren_core::config::resolve(source)?;
//! let web = &app.services["web"];
//! assert_eq!(web.port, Some(3000)); // web's default port
//! assert_eq!(web.concurrency.mode(), miren_core::config::Mode::Auto); // web autoscales
//! # Ok::<(), miren_core::config::InvalidConfig>(())
//! ```
//!
//! Problems come back all at once, each pointing into the file:
//!
//! ```
//! let v = miren_core::config::validate("name = \"shop\"\n[services.web]\ncomand = \"x\"\n");
//! assert!(!v.is_valid());
//! let text = v.report(".miren/app.toml", "name = \"shop\"\n[services.web]\ncomand = \"x\"\n").render(false);
//! assert!(text.contains("unknown key `comand`"));
//! assert!(text.contains("--> .miren/app.toml:3:1"));
//! ```
//!
//! # Embedding the platform with your own runtime
//!
//! A backend implements [`Runtime`](runtime::Runtime): prepare a version's code, start
//! a sandbox and report what happens to it through its
//! [`EventSink`](runtime::EventSink), stop it, list what runs. The controller does the
//! rest: versions, pools, rollouts, backoff, restarts.
//!
//! ```
//! # #[cfg(feature = "platform")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use miren_core::artifact::ArtifactStore;
//! use miren_core::controller::{Controller, ControllerConfig, DeployRequest};
//! use miren_core::model::{SandboxId, SourceInfo, VersionState};
//! use miren_core::runtime::*;
//! use miren_core::store::MemoryStore;
//!
//! /// Pretends every sandbox runs and is ready at once.
//! struct Instant;
//!
//! #[async_trait]
//! impl Runtime for Instant {
//!     fn name(&self) -> &str { "instant" }
//!     async fn prepare(&self, _: &PrepareApp, _: &PrepareLog) -> Result<(), RuntimeError> { Ok(()) }
//!     async fn start(&self, spec: &SandboxSpec, events: EventSink) -> Result<Started, RuntimeError> {
//!         let address = spec.spec.port.map(|p| std::net::SocketAddr::from(([10, 0, 0, 7], p)).into());
//!         events.ready(address);
//!         Ok(Started { address, ..Started::default() })
//!     }
//!     async fn stop(&self, _: &SandboxId, _: Duration) -> Result<(), RuntimeError> { Ok(()) }
//!     async fn list(&self) -> Result<Vec<Listed>, RuntimeError> { Ok(vec![]) }
//!     async fn adopt(&self, id: &SandboxId, _: EventSink) -> Result<(), RuntimeError> {
//!         Err(RuntimeError::NotFound(id.clone()))
//!     }
//!     async fn remove_app(&self, _: &str, _: bool) -> Result<(), RuntimeError> { Ok(()) }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let artifacts = ArtifactStore::open(dir.path())?;
//! let code = artifacts.put(b"the app's code, as a tar archive")?;
//! let controller = Controller::start(
//!     Arc::new(MemoryStore::new()), // or RedbStore::open(path)? to survive restarts
//!     Arc::new(Instant),
//!     ControllerConfig::new(artifacts),
//! )
//! .await?;
//!
//! let config = miren_core::config::resolve("name = \"shop\"\n[services.web]\ncommand = \"serve\"\n")?;
//! let version = controller
//!     .deploy(DeployRequest { config, artifact_digest: code.digest, source: SourceInfo::default() })
//!     .await?;
//! let version = controller.wait(&version).await?;
//! assert_eq!(version.state, VersionState::Active);
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```

#[cfg(feature = "platform")]
pub mod artifact;
#[cfg(feature = "platform")]
pub mod autoscale;
pub mod config;
#[cfg(feature = "platform")]
pub mod controller;
#[cfg(feature = "platform")]
pub mod model;
#[cfg(feature = "platform")]
pub mod placement;
#[cfg(feature = "platform")]
pub mod runtime;
#[cfg(feature = "platform")]
pub mod secret;
#[cfg(feature = "platform")]
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;

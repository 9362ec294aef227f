//! miren-core: the Miren app platform as a library.
//!
//! An app is a set of services described by one `.miren/app.toml`. This crate owns
//! everything about that file: parsing, validation with rustc-style diagnostics,
//! defaults, the resolved form the controller consumes, and its JSON Schema.
//!
//! # Layout
//! - [`config`]: `.miren/app.toml`: parse, validate, explain, resolve.
//! - `model` (feature `platform`): apps, versions, pools, sandboxes, routes and their ids.
//! - `store` (feature `platform`): the transactional, watchable state store and its
//!   in-memory and embedded (redb) implementations.
//!
//! # Example
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

#[cfg(feature = "platform")]
pub mod artifact;
pub mod config;
#[cfg(feature = "platform")]
pub mod controller;
#[cfg(feature = "platform")]
pub mod model;
#[cfg(feature = "platform")]
pub mod runtime;
#[cfg(feature = "platform")]
pub mod store;

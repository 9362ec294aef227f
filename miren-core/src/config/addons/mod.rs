//! Addons (upstream's `[addons.<name>]`, SPEC §17): managed backing services the
//! platform runs for an app. Plain data: the catalog of what each addon is, the
//! instance an app has of one (with the credentials made for it once), and the
//! expansion of a resolved config by an app's instances — a service of the app for
//! each addon server, and its variables in the services it attaches to.
//!
//! - `catalog`: the addons, their images, ports, variants and versions.
//! - `expand`: a resolved config with an app's addons in it.

pub mod catalog;
mod expand;

use serde::{Deserialize, Serialize};

pub use catalog::{ADDONS, Addon, Kind, addon};
pub use expand::{AddonError, client_env, expand};

/// An addon an app has: what was asked for, and what was made for it once (its
/// credentials and disk stay the same across deploys, so its data stays usable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonInstance {
    /// The addon (`miren-postgresql`); also its service's name.
    pub name: String,
    /// Its variant.
    pub variant: String,
    /// The version asked for (a tag, or a whole image reference); `None`: the
    /// addon's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The services it attaches to; empty: every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Declared in app.toml (it goes when the file drops it), or made by
    /// `miren addon create` (it stays until `addon destroy`).
    pub from_file: bool,
    /// The user its services connect as.
    pub user: String,
    /// Their password: a secret, never shown.
    pub password: String,
    /// The database (or vhost) made for the app.
    pub database: String,
    /// Its server's disk: named once per instance, so a new instance never finds an
    /// old one's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    /// When it was made (Unix ms).
    pub created: u64,
}

impl AddonInstance {
    /// Itself as it may leave the server: the password replaced by `shown`.
    pub fn redacted(mut self, shown: &str) -> Self {
        self.password = shown.to_string();
        self
    }

    /// Its catalog entry.
    pub fn addon(&self) -> Option<&'static Addon> {
        addon(&self.name)
    }

    /// The image its server runs, when it has one.
    pub fn image(&self) -> Option<String> {
        self.addon()?.image_for(self.version.as_deref())
    }
}

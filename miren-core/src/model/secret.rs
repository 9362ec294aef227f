//! A secret of the server's own secret store (`backend = "cluster"`, SPEC §17):
//! its versions, each sealed (see [`crate::secret`]); a value never sits in the store
//! in the clear.

use serde::{Deserialize, Serialize};

use super::UnixMillis;

pub use crate::config::secret_ref::{SecretRef, check_path};

/// A secret, by its path (`payments/stripe-key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    /// Its path: words of letters, digits and `._-` joined by `/`.
    pub path: String,
    /// Every version, oldest first; the newest is the current one.
    pub versions: Vec<SecretVersion>,
}

/// One value a secret had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersion {
    /// Its id (`x1A`): opaque, unique within the secret.
    pub id: String,
    /// When it was set.
    pub created: UnixMillis,
    /// Disabled: it resolves for nothing (references to it fail closed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The value, sealed.
    pub sealed: Sealed,
}

/// A value sealed by the server's key: a random nonce and the ciphertext, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// 24 random bytes.
    pub nonce: String,
    /// The value encrypted and authenticated.
    pub data: String,
}

impl Secret {
    /// The current version (the newest).
    pub fn current(&self) -> Option<&SecretVersion> {
        self.versions.last()
    }

    /// The version `id`, or the current one.
    pub fn version(&self, id: Option<&str>) -> Option<&SecretVersion> {
        match id {
            Some(id) => self.versions.iter().find(|v| v.id == id),
            None => self.current(),
        }
    }
}

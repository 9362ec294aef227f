//! The content digest that names uploaded code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// `sha256:<64 lowercase hex digits>` of an artifact: what a version's code is, and
/// the name it is stored under. Checked when it is made or read, so readers can use
/// its hex part as a file name without filtering it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

const PREFIX: &str = "sha256:";

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut h = DigestHasher::default();
        h.update(bytes);
        h.finish()
    }

    /// The hex digits alone (a safe file name).
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A digest computed a piece at a time, for content streamed to disk.
#[derive(Debug, Clone, Default)]
pub struct DigestHasher(Sha256);

impl DigestHasher {
    /// Adds the next piece.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        let hex: String = self
            .0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Digest(format!("{PREFIX}{hex}"))
    }
}

/// Text that is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not a digest: expected `sha256:` and 64 lowercase hex digits")]
pub struct BadDigest(pub String);

impl FromStr for Digest {
    type Err = BadDigest;

    fn from_str(s: &str) -> Result<Self, BadDigest> {
        let ok = s.strip_prefix(PREFIX).is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if ok {
            Ok(Digest(s.to_string()))
        } else {
            Err(BadDigest(s.to_string()))
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = BadDigest;
    fn try_from(s: String) -> Result<Self, BadDigest> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_checked_when_read() {
        let d = Digest::of(b"code");
        assert_eq!(d.as_str().len(), 7 + 64);
        assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d.clone()));
        assert_eq!(d.hex().len(), 64);
        for bad in [
            "",
            "sha256:",
            "sha256:../../etc/passwd",
            "md5:0123",
            &d.as_str().to_uppercase(),
            &format!("{d}0"),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<Digest>("\"sha256:xyz\"").is_err());
        let mut h = DigestHasher::default();
        h.update(b"co");
        h.update(b"de");
        assert_eq!(h.finish(), d, "pieces hash as the whole");
    }
}

//! Ids: time-ordered, fixed-width, readable.
//!
//! Every id ends in a UUIDv7 (48-bit millisecond time, then randomness) written in
//! base58 and left-padded to 22 characters. The base58 alphabet is in ASCII order and
//! the width is fixed, so sorting ids as strings sorts them by creation time — a
//! listing of versions is already a history.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::names;

/// Width of the base58 suffix: 58^22 > 2^128, so every UUID fits.
pub const SUFFIX_LEN: usize = 22;

const ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A fresh time-ordered suffix.
pub fn new_suffix() -> String {
    encode(uuid::Uuid::now_v7().into_bytes())
}

/// 16 bytes as fixed-width base58.
pub fn encode(bytes: [u8; 16]) -> String {
    let s = bs58::encode(bytes).into_string();
    // bs58 writes each leading zero byte as '1' (the zero digit) and drops the other
    // leading zeros, so left-padding with '1' gives the plain fixed-width numeral.
    let digits = s.trim_start_matches('1');
    format!("{}{digits}", "1".repeat(SUFFIX_LEN - digits.len()))
}

fn is_suffix(s: &str) -> bool {
    s.len() == SUFFIX_LEN && s.chars().all(|c| ALPHABET.contains(c))
}

/// An id that doesn't have its kind's shape.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{id}` is not a {kind} id: expected {shape}")]
pub struct BadId {
    /// What was given.
    pub id: String,
    /// Which kind of id was expected.
    pub kind: &'static str,
    /// What it should look like.
    pub shape: &'static str,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $shape:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(s: &str) -> Result<Self, BadId> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(BadId { id: s.to_string(), kind: $kind, shape: $shape })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = BadId;
            fn try_from(s: String) -> Result<Self, BadId> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// `<app>-v<21 base58>`: one deploy of an app. (Ids made before 0.2 have 22: the
    /// leading `1` every time-ordered suffix has for the next two centuries, which
    /// made every version read as "v1…".)
    VersionId,
    "version",
    "`<app>-v<21 base58 characters>`",
    |s| s.rsplit_once("-v").is_some_and(|(app, suffix)| {
        names::dns_label(app).is_ok()
            && (is_suffix(suffix) || (suffix.len() == SUFFIX_LEN - 1 && is_suffix(&format!("1{suffix}"))))
    })
);

id_type!(
    /// `pool-<22 base58>`: the sandboxes of one service spec.
    PoolId,
    "pool",
    "`pool-<22 base58 characters>`",
    |s| s.strip_prefix("pool-").is_some_and(is_suffix)
);

id_type!(
    /// `<app>-<service>-<22 base58>`: one running instance.
    SandboxId,
    "sandbox",
    "`<app>-<service>-<22 base58 characters>`",
    |s| s.len() > SUFFIX_LEN + 1
        && s.is_char_boundary(s.len() - SUFFIX_LEN - 1)
        && is_suffix(&s[s.len() - SUFFIX_LEN..])
        && s.as_bytes()[s.len() - SUFFIX_LEN - 1] == b'-'
);

impl VersionId {
    /// A new id for a version of `app`.
    pub fn new(app: &str) -> Self {
        let suffix = new_suffix();
        // Fixed width still: every suffix made before the 23rd century starts with `1`.
        let short = suffix.strip_prefix('1').unwrap_or(&suffix);
        Self(format!("{app}-v{short}"))
    }

    /// The app part.
    pub fn app(&self) -> &str {
        self.0.rsplit_once("-v").map_or("", |(app, _)| app)
    }
}

impl PoolId {
    /// A new pool id.
    pub fn new() -> Self {
        Self(format!("pool-{}", new_suffix()))
    }
}

impl Default for PoolId {
    fn default() -> Self {
        Self::new()
    }
}

impl SandboxId {
    /// A new id for an instance of `service` of `app`.
    pub fn new(app: &str, service: &str) -> Self {
        Self(format!("{app}-{service}-{}", new_suffix()))
    }

    /// The last characters, enough to tell sandboxes apart in a log line.
    pub fn short(&self) -> &str {
        &self.0[self.0.len() - 8..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_a_fixed_width_suffix() {
        let v = VersionId::new("demo");
        assert_eq!(v.as_str().len(), "demo-v".len() + SUFFIX_LEN - 1);
        assert!(
            !v.as_str().starts_with("demo-v1"),
            "reads as version 1: {v}"
        );
        // Ids of earlier releases still parse.
        let old = format!("demo-v1{}", &v.as_str()["demo-v".len()..]);
        assert_eq!(
            old.parse::<VersionId>().map(|v| v.app().to_string()),
            Ok("demo".into())
        );
        assert_eq!(v.app(), "demo");
        assert_eq!(PoolId::new().as_str().len(), 5 + SUFFIX_LEN);
        let s = SandboxId::new("demo", "web");
        assert!(s.as_str().starts_with("demo-web-"));
        assert_eq!(s.short().len(), 8);
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let ids: Vec<VersionId> = (0..200).map(|_| VersionId::new("a")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn encoding_is_fixed_width_and_order_preserving_at_the_extremes() {
        assert_eq!(encode([0; 16]), "1".repeat(SUFFIX_LEN));
        assert_eq!(encode([255; 16]).len(), SUFFIX_LEN);
        let mut one = [0; 16];
        one[15] = 1;
        let mut big = [0; 16];
        big[0] = 1;
        assert!(encode(one) < encode(big));
        assert!(encode(big) < encode([255; 16]));
    }

    #[test]
    fn ids_parse_back_and_reject_other_shapes() {
        let v = VersionId::new("my-app");
        assert_eq!(v.as_str().parse::<VersionId>(), Ok(v.clone()));
        assert!("my-app".parse::<VersionId>().is_err());
        assert!("pool-short".parse::<PoolId>().is_err());
        assert!(v.as_str().parse::<PoolId>().is_err());
        let s = SandboxId::new("a", "web");
        assert_eq!(s.as_str().parse::<SandboxId>(), Ok(s));
        assert!("a-web-0OIl".parse::<SandboxId>().is_err());
        let json = serde_json::to_string(&v).unwrap_or_default();
        assert_eq!(serde_json::from_str::<VersionId>(&json).ok(), Some(v));
        assert!(serde_json::from_str::<VersionId>("\"nope\"").is_err());
    }
}

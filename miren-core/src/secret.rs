//! The server's own secret store (`backend = "cluster"`, SPEC §17): values sealed
//! with the server's key (XChaCha20-Poly1305, a random nonce per value), so the state
//! store — and whatever copies or replicates it — never holds one in the clear. The
//! key is 32 random bytes the server keeps beside its data (`secrets.key`, 0600);
//! whoever has both has the secrets, whoever has the store alone does not.
//!
//! Values are opened only in memory: when a deploy pins a reference, when a sandbox
//! or a build that needs one starts.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use thiserror::Error;

use crate::model::{Sealed, Secret, SecretRef};

/// The largest value: what a build or an environment variable takes.
pub const MAX_VALUE: usize = 500 * 1024;

/// The server's key.
#[derive(Clone)]
pub struct SecretKey(XChaCha20Poly1305);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

/// Why a secret can't be had.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    /// No secret of that path.
    #[error("there is no secret `{0}` (set it with `miren secret set {0}`)")]
    NoSecret(String),
    /// The secret has no such version.
    #[error("secret `{0}` has no version `{1}`")]
    NoVersion(String, String),
    /// The version is disabled: it fails closed.
    #[error("version `{1}` of secret `{0}` is disabled")]
    Disabled(String, String),
    /// The value doesn't open with this key (another server's, or tampered with).
    #[error("secret `{0}` does not open with this server's key ({1})")]
    Sealed(String, String),
    /// A value over [`MAX_VALUE`].
    #[error("a secret's value may have {MAX_VALUE} bytes at most; this one has {0}")]
    TooLarge(usize),
}

impl SecretKey {
    /// A new random key, as 32 bytes.
    pub fn generate() -> [u8; 32] {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut out = [0u8; 32];
        out.copy_from_slice(&key);
        out
    }

    /// The key of these 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(bytes.into()))
    }

    /// `value` sealed, with a fresh nonce.
    pub fn seal(&self, value: &[u8]) -> Result<Sealed, SecretError> {
        if value.len() > MAX_VALUE {
            return Err(SecretError::TooLarge(value.len()));
        }
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let data = self
            .0
            .encrypt(&nonce, value)
            .map_err(|e| SecretError::Sealed("(new)".into(), e.to_string()))?;
        Ok(Sealed {
            nonce: hex(&nonce),
            data: hex(&data),
        })
    }

    /// What `sealed` holds; `path` names it in errors.
    pub fn open(&self, path: &str, sealed: &Sealed) -> Result<Vec<u8>, SecretError> {
        let bad = |why: &str| SecretError::Sealed(path.to_string(), why.to_string());
        let nonce = unhex(&sealed.nonce).ok_or_else(|| bad("a malformed nonce"))?;
        if nonce.len() != 24 {
            return Err(bad("a malformed nonce"));
        }
        let data = unhex(&sealed.data).ok_or_else(|| bad("malformed data"))?;
        self.0
            .decrypt(XNonce::from_slice(&nonce), data.as_slice())
            .map_err(|_| bad("wrong key, or altered"))
    }

    /// The value `r` names in `secret` (`None`: no such secret): its version and
    /// the value.
    pub fn resolve(
        &self,
        secret: Option<&Secret>,
        r: &SecretRef,
    ) -> Result<(String, Vec<u8>), SecretError> {
        let s = secret.ok_or_else(|| SecretError::NoSecret(r.path.clone()))?;
        let v = s
            .version(r.version.as_deref())
            .ok_or_else(|| match &r.version {
                Some(v) => SecretError::NoVersion(r.path.clone(), v.clone()),
                None => SecretError::NoSecret(r.path.clone()),
            })?;
        if v.disabled {
            return Err(SecretError::Disabled(r.path.clone(), v.id.clone()));
        }
        Ok((v.id.clone(), self.open(&r.path, &v.sealed)?))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SecretVersion;

    #[test]
    fn a_sealed_value_opens_with_its_key_only() -> Result<(), SecretError> {
        let key = SecretKey::from_bytes(&SecretKey::generate());
        let sealed = key.seal(b"sk_live_123")?;
        assert!(!sealed.data.contains("sk_live"));
        assert_eq!(key.open("p", &sealed)?, b"sk_live_123");
        let again = key.seal(b"sk_live_123")?;
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce each time");
        let other = SecretKey::from_bytes(&SecretKey::generate());
        assert!(matches!(
            other.open("p", &sealed),
            Err(SecretError::Sealed(..))
        ));
        let mut altered = sealed.clone();
        altered.data.replace_range(
            0..2,
            if &altered.data[0..2] == "00" {
                "01"
            } else {
                "00"
            },
        );
        assert!(key.open("p", &altered).is_err());
        assert!(matches!(
            key.seal(&vec![0; MAX_VALUE + 1]),
            Err(SecretError::TooLarge(_))
        ));
        Ok(())
    }

    #[test]
    fn references_resolve_to_a_version_or_fail_closed() -> Result<(), SecretError> {
        let key = SecretKey::from_bytes(&SecretKey::generate());
        let version = |id: &str, value: &[u8], disabled| -> Result<SecretVersion, SecretError> {
            Ok(SecretVersion {
                id: id.into(),
                created: 0,
                disabled,
                sealed: key.seal(value)?,
            })
        };
        let s = Secret {
            path: "payments/stripe".into(),
            versions: vec![version("a1", b"old", false)?, version("b2", b"new", false)?],
        };
        let r = |t: &str| SecretRef::parse(t).map_err(SecretError::NoSecret);
        assert_eq!(
            key.resolve(Some(&s), &r("payments/stripe")?)?,
            ("b2".into(), b"new".to_vec())
        );
        assert_eq!(key.resolve(Some(&s), &r("payments/stripe@a1")?)?.1, b"old");
        assert!(matches!(
            key.resolve(Some(&s), &r("payments/stripe@zz")?),
            Err(SecretError::NoVersion(..))
        ));
        assert!(matches!(
            key.resolve(None, &r("x")?),
            Err(SecretError::NoSecret(_))
        ));
        let mut off = s.clone();
        off.versions[1].disabled = true;
        assert!(matches!(
            key.resolve(Some(&off), &r("payments/stripe")?),
            Err(SecretError::Disabled(..))
        ));
        Ok(())
    }
}

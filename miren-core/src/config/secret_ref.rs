//! How app.toml and the CLI name a secret of the server's own store
//! (`backend = "cluster"`): `path`, or `path@version` to pin one version.

/// A reference to a secret: `path`, or `path@version` pinned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// The secret's path.
    pub path: String,
    /// The version; `None`: the current one.
    pub version: Option<String>,
}

impl SecretRef {
    /// `payments/stripe-key` or `payments/stripe-key@x1A`.
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        let (path, version) = match s.rsplit_once('@') {
            Some((p, v)) => (p, Some(v.to_string())),
            None => (s, None),
        };
        check_path(path)?;
        if version
            .as_deref()
            .is_some_and(|v| v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(format!("`{s}`: a version after `@` is letters and digits"));
        }
        Ok(SecretRef {
            path: path.to_string(),
            version,
        })
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// A secret's path: words of letters, digits and `._-` joined by single `/`, at most
/// 200 characters.
pub fn check_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.len() <= 200
        && path.split('/').all(|w| {
            !w.is_empty()
                && w != "."
                && w != ".."
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{path}` is not a secret path: words of letters, digits, `.`, `_` and `-`, joined by `/` (`payments/stripe-key`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_path_and_maybe_a_version() {
        assert_eq!(
            SecretRef::parse("payments/stripe-key@x1A"),
            Ok(SecretRef {
                path: "payments/stripe-key".into(),
                version: Some("x1A".into())
            })
        );
        assert_eq!(
            SecretRef::parse("npm_token").map(|r| r.to_string()),
            Ok("npm_token".into())
        );
        for bad in ["", "a//b", "/a", "a/", "a b", "a/../b", "a@", "a@x-1"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
    }
}

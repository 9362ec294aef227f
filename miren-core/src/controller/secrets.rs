//! The server's own secrets (`backend = "cluster"`, SPEC §17): the controller is
//! their one writer (`miren secret set|disable|enable|destroy`), a deploy pins each
//! reference without `@version` to the current version (a rollback runs what its
//! version ran with), and a sandbox's references are opened into its env only when
//! it starts — in memory, never into a stored object.

use std::collections::BTreeMap;

use crate::config::ResolvedApp;
use crate::model::{PoolSpec, Secret, SecretRef, SecretVersion};
use crate::runtime::now_millis;
use crate::secret::SecretKey;

use super::actor::Actor;
use super::{ControllerError, Reply, SecretSet};

/// The backend this server reads: its own store.
pub const BACKEND: &str = "cluster";

impl Actor {
    fn key(&self) -> Result<&SecretKey, String> {
        self.cfg
            .secret_key
            .as_ref()
            .ok_or_else(|| "this server has no secret store (no key)".to_string())
    }

    /// Each reference of `config` without `@version` (but those `vars` override),
    /// pinned to its secret's current version (path → version); an error names what
    /// doesn't resolve (a deploy then fails closed).
    pub(super) fn pin_secrets(
        &self,
        config: &ResolvedApp,
        vars: &[crate::model::ConfigVar],
    ) -> Result<BTreeMap<String, String>, String> {
        let mut pins = BTreeMap::new();
        let mut problems = Vec::new();
        // `miren env set` wins over a reference: such a key needs no secret.
        let overridden = |service: &str, key: &str| {
            vars.iter()
                .any(|v| v.key == key && v.service.as_deref().is_none_or(|s| s == service))
        };
        let env_refs = config.services.iter().flat_map(|(service, s)| {
            s.secret_refs
                .iter()
                .filter(move |(key, _)| !overridden(service, key))
                .map(move |(key, (b, r))| (format!("`{key}` of service `{service}`"), b, r))
        });
        let build_refs = config
            .build_secrets
            .iter()
            .map(|b| (format!("build secret `{}`", b.id), &b.backend, &b.reference));
        for (what, backend, reference) in env_refs.chain(build_refs) {
            let resolved = self.pin_one(backend, reference);
            match resolved {
                Ok(Some((path, version))) => {
                    pins.insert(path, version);
                }
                Ok(None) => {}
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(pins)
        } else {
            Err(problems.join("\n"))
        }
    }

    /// One reference checked against the store: (path, current version) when it has
    /// no `@version`, `None` when it is pinned already.
    fn pin_one(&self, backend: &str, reference: &str) -> Result<Option<(String, String)>, String> {
        if backend != BACKEND {
            return Err(format!(
                "this server has no secret backend `{backend}` (it has `{BACKEND}`)"
            ));
        }
        let r = SecretRef::parse(reference)?;
        let (version, _) = self
            .key()?
            .resolve(self.secrets.get(&r.path), &r)
            .map_err(|e| e.to_string())?;
        Ok(r.version.is_none().then(|| (r.path.clone(), version)))
    }

    /// The build secrets of `version`, opened (as pinned by its deploy).
    pub(super) fn open_build_secrets(
        &self,
        version: &crate::model::VersionId,
    ) -> Result<Vec<crate::runtime::BuildSecret>, String> {
        let Some(v) = self.versions.get(version) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for b in &v.config.build_secrets {
            let what = format!("build secret `{}`", b.id);
            let mut r = SecretRef::parse(&b.reference).map_err(|e| format!("{what}: {e}"))?;
            if r.version.is_none() {
                r.version = v.secret_pins.get(&r.path).cloned();
            }
            let (_, value) = self
                .key()?
                .resolve(self.secrets.get(&r.path), &r)
                .map_err(|e| format!("{what}: {e}"))?;
            let value = String::from_utf8(value)
                .map_err(|_| format!("{what}: secret `{r}` is not text"))?;
            out.push(crate::runtime::BuildSecret {
                id: b.id.clone(),
                value,
                env: b.env.clone(),
                file: b.file.clone(),
            });
        }
        Ok(out)
    }

    /// Opens `spec`'s secret references into its env (marked secret); an error says
    /// which one doesn't open (the sandbox then fails to start).
    pub(super) fn open_secrets(&self, spec: &mut PoolSpec) -> Result<(), String> {
        let refs = std::mem::take(&mut spec.secret_refs);
        for (key, reference) in &refs {
            let r = SecretRef::parse(reference).map_err(|e| format!("`{key}`: {e}"))?;
            let (_, value) = self
                .key()?
                .resolve(self.secrets.get(&r.path), &r)
                .map_err(|e| format!("`{key}`: {e}"))?;
            let value = String::from_utf8(value)
                .map_err(|_| format!("`{key}`: secret `{r}` is not text, and env values are"))?;
            spec.env.insert(key.clone(), value);
            spec.secret_env.insert(key.clone());
        }
        Ok(())
    }

    pub(super) fn set_secret(&mut self, path: &str, value: Vec<u8>, reply: Reply<SecretSet>) {
        if let Err(e) = crate::model::check_secret_path(path) {
            let _ = reply.send(Err(ControllerError::Invalid(e)));
            return;
        }
        let key = match self.key() {
            Ok(k) => k.clone(),
            Err(e) => {
                let _ = reply.send(Err(ControllerError::Invalid(e)));
                return;
            }
        };
        // The same value again is no new version: running the command twice is safe.
        let current = self.secrets.get(path).and_then(|s| s.current());
        if let Some(c) = current
            && !c.disabled
            && key.open(path, &c.sealed).is_ok_and(|v| v == value)
        {
            let _ = reply.send(Ok(SecretSet {
                version: c.id.clone(),
                unchanged: true,
            }));
            return;
        }
        let sealed = match key.seal(&value) {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(ControllerError::Invalid(e.to_string())));
                return;
            }
        };
        let secret = self
            .secrets
            .entry(path.to_string())
            .or_insert_with(|| Secret {
                path: path.to_string(),
                versions: Vec::new(),
            });
        let id = loop {
            let suffix = crate::model::new_suffix();
            let id: String = suffix.chars().rev().take(4).collect();
            if !secret.versions.iter().any(|v| v.id == id) {
                break id;
            }
        };
        secret.versions.push(SecretVersion {
            id: id.clone(),
            created: now_millis(),
            disabled: false,
            sealed,
        });
        self.dirty.secrets.insert(path.to_string());
        self.after_flush(move |r| {
            let _ = reply.send(
                r.map(|_| SecretSet {
                    version: id,
                    unchanged: false,
                })
                .map_err(ControllerError::Store),
            );
        });
    }

    /// Disables or enables one version.
    pub(super) fn enable_secret(&mut self, r: SecretRef, enabled: bool, reply: Reply<()>) {
        let Some(version) = r.version.clone() else {
            let _ = reply.send(Err(ControllerError::Invalid(format!(
                "say which version: `{}@<version>` (see `miren secret versions {}`)",
                r.path, r.path
            ))));
            return;
        };
        let Some(v) = self
            .secrets
            .get_mut(&r.path)
            .and_then(|s| s.versions.iter_mut().find(|v| v.id == version))
        else {
            let _ = reply.send(Err(super::actor::not_found(
                "secret version",
                &r.to_string(),
            )));
            return;
        };
        v.disabled = !enabled;
        self.dirty.secrets.insert(r.path.clone());
        self.after_flush(move |res| {
            let _ = reply.send(res.map_err(ControllerError::Store));
        });
    }

    /// Destroys one version, or the whole secret.
    pub(super) fn destroy_secret(&mut self, r: SecretRef, reply: Reply<()>) {
        let Some(s) = self.secrets.get_mut(&r.path) else {
            let _ = reply.send(Err(super::actor::not_found("secret", &r.path)));
            return;
        };
        match &r.version {
            None => {
                self.secrets.remove(&r.path);
            }
            Some(v) => {
                let before = s.versions.len();
                s.versions.retain(|x| &x.id != v);
                if s.versions.len() == before {
                    let _ = reply.send(Err(super::actor::not_found(
                        "secret version",
                        &r.to_string(),
                    )));
                    return;
                }
                if s.versions.is_empty() {
                    self.secrets.remove(&r.path);
                }
            }
        }
        self.dirty.secrets.insert(r.path.clone());
        self.after_flush(move |res| {
            let _ = reply.send(res.map_err(ControllerError::Store));
        });
    }
}

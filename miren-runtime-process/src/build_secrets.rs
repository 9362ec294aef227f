//! `[[build.secrets]]` for the `onbuild` commands: each secret is a file of a private
//! directory outside the code (`$MIREN_BUILD_SECRETS/<id>`, as BuildKit mounts
//! `/run/secrets/<id>`), and where the secret asks for it, a variable (`env`) or a
//! file under a home of the build's own (`file = "~/.netrc"`, with `HOME` pointing
//! there). The directory goes when the build does: nothing of it is in the code.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use miren_core::runtime::{BuildSecret, RuntimeError};

use crate::user::SandboxUser;

/// What the build's commands get; the files go when it is dropped.
pub struct Given {
    dir: Option<PathBuf>,
    env: BTreeMap<String, String>,
}

impl Given {
    /// The variables the commands run with.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.env.clone()
    }
}

impl Drop for Given {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Writes `secrets` where the commands (run as `user`, when one) find them.
pub fn give(secrets: &[BuildSecret], user: Option<&SandboxUser>) -> Result<Given, RuntimeError> {
    if secrets.is_empty() {
        return Ok(Given {
            dir: None,
            env: BTreeMap::new(),
        });
    }
    let io = |e| RuntimeError::io("handing the build its secrets", e);
    let dir = std::env::temp_dir().join(format!(
        "miren-build-secrets-{}",
        miren_core::model::new_suffix()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(io)?;
    let mut given = Given {
        dir: Some(dir.clone()),
        env: BTreeMap::new(),
    };
    let files = dir.join("secrets");
    let home = dir.join("home");
    for d in [&files, &home] {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(d)
            .map_err(io)?;
    }
    given
        .env
        .insert("MIREN_BUILD_SECRETS".into(), files.display().to_string());
    let mut uses_home = false;
    for s in secrets {
        write(&files.join(&s.id), &s.value).map_err(io)?;
        if let Some(var) = &s.env {
            given.env.insert(var.clone(), s.value.clone());
        }
        if let Some(file) = &s.file {
            let rel = file.strip_prefix("~/").ok_or_else(|| {
                RuntimeError::Unsupported(format!(
                    "build secret `{}`: on the process runtime its `file` goes under the build's home (`~/…`), not `{file}`",
                    s.id
                ))
            })?;
            let path = home.join(rel);
            if !path.starts_with(&home) || rel.split('/').any(|w| w == "..") {
                return Err(RuntimeError::Unsupported(format!(
                    "build secret `{}`: `{file}` leaves the build's home",
                    s.id
                )));
            }
            if let Some(parent) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(io)?;
            }
            write(&path, &s.value).map_err(io)?;
            uses_home = true;
        }
    }
    if uses_home {
        given.env.insert("HOME".into(), home.display().to_string());
    }
    if let Some(u) = user {
        chown_tree(&dir, u.uid, u.gid).map_err(io)?;
    }
    Ok(given)
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, value.as_bytes())
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if path.is_dir() {
        for e in std::fs::read_dir(path)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(id: &str, env: Option<&str>, file: Option<&str>) -> BuildSecret {
        BuildSecret {
            id: id.into(),
            value: format!("value of {id}"),
            env: env.map(str::to_string),
            file: file.map(str::to_string),
        }
    }

    #[test]
    fn secrets_are_files_and_variables_that_go_with_the_build() -> Result<(), RuntimeError> {
        let given = give(
            &[
                secret("npm", Some("NPM_TOKEN"), None),
                secret("netrc", None, Some("~/.netrc")),
            ],
            None,
        )?;
        let env = given.env();
        assert_eq!(env["NPM_TOKEN"], "value of npm");
        let files = PathBuf::from(&env["MIREN_BUILD_SECRETS"]);
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(files.join("npm")), "value of npm");
        assert_eq!(
            read(PathBuf::from(&env["HOME"]).join(".netrc")),
            "value of netrc"
        );
        drop(given);
        assert!(!files.exists(), "the secrets outlived the build");
        assert!(give(&[secret("x", None, Some("/etc/x"))], None).is_err());
        assert!(give(&[secret("x", None, Some("~/../x"))], None).is_err());
        Ok(())
    }
}

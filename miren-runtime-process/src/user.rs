//! Running sandboxes as another user than the server's (`--sandbox-user`).
//!
//! The process runtime trusts its code: a sandbox runs with the server's rights
//! unless it is given a user of its own. With one, the sandbox can reach its code and
//! its disks (the runtime's directories are traversable, disks are the user's) and
//! nothing else of the data dir: the state, the API token and socket, the logs and the
//! uploads stay the server's, mode 0600/0700.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use miren_core::runtime::RuntimeError;

/// The user sandboxes run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxUser {
    /// Its name (`USER`, `LOGNAME`).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Its home (`HOME`).
    pub home: PathBuf,
}

impl SandboxUser {
    /// The user `name` of this machine. Switching to it needs the server to be root.
    pub fn lookup(name: &str) -> Result<Self, RuntimeError> {
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| RuntimeError::Backend(format!("looking up the user `{name}`: {e}")))?
            .ok_or_else(|| {
                RuntimeError::Backend(format!("there is no user `{name}` on this machine"))
            })?;
        if !nix::unistd::geteuid().is_root() {
            return Err(RuntimeError::Backend(format!(
                "running sandboxes as `{name}` needs the server to run as root (it runs as uid {})",
                nix::unistd::geteuid()
            )));
        }
        Ok(Self {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
        })
    }

    /// Whether it may enter `dir` (search permission).
    fn can_enter(&self, meta: &fs::Metadata) -> bool {
        let mode = meta.mode();
        if meta.uid() == self.uid {
            mode & 0o100 != 0
        } else if meta.gid() == self.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }

    /// Fails unless the user can reach `dir` through every directory above it, saying
    /// which one stops it and how to let it through.
    pub fn check_reaches(&self, dir: &Path) -> Result<(), RuntimeError> {
        let dir = dir
            .canonicalize()
            .map_err(|e| RuntimeError::io(format!("resolving {}", dir.display()), e))?;
        for d in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
            let meta = fs::metadata(d)
                .map_err(|e| RuntimeError::io(format!("reading {}", d.display()), e))?;
            if !self.can_enter(&meta) {
                return Err(RuntimeError::Backend(format!(
                    "sandboxes run as `{}`, who can't reach {}: {} is mode {:04o} (owner uid {}); \
                     let them through with `chmod o+x {}`, or choose a data dir they can reach",
                    self.name,
                    dir.display(),
                    d.display(),
                    meta.mode() & 0o7777,
                    meta.uid(),
                    d.display()
                )));
            }
        }
        Ok(())
    }
}

/// Creates `dir` when missing, with `mode` (and owned by `owner` when given). An
/// existing directory is left as it is: an operator may have given it other rights.
pub fn ensure_dir(dir: &Path, mode: u32, owner: Option<&SandboxUser>) -> io::Result<()> {
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            // The umask may have taken bits away.
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
            if let Some(u) = owner {
                std::os::unix::fs::chown(dir, Some(u.uid), Some(u.gid))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_directory_keeps_its_mode() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = tmp.path().join("disk");
        ensure_dir(&d, 0o700, None)?;
        assert_eq!(fs::metadata(&d)?.mode() & 0o777, 0o700);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o750))?;
        ensure_dir(&d, 0o700, None)?;
        assert_eq!(
            fs::metadata(&d)?.mode() & 0o777,
            0o750,
            "given access stays given"
        );
        Ok(())
    }

    #[test]
    fn a_directory_the_user_cant_enter_is_named_with_the_fix() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let inner = tmp.path().join("data/process");
        fs::create_dir_all(&inner)?;
        fs::set_permissions(tmp.path().join("data"), fs::Permissions::from_mode(0o700))?;
        let me = nix::unistd::geteuid().as_raw();
        let other = SandboxUser {
            name: "someone".into(),
            uid: me.wrapping_add(4242),
            gid: u32::MAX - 1,
            home: "/".into(),
        };
        let err = match other.check_reaches(&inner) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("reachable through a 0700 directory"),
        };
        assert!(
            err.contains("chmod o+x") && err.contains("mode 0700"),
            "{err}"
        );
        fs::set_permissions(tmp.path().join("data"), fs::Permissions::from_mode(0o711))?;
        // The temp dir itself is 0700 too: let it through as well.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o711))?;
        other
            .check_reaches(&inner)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(())
    }
}

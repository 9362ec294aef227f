//! The data dir and what in it is private. A directory given with `--data-dir` that
//! already exists keeps its mode (it may be shared, `/tmp` say); what the server
//! creates in it is the server's alone: the state, the token, the logs, the uploads.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};

/// Creates the data dir with `mode` when missing; an existing one must be a
/// directory and is left as it is.
pub fn prepare(data: &Path, mode: u32) -> anyhow::Result<()> {
    match std::fs::metadata(data) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "the data dir {} exists and is not a directory",
            data.display()
        ),
        Err(_) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(data)
                .with_context(|| format!("creating the data dir {}", data.display()))?;
            std::fs::set_permissions(data, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("setting the mode of {}", data.display()))
        }
    }
}

/// A directory of the server's own: created 0700, made 0700 again if it was opened up.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    restrict(dir, 0o700).map(|_| ())
}

/// Makes a file of the server's own 0600; true when it was readable by others.
pub fn private_file(file: &Path) -> anyhow::Result<bool> {
    restrict(file, 0o600)
}

fn restrict(path: &Path, mode: u32) -> anyhow::Result<bool> {
    let m = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if m.mode() & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("making {} private", path.display()))?;
    Ok(true)
}

//! The app of the current directory (SPEC §11): `.miren/app.toml` here or in a parent,
//! as flyctl finds `fly.toml`. It names the app when `-a` is left out, and is what
//! `validate`, `deploy` and `up` work on when given no directory.

use std::path::{Path, PathBuf};

use miren_core::config::{self, LoadError};

/// The app.toml that `path` names (an app dir, its `.miren` dir or the file), or the
/// nearest one from the current directory up.
pub fn app_toml(path: Option<&Path>) -> Result<PathBuf, LoadError> {
    match path {
        Some(p) => Ok(config::app_toml_in(p)),
        None => {
            let cwd = std::env::current_dir().map_err(|source| LoadError::Read {
                path: PathBuf::from("."),
                source,
            })?;
            config::find_app_toml(&cwd)
        }
    }
}

/// The app directory of [`app_toml`]: the one holding `.miren/`.
pub fn app_dir(path: Option<&Path>) -> Result<PathBuf, LoadError> {
    let toml = app_toml(path)?;
    if !toml.is_file() {
        return Err(LoadError::NotFound { path: toml });
    }
    let dir = toml
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    })
}

/// The app named `-a`, or else the one the current directory's app.toml names.
pub fn app(given: Option<&str>) -> Result<String, String> {
    if let Some(a) = given {
        return Ok(a.to_string());
    }
    let toml = app_toml(None)
        .map_err(|e| format!("which app? pass -a APP, or run this in an app's directory ({e})"))?;
    let text = config::read(&toml).map_err(|e| format!("which app? {e}; pass -a APP"))?;
    let name = config::validate_in(&text, config::dir_name_of(&toml).as_deref())
        .config
        .name;
    if name.is_empty() {
        return Err(format!(
            "which app? {} names none; pass -a APP",
            crate::output::display_path(&toml)
        ));
    }
    Ok(name)
}

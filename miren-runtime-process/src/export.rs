//! `[static]`'s directory copied out of a version's built code (`/app` is the code
//! directory). Symbolic links are followed inside the code and left out when they
//! point outside it: what is published is the app's own files, nothing else of the
//! machine.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use miren_core::runtime::RuntimeError;

/// The code directory's part `dir` names: `/app` → the code dir itself, `/app/dist`
/// → its `dist`. An error when `dir` is outside `/app`.
pub fn source(code: &Path, dir: &str) -> Result<PathBuf, RuntimeError> {
    let rel = dir
        .strip_prefix("/app")
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .ok_or_else(|| {
            RuntimeError::Unsupported(format!(
                "`static.dir = \"{dir}\"` is outside /app: on the process runtime only the app's own code (/app) is there"
            ))
        })?;
    Ok(code.join(rel.trim_start_matches('/')))
}

/// Copies the tree at `from` to `to` (made here); `within` bounds where links may
/// point. How many files were skipped as links leaving it.
pub fn copy_tree(from: &Path, to: &Path, within: &Path) -> io::Result<usize> {
    let within = within.canonicalize()?;
    let mut skipped = 0;
    copy_dir(from, to, &within, &mut skipped)?;
    Ok(skipped)
}

fn copy_dir(from: &Path, to: &Path, within: &Path, skipped: &mut usize) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        let real = match path.canonicalize() {
            Ok(r) if r.starts_with(within) => r,
            // A link out of the app, or a dangling one.
            _ => {
                *skipped += 1;
                continue;
            }
        };
        if real.is_dir() {
            copy_dir(&real, &target, within, skipped)?;
        } else if real.is_file() {
            fs::copy(&real, &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_copied_and_links_out_of_the_app_are_not() -> io::Result<()> {
        let t = tempfile::tempdir()?;
        let code = t.path().join("code");
        fs::create_dir_all(code.join("dist/css"))?;
        fs::write(code.join("dist/index.html"), "<h1>hi</h1>")?;
        fs::write(code.join("dist/css/site.css"), "body{}")?;
        fs::write(code.join("README"), "inside the app")?;
        std::os::unix::fs::symlink(code.join("README"), code.join("dist/readme.txt"))?;
        std::os::unix::fs::symlink("/etc/passwd", code.join("dist/passwd"))?;
        let from = source(&code, "/app/dist").map_err(io::Error::other)?;
        let out = t.path().join("out");
        assert_eq!(copy_tree(&from, &out, &code)?, 1);
        assert_eq!(fs::read_to_string(out.join("index.html"))?, "<h1>hi</h1>");
        assert_eq!(fs::read_to_string(out.join("css/site.css"))?, "body{}");
        assert_eq!(
            fs::read_to_string(out.join("readme.txt"))?,
            "inside the app"
        );
        assert!(!out.join("passwd").exists());
        assert_eq!(
            source(&code, "/app").map_err(io::Error::other)?,
            code.join("")
        );
        assert!(source(&code, "/srv/www").is_err());
        assert!(source(&code, "/application").is_err());
        Ok(())
    }
}

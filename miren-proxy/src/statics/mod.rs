//! `[static]` (SPEC §17): files of an app's active version the proxy serves itself,
//! before its web service. The controller exported them to
//! `<static_root>/<version>`; a `GET` or `HEAD` whose path names a file there gets
//! it, anything else goes on to the web service (or, for an app of files only, is a
//! 404). An error page of the version's answers the proxy's own errors for the app.
//!
//! - `mime`: the content type by extension; `body`: a file as an HTTP/2 body.

mod body;
pub mod mime;

pub use body::FileBody;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use miren_core::controller::statics::{PageFields, render_page};

/// One version's static files.
#[derive(Debug)]
pub struct Site {
    /// Where they are.
    pub root: PathBuf,
    /// The error page, relative to `root`.
    pub error_page: Option<String>,
    /// The error page's text, read once.
    page: tokio::sync::OnceCell<Option<Arc<str>>>,
}

/// A file found for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The file.
    pub path: PathBuf,
    /// Its length.
    pub len: u64,
    /// Its entity tag (size and modification time).
    pub etag: String,
}

impl Site {
    /// The files of `version` under `static_root`.
    pub fn new(static_root: &Path, version: &str, error_page: Option<String>) -> Self {
        Self {
            root: static_root.join(version),
            error_page,
            page: tokio::sync::OnceCell::new(),
        }
    }

    /// The file `target` (a request target: path, maybe a query) names, if any. A
    /// directory means its `index.html`; `..`, NUL and escapes out of the root never
    /// resolve.
    pub async fn find(&self, target: &[u8]) -> Option<Found> {
        let root = self.root.clone();
        let target = target.to_vec();
        tokio::task::spawn_blocking(move || find(&root, &target))
            .await
            .ok()
            .flatten()
    }

    /// `reply`'s body as the error page, when the site has one.
    pub async fn dress(&self, fields: &PageFields<'_>) -> Option<String> {
        let name = self.error_page.as_ref()?;
        let page = self
            .page
            .get_or_init(|| async {
                let path = self.root.join(name);
                tokio::fs::read_to_string(path).await.ok().map(Arc::from)
            })
            .await;
        page.as_deref().map(|p| render_page(p, fields))
    }
}

/// [`Site::find`], on a blocking thread.
fn find(root: &Path, target: &[u8]) -> Option<Found> {
    let path = target.split(|b| *b == b'?' || *b == b'#').next()?;
    let decoded = percent_decode(path)?;
    let text = std::str::from_utf8(&decoded).ok()?;
    if !text.starts_with('/') || text.contains('\0') || text.contains('\\') {
        return None;
    }
    let mut file = root.to_path_buf();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s => file.push(s),
        }
    }
    let mut meta = std::fs::metadata(&file).ok()?;
    if meta.is_dir() {
        file.push("index.html");
        meta = std::fs::metadata(&file).ok()?;
    }
    if !meta.is_file() {
        return None;
    }
    // The export holds no link out, but a root is only ever left by a link.
    let real = file.canonicalize().ok()?;
    if !real.starts_with(root.canonicalize().ok()?) {
        return None;
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Some(Found {
        etag: format!("\"{:x}-{modified:x}\"", meta.len()),
        len: meta.len(),
        path: real,
    })
}

/// `%XX` decoded; `None` for a malformed escape.
fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_root_only() -> std::io::Result<()> {
        let t = tempfile::tempdir()?;
        let root = t.path().join("v1");
        std::fs::create_dir_all(root.join("docs/a b"))?;
        std::fs::write(root.join("index.html"), "home")?;
        std::fs::write(root.join("docs/a b/x.txt"), "x")?;
        std::fs::write(root.join("docs/index.html"), "docs")?;
        std::fs::write(t.path().join("secret"), "no")?;
        std::os::unix::fs::symlink(t.path().join("secret"), root.join("leak"))?;
        let name = |target: &str| {
            find(&root, target.as_bytes()).map(|f| {
                f.path
                    .strip_prefix(root.canonicalize().unwrap_or_default())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            })
        };
        assert_eq!(name("/").as_deref(), Some("index.html"));
        assert_eq!(name("/index.html?v=3").as_deref(), Some("index.html"));
        assert_eq!(name("/docs").as_deref(), Some("docs/index.html"));
        assert_eq!(name("/docs/").as_deref(), Some("docs/index.html"));
        assert_eq!(name("/docs/a%20b/x.txt").as_deref(), Some("docs/a b/x.txt"));
        assert_eq!(
            name("/./docs//index.html").as_deref(),
            Some("docs/index.html")
        );
        for bad in [
            "/../secret",
            "/docs/../../secret",
            "/%2e%2e/secret",
            "/leak",
            "/missing.css",
            "relative",
            "/a%00b",
            "/%zz",
            "/docs/a b",
        ] {
            assert_eq!(name(bad), None, "{bad}");
        }
        Ok(())
    }
}

//! `[static]`: after a version is prepared, the runtime copies its static directory
//! out of the built code to `<static_root>/<version>`, where the proxy serves it
//! from. The copy goes to a scratch name first and is renamed into place, so a
//! directory named after a version is always a whole one (a restart prepares the
//! active versions again and keeps what is there). The collector removes the copies
//! of versions it no longer keeps.

use std::path::{Path, PathBuf};

use crate::config::StaticFiles;
use crate::model::VersionId;
use crate::runtime::{PrepareApp, Runtime, RuntimeError, blocking};

/// The largest error page: it is held in memory by the proxy.
pub const MAX_ERROR_PAGE: u64 = 128 * 1024;

/// Where the files of `version` are served from.
pub fn dir_of(root: &Path, version: &VersionId) -> PathBuf {
    root.join(version.as_str())
}

/// Exports `files` of the prepared version `app` under `root`, and checks its error
/// page. `root` is `None` when this server serves no static files.
pub(super) async fn export(
    rt: &dyn Runtime,
    app: &PrepareApp,
    files: &StaticFiles,
    root: Option<&Path>,
) -> Result<(), RuntimeError> {
    let Some(root) = root else {
        return Err(RuntimeError::Unsupported(
            "`[static]`: this server has no directory to serve static files from".into(),
        ));
    };
    let dest = dir_of(root, &app.version);
    let scratch = root.join(format!(".{}.partial", app.version));
    let (d, s, r) = (dest.clone(), scratch.clone(), root.to_path_buf());
    let done = blocking(move || {
        std::fs::create_dir_all(&r)
            .map_err(|e| RuntimeError::io(format!("creating {}", r.display()), e))?;
        if d.is_dir() {
            return Ok(true);
        }
        match std::fs::remove_dir_all(&s) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io(format!("removing {}", s.display()), e)),
        }
        Ok(false)
    })
    .await?;
    if !done {
        rt.export_dir(app, &files.dir, &scratch).await?;
        let (d, s) = (dest.clone(), scratch);
        blocking(move || {
            std::fs::rename(&s, &d)
                .map_err(|e| RuntimeError::io(format!("publishing {}", d.display()), e))
        })
        .await?;
    }
    if let Some(page) = files.error_page.clone() {
        let dir = files.dir.clone();
        blocking(move || check_error_page(&dest, &dir, &page)).await?;
    }
    Ok(())
}

/// The error page is a file of the exported directory, small enough to keep in
/// memory.
fn check_error_page(dest: &Path, dir: &str, page: &str) -> Result<(), RuntimeError> {
    let path = dest.join(page);
    let shown = format!("{}/{page}", dir.trim_end_matches('/'));
    match std::fs::metadata(&path) {
        Ok(m) if !m.is_file() => Err(RuntimeError::Prepare(format!(
            "`static.error_page`: {shown} is not a file"
        ))),
        Ok(m) if m.len() > MAX_ERROR_PAGE => Err(RuntimeError::Prepare(format!(
            "`static.error_page`: {shown} has {} bytes; an error page may have {} at most",
            m.len(),
            MAX_ERROR_PAGE
        ))),
        Ok(_) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                RuntimeError::Prepare(format!("`static.error_page`: reading {shown}: {e}"))
            })?;
            let unknown = unknown_actions(&text);
            if unknown.is_empty() {
                Ok(())
            } else {
                Err(RuntimeError::Prepare(format!(
                    "`static.error_page`: {shown} has {} which this server does not render; an error page may show {}",
                    unknown.join(", "),
                    PAGE_FIELDS
                        .iter()
                        .map(|f| format!("{{{{ .{f} }}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RuntimeError::Prepare(format!(
            "`static.error_page`: the built app has no {shown}"
        ))),
        Err(e) => Err(RuntimeError::io(format!("reading {shown}"), e)),
    }
}

/// The fields an error page may show, as `{{ .Name }}`.
pub const PAGE_FIELDS: &[&str] = &["StatusCode", "Status", "Message", "RequestID", "App"];

/// The values of an error page's fields, in [`PAGE_FIELDS`] order.
pub struct PageFields<'a> {
    /// `503`.
    pub status_code: u16,
    /// `Service Unavailable`.
    pub status: &'a str,
    /// What went wrong, in a sentence.
    pub message: &'a str,
    /// The request's id (`X-Request-Id`).
    pub request_id: &'a str,
    /// The app.
    pub app: &'a str,
}

/// The `{{ … }}` actions of `page` that are not one of [`PAGE_FIELDS`]: upstream's
/// templates also allow `if` and `with`, which this server does not render.
pub fn unknown_actions(page: &str) -> Vec<String> {
    actions(page)
        .filter(|(_, name)| name.is_none())
        .map(|(whole, _)| whole.to_string())
        .collect()
}

/// `page` with its fields filled in (HTML-escaped).
pub fn render_page(page: &str, f: &PageFields<'_>) -> String {
    let mut out = String::with_capacity(page.len() + 64);
    let mut rest = page;
    while let Some(at) = rest.find("{{") {
        let Some(end) = rest[at..].find("}}") else {
            break;
        };
        let inner = rest[at + 2..at + end].trim();
        out.push_str(&rest[..at]);
        let value = match inner.trim_start_matches('.') {
            "StatusCode" => f.status_code.to_string(),
            "Status" => f.status.to_string(),
            "Message" => f.message.to_string(),
            "RequestID" => f.request_id.to_string(),
            "App" => f.app.to_string(),
            _ => rest[at..at + end + 2].to_string(),
        };
        out.push_str(&escape(&value));
        rest = &rest[at + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Every `{{ … }}` of `page`, with the field it names when it is one.
fn actions(page: &str) -> impl Iterator<Item = (&str, Option<&'static str>)> {
    let mut rest = page;
    std::iter::from_fn(move || {
        let at = rest.find("{{")?;
        let end = rest[at..].find("}}")?;
        let whole = &rest[at..at + end + 2];
        let inner = rest[at + 2..at + end].trim();
        rest = &rest[at + end + 2..];
        let name = inner
            .strip_prefix('.')
            .and_then(|n| PAGE_FIELDS.iter().copied().find(|f| *f == n));
        Some((whole, name))
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_page_gets_its_fields_and_unknown_actions_are_found() {
        let page = "<h1>{{ .StatusCode }} {{.Status}}</h1><p>{{ .Message }}</p><small>{{.RequestID}} of {{.App}}</small>";
        let f = PageFields {
            status_code: 503,
            status: "Service Unavailable",
            message: "app <shop> is starting",
            request_id: "r1",
            app: "shop",
        };
        assert_eq!(
            render_page(page, &f),
            "<h1>503 Service Unavailable</h1><p>app &lt;shop&gt; is starting</p><small>r1 of shop</small>"
        );
        assert!(unknown_actions(page).is_empty());
        assert_eq!(
            unknown_actions("{{if .Message}}x{{end}} {{ .Title }}"),
            ["{{if .Message}}", "{{end}}", "{{ .Title }}"]
        );
    }
}

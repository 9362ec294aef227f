//! Which server a command talks to (SPEC §11): `--server`, then `MIREN_SERVER`, then a
//! `miren up` running for the app of the current directory, then the socket of
//! `MIREN_DATA_DIR` or the default data dir. So `miren app list` beside a running
//! `miren up` reaches it with no flag, and a "no server" error can say what it tried.

use std::path::{Path, PathBuf};

use miren_core::artifact::LOCAL_DATA_DIR;

use super::Endpoint;

/// Where the endpoint came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--server`.
    Flag,
    /// `MIREN_SERVER`.
    Env,
    /// The `miren up` of the app in this directory.
    Up(PathBuf),
    /// `MIREN_DATA_DIR`.
    DataDirEnv,
    /// The default data dir.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => write!(f, "from --server"),
            Source::Env => write!(f, "from MIREN_SERVER"),
            Source::Up(dir) => write!(f, "the `miren up` of {}", dir.display()),
            Source::DataDirEnv => write!(f, "the socket of MIREN_DATA_DIR"),
            Source::Default => write!(f, "the default server's socket"),
        }
    }
}

/// The server to talk to, and what was looked at before it.
#[derive(Debug, Clone)]
pub struct Located {
    /// Where.
    pub endpoint: Endpoint,
    /// Why there.
    pub source: Source,
    /// What was looked at and passed over, in order ("…: no `miren up` answers there").
    pub passed_over: Vec<String>,
}

/// Finds the server: `flag` and `env` are `--server` and `MIREN_SERVER`, `cwd` where
/// to look for an app's `miren up`.
pub fn locate(flag: Option<&str>, env: Option<&str>, token: Option<String>, cwd: &Path) -> Located {
    let given = |s: &str, source| Located {
        endpoint: endpoint(s, token.clone()),
        source,
        passed_over: Vec::new(),
    };
    if let Some(s) = flag.filter(|s| !s.is_empty()) {
        return given(s, Source::Flag);
    }
    if let Some(s) = env.filter(|s| !s.is_empty()) {
        return given(s, Source::Env);
    }
    let mut passed_over = Vec::new();
    if let Some(dir) = app_dir(cwd) {
        let socket = crate::server::socket_in(&dir.join(LOCAL_DATA_DIR));
        if answers(&socket) {
            return Located {
                endpoint: Endpoint::Unix(socket),
                source: Source::Up(dir),
                passed_over,
            };
        }
        passed_over.push(format!(
            "{} (no `miren up` of {} answers there)",
            socket.display(),
            dir.display()
        ));
    }
    let source = if std::env::var_os("MIREN_DATA_DIR").is_some_and(|d| !d.is_empty()) {
        Source::DataDirEnv
    } else {
        Source::Default
    };
    Located {
        endpoint: Endpoint::Unix(crate::server::socket_in(&crate::server::default_data_dir())),
        source,
        passed_over,
    }
}

/// `http://host:port` or a socket path.
fn endpoint(s: &str, token: Option<String>) -> Endpoint {
    match s.strip_prefix("http://") {
        Some(rest) => Endpoint::Tcp {
            authority: rest.trim_end_matches('/').to_string(),
            token,
        },
        None => Endpoint::Unix(PathBuf::from(s)),
    }
}

/// The app directory `cwd` is in: the nearest one with `.miren/app.toml`.
fn app_dir(cwd: &Path) -> Option<PathBuf> {
    let toml = miren_core::config::find_app_toml(cwd).ok()?;
    Some(toml.parent()?.parent()?.to_path_buf())
}

/// Whether something accepts connections on the socket (a `miren up` that was killed
/// leaves its socket file behind).
fn answers(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_environment() {
        let here = Path::new("/");
        let l = locate(Some("/a.sock"), Some("/b.sock"), None, here);
        assert_eq!(l.source, Source::Flag);
        assert!(matches!(l.endpoint, Endpoint::Unix(p) if p == Path::new("/a.sock")));
        let l = locate(None, Some("http://10.0.0.1:7777/"), Some("t".into()), here);
        assert_eq!(l.source, Source::Env);
        assert!(matches!(
            l.endpoint,
            Endpoint::Tcp { authority, token: Some(t) } if authority == "10.0.0.1:7777" && t == "t"
        ));
    }

    #[test]
    fn an_app_dir_without_a_running_up_is_passed_over_and_said() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join(".miren/data"))?;
        std::fs::write(dir.path().join(".miren/app.toml"), "name = \"x\"\n")?;
        let sub = dir.path().join("src/deep");
        std::fs::create_dir_all(&sub)?;
        let l = locate(None, None, None, &sub);
        assert!(matches!(l.source, Source::DataDirEnv | Source::Default));
        assert_eq!(l.passed_over.len(), 1, "{:?}", l.passed_over);
        assert!(l.passed_over[0].contains("no `miren up`"));
        // With something listening there, it is the one.
        let sock = dir.path().join(".miren/data/miren.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock)?;
        let l = locate(None, None, None, &sub);
        assert_eq!(l.source, Source::Up(dir.path().to_path_buf()));
        Ok(())
    }
}

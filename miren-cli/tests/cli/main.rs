//! The real `miren` binary, run as a user would.

mod init;
mod schema;
mod server;
mod validate;

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// `miren` with a clean environment for colour decisions.
pub fn miren() -> Command {
    let mut cmd = Command::cargo_bin("miren").unwrap_or_else(|e| panic!("{e}"));
    cmd.env_remove("MIREN_COLOR").env_remove("NO_COLOR");
    cmd
}

/// The workspace's `examples/` directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A temp app dir with `.miren/app.toml` holding `text`.
pub fn app_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.path().join(".miren")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join(".miren/app.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn completion_scripts_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = miren()
            .args(["completion", shell])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("sandbox-pool") && text.contains("rollback"),
            "{shell}"
        );
    }
    miren()
        .args(["completion", "powershell-ish"])
        .assert()
        .code(2);
}

//! Shared inputs of the benchmarks in `benches/benches/`.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(name, app.toml text)` of every app in `examples/`, sorted by name.
pub fn example_apps() -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(workspace().join("examples"))? {
        let entry = entry?;
        let file = entry.path().join(".miren/app.toml");
        if file.is_file() {
            out.push((
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(file)?,
            ));
        }
    }
    out.sort();
    Ok(out)
}

//! Packing an app directory, reading and unpacking its archive.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::model::Digest;

/// Where `miren up` keeps its server state inside an app dir; never packed.
pub const LOCAL_DATA_DIR: &str = ".miren/data";

/// Packs `dir` into a deterministic tar archive.
pub fn pack_dir(dir: &Path) -> io::Result<Vec<u8>> {
    pack_dir_including(dir, &[])
}

/// Packs `dir`, adding back what `.gitignore` leaves out but an `include` pattern
/// (gitignore syntax, from the app directory) names: a `dist/` built before the
/// deploy, say.
pub fn pack_dir_including(dir: &Path, include: &[String]) -> io::Result<Vec<u8>> {
    let mut files = std::collections::BTreeSet::new();
    walk(dir, true, |p| {
        files.insert(p);
    })?;
    if !include.is_empty() {
        let mut b = ignore::gitignore::GitignoreBuilder::new(dir);
        for pattern in include {
            b.add_line(None, pattern).map_err(io::Error::other)?;
        }
        let wanted = b.build().map_err(io::Error::other)?;
        walk(dir, false, |p| {
            let is_dir = p.is_dir();
            if wanted.matched_path_or_any_parents(&p, is_dir).is_ignore() {
                // With the directories above it, as any entry has.
                for a in p.ancestors().skip(1).take_while(|a| *a != dir) {
                    files.insert(a.to_path_buf());
                }
                files.insert(p);
            }
        })?;
    }
    let files: Vec<PathBuf> = files.into_iter().collect();
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for path in files {
        let rel = path.strip_prefix(dir).map_err(io::Error::other)?;
        let meta = fs::symlink_metadata(&path)?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, rel, io::empty())?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder.append_link(&mut header, rel, target)?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            let exec = meta.permissions().mode() & 0o111 != 0;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if exec { 0o755 } else { 0o644 });
            header.set_size(meta.len());
            builder.append_data(&mut header, rel, fs::File::open(&path)?)?;
        }
    }
    builder.into_inner()
}

/// Every file, directory and symlink under `dir` but `.git`, `miren up`'s data and the
/// app.toml itself; with `filtered`, as `.gitignore` (and `.ignore`) leave them.
fn walk(dir: &Path, filtered: bool, mut found: impl FnMut(PathBuf)) -> io::Result<()> {
    let local_data = dir.join(LOCAL_DATA_DIR);
    let walk = ignore::WalkBuilder::new(dir)
        .standard_filters(filtered)
        .hidden(false)
        .require_git(false)
        .git_global(false)
        .filter_entry(move |e| e.file_name() != ".git" && e.path() != local_data)
        .build();
    let config = dir.join(crate::config::APP_TOML);
    for entry in walk {
        let entry = entry.map_err(io::Error::other)?;
        if entry.depth() == 0 || entry.path() == config {
            continue;
        }
        let Some(ft) = entry.file_type() else {
            continue;
        };
        if ft.is_file() || ft.is_dir() || ft.is_symlink() {
            found(entry.into_path());
        }
    }
    Ok(())
}

/// A tar archive of the given files (name, content), as a build context of a few
/// generated files is.
pub fn tar_of(files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        builder.append_data(&mut header, name, *content)?;
    }
    builder.into_inner()
}

/// The digest of `bytes`.
pub fn digest(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}

/// Whether the archive holds a regular file at `path` (relative to the app dir, as
/// `[build] dockerfile` names it). Reads the archive: call it off the async threads.
pub fn contains_file(archive: &Path, path: &str) -> io::Result<bool> {
    let want = Path::new(path.trim_start_matches("./"));
    let mut ar = tar::Archive::new(io::BufReader::new(fs::File::open(archive)?));
    for entry in ar.entries()? {
        let entry = entry?;
        if entry.header().entry_type().is_file() && entry.path()? == want {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Unpacks an archive into `dest`, which must not exist yet; it appears complete or
/// not at all (unpacked beside it, then renamed).
pub fn unpack(archive: &Path, dest: &Path) -> io::Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let tmp = tempdir_in(parent)?;
    let file = fs::File::open(archive)?;
    let mut ar = tar::Archive::new(io::BufReader::new(file));
    ar.set_preserve_permissions(true);
    if let Err(e) = ar.unpack(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, dest) {
        Ok(()) => Ok(()),
        // Another unpack of the same digest won: same content, keep theirs.
        Err(_) if dest.is_dir() => fs::remove_dir_all(&tmp),
        Err(e) => Err(e),
    }
}

const UNPACK_PREFIX: &str = ".unpack-";

/// Removes what unpacks in `dir` left half done (a server killed mid-unpack). Call it
/// at start, before any unpack runs there.
pub fn remove_unpack_leftovers(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(UNPACK_PREFIX)
        {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

fn tempdir_in(parent: &Path) -> io::Result<PathBuf> {
    for i in 0..1000u32 {
        let p = parent.join(format!("{UNPACK_PREFIX}{}-{i}", std::process::id()));
        match fs::create_dir(&p) {
            Ok(()) => {
                // Readable by a sandbox user, whatever the server's umask.
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
                return Ok(p);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free temporary directory name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::ArtifactStore;

    #[test]
    fn same_content_same_digest_and_gitignore_and_git_left_out() -> io::Result<()> {
        let a = tempfile::tempdir()?;
        fs::create_dir_all(a.path().join(".miren"))?;
        fs::create_dir_all(a.path().join(".git"))?;
        fs::create_dir_all(a.path().join("node_modules"))?;
        fs::write(a.path().join(".miren/app.toml"), "name = \"x\"\n")?;
        fs::write(a.path().join(".git/HEAD"), "ref")?;
        fs::write(a.path().join(".gitignore"), "node_modules/\n")?;
        fs::write(a.path().join("node_modules/big.js"), "x")?;
        fs::write(a.path().join("server.py"), "print(1)")?;
        fs::create_dir_all(a.path().join(LOCAL_DATA_DIR))?;
        fs::write(a.path().join(LOCAL_DATA_DIR).join("state.redb"), "x")?;
        let one = pack_dir(a.path())?;
        fs::write(a.path().join(".miren/app.toml"), "name = \"y\"\n")?;
        let two = pack_dir(a.path())?;
        assert_eq!(digest(&one), digest(&two), "app.toml is not code");
        fs::write(a.path().join("server.py"), "print(2)")?;
        assert_ne!(digest(&one), digest(&pack_dir(a.path())?));
        fs::write(a.path().join("server.py"), "print(1)")?;

        let root = tempfile::tempdir()?;
        let store = ArtifactStore::open(root.path())?;
        let art = store.put(&one)?;
        assert_eq!(store.put(&two)?.path, art.path);
        let out = tempfile::tempdir()?;
        let dest = out.path().join("code");
        unpack(&art.path, &dest)?;
        assert!(!dest.join(".miren/app.toml").exists());
        assert!(dest.join("server.py").is_file());
        assert!(!dest.join(".git").exists());
        assert!(!dest.join("node_modules").exists());
        assert!(!dest.join(LOCAL_DATA_DIR).exists());
        assert!(contains_file(&art.path, "server.py")?);
        assert!(contains_file(&art.path, "./server.py")?);
        assert!(!contains_file(&art.path, "Dockerfile")?);
        assert!(!contains_file(&art.path, ".miren/app.toml")?, "left out");
        Ok(())
    }

    #[test]
    fn include_adds_back_what_gitignore_leaves_out_and_nothing_else() -> io::Result<()> {
        let a = tempfile::tempdir()?;
        fs::create_dir_all(a.path().join("dist/assets"))?;
        fs::create_dir_all(a.path().join("node_modules"))?;
        fs::create_dir_all(a.path().join(".git"))?;
        fs::write(
            a.path().join(".gitignore"),
            "dist/
node_modules/
*.log
",
        )?;
        fs::write(a.path().join("dist/assets/app.js"), "js")?;
        fs::write(a.path().join("node_modules/big.js"), "x")?;
        fs::write(a.path().join("debug.log"), "x")?;
        fs::write(a.path().join(".git/HEAD"), "ref")?;
        fs::write(a.path().join("server.js"), "x")?;
        let include = vec!["dist/".to_string()];
        let bytes = pack_dir_including(a.path(), &include)?;
        let root = tempfile::tempdir()?;
        let store = ArtifactStore::open(root.path())?;
        let art = store.put(&bytes)?;
        assert!(contains_file(&art.path, "dist/assets/app.js")?);
        assert!(contains_file(&art.path, "server.js")?);
        assert!(!contains_file(&art.path, "node_modules/big.js")?);
        assert!(!contains_file(&art.path, "debug.log")?);
        assert!(!contains_file(&art.path, ".git/HEAD")?, ".git never");
        // Deterministic, and without patterns the same as before.
        assert_eq!(bytes, pack_dir_including(a.path(), &include)?);
        assert_eq!(pack_dir(a.path())?, pack_dir_including(a.path(), &[])?);
        let out = tempfile::tempdir()?;
        unpack(&art.path, &out.path().join("code"))?;
        assert!(out.path().join("code/dist/assets/app.js").is_file());
        Ok(())
    }
}

#[cfg(test)]
mod unpack_tests {
    use super::*;

    #[test]
    fn a_failed_unpack_leaves_nothing_and_leftovers_go_at_start() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let bad = dir.path().join("bad.tar");
        // A valid header promising more bytes than follow.
        let mut header = tar::Header::new_gnu();
        header.set_path("big")?;
        header.set_size(1 << 20);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 100]);
        fs::write(&bad, bytes)?;
        let code = dir.path().join("code");
        fs::create_dir_all(&code)?;
        assert!(unpack(&bad, &code.join("x")).is_err());
        assert_eq!(fs::read_dir(&code)?.count(), 0, "no .unpack-* left");

        fs::create_dir_all(code.join(".unpack-1-0/deep"))?;
        fs::create_dir_all(code.join("kept"))?;
        remove_unpack_leftovers(&code)?;
        let left: Vec<_> = fs::read_dir(&code)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(left, vec![std::ffi::OsString::from("kept")]);
        remove_unpack_leftovers(&dir.path().join("missing"))?;
        Ok(())
    }
}

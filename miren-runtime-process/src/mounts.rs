//! A disk's `mount_path` written in an env value (`DATABASE_URL =
//! "sqlite:///data/app.db"` beside a disk mounted at `/data`) names the disk; a
//! process has no mounts, so the path becomes the disk's directory here and the file
//! runs as written. Only a whole path is replaced: the mount path where a path may
//! start, followed by `/` or the value's end.

use std::path::Path;

/// `value` with each disk's mount path (`mounts`: mount path → its directory) as its
/// directory.
pub fn rewrite(value: &str, mounts: &[(String, &Path)]) -> String {
    let mut out = value.to_string();
    for (mount, dir) in mounts {
        let mount = mount.trim_end_matches('/');
        if mount.is_empty() {
            continue;
        }
        let dir = dir.display().to_string();
        let mut next = String::with_capacity(out.len());
        let mut rest = out.as_str();
        let mut prev: Option<char> = None;
        while let Some(at) = rest.find(mount) {
            let before = rest[..at].chars().last().or(prev);
            let after = rest[at + mount.len()..].chars().next();
            let starts = matches!(before, None | Some('/' | ':' | '=' | ' ' | '"' | '\''));
            let ends = matches!(after, None | Some('/'));
            next.push_str(&rest[..at]);
            next.push_str(if starts && ends { &dir } else { mount });
            prev = mount.chars().last();
            rest = &rest[at + mount.len()..];
        }
        next.push_str(rest);
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_mount_path_becomes_the_disk_directory() {
        let dir = Path::new("/srv/miren/disks/shop/sqlite");
        let mounts = [("/data".to_string(), dir)];
        let cases = [
            (
                "sqlite:///data/data.db",
                "sqlite:///srv/miren/disks/shop/sqlite/data.db",
            ),
            ("/data", "/srv/miren/disks/shop/sqlite"),
            (
                "/data/x /data/y",
                "/srv/miren/disks/shop/sqlite/x /srv/miren/disks/shop/sqlite/y",
            ),
            (
                "file:/data/app.db",
                "file:/srv/miren/disks/shop/sqlite/app.db",
            ),
            // Not the mount path: other directories that share its letters.
            ("/var/data/x", "/var/data/x"),
            ("/database", "/database"),
            ("/data2/x", "/data2/x"),
            ("plain", "plain"),
        ];
        for (value, want) in cases {
            assert_eq!(rewrite(value, &mounts), want, "{value}");
        }
    }
}

//! Pid records: how a restarted server finds the processes an earlier one left.
//!
//! Each sandbox's process group leader is recorded as `<pids>/<sandbox>.json` with its
//! pid and its start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot).
//! A pid alone could have been reused by an unrelated process; pid plus start time
//! can't, so cleanup never kills a stranger.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::members;

/// One recorded process group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The sandbox.
    pub sandbox: String,
    /// Leader pid, which is also the process group id.
    pub pid: u32,
    /// The leader's start time, in clock ticks since boot.
    pub start_time: u64,
}

/// The records directory.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    /// Records in `dir` (created when missing).
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, sandbox: &str) -> PathBuf {
        self.dir.join(format!("{sandbox}.json"))
    }

    /// Records a started sandbox, durably (written beside, then renamed).
    pub fn write(&self, r: &Record) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{}.tmp", r.sandbox));
        fs::write(&tmp, serde_json::to_vec(r).map_err(io::Error::other)?)?;
        fs::rename(tmp, self.path(&r.sandbox))
    }

    /// Forgets a sandbox that exited.
    pub fn remove(&self, sandbox: &str) {
        let _ = fs::remove_file(self.path(sandbox));
    }

    /// Kills what is left of every recorded sandbox — its process group while its
    /// leader is still the one recorded, and every process carrying its marker —,
    /// forgets all records, and returns the sandboxes that had something left.
    pub fn kill_leftovers(&self) -> io::Result<Vec<String>> {
        let mut sandboxes = Vec::new();
        let mut paths = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let rec: Option<Record> = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(rec) = rec {
                let own = start_time(rec.pid) == Some(rec.start_time);
                sandboxes.push(members::Sandbox {
                    pgid: own.then_some(rec.pid),
                    id: rec.sandbox,
                });
            }
            paths.push(path);
        }
        let left = members::of_each(&sandboxes);
        for pids in left.values() {
            members::signal(pids, Signal::SIGKILL);
        }
        // Gone before anything starts again (a SIGKILL takes effect a moment later).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !left.is_empty() && std::time::Instant::now() < deadline {
            let still = members::of_each(&sandboxes);
            if still.is_empty() {
                break;
            }
            for pids in still.values() {
                members::signal(pids, Signal::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for path in paths {
            let _ = fs::remove_file(&path);
        }
        let mut killed: Vec<String> = left.into_keys().collect();
        killed.sort();
        Ok(killed)
    }
}

/// A process's start time in clock ticks since boot, if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parens, so split after the
    // last ')'. Field 22 is the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn own_start_time_is_readable_and_stable() {
        let me = std::process::id();
        let t = start_time(me);
        assert!(t.is_some());
        assert_eq!(t, start_time(me));
        assert_eq!(start_time(u32::MAX - 1), None);
    }

    #[test]
    fn a_recorded_pid_now_used_by_a_stranger_is_not_killed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let records = Records::open(dir.path().to_path_buf()).unwrap_or_else(|e| panic!("{e}"));
        // A stranger in a group of its own, recorded with another start time: what a
        // reused pid looks like.
        let mut stranger = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let pid = stranger.id();
        let real = start_time(pid).unwrap_or_else(|| panic!("start time"));
        records
            .write(&Record {
                sandbox: "app-web-reused".into(),
                pid,
                start_time: real + 1,
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let killed = records.kill_leftovers().unwrap_or_else(|e| panic!("{e}"));
        assert!(killed.is_empty(), "{killed:?}");
        assert_eq!(
            stranger.try_wait().ok().flatten(),
            None,
            "the stranger still runs"
        );
        // Recorded as it is, it is ours and goes.
        records
            .write(&Record {
                sandbox: "app-web-ours".into(),
                pid,
                start_time: real,
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let killed = records.kill_leftovers().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(killed, vec!["app-web-ours".to_string()]);
        let status = stranger.wait().unwrap_or_else(|e| panic!("{e}"));
        assert!(!status.success());
        assert_eq!(fs::read_dir(dir.path()).map(|d| d.count()).ok(), Some(0));
    }
}

//! Pid records: how a restarted server finds the processes an earlier one left.
//!
//! Each sandbox's process group leader is recorded as `<pids>/<sandbox>.json` with its
//! pid and its start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot).
//! A pid alone could have been reused by an unrelated process; pid plus start time
//! can't, so cleanup never kills a stranger.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

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
        fs::create_dir_all(&dir)?;
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

    /// Kills every recorded process group that is still the one recorded, forgets all
    /// records, and returns the sandboxes killed.
    pub fn kill_leftovers(&self) -> io::Result<Vec<String>> {
        let mut killed = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let rec: Option<Record> = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(rec) = rec
                && start_time(rec.pid) == Some(rec.start_time)
            {
                let _ = killpg(Pid::from_raw(rec.pid as i32), Signal::SIGKILL);
                killed.push(rec.sandbox);
            }
            let _ = fs::remove_file(&path);
        }
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

/// Pids of every live process (zombies left out: they are dead and only wait to be
/// reaped by whoever inherited them) in process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.get(s.rfind(')')? + 1..)?.to_string();
                    let mut f = rest.split_whitespace();
                    let state = f.next()?;
                    let group = f.nth(1)?.parse::<u32>().ok()?;
                    Some(state != "Z" && state != "X" && group == pgid)
                })
                == Some(true)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable_and_stable() {
        let me = std::process::id();
        let t = start_time(me);
        assert!(t.is_some());
        assert_eq!(t, start_time(me));
        assert_eq!(start_time(u32::MAX - 1), None);
    }
}

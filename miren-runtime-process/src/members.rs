//! Which processes belong to a sandbox: its process group, and every process that
//! carries its marker (`MIREN_SANDBOX=<id>` in the environment it started with). The
//! marker finds what left the group — a daemon that called `setsid`, a `nohup … &` in
//! a new session — so a stop or a restart leaves nothing of a sandbox running.
//!
//! Read from `/proc`: call these off the async threads.

use std::collections::HashMap;
use std::fs;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The environment variable that marks a sandbox's processes.
pub const MARKER: &str = "MIREN_SANDBOX";

/// What finds one sandbox's processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Its process group (its leader's pid), when the leader is known to be its own:
    /// a pid from an earlier run could have been reused, a marker can't.
    pub pgid: Option<u32>,
    /// Its id, the value of its marker.
    pub id: String,
}

/// One process as `/proc` shows it.
struct Proc {
    pid: u32,
    pgid: u32,
}

/// Live processes (zombies left out: they are dead and only wait to be reaped).
fn live() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp …`: comm may hold spaces and parens.
            let mut f = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
            let state = f.next()?;
            let pgid = f.nth(1)?.parse().ok()?;
            (state != "Z" && state != "X").then_some(Proc { pid, pgid })
        })
        .collect()
}

/// The value of `MIREN_SANDBOX` in the environment `pid` started with, if readable.
fn marker_of(pid: u32) -> Option<String> {
    let env = fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{MARKER}=");
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Every live process of each sandbox, in one pass over `/proc`: by group, then by
/// marker. The caller's own process is never included.
pub fn of_each(sandboxes: &[Sandbox]) -> HashMap<String, Vec<u32>> {
    let me = std::process::id();
    let by_group: HashMap<u32, &str> = sandboxes
        .iter()
        .filter_map(|s| Some((s.pgid?, s.id.as_str())))
        .collect();
    let mut out: HashMap<String, Vec<u32>> = HashMap::new();
    if sandboxes.is_empty() {
        return out;
    }
    for p in live() {
        if p.pid == me {
            continue;
        }
        let owner = match by_group.get(&p.pgid) {
            Some(id) => Some((*id).to_string()),
            None => marker_of(p.pid).filter(|m| sandboxes.iter().any(|s| s.id == *m)),
        };
        if let Some(id) = owner {
            out.entry(id).or_default().push(p.pid);
        }
    }
    out
}

/// Every live process of one sandbox.
pub fn of(sandbox: &Sandbox) -> Vec<u32> {
    of_each(std::slice::from_ref(sandbox))
        .remove(&sandbox.id)
        .unwrap_or_default()
}

/// The processes of a sandbox outside its group (what a process group signal misses).
pub fn strays(sandbox: &Sandbox) -> Vec<u32> {
    let me = std::process::id();
    live()
        .into_iter()
        .filter(|p| p.pid != me && Some(p.pgid) != sandbox.pgid)
        .filter(|p| marker_of(p.pid).is_some_and(|m| m == sandbox.id))
        .map(|p| p.pid)
        .collect()
}

/// CPU seconds (user + system, its own and its waited-for children's) and resident
/// bytes of `pids` together; processes gone meanwhile count nothing.
pub fn usage_of(pids: &[u32]) -> (f64, u64) {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|p| *p > 0)
        .unwrap_or(4096) as u64;
    let (mut cpu, mut rss) = (0u64, 0u64);
    for pid in pids {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After `pid (comm)`: field 3 is the state; 14–17 the times, 24 the RSS.
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 1..)) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |field: usize| {
            f.get(field - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        cpu += num(14) + num(15) + num(16) + num(17);
        rss += num(24) * page;
    }
    (cpu as f64 / ticks, rss)
}

/// Sends `signal` to each pid (those already gone are skipped).
pub fn signal(pids: &[u32], signal: Signal) {
    for pid in pids {
        let _ = kill(Pid::from_raw(*pid as i32), signal);
    }
}

/// Pids of every live process in process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    live()
        .into_iter()
        .filter(|p| p.pgid == pgid)
        .map(|p| p.pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_process_that_left_the_group_is_still_found_by_its_marker() {
        let id = format!("test-members-{}", std::process::id());
        // The leader starts a daemon in a session of its own, then waits.
        let mut leader = std::process::Command::new("/bin/sh")
            .args(["-c", "setsid sleep 60 & exec sleep 60"])
            .env(MARKER, &id)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let sandbox = Sandbox {
            pgid: Some(leader.id()),
            id: id.clone(),
        };
        // The daemon is in the group until its `setsid` has run: wait for both.
        wait_for("the leader and its daemon, out of the group", || {
            of(&sandbox).len() == 2 && group_members(leader.id()).len() == 1
        });
        let pids = of(&sandbox);
        // Another sandbox's marker is not this one's.
        let other = Sandbox {
            pgid: None,
            id: format!("{id}-other"),
        };
        assert!(of(&other).is_empty());
        signal(&pids, Signal::SIGKILL);
        let _ = leader.wait();
        wait_for("nothing of it left", || of(&sandbox).is_empty());
    }
}

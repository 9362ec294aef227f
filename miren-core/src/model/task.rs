//! Task runs (SPEC §14): each run of a `[tasks.X]` command is a sandbox of its own,
//! outside every pool, so nothing routes to it and nothing replaces it when it ends.

use serde::{Deserialize, Serialize};

use super::{SandboxId, UnixMillis, VersionId};

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunTrigger {
    /// Before a deploy's new code serves.
    Deploy,
    /// Its schedule came round.
    Schedule,
    /// `miren task run`.
    Manual,
}

impl RunTrigger {
    /// How it is written.
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Deploy => "deploy",
            RunTrigger::Schedule => "schedule",
            RunTrigger::Manual => "manual",
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started, not finished.
    Running,
    /// Exited 0.
    Succeeded,
    /// Exited otherwise, timed out, failed to start or was stopped.
    Failed,
}

impl RunStatus {
    /// How it is written.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

/// One run of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRun {
    /// Its sandbox: `<app>-<task>-<base58>` (its log lines carry it).
    pub id: SandboxId,
    /// The app.
    pub app: String,
    /// The task's name.
    pub task: String,
    /// The version whose code and config it runs.
    pub version: VersionId,
    /// Why it ran.
    pub trigger: RunTrigger,
    /// 1 for the first try, 2 for the first retry, …
    pub attempt: u32,
    /// Where it is.
    pub status: RunStatus,
    /// Its exit code, once it exited.
    pub exit_code: Option<i32>,
    /// Why it failed (or how it ended).
    pub reason: Option<String>,
    /// Which runtime runs it.
    #[serde(default)]
    pub runtime: Option<String>,
    /// When it started.
    pub started: UnixMillis,
    /// When it ended.
    pub finished: Option<UnixMillis>,
}

impl TaskRun {
    /// How long it ran (so far, when `now` is given for a running one).
    pub fn duration_ms(&self, now: UnixMillis) -> u64 {
        self.finished.unwrap_or(now).saturating_sub(self.started)
    }
}

//! `miren task list|run|history` (SPEC §14).

use std::io::Write;

use miren_core::model::{RunStatus, TaskRun};
use miren_core::runtime::{Stream, now_millis};

use super::{listing, print_json, which};
use crate::Exit;
use crate::api::RunLine;
use crate::cli::{Format, TaskCommand};
use crate::client::{Client, ClientError};
use crate::table::{ago, or_dash};

pub async fn run(c: &Client, cmd: TaskCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        TaskCommand::List { app } => {
            let tasks = c.tasks(&which(app)?).await?;
            listing(
                format,
                &tasks,
                &["TASK", "TRIGGER", "SCHEDULE", "NEXT", "RUNNING", "LAST RUN"],
                |t| {
                    vec![
                        t.name.clone(),
                        t.trigger.clone(),
                        or_dash(t.schedule.as_deref()),
                        t.next.map(in_time).unwrap_or_else(|| "-".into()),
                        t.running.to_string(),
                        t.last
                            .as_ref()
                            .map(|r| format!("{} {}", outcome(r), ago(r.started)))
                            .unwrap_or_else(|| "-".into()),
                    ]
                },
            )
        }
        TaskCommand::History { app, task } => {
            let runs = c.task_runs(&which(app)?, task.as_deref()).await?;
            listing(
                format,
                &runs,
                &[
                    "RUN", "TASK", "TRIGGER", "STATUS", "DURATION", "STARTED", "REASON",
                ],
                |r| {
                    vec![
                        r.id.to_string(),
                        r.task.clone(),
                        match r.attempt {
                            1 => r.trigger.as_str().to_string(),
                            n => format!("{} (try {n})", r.trigger.as_str()),
                        },
                        outcome(r),
                        took(r),
                        ago(r.started),
                        or_dash(
                            r.reason
                                .as_deref()
                                .filter(|_| r.status == RunStatus::Failed),
                        ),
                    ]
                },
            )
        }
        TaskCommand::Run { app, task, detach } => {
            let app = which(app)?;
            if detach {
                let run = c.start_task(&app, &task).await?;
                match format {
                    Format::Json => print_json(&run)?,
                    Format::Table => eprintln!("started {} ({task})", run.id),
                }
                return Ok(Exit::Ok);
            }
            let mut end: Option<TaskRun> = None;
            let mut failed = None;
            c.run_task(&app, &task, |l| {
                let r = show(&l, format);
                if let RunLine::Done { run } = l {
                    end = Some(run);
                }
                match r {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })
            .await?;
            if let Some(e) = failed.filter(|e| e.kind() != std::io::ErrorKind::BrokenPipe) {
                return Err(ClientError::Local(format!("writing the output: {e}")));
            }
            let Some(run) = end else {
                return Err(ClientError::Protocol(
                    "the server stopped answering before the run ended".into(),
                ));
            };
            if format == Format::Table {
                eprintln!("run {} {} in {}", run.id, outcome(&run), took(&run));
            }
            Ok(Exit::of_remote(match run.status {
                RunStatus::Succeeded => Some(0),
                _ => run.exit_code.filter(|c| *c != 0).or(Some(1)),
            }))
        }
    }
}

/// A line of a followed run: its output as written (stdout to stdout, stderr to
/// stderr), or as JSON.
fn show(l: &RunLine, format: Format) -> std::io::Result<()> {
    match (format, l) {
        (Format::Json, l) => {
            let v = serde_json::to_value(l).map_err(std::io::Error::other)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", crate::table::json_times(v))?;
            out.flush()
        }
        (Format::Table, RunLine::Output { record }) => match record.stream {
            Stream::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", record.line)?;
                out.flush()
            }
            Stream::Stderr => writeln!(std::io::stderr(), "{}", record.line),
        },
        (Format::Table, RunLine::Started { run }) => {
            writeln!(std::io::stderr(), "running {} ({})", run.task, run.id)
        }
        (Format::Table, RunLine::Done { .. }) => Ok(()),
    }
}

/// `succeeded`, `failed (exit 3)`, `running`.
fn outcome(r: &TaskRun) -> String {
    match (r.status, r.exit_code) {
        (RunStatus::Failed, Some(c)) => format!("failed (exit {c})"),
        (s, _) => s.as_str().to_string(),
    }
}

/// `1.2s`, `3m4s`, `running 5s`.
fn took(r: &TaskRun) -> String {
    let ms = r.duration_ms(now_millis());
    let d = miren_core::config::duration::Display(std::time::Duration::from_millis(ms));
    match r.finished {
        Some(_) => d.to_string(),
        None => format!("{d} so far"),
    }
}

/// `in 4m` for a future Unix-ms time.
fn in_time(ms: u64) -> String {
    format!(
        "in {}",
        crate::table::duration_short(ms.saturating_sub(now_millis()).div_ceil(1000))
    )
}

//! `/v1/apps/{app}/tasks` and `/runs` (SPEC §14): the active version's tasks, starting
//! one by hand (and following it to its end), and their history.

use axum::response::{IntoResponse, Response};
use miren_core::config::{Schedule, duration};
use miren_core::controller::Event;
use miren_core::model::{RunStatus, TaskRun};
use miren_core::runtime::now_millis;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::extract::{Json, Path, Query};
use super::stream::{line, ndjson};
use super::{ApiError, R, S, lookup};
use crate::api::{RunLine, TaskRow};
use crate::server::logs::Filter;

pub async fn list(state: S, Path(app): Path<String>) -> R<Json<Vec<TaskRow>>> {
    let s = lookup::app(&state, &app).await?;
    let Some(v) = s
        .apps
        .iter()
        .find(|a| a.name == app)
        .and_then(|a| a.active_version.as_ref())
        .and_then(|id| s.versions.iter().find(|v| &v.id == id))
    else {
        return Ok(Json(Vec::new()));
    };
    let now = now_millis();
    let rows = v
        .config
        .tasks
        .iter()
        .map(|(name, t)| {
            let runs = s.runs.iter().filter(|r| r.app == app && &r.task == name);
            TaskRow {
                name: name.clone(),
                trigger: t.trigger.as_str().to_string(),
                schedule: t.schedule.as_ref().map(|s| match s {
                    Schedule::Every(d) => format!("every {}", duration::Display(*d)),
                    Schedule::Calendar(c) => c.clone(),
                }),
                command: t.command.clone(),
                service: t.service.clone(),
                next: t.schedule.as_ref().and_then(|s| s.next_after(now)),
                running: runs
                    .clone()
                    .filter(|r| r.status == RunStatus::Running)
                    .count() as u32,
                last: runs.max_by(|a, b| a.id.cmp(&b.id)).cloned(),
            }
        })
        .collect();
    Ok(Json(rows))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    task: Option<String>,
}

pub async fn history(
    state: S,
    Path(app): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> R<Json<Vec<TaskRun>>> {
    let s = lookup::app(&state, &app).await?;
    if let Some(t) = &q.task {
        task_name(&s, &app, t, true)?;
    }
    let mut runs: Vec<TaskRun> = s
        .runs
        .into_iter()
        .filter(|r| r.app == app && q.task.as_ref().is_none_or(|t| &r.task == t))
        .collect();
    runs.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(Json(runs))
}

#[derive(Deserialize)]
pub struct RunQuery {
    #[serde(default)]
    follow: bool,
}

pub async fn run(
    state: S,
    Path((app, task)): Path<(String, String)>,
    Query(q): Query<RunQuery>,
) -> R<Response> {
    let s = lookup::app(&state, &app).await?;
    task_name(&s, &app, &task, false)?;
    // Subscribed before it starts: nothing it writes or does is missed.
    let mut events = state.controller.subscribe();
    let mut live = state.logs.subscribe();
    let run = state.controller.run_task(&app, &task).await?;
    if !q.follow {
        return Ok(Json(run).into_response());
    }
    let (tx, rx) = mpsc::channel(256);
    let logs = state.logs.clone();
    let controller = state.controller.clone();
    tokio::spawn(async move {
        let id = run.id.clone();
        let filter = Filter {
            sandbox: Some(id.to_string()),
            ..Filter::default()
        };
        if tx.send(line(&RunLine::Started { run })).await.is_err() {
            return;
        }
        let mut last_seq = 0;
        loop {
            tokio::select! {
                l = live.recv() => match l {
                    Ok(s) if s.record.sandbox == id => {
                        last_seq = last_seq.max(s.seq);
                        if tx.send(line(&RunLine::Output { record: s.record.clone() })).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                e = events.recv() => match e {
                    Ok(Event::Run { id: ended, status, .. }) if ended == id && status != RunStatus::Running => break,
                    Ok(_) => {}
                    // Events were missed, its end perhaps among them: look.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let ended = controller.snapshot(Some(&app)).await.ok().is_some_and(|s| {
                            s.runs.iter().any(|r| r.id == id && r.status != RunStatus::Running)
                        });
                        if ended {
                            break;
                        }
                    }
                    Err(_) => return,
                },
            }
        }
        // The runtime hands every line over before it reports the exit: once the log
        // writer has them all, the rest are read back, then the end.
        if let Ok(rest) = logs.read(filter, usize::MAX).await {
            for s in rest.into_iter().filter(|s| s.seq > last_seq) {
                if tx
                    .send(line(&RunLine::Output { record: s.record }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let ended = controller.snapshot(Some(&app)).await;
        let run = ended
            .ok()
            .and_then(|s| s.runs.into_iter().find(|r| r.id == id));
        if let Some(run) = run {
            let _ = tx.send(line(&RunLine::Done { run })).await;
        }
    });
    Ok(ndjson(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Checks that `task` is one of the active version's (or, for history, any
/// version's) tasks.
fn task_name(
    s: &miren_core::controller::Snapshot,
    app: &str,
    task: &str,
    any_version: bool,
) -> R<()> {
    let active = s
        .apps
        .iter()
        .find(|a| a.name == app)
        .and_then(|a| a.active_version.clone());
    let mut names: Vec<&str> = s
        .versions
        .iter()
        .filter(|v| v.app == app && (any_version || Some(&v.id) == active.as_ref()))
        .flat_map(|v| v.config.tasks.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.contains(&task) {
        return Ok(());
    }
    if active.is_none() && !any_version {
        return Err(ApiError::invalid(format!(
            "app `{app}` has no active version: deploy it first"
        )));
    }
    Err(ApiError::not_found(lookup::unknown(
        &format!("task of app `{app}`"),
        task,
        &names,
        "its tasks",
    )))
}

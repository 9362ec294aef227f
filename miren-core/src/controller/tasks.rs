//! Task runs (SPEC §14): deploy tasks that gate a rollout, schedules, manual runs.
//!
//! A run is a sandbox outside every pool: started through the same runtime, its output
//! in the app's logs under the task's name, its end recorded as a [`TaskRun`] and never
//! replaced. Deploy tasks run once the deploy's image services and reused pools are
//! ready and before its new code pools start (those are `held`); scheduled ones on
//! tokio's clock from the wall-clock time they are due, so tests run them in virtual
//! time.

use std::time::Duration;

use tokio::time::Instant;

use super::actor::{Actor, Armed, Internal, RunState, Timer};
use super::{ControllerError, Reply};
use crate::config::{Schedule, Trigger, duration};
use crate::model::{RunStatus, RunTrigger, SandboxId, TaskRun, VersionId};
use crate::runtime::{LogRecord, RuntimeError, SandboxSpec, Started, Stream, now_millis};
use crate::store::keys;

/// Finished runs kept per task, for `miren task history`.
const KEEP_FINISHED: usize = 20;

impl Actor {
    /// The deploy tasks of a version, in file order.
    pub(super) fn deploy_tasks_of(&self, id: &VersionId) -> Vec<String> {
        self.versions
            .get(id)
            .map(|v| {
                v.config
                    .tasks
                    .iter()
                    .filter(|(_, t)| t.trigger == Trigger::Deploy)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What isn't held for them is ready: the deploy's tasks start, one run each.
    pub(super) fn start_deploy_tasks(&mut self, id: &VersionId) {
        let Some(d) = self.deploys.get_mut(id) else {
            return;
        };
        d.tasks_started = true;
        let tasks = d.tasks.clone();
        for task in tasks {
            if let Err(e) = self.start_run(id, &task, RunTrigger::Deploy, 1) {
                self.fail(id, format!("deploy task `{task}` could not start: {e}"));
                return;
            }
        }
    }

    /// Starts a run of `task` of `version`.
    pub(super) fn start_run(
        &mut self,
        version: &VersionId,
        task: &str,
        trigger: RunTrigger,
        attempt: u32,
    ) -> Result<TaskRun, ControllerError> {
        let v = self
            .versions
            .get(version)
            .ok_or_else(|| super::actor::not_found("version", version.as_str()))?;
        let (Some(t), Some(spec)) = (v.config.tasks.get(task), v.task_spec(task)) else {
            return Err(super::actor::not_found("task", task));
        };
        let timeout = t.timeout;
        let app = v.app.clone();
        let id = SandboxId::new(&app, task);
        let now = now_millis();
        let run = TaskRun {
            id: id.clone(),
            app: app.clone(),
            task: task.to_string(),
            version: version.clone(),
            trigger,
            attempt,
            status: RunStatus::Running,
            exit_code: None,
            reason: None,
            runtime: None,
            started: now,
            finished: None,
        };
        let mut sandbox = SandboxSpec {
            id: id.clone(),
            labels: SandboxSpec::task_labels(&id, &app, version, task, &spec.service),
            app: app.clone(),
            version: version.clone(),
            pool: None,
            spec,
        };
        let sink = crate::runtime::EventSink::new(
            id.clone(),
            &app,
            task,
            version.clone(),
            self.rt_tx.clone(),
            self.cfg.logs.clone(),
        );
        self.runs.insert(
            id.clone(),
            RunState {
                run: run.clone(),
                starting: true,
                stopping: None,
                grace: sandbox.spec.shutdown_timeout,
            },
        );
        self.dirty.runs.insert((app, id.clone()));
        if let Some(t) = timeout {
            self.add_timer(Instant::now() + t, Timer::RunTimeout(id.clone()));
        }
        let opened = self.open_secrets(&mut sandbox.spec);
        let rt = self.runtime.clone();
        self.spawn_internal(async move {
            let r = match opened {
                Ok(()) => rt.start(&sandbox, sink).await,
                Err(why) => Err(crate::runtime::RuntimeError::Start(why)),
            };
            Internal::Started(sandbox.id, r)
        });
        Ok(run)
    }

    /// `miren task run`.
    pub(super) fn run_task(&mut self, app: &str, task: &str, reply: Reply<TaskRun>) {
        let Some(version) = self.apps.get(app).and_then(|a| a.active_version.clone()) else {
            let e = match self.apps.contains_key(app) {
                true => ControllerError::Invalid(format!(
                    "app `{app}` has no active version: deploy it first"
                )),
                false => super::actor::not_found("app", app),
            };
            let _ = reply.send(Err(e));
            return;
        };
        let Some(t) = self
            .versions
            .get(&version)
            .and_then(|v| v.config.tasks.get(task))
        else {
            let _ = reply.send(Err(super::actor::not_found("task", task)));
            return;
        };
        let max = t.max_concurrent;
        let live: Vec<&SandboxId> = self.live_runs(app, task).collect();
        if live.len() as u32 >= max {
            let ids: Vec<String> = live.iter().map(|id| id.to_string()).collect();
            let _ = reply.send(Err(ControllerError::Invalid(format!(
                "task `{task}` already has {} run{} going (max_concurrent = {max}): {}",
                live.len(),
                if live.len() == 1 { "" } else { "s" },
                ids.join(", ")
            ))));
            return;
        }
        match self.start_run(&version, task, RunTrigger::Manual, 1) {
            Ok(run) => self.after_flush(move |r| {
                let _ = reply.send(r.map(|_| run).map_err(ControllerError::Store));
            }),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn live_runs<'a>(&'a self, app: &'a str, task: &'a str) -> impl Iterator<Item = &'a SandboxId> {
        self.runs
            .values()
            .filter(move |r| r.is_live() && r.run.app == app && r.run.task == task)
            .map(|r| &r.run.id)
    }

    pub(super) fn run_started(&mut self, id: &SandboxId, result: Result<Started, RuntimeError>) {
        let Some(r) = self.runs.get_mut(id) else {
            return;
        };
        r.starting = false;
        match result {
            Ok(started) => {
                r.run.runtime = Some(
                    started
                        .runtime
                        .unwrap_or_else(|| self.runtime.name().to_string()),
                );
                let stop = r.stopping.is_some();
                self.dirty.runs.insert((r.run.app.clone(), id.clone()));
                if stop {
                    self.request_stop(id);
                }
            }
            Err(e) => self.run_exited(id, None, format!("failed to start: {e}"), Vec::new()),
        }
    }

    pub(super) fn run_timed_out(&mut self, id: &SandboxId) {
        let Some(r) = self.runs.get(id).filter(|r| r.is_live()) else {
            return;
        };
        let after = self
            .versions
            .get(&r.run.version)
            .and_then(|v| v.config.tasks.get(&r.run.task))
            .and_then(|t| t.timeout)
            .map(|t| duration::Display(t).to_string())
            .unwrap_or_default();
        self.stop_run(id, &format!("timed out after {after}"));
    }

    /// Stops a live run; it ends as failed, saying `why`.
    fn stop_run(&mut self, id: &SandboxId, why: &str) {
        let Some(r) = self.runs.get_mut(id).filter(|r| r.is_live()) else {
            return;
        };
        if r.stopping.is_some() {
            return;
        }
        r.stopping = Some(why.to_string());
        if !r.starting {
            self.request_stop(id);
        }
    }

    /// Stops every live run `which` picks.
    pub(super) fn stop_runs(&mut self, which: impl Fn(&TaskRun) -> bool, why: &str) {
        let ids: Vec<SandboxId> = self
            .runs
            .values()
            .filter(|r| r.is_live() && which(&r.run))
            .map(|r| r.run.id.clone())
            .collect();
        for id in ids {
            self.stop_run(&id, why);
        }
    }

    pub(super) fn run_exited(
        &mut self,
        id: &SandboxId,
        code: Option<i32>,
        reason: String,
        last_lines: Vec<String>,
    ) {
        let Some(r) = self.runs.get_mut(id).filter(|r| r.is_live()) else {
            return;
        };
        let ok = code == Some(0) && r.stopping.is_none();
        r.run.status = if ok {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        r.run.exit_code = code;
        r.run.reason = Some(r.stopping.clone().unwrap_or(reason));
        r.run.finished = Some(now_millis());
        r.starting = false;
        let run = r.run.clone();
        self.dirty.runs.insert((run.app.clone(), id.clone()));
        self.prune_runs(&run.app, &run.task);
        let Some(t) = self
            .versions
            .get(&run.version)
            .and_then(|v| v.config.tasks.get(&run.task))
        else {
            return;
        };
        let retries = t.retries;
        let retry = !ok
            && run.trigger != RunTrigger::Manual
            && run.attempt <= retries
            && !self.shutting_down()
            && self.apps.contains_key(&run.app);
        if run.trigger == RunTrigger::Deploy && self.deploys.contains_key(&run.version) {
            if ok {
                self.deploy_task_succeeded(&run.version, &run.task);
            } else if retry {
                if let Err(e) =
                    self.start_run(&run.version, &run.task, RunTrigger::Deploy, run.attempt + 1)
                {
                    self.fail(
                        &run.version,
                        format!("deploy task `{}` could not start again: {e}", run.task),
                    );
                }
            } else {
                let mut message = format!(
                    "deploy task `{}` {} (run {})",
                    run.task,
                    run.reason.as_deref().unwrap_or("failed"),
                    run.id
                );
                if run.attempt > 1 {
                    message.push_str(&format!(", after {} tries", run.attempt));
                }
                if !last_lines.is_empty() {
                    message.push_str("\nits last output:");
                    for l in &last_lines {
                        message.push_str("\n  | ");
                        message.push_str(l);
                    }
                }
                self.fail(&run.version, message);
            }
        } else if retry && run.trigger == RunTrigger::Schedule {
            let _ = self.start_run(
                &run.version,
                &run.task,
                RunTrigger::Schedule,
                run.attempt + 1,
            );
        }
    }

    fn deploy_task_succeeded(&mut self, version: &VersionId, task: &str) {
        let Some(d) = self.deploys.get_mut(version) else {
            return;
        };
        d.tasks.retain(|t| t != task);
        if !d.tasks.is_empty() {
            return;
        }
        // The rest of the rollout gets the whole deploy timeout again.
        let at = Instant::now() + self.cfg.deploy_timeout;
        d.timeout_at = at;
        self.add_timer(at, Timer::DeployTimeout(version.clone()));
        self.release_held(version);
    }

    /// What the version's pools were held at zero for (deploy tasks, addon servers)
    /// is done: they start.
    pub(super) fn release_held(&mut self, version: &VersionId) {
        let app = version.app().to_string();
        let held = self.pools_where(&app, |p| p.versions.contains(version));
        for pid in held {
            if let Some(ps) = self.pools.get_mut(&pid) {
                ps.held = false;
            }
            self.touch_pool(&pid);
            self.to_reconcile.insert(pid);
        }
    }

    /// Forgets the oldest finished runs of a task beyond [`KEEP_FINISHED`].
    fn prune_runs(&mut self, app: &str, task: &str) {
        let finished: Vec<SandboxId> = self
            .runs
            .values()
            .filter(|r| !r.is_live() && r.run.app == app && r.run.task == task)
            .map(|r| r.run.id.clone())
            .collect();
        if finished.len() <= KEEP_FINISHED {
            return;
        }
        for id in &finished[..finished.len() - KEEP_FINISHED] {
            self.runs.remove(id);
            self.dirty.runs.insert((app.to_string(), id.clone()));
        }
    }

    /// An app is deleted: its runs are forgotten and its live ones returned to stop.
    pub(super) fn forget_runs_of(&mut self, app: &str) -> Vec<SandboxId> {
        self.schedules.retain(|(a, _), _| a != app);
        let ids: Vec<SandboxId> = self
            .runs
            .values()
            .filter(|r| r.run.app == app)
            .map(|r| r.run.id.clone())
            .collect();
        let mut live = Vec::new();
        for id in ids {
            if let Some(r) = self.runs.remove(&id)
                && (r.is_live() || r.starting)
            {
                live.push(id.clone());
            }
            self.dirty.runs.insert((app.to_string(), id));
        }
        live
    }

    /// Arms the schedules of the app's active version, replacing earlier ones.
    pub(super) fn arm_schedules(&mut self, app: &str) {
        self.schedules.retain(|(a, _), _| a != app);
        let Some(v) = self
            .apps
            .get(app)
            .and_then(|a| a.active_version.as_ref())
            .and_then(|v| self.versions.get(v))
        else {
            return;
        };
        let due: Vec<(String, Schedule)> = v
            .config
            .tasks
            .iter()
            .filter(|(_, t)| t.trigger == Trigger::Schedule)
            .filter_map(|(n, t)| Some((n.clone(), t.schedule.clone()?)))
            .collect();
        let now_ms = now_millis();
        let now = Instant::now();
        for (task, schedule) in due {
            let Some(due_ms) = schedule.next_after(now_ms) else {
                continue;
            };
            self.schedule_seq += 1;
            let seq = self.schedule_seq;
            let at = now + Duration::from_millis(due_ms - now_ms);
            self.schedules
                .insert((app.to_string(), task.clone()), Armed { seq, due_ms, at });
            self.add_timer(at, Timer::Schedule(app.to_string(), task, seq));
        }
    }

    /// A scheduled task is due: a run, unless `max_concurrent` are still going; then
    /// the next time.
    pub(super) fn schedule_due(&mut self, app: &str, task: &str, seq: u64) {
        let key = (app.to_string(), task.to_string());
        let Some(armed) = self.schedules.get(&key).filter(|a| a.seq == seq) else {
            return;
        };
        let (due_ms, at) = (armed.due_ms, armed.at);
        let Some(version) = self.apps.get(app).and_then(|a| a.active_version.clone()) else {
            return;
        };
        let Some(t) = self
            .versions
            .get(&version)
            .and_then(|v| v.config.tasks.get(task))
            .cloned()
        else {
            return;
        };
        let live = self.live_runs(app, task).count() as u32;
        if live >= t.max_concurrent {
            self.cfg.logs.write(LogRecord {
                time: now_millis(),
                stream: Stream::Stderr,
                app: app.to_string(),
                service: task.to_string(),
                sandbox: SandboxId::new(app, task),
                version: version.clone(),
                line: format!(
                    "skipped a scheduled run: {live} still going (max_concurrent = {})",
                    t.max_concurrent
                ),
            });
        } else if let Err(e) = self.start_run(&version, task, RunTrigger::Schedule, 1) {
            tracing::warn!("scheduled task {app}/{task} could not start: {e}");
        }
        let Some(next_ms) = t.schedule.as_ref().and_then(|s| s.next_after(due_ms)) else {
            self.schedules.remove(&key);
            return;
        };
        let next_at = at + Duration::from_millis(next_ms - due_ms);
        self.schedules.insert(
            key,
            Armed {
                seq,
                due_ms: next_ms,
                at: next_at,
            },
        );
        self.add_timer(
            next_at,
            Timer::Schedule(app.to_string(), task.to_string(), seq),
        );
    }

    /// Reads the runs back at start: one still running when the server went down
    /// ended then (what the runtime still runs of it is stopped as a leftover).
    pub(super) async fn load_runs(&mut self) -> Result<(), ControllerError> {
        let runs = keys::list::<TaskRun>(self.store.as_ref(), keys::RUNS).await?;
        for mut run in runs {
            if !self.apps.contains_key(&run.app) {
                self.dirty.deletes.insert(keys::run(&run.app, &run.id));
                continue;
            }
            if run.status == RunStatus::Running {
                run.status = RunStatus::Failed;
                run.reason = Some("the server stopped during this run".to_string());
                run.finished = Some(now_millis());
                self.dirty.runs.insert((run.app.clone(), run.id.clone()));
            }
            self.runs.insert(
                run.id.clone(),
                RunState {
                    run,
                    starting: false,
                    stopping: None,
                    grace: None,
                },
            );
        }
        Ok(())
    }
}

//! Versions: deploy, activation when ready, failure, rollback, app deletion.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use crate::autoscale::Window;

use super::actor::{Actor, Deploying, Internal, PoolState, Timer, not_found};
use super::{AppChange, ControllerError, DeployRequest, Event, Reply};
use crate::config::duration;
use crate::config::{Concurrency, ResolvedService};
use crate::model::{
    App, CodeSource, PoolId, SandboxId, SandboxPool, Version, VersionId, VersionState,
};
use crate::runtime::{LogRecord, PrepareApp, PrepareLog, RuntimeError, Stream, now_millis};

impl Actor {
    pub(super) fn deploy(&mut self, req: DeployRequest, reply: Reply<VersionId>) {
        self.deploy_with(req, None, true, reply);
    }

    /// A new version of an app: its config vars and addons are the app's now (a
    /// deploy of app.toml, `from_file`, first makes the addons what it declares), its
    /// restart times `restarted` or else the active version's (a deploy restarts
    /// nothing by itself).
    fn deploy_with(
        &mut self,
        req: DeployRequest,
        restarted: Option<BTreeMap<String, u64>>,
        from_file: bool,
        reply: Reply<VersionId>,
    ) {
        let app = req.config.name.clone();
        let restarted = restarted.unwrap_or_else(|| {
            self.apps
                .get(&app)
                .and_then(|a| a.active_version.as_ref())
                .and_then(|v| self.versions.get(v))
                .map(|v| v.restarted.clone())
                .unwrap_or_default()
        });
        let id = VersionId::new(&app);
        // After the newest, and after every version of the app when some came from
        // before numbers did.
        let (count, newest) = self
            .versions
            .values()
            .filter(|v| v.app == app)
            .fold((0, 0), |(n, max), v| (n + 1, max.max(v.number)));
        let number = newest.max(count) + 1;
        self.supersede_deploys(&app, &id);
        let now = now_millis();
        let a = self
            .apps
            .entry(app.clone())
            .or_insert_with(|| App::new(&app, now));
        if from_file {
            super::addons::reconcile(a, &req.config);
        }
        let config_vars = a.config_vars.clone();
        let expanded = match a.addons.is_empty() {
            true => Ok(None),
            false => crate::config::addons::expand(&req.config, &a.addons).map(Some),
        };
        self.touch_app(&app);
        let (config, declared, mut refused) = match expanded {
            Ok(None) => (req.config, None, None),
            Ok(Some(x)) => (x, Some(req.config), None),
            Err(e) => (
                req.config,
                None,
                Some(format!("the app's addons can't run: {e}")),
            ),
        };
        // Secrets without `@version` run the current one, pinned now.
        let secret_pins = match self.pin_secrets(&config, &config_vars) {
            Ok(p) => p,
            Err(e) => {
                refused.get_or_insert(format!("the app's secrets don't resolve:\n{e}"));
                BTreeMap::new()
            }
        };
        self.versions.insert(
            id.clone(),
            Version {
                id: id.clone(),
                app,
                number,
                config,
                declared,
                artifact_digest: req.artifact_digest,
                created: now,
                source: req.source,
                state: VersionState::Deploying,
                failure: None,
                config_vars,
                restarted,
                secret_pins,
            },
        );
        self.touch_version(&id);
        if let Some(why) = refused {
            self.refuse(&id, why);
        } else if !self.refuse_missing_env(&id) && !self.refuse_taken_node_ports(&id) {
            self.begin_rollout(&id);
        }
        self.after_flush(move |r| {
            let _ = reply.send(r.map(|_| id).map_err(ControllerError::Store));
        });
    }

    /// Fails a version before anything of it starts.
    fn refuse(&mut self, id: &VersionId, why: String) {
        if let Some(v) = self.versions.get_mut(id) {
            v.state = VersionState::Failed;
            v.failure = Some(why);
        }
        self.notify(id);
    }

    /// A version missing env its app.toml requires fails before anything starts,
    /// saying how to set it; true when it did.
    fn refuse_missing_env(&mut self, id: &VersionId) -> bool {
        let Some(v) = self.versions.get_mut(id) else {
            return false;
        };
        let missing = v.missing_env();
        if missing.is_empty() {
            return false;
        }
        let lines: Vec<String> = missing
            .iter()
            .map(|(service, key, description)| {
                let what = description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                format!("  {key}{what}, for service `{service}`")
            })
            .collect();
        let keys: Vec<String> = missing.iter().map(|(_, k, _)| format!("{k}=…")).collect();
        v.state = VersionState::Failed;
        v.failure = Some(format!(
            "app.toml requires env that has no value:\n{}\nset it with `miren env set -a {} {}` (with --secret for a secret), then deploy again",
            lines.join("\n"),
            v.app,
            keys.join(" ")
        ));
        self.notify(id);
        true
    }

    /// A version publishing a node port another app's pool already publishes fails
    /// before anything starts, naming the owner; true when it did.
    fn refuse_taken_node_ports(&mut self, id: &VersionId) -> bool {
        let Some(v) = self.versions.get(id) else {
            return false;
        };
        let node_ports = |spec: &crate::model::PoolSpec| -> Vec<(u16, &'static str)> {
            spec.node_port
                .map(|n| (n, spec.port_type.unwrap_or_default().proto()))
                .into_iter()
                .chain(
                    spec.extra_ports
                        .iter()
                        .filter_map(|p| Some((p.node_port?, p.kind.proto()))),
                )
                .collect()
        };
        let mut taken = Vec::new();
        for service in v.config.services.keys() {
            let Some(spec) = v.pool_spec(service) else {
                continue;
            };
            for (port, proto) in node_ports(&spec) {
                let owner = self.pools.values().find(|p| {
                    p.pool.app != v.app
                        && !p.pool.versions.is_empty()
                        && node_ports(&p.pool.spec).contains(&(port, proto))
                });
                if let Some(o) = owner {
                    taken.push(format!(
                        "  node port {port}/{proto} of service `{service}` is app `{}`'s (service `{}`)",
                        o.pool.app, o.pool.service
                    ));
                }
            }
        }
        if taken.is_empty() {
            return false;
        }
        let Some(v) = self.versions.get_mut(id) else {
            return false;
        };
        v.state = VersionState::Failed;
        v.failure = Some(format!(
            "a node port reaches one service of one app on this server:\n{}\npick another `node_port` in app.toml, then deploy again",
            taken.join("\n")
        ));
        self.notify(id);
        true
    }

    /// Config vars and restarts: the app changes, and its active version's code rolls
    /// out again with the change.
    pub(super) fn change_app(
        &mut self,
        app: &str,
        change: AppChange,
        reply: Reply<Option<VersionId>>,
    ) {
        let Some(a) = self.apps.get_mut(app) else {
            let _ = reply.send(Err(not_found("app", app)));
            return;
        };
        let active = a
            .active_version
            .as_ref()
            .and_then(|v| self.versions.get(v))
            .cloned();
        let mut restarted = None;
        match change {
            AppChange::SetVars(vars) => {
                for v in vars {
                    a.config_vars
                        .retain(|x| !(x.key == v.key && x.service == v.service));
                    a.config_vars.push(v);
                }
            }
            AppChange::UnsetVars { keys, service } => {
                let unknown: Vec<&String> = keys
                    .iter()
                    .filter(|k| {
                        !a.config_vars
                            .iter()
                            .any(|x| &x.key == *k && x.service == service)
                    })
                    .collect();
                if !unknown.is_empty() {
                    let names: Vec<&str> = unknown.iter().map(|k| k.as_str()).collect();
                    let _ = reply.send(Err(ControllerError::Invalid(format!(
                        "app `{app}` has no config var {}{}",
                        names.join(", "),
                        service
                            .as_deref()
                            .map(|s| format!(" for service `{s}`"))
                            .unwrap_or_default()
                    ))));
                    return;
                }
                a.config_vars
                    .retain(|x| !(keys.contains(&x.key) && x.service == service));
            }
            AppChange::AddAddon(request) => {
                let declared = active.as_ref().map(|v| v.declared());
                if let Err(e) = super::addons::add(a, declared, request) {
                    let _ = reply.send(Err(ControllerError::Invalid(e)));
                    return;
                }
            }
            AppChange::RemoveAddon(name) => {
                if let Err(e) = super::addons::remove(a, &name) {
                    let _ = reply.send(Err(ControllerError::Invalid(e)));
                    return;
                }
            }
            AppChange::Restart { service } => {
                let Some(v) = &active else {
                    let _ = reply.send(Err(ControllerError::Invalid(format!(
                        "app `{app}` has no active version to restart"
                    ))));
                    return;
                };
                let services: Vec<String> = match &service {
                    Some(s) if v.config.services.contains_key(s) => vec![s.clone()],
                    Some(s) => {
                        let _ = reply.send(Err(not_found("service", s)));
                        return;
                    }
                    None => v.config.services.keys().cloned().collect(),
                };
                let mut map = v.restarted.clone();
                // Strictly later than any earlier restart, even within a millisecond.
                let now = now_millis();
                for s in services {
                    let t = map.get(&s).map_or(now, |t| now.max(t + 1));
                    map.insert(s, t);
                }
                restarted = Some(map);
            }
        }
        self.touch_app(app);
        let Some(v) = active else {
            self.after_flush(move |r| {
                let _ = reply.send(r.map(|_| None).map_err(ControllerError::Store));
            });
            return;
        };
        let req = DeployRequest {
            config: v.declared().clone(),
            artifact_digest: v.artifact_digest.clone(),
            source: v.source.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.deploy_with(req, restarted, false, tx);
        tokio::spawn(async move {
            let r = match rx.await {
                Ok(r) => r.map(Some),
                Err(_) => Err(ControllerError::Stopped),
            };
            let _ = reply.send(r);
        });
    }

    pub(super) fn rollback(&mut self, app: &str, to: Option<VersionId>, reply: Reply<VersionId>) {
        let Some(a) = self.apps.get(app) else {
            let _ = reply.send(Err(not_found("app", app)));
            return;
        };
        let active = a.active_version.clone();
        let target = match to {
            Some(v) => v,
            None => {
                // The newest superseded version: the one active before this one.
                match self
                    .versions
                    .values()
                    .rev()
                    .find(|v| v.app == app && v.state == VersionState::Superseded)
                {
                    Some(v) => v.id.clone(),
                    None => {
                        let _ = reply.send(Err(ControllerError::Invalid(format!(
                            "app `{app}` has no earlier version to roll back to"
                        ))));
                        return;
                    }
                }
            }
        };
        let Some(v) = self.versions.get(&target) else {
            let _ = reply.send(Err(not_found("version", target.as_str())));
            return;
        };
        if v.app != app {
            let _ = reply.send(Err(ControllerError::Invalid(format!(
                "version `{target}` belongs to app `{}`, not `{app}`",
                v.app
            ))));
            return;
        }
        if active.as_ref() == Some(&target) || v.state == VersionState::Deploying {
            let _ = reply.send(Err(ControllerError::Invalid(format!(
                "version `{target}` is already {}",
                if v.state == VersionState::Deploying {
                    "deploying"
                } else {
                    "active"
                }
            ))));
            return;
        }
        self.supersede_deploys(app, &target);
        if let Some(v) = self.versions.get_mut(&target) {
            v.state = VersionState::Deploying;
            v.failure = None;
        }
        self.touch_version(&target);
        self.begin_rollout(&target);
        self.after_flush(move |r| {
            let _ = reply.send(r.map(|_| target).map_err(ControllerError::Store));
        });
    }

    /// Fails the app's unfinished deploys: the newest deploy wins.
    fn supersede_deploys(&mut self, app: &str, by: &VersionId) {
        let older: Vec<VersionId> = self
            .deploys
            .keys()
            .filter(|v| v.app() == app || self.versions.get(*v).is_some_and(|x| x.app == app))
            .cloned()
            .collect();
        for v in older {
            self.fail(&v, format!("replaced by {by} before it was ready"));
        }
    }

    /// What the runtime needs to run a version. The archive is not looked at here
    /// (no file system work on the controller's task): a runtime that needs it and
    /// finds it gone fails `prepare`, and the deploy fails saying so.
    pub(super) fn prepare_request(&self, id: &VersionId) -> Option<PrepareApp> {
        let v = self.versions.get(id)?;
        let artifact = self.cfg.artifacts.artifact(&v.artifact_digest);
        Some(PrepareApp {
            app: v.app.clone(),
            version: id.clone(),
            artifact,
            dockerfile: v.config.dockerfile.clone(),
            services: v
                .config
                .services
                .keys()
                .filter_map(|s| v.pool_spec(s))
                .chain(v.config.tasks.keys().filter_map(|t| v.task_spec(t)))
                .collect(),
            build_secrets: Vec::new(),
        })
    }

    fn begin_rollout(&mut self, id: &VersionId) {
        let Some(mut prep) = self.prepare_request(id) else {
            return;
        };
        match self.open_build_secrets(id) {
            Ok(secrets) => prep.build_secrets = secrets,
            Err(why) => {
                self.refuse(id, format!("the build's secrets don't resolve:\n{why}"));
                return;
            }
        }
        let timeout_at = Instant::now() + self.cfg.deploy_timeout;
        let tasks = self.deploy_tasks_of(id);
        self.deploys.insert(
            id.clone(),
            Deploying {
                prepared: false,
                suspended: Vec::new(),
                tasks,
                tasks_started: false,
                timeout_at,
            },
        );
        self.add_timer(timeout_at, Timer::DeployTimeout(id.clone()));
        let rt = self.runtime.clone();
        let vid = id.clone();
        let log = self.prepare_log(id);
        let gate = self.collector.gate.clone();
        let statics = self
            .versions
            .get(id)
            .and_then(|v| v.config.static_files.clone());
        let root = self.cfg.static_root.clone();
        self.spawn_internal(async move {
            // No collection while preparing: it could remove what this unpacks.
            let _prepare = gate.read().await;
            let mut r = rt.prepare(&prep, &log).await;
            if let (Ok(()), Some(files)) = (&r, &statics) {
                r = super::statics::export(rt.as_ref(), &prep, files, root.as_deref()).await;
            }
            Internal::Prepared(vid, r)
        });
    }

    /// Where preparing `version` reports: the deploy's progress (an event) and the
    /// app's logs, as the output of a `build` step of that version.
    pub(super) fn prepare_log(&self, version: &VersionId) -> PrepareLog {
        let events = self.events.clone();
        let logs = self.cfg.logs.clone();
        let version = version.clone();
        let app = version.app().to_string();
        let step = SandboxId::new(&app, "build");
        PrepareLog::new(move |line| {
            let _ = events.send(Event::Prepare {
                version: version.clone(),
                line: line.to_string(),
            });
            logs.write(LogRecord {
                time: now_millis(),
                stream: Stream::Stdout,
                app: app.clone(),
                service: "build".into(),
                sandbox: step.clone(),
                version: version.clone(),
                line: line.to_string(),
            });
        })
    }

    pub(super) fn prepared(&mut self, id: &VersionId, result: Result<(), RuntimeError>) {
        if !self.deploys.contains_key(id) {
            return;
        }
        match result {
            Err(e) => self.fail(id, e.to_string()),
            Ok(()) => {
                self.attach_pools(id);
                if let Some(d) = self.deploys.get_mut(id) {
                    d.prepared = true;
                }
                // Looked at even when it has no pools to change (a tasks-only app).
                self.changed_apps.insert(id.app().to_string());
            }
        }
    }

    /// Gives the version one pool per service: the existing pool when its spec is
    /// unchanged (resized in place to the new scaling), else a new one.
    fn attach_pools(&mut self, id: &VersionId) {
        let Some(v) = self.versions.get(id) else {
            return;
        };
        let app = v.app.clone();
        let config = v.config.clone();
        let version = v.clone();
        // New code waits for the deploy tasks (migrations); images and reused pools
        // are what those tasks may need, so they start now.
        let gated = self.deploys.get(id).is_some_and(|d| !d.tasks.is_empty());
        // The app's own services start once its addon servers are ready (they connect
        // at start).
        let addon_servers = config.services.values().any(|s| s.addon.is_some());
        for (name, svc) in &config.services {
            let Some(spec) = version.pool_spec(name) else {
                continue;
            };
            let hash = spec.hash();
            let reuse = self
                .pools_of(&app)
                .find(|p| {
                    p.pool.service == *name
                        && p.pool.spec_hash == hash
                        && !p.pool.versions.is_empty()
                })
                .map(|p| p.pool.id.clone());
            let pool_id = match reuse {
                Some(pid) => {
                    if let Some(ps) = self.pools.get_mut(&pid) {
                        if !ps.pool.versions.contains(id) {
                            ps.pool.versions.push(id.clone());
                        }
                        ps.pool.scaling = svc.concurrency;
                        match (&svc.concurrency, &mut ps.window) {
                            (Concurrency::Auto(a), Some(w)) => w.set_span(a.scale_down_delay),
                            (Concurrency::Auto(_), None) => {
                                ps.window = Window::of_pool(&svc.concurrency, Instant::now());
                            }
                            (Concurrency::Fixed { .. }, w) => *w = None,
                        }
                        let (desired, reason) = resized(svc, ps.pool.desired);
                        ps.pool.desired = desired;
                        if let Some(r) = reason {
                            ps.pool.desired_reason = r;
                        }
                    }
                    pid
                }
                None => {
                    let pid = PoolId::new();
                    let (desired, reason) = initial(svc);
                    let held = (gated && matches!(spec.source, CodeSource::Artifact(_)))
                        || (addon_servers && svc.addon.is_none());
                    if spec.exclusive_disks() {
                        self.suspend_disk_holders(&app, name, id);
                    }
                    self.insert_pool(PoolState {
                        pool: SandboxPool {
                            id: pid.clone(),
                            app: app.clone(),
                            service: name.clone(),
                            spec,
                            spec_hash: hash,
                            versions: vec![id.clone()],
                            scaling: svc.concurrency,
                            desired,
                            desired_reason: reason,
                            current: 0,
                            ready: 0,
                            quick_crashes: 0,
                            retry_at: None,
                        },
                        members: BTreeSet::new(),
                        not_before: None,
                        suspended: false,
                        held,
                        window: Window::of_pool(&svc.concurrency, Instant::now()),
                        autoscale_at: None,
                    });
                    pid
                }
            };
            self.touch_pool(&pool_id);
            // Auto pools: arm the timer that lets an idle pool scale down.
            self.autoscale(&pool_id);
            self.to_reconcile.insert(pool_id);
        }
    }

    /// Disks can't be shared by old and new instances (SPEC §4): the old pools of this
    /// service stop first, and get their count back if the deploy fails.
    fn suspend_disk_holders(&mut self, app: &str, service: &str, for_version: &VersionId) {
        let holders: Vec<PoolId> = self
            .pools_of(app)
            .filter(|p| p.pool.service == service && p.pool.spec.exclusive_disks() && !p.suspended)
            .map(|p| p.pool.id.clone())
            .collect();
        for pid in holders {
            if let Some(ps) = self.pools.get_mut(&pid) {
                ps.suspended = true;
            }
            if let Some(d) = self.deploys.get_mut(for_version) {
                d.suspended.push(pid.clone());
            }
            self.to_reconcile.insert(pid);
        }
    }

    /// Activates every deploying version whose pools are all ready.
    pub(super) fn check_deploys(&mut self) {
        if self.changed_apps.is_empty() {
            return;
        }
        let changed = std::mem::take(&mut self.changed_apps);
        let mut ready = Vec::new();
        let mut run_tasks = Vec::new();
        let mut release = Vec::new();
        for (id, d) in self.deploys.iter().filter(|(_, d)| d.prepared) {
            let Some(app) = self.versions.get(id).map(|v| v.app.as_str()) else {
                continue;
            };
            if !changed.contains(app) {
                continue;
            }
            let pools = || self.pools_of(app).filter(|p| p.pool.versions.contains(id));
            let unheld_ready = pools().all(|p| p.held || p.pool.ready >= required(&p.pool));
            if !d.tasks.is_empty() {
                // Deploy tasks run once what isn't held for them is ready.
                if !d.tasks_started && unheld_ready {
                    run_tasks.push(id.clone());
                }
                continue;
            }
            // Held for addon servers, which are ready now: the rest starts.
            if pools().any(|p| p.held) {
                if unheld_ready {
                    release.push(id.clone());
                }
                continue;
            }
            // A version of no services (tasks only) is ready once its tasks are done.
            let none = self
                .versions
                .get(id)
                .is_some_and(|v| v.config.services.is_empty());
            let mut pools = pools().peekable();
            if (none || pools.peek().is_some()) && pools.all(|p| p.pool.ready >= required(&p.pool))
            {
                ready.push(id.clone());
            }
        }
        for id in run_tasks {
            self.start_deploy_tasks(&id);
        }
        for id in release {
            self.release_held(&id);
        }
        for id in ready {
            self.activate(&id);
        }
    }

    fn activate(&mut self, id: &VersionId) {
        self.deploys.remove(id);
        let Some(app) = self.versions.get(id).map(|v| v.app.clone()) else {
            return;
        };
        let previous = self
            .apps
            .get_mut(&app)
            .and_then(|a| a.active_version.replace(id.clone()));
        self.touch_app(&app);
        if let Some(prev) = previous.filter(|p| p != id) {
            if let Some(p) = self.versions.get_mut(&prev) {
                p.state = VersionState::Superseded;
            }
            self.touch_version(&prev);
        }
        if let Some(v) = self.versions.get_mut(id) {
            v.state = VersionState::Active;
            v.failure = None;
        }
        self.touch_version(id);
        // Pools keep only the versions that can still take traffic: the active one and
        // any deploy in flight. The rest drain.
        let pools = self.pools_where(&app, |_| true);
        for pid in pools {
            let versions = &self.versions;
            let deploys = &self.deploys;
            if let Some(ps) = self.pools.get_mut(&pid) {
                ps.pool
                    .versions
                    .retain(|v| v == id || (deploys.contains_key(v) && versions.contains_key(v)));
                ps.suspended = false;
            }
            self.touch_pool(&pid);
            self.to_reconcile.insert(pid);
        }
        self.notify(id);
        self.collector.wake();
        self.arm_schedules(&app);
    }

    /// Marks a deploying version failed; the active version keeps serving and gets
    /// back any disk pool it lent.
    pub(super) fn fail(&mut self, id: &VersionId, reason: String) {
        let Some(deploy) = self.deploys.remove(id) else {
            return;
        };
        for pid in deploy.suspended {
            if let Some(ps) = self.pools.get_mut(&pid) {
                ps.suspended = false;
            }
            self.to_reconcile.insert(pid);
        }
        let Some(v) = self.versions.get_mut(id) else {
            return;
        };
        v.state = VersionState::Failed;
        v.failure = Some(reason);
        let app = v.app.clone();
        self.touch_version(id);
        let pools = self.pools_where(&app, |p| p.versions.contains(id));
        for pid in pools {
            if let Some(ps) = self.pools.get_mut(&pid) {
                ps.pool.versions.retain(|v| v != id);
            }
            self.touch_pool(&pid);
            self.to_reconcile.insert(pid);
        }
        self.notify(id);
        self.collector.wake();
    }

    pub(super) fn deploy_timed_out(&mut self, id: &VersionId) {
        // Not while its deploy tasks run (they have their own timeouts), nor on a
        // timer armed before they ran.
        let due = self.deploys.get(id).is_some_and(|d| {
            (!d.tasks_started || d.tasks.is_empty()) && Instant::now() >= d.timeout_at
        });
        if !due {
            return;
        }
        let app = id.app().to_string();
        let waiting: Vec<String> = self
            .pools_of(&app)
            .filter(|p| p.pool.versions.contains(id) && p.pool.ready < required(&p.pool))
            .map(|p| {
                format!(
                    "{} {}/{} ready",
                    p.pool.service,
                    p.pool.ready,
                    required(&p.pool)
                )
            })
            .collect();
        let timeout = duration::Display(self.cfg.deploy_timeout);
        self.fail(
            id,
            format!(
                "not ready within the deploy timeout ({timeout}): {}",
                waiting.join(", ")
            ),
        );
    }

    /// Answers `wait` callers once the version's state is stored.
    fn notify(&mut self, id: &VersionId) {
        let Some(waiters) = self.waiters.remove(id) else {
            return;
        };
        let Some(v) = self.versions.get(id).cloned() else {
            return;
        };
        self.after_flush(move |r| {
            for w in waiters {
                let _ = w.send(r.clone().map(|_| v.clone()).map_err(ControllerError::Store));
            }
        });
    }

    pub(super) async fn delete_app(&mut self, app: &str, purge: bool, reply: Reply<()>) {
        if !self.apps.contains_key(app) {
            let _ = reply.send(Err(not_found("app", app)));
            return;
        }
        let unfinished: Vec<VersionId> = self
            .deploys
            .keys()
            .filter(|v| self.versions.get(*v).is_some_and(|x| x.app == app))
            .cloned()
            .collect();
        for v in unfinished {
            self.fail(&v, format!("app `{app}` was deleted"));
        }
        let pools = self.pools_where(app, |_| true);
        let mut to_stop = Vec::new();
        for pid in &pools {
            let Some(ps) = self.take_pool(pid) else {
                continue;
            };
            self.dirty.pools.insert((app.to_string(), pid.clone()));
            for sid in ps.members {
                if let Some(s) = self.sandboxes.remove(&sid)
                    && (s.sb.is_live() || s.starting)
                {
                    to_stop.push(sid.clone());
                }
                self.dirty.sandboxes.insert((app.to_string(), sid));
            }
        }
        let versions: Vec<VersionId> = self
            .versions
            .values()
            .filter(|v| v.app == app)
            .map(|v| v.id.clone())
            .collect();
        for v in versions {
            self.versions.remove(&v);
            self.dirty.versions.insert((app.to_string(), v));
        }
        to_stop.extend(self.forget_runs_of(app));
        self.apps.remove(app);
        self.touch_app(app);
        self.drop_routes_of(app);
        let rt = self.runtime.clone();
        let grace = self.cfg.stop_grace;
        let app = app.to_string();
        let int_tx = self.int_tx.clone();
        let collect = self.collector.waker();
        self.after_flush(move |r| {
            if let Err(e) = r {
                let _ = reply.send(Err(ControllerError::Store(e)));
                return;
            }
            tokio::spawn(async move {
                let mut stops = tokio::task::JoinSet::new();
                for id in to_stop {
                    let rt = rt.clone();
                    stops.spawn(async move { rt.stop(&id, grace).await });
                }
                while stops.join_next().await.is_some() {}
                let result = rt
                    .remove_app(&app, purge)
                    .await
                    .map_err(ControllerError::Runtime);
                // Its code and images go now that nothing runs them.
                collect.notify_one();
                let _ = int_tx.send(Internal::Done(Box::new(move || {
                    let _ = reply.send(result);
                })));
            });
        });
    }
}

/// How many ready sandboxes a pool needs before its version can go active: all of a
/// fixed pool, one of an auto pool (SPEC §4).
pub(super) fn required(pool: &SandboxPool) -> u32 {
    match pool.scaling {
        Concurrency::Fixed { .. } => pool.desired,
        Concurrency::Auto(_) => pool.desired.min(1),
    }
}

/// A new pool's desired count and why.
fn initial(svc: &ResolvedService) -> (u32, String) {
    match svc.concurrency {
        Concurrency::Fixed { num_instances } => (
            num_instances,
            format!("fixed: num_instances = {num_instances}"),
        ),
        Concurrency::Auto(a) => (
            a.min_instances.max(1),
            format!(
                "auto: a new version starts at max(1, min_instances = {})",
                a.min_instances
            ),
        ),
    }
}

/// A reused pool's desired count under the new version's scaling; a reason only when
/// it changes.
fn resized(svc: &ResolvedService, current: u32) -> (u32, Option<String>) {
    match svc.concurrency {
        Concurrency::Fixed { .. } => {
            let (n, r) = initial(svc);
            (n, Some(r))
        }
        Concurrency::Auto(a) => {
            let n = current.clamp(a.min_instances, a.max_instances.max(a.min_instances));
            (
                n,
                (n != current).then(|| {
                    format!(
                        "auto: kept within min_instances = {} and max_instances = {}",
                        a.min_instances, a.max_instances
                    )
                }),
            )
        }
    }
}

//! An in-memory runtime for controller tests, simulations and benchmarks.
//!
//! Nothing runs: a sandbox is an entry in a map that turns ready, exits or hangs as
//! its service's [`Behavior`] says, and stops as its [`OnStop`] says (at once, after a
//! while, or only when killed at the end of the grace period), on tokio's clock (pause
//! it and time is virtual).
//! Tests can crash a sandbox with [`FakeRuntime::crash`] and read what was asked.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    EventSink, Listed, PrepareApp, PrepareLog, Retained, Runtime, RuntimeError, SandboxSpec,
    Started,
};
use crate::model::SandboxId;

/// What a fake service does once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Ready after the delay, then runs until stopped or crashed.
    Ready(Duration),
    /// Exits with the code after the delay, never ready.
    ExitBeforeReady(Duration, i32),
    /// Ready after the first delay, exits with the code after the second.
    ReadyThenExit(Duration, Duration, i32),
    /// Starts and never becomes ready.
    Hang,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior::Ready(Duration::ZERO)
    }
}

/// What a fake sandbox does when asked to stop: real programs take a while to finish
/// their work, and some ignore SIGTERM and last until they are killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Exits this long after the stop (killed instead if that is past the grace).
    Exits(Duration),
    /// Ignores SIGTERM: runs the whole grace period, then is killed.
    IgnoresTerm,
}

impl Default for OnStop {
    fn default() -> Self {
        OnStop::Exits(Duration::ZERO)
    }
}

/// The fake runtime. Clones share state.
#[derive(Clone, Default)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    behaviors: HashMap<String, Behavior>,
    on_stop: HashMap<String, OnStop>,
    stops: Vec<(SandboxId, Duration)>,
    running: BTreeMap<SandboxId, Fake>,
    started: Vec<SandboxSpec>,
    prepared: Vec<PrepareApp>,
    fail_prepare: Option<String>,
    start_delay: Duration,
    removed_apps: Vec<(String, bool)>,
    collections: Vec<Retained>,
}

struct Fake {
    spec: SandboxSpec,
    sink: EventSink,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeRuntime {
    /// A runtime whose sandboxes are ready at once.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets what sandboxes of `service` (matched by service name or by a command
    /// containing it) do from now on.
    pub fn behave(&self, key: &str, behavior: Behavior) {
        self.lock().behaviors.insert(key.to_string(), behavior);
    }

    /// Sets what sandboxes of `service` (matched as for [`FakeRuntime::behave`]) do
    /// when stopped from now on.
    pub fn on_stop(&self, key: &str, on_stop: OnStop) {
        self.lock().on_stop.insert(key.to_string(), on_stop);
    }

    /// Every stop asked for, with the grace period it was given, in order.
    pub fn stops(&self) -> Vec<(SandboxId, Duration)> {
        self.lock().stops.clone()
    }

    /// Makes `start` take this long before it returns (a slow image pull, say).
    pub fn start_delay(&self, delay: Duration) {
        self.lock().start_delay = delay;
    }

    /// Makes the next `prepare` calls fail with `message` (`None` to stop).
    pub fn fail_prepare(&self, message: Option<&str>) {
        self.lock().fail_prepare = message.map(str::to_string);
    }

    /// Ids of the sandboxes running now.
    pub fn running(&self) -> Vec<SandboxId> {
        self.lock().running.keys().cloned().collect()
    }

    /// Specs of the running sandboxes of a service.
    pub fn running_of(&self, app: &str, service: &str) -> Vec<SandboxSpec> {
        self.lock()
            .running
            .values()
            .filter(|f| f.spec.app == app && f.spec.spec.service == service)
            .map(|f| f.spec.clone())
            .collect()
    }

    /// Every spec ever started, in order.
    pub fn started(&self) -> Vec<SandboxSpec> {
        self.lock().started.clone()
    }

    /// Every `prepare` call, in order.
    pub fn prepared(&self) -> Vec<PrepareApp> {
        self.lock().prepared.clone()
    }

    /// Apps removed, with their purge flag.
    pub fn removed_apps(&self) -> Vec<(String, bool)> {
        self.lock().removed_apps.clone()
    }

    /// Every `collect` call, in order.
    pub fn collections(&self) -> Vec<Retained> {
        self.lock().collections.clone()
    }

    /// Makes a running sandbox exit with `code` as if it crashed. False if not running.
    pub fn crash(&self, id: &SandboxId, code: i32) -> bool {
        let fake = self.lock().running.remove(id);
        match fake {
            Some(f) => {
                if let Some(t) = f.task {
                    t.abort();
                }
                f.sink
                    .exited(Some(code), format!("exited with code {code}"));
                true
            }
            None => false,
        }
    }

    fn behavior(&self, spec: &SandboxSpec) -> Behavior {
        matching(&self.lock().behaviors, spec)
    }
}

/// The entry of `map` for the service of `spec` (by its name, or a key its command
/// contains); the default when none.
fn matching<T: Copy + Default>(map: &HashMap<String, T>, spec: &SandboxSpec) -> T {
    if let Some(b) = map.get(&spec.spec.service) {
        return *b;
    }
    let cmd = spec.spec.command.as_deref().unwrap_or_default();
    map.iter()
        .find(|(k, _)| !k.is_empty() && cmd.contains(k.as_str()))
        .map(|(_, b)| *b)
        .unwrap_or_default()
}

#[async_trait]
impl Runtime for FakeRuntime {
    fn name(&self) -> &str {
        "fake"
    }

    async fn prepare(&self, app: &PrepareApp, _: &PrepareLog) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        st.prepared.push(app.clone());
        if let Some(m) = &st.fail_prepare {
            return Err(RuntimeError::Prepare(m.clone()));
        }
        Ok(())
    }

    async fn start(&self, spec: &SandboxSpec, events: EventSink) -> Result<Started, RuntimeError> {
        let delay = self.lock().start_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let address = spec
            .spec
            .port
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)).into());
        let behavior = self.behavior(spec);
        let task = match behavior {
            Behavior::Ready(d) if d.is_zero() => {
                events.ready(address);
                None
            }
            _ => {
                let sink = events.clone();
                let addr = address;
                let me = self.clone();
                let id = spec.id.clone();
                Some(tokio::spawn(async move {
                    match behavior {
                        Behavior::Ready(d) => {
                            tokio::time::sleep(d).await;
                            sink.ready(addr);
                        }
                        Behavior::ExitBeforeReady(d, code) => {
                            tokio::time::sleep(d).await;
                            if me.lock().running.remove(&id).is_some() {
                                sink.exited(Some(code), format!("exited with code {code}"));
                            }
                        }
                        Behavior::ReadyThenExit(r, e, code) => {
                            tokio::time::sleep(r).await;
                            sink.ready(addr);
                            tokio::time::sleep(e).await;
                            if me.lock().running.remove(&id).is_some() {
                                sink.exited(Some(code), format!("exited with code {code}"));
                            }
                        }
                        Behavior::Hang => {}
                    }
                }))
            }
        };
        let mut st = self.lock();
        st.started.push(spec.clone());
        st.running.insert(
            spec.id.clone(),
            Fake {
                spec: spec.clone(),
                sink: events,
                task,
            },
        );
        Ok(Started {
            address,
            ports: spec.spec.declared_extra_ports(),
            runtime: None,
            node: None,
        })
    }

    async fn stop(&self, sandbox: &SandboxId, grace: Duration) -> Result<(), RuntimeError> {
        let on_stop = {
            let mut st = self.lock();
            let spec = match st.running.get(sandbox) {
                Some(f) => f.spec.clone(),
                None => return Err(RuntimeError::NotFound(sandbox.clone())),
            };
            st.stops.push((sandbox.clone(), grace));
            matching(&st.on_stop, &spec)
        };
        // It keeps running (listed, its disk in use) until it exits or is killed.
        let (after, killed) = match on_stop {
            OnStop::Exits(d) if d <= grace => (d, false),
            _ => (grace, true),
        };
        tokio::time::sleep(after).await;
        let fake = self.lock().running.remove(sandbox);
        if let Some(f) = fake {
            if let Some(t) = f.task {
                t.abort();
            }
            if killed {
                f.sink.exited(
                    None,
                    format!("killed by signal 9 (SIGKILL) after the {grace:?} grace period"),
                );
            } else {
                f.sink.exited(None, "stopped");
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        Ok(self
            .lock()
            .running
            .values()
            .map(|f| Listed {
                runtime: None,
                id: f.spec.id.clone(),
                address: f
                    .spec
                    .spec
                    .port
                    .map(|p| SocketAddr::from(([127, 0, 0, 1], p)).into()),
                labels: f.spec.labels.clone(),
            })
            .collect())
    }

    async fn adopt(&self, sandbox: &SandboxId, events: EventSink) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let f = st
            .running
            .get_mut(sandbox)
            .ok_or_else(|| RuntimeError::NotFound(sandbox.clone()))?;
        f.sink = events.clone();
        let address = f
            .spec
            .spec
            .port
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)).into());
        drop(st);
        events.ready(address);
        Ok(())
    }

    async fn remove_app(&self, app: &str, purge_disks: bool) -> Result<(), RuntimeError> {
        self.lock()
            .removed_apps
            .push((app.to_string(), purge_disks));
        Ok(())
    }

    /// Makes `dest` with one file, `index.html`, naming the version and `dir`.
    async fn export_dir(
        &self,
        app: &PrepareApp,
        dir: &str,
        dest: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        std::fs::create_dir_all(dest).map_err(|e| RuntimeError::io("exporting", e))?;
        std::fs::write(
            dest.join("index.html"),
            format!("{dir} of {}\n", app.version),
        )
        .map_err(|e| RuntimeError::io("exporting", e))
    }

    async fn collect(&self, retained: &Retained) -> Result<(), RuntimeError> {
        self.lock().collections.push(retained.clone());
        Ok(())
    }
}

//! `miren app run` and `miren sandbox exec` (SPEC §14): the controller finds where the
//! command runs — a live sandbox, or a one-off spec of the active version — and hands
//! it to the runtime on a task of its own. A one-off belongs to no pool and is in no
//! answer: nothing routes to it.

use super::actor::{Actor, not_found};
use super::{ControllerError, Reply, Target};
use crate::model::SandboxId;
use crate::runtime::{Attach, SandboxSpec};

impl Actor {
    pub(super) fn attach(&mut self, target: Target, attach: Attach, reply: Reply<i32>) {
        if self.shutting_down() {
            let _ = reply.send(Err(ControllerError::Stopped));
            return;
        }
        let rt = self.runtime.clone();
        match target {
            Target::Sandbox(id) => {
                let live = self
                    .sandboxes
                    .get(&id)
                    .map(|s| s.sb.is_live() && !s.starting)
                    .or_else(|| self.runs.get(&id).map(|r| r.is_live() && !r.starting));
                match live {
                    None => {
                        let _ = reply.send(Err(not_found("sandbox", id.as_str())));
                    }
                    Some(false) => {
                        let _ = reply.send(Err(ControllerError::Invalid(format!(
                            "sandbox `{id}` is not running"
                        ))));
                    }
                    Some(true) => {
                        tokio::spawn(async move {
                            let r = rt.exec(&id, attach).await;
                            let _ = reply.send(r.map_err(ControllerError::Runtime));
                        });
                    }
                }
            }
            Target::OneOff { app, service } => {
                let Some(version) = self.apps.get(&app).map(|a| a.active_version.clone()) else {
                    let _ = reply.send(Err(not_found("app", &app)));
                    return;
                };
                let Some(v) = version.and_then(|v| self.versions.get(&v)) else {
                    let _ = reply.send(Err(ControllerError::Invalid(format!(
                        "app `{app}` has no active version: deploy it first"
                    ))));
                    return;
                };
                if let Some(s) = &service
                    && !v.config.services.contains_key(s)
                {
                    let _ = reply.send(Err(not_found("service", s)));
                    return;
                }
                let Some(mut spec) = v.one_off_spec(service.as_deref()) else {
                    let _ = reply.send(Err(not_found(
                        "service",
                        service.as_deref().unwrap_or("web"),
                    )));
                    return;
                };
                spec.command = Some(attach.argv.join(" "));
                let id = SandboxId::new(&app, "run");
                if let Err(why) = self.open_secrets(&mut spec) {
                    let _ = reply.send(Err(ControllerError::Invalid(why)));
                    return;
                }
                let sandbox = SandboxSpec {
                    labels: SandboxSpec::labels(&id, &app, &v.id, &spec.service),
                    id,
                    app,
                    version: v.id.clone(),
                    pool: None,
                    spec,
                };
                tokio::spawn(async move {
                    let r = rt.run_attached(&sandbox, attach).await;
                    let _ = reply.send(r.map_err(ControllerError::Runtime));
                });
            }
        }
    }
}

//! A rollout, the one way whoever asks: the API's deploy and rollback, and `miren up`.
//! It starts the version, reports each sandbox's progress, and when the version is no
//! longer deploying makes the outcome visible (proxy and DNS caught up) before saying
//! how it ended — so a caller told "active" can reach it at once.

use std::collections::HashMap;

use miren_core::controller::{AppChange, Controller, ControllerError, DeployRequest, Event};
use miren_core::model::{SandboxStatus, Version, VersionId};
use tokio::sync::broadcast;

use super::Visibility;
use crate::api::DeployLine;

/// What to roll out.
pub enum Start {
    /// A new version.
    Deploy(Box<DeployRequest>),
    /// An earlier version of `app` (default: the one before the active one).
    Rollback {
        /// The app.
        app: String,
        /// The version.
        to: Option<VersionId>,
    },
}

/// A rollout the controller accepted.
pub struct Rollout {
    ctl: Controller,
    visible: Visibility,
    version: VersionId,
    /// Subscribed before the version was created: no progress is missed.
    events: broadcast::Receiver<Event>,
}

impl Rollout {
    /// Asks the controller for the rollout; an error means nothing started.
    pub async fn start(
        ctl: &Controller,
        visible: &Visibility,
        what: Start,
    ) -> Result<Rollout, ControllerError> {
        let events = ctl.subscribe();
        let version = match what {
            Start::Deploy(req) => ctl.deploy(*req).await?,
            Start::Rollback { app, to } => ctl.rollback(&app, to).await?,
        };
        Ok(Rollout {
            ctl: ctl.clone(),
            visible: visible.clone(),
            version,
            events,
        })
    }

    /// Config vars or a restart (SPEC §14): a rollout of the active code with the
    /// change; `None` when nothing runs yet (the vars wait for the first deploy).
    pub async fn change(
        ctl: &Controller,
        visible: &Visibility,
        app: &str,
        change: AppChange,
    ) -> Result<Option<Rollout>, ControllerError> {
        let events = ctl.subscribe();
        Ok(ctl.change_app(app, change).await?.map(|version| Rollout {
            ctl: ctl.clone(),
            visible: visible.clone(),
            version,
            events,
        }))
    }

    /// Tells `say` what happens until the version is no longer deploying (without
    /// `wait`: at once, as it stands), then how it ended; returns the version as it
    /// ended (`None`: the controller stopped meanwhile).
    pub async fn follow(mut self, wait: bool, mut say: impl FnMut(DeployLine)) -> Option<Version> {
        say(DeployLine::Created {
            version: self.version.to_string(),
        });
        let app = self.version.app().to_string();
        let ctl = self.ctl.clone();
        let version = self.version.clone();
        let done = async {
            if wait {
                ctl.wait(&version).await.ok()
            } else {
                ctl.snapshot(Some(&app))
                    .await
                    .ok()
                    .and_then(|s| s.versions.into_iter().find(|v| v.id == version))
            }
        };
        tokio::pin!(done);
        // Each sandbox's status, said once when it changes.
        let mut said = HashMap::new();
        let finished = loop {
            tokio::select! {
                v = &mut done => break v,
                ev = self.events.recv() => match ev {
                    Ok(Event::Sandbox { app: a, service, id, status, reason })
                        if a == app && said.insert(id.clone(), status) != Some(status) =>
                    {
                        say(DeployLine::Progress { message: progress(&service, id.short(), status, reason) });
                    }
                    Ok(Event::Prepare { version, line }) if version == self.version => {
                        say(DeployLine::Progress { message: line });
                    }
                    _ => {}
                },
            }
        };
        let v = finished?;
        self.visible.sync().await;
        // Secret values stay here.
        say(DeployLine::Done {
            version: Box::new(v.clone().redacted()),
        });
        Some(v)
    }
}

/// `web: sandbox 3fA9x running`, or with why it stopped.
fn progress(service: &str, id: &str, status: SandboxStatus, reason: Option<String>) -> String {
    match reason {
        Some(r) if status != SandboxStatus::Running => {
            format!("{service}: sandbox {id} {}: {r}", status.as_str())
        }
        _ => format!("{service}: sandbox {id} {}", status.as_str()),
    }
}

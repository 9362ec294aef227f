//! What a collection keeps (see `collect`): the versions an app may still run or roll
//! back to, and the code they and the live pools, sandboxes and task runs use.

use std::collections::BTreeMap;

use super::actor::Actor;
use crate::model::{CodeSource, Version, VersionState};
use crate::runtime::Retained;

impl Actor {
    /// What a collection keeps now.
    pub(super) fn retained(&self) -> Retained {
        let mut r = Retained::default();
        let mut by_app: BTreeMap<&str, Vec<&Version>> = BTreeMap::new();
        for v in self.versions.values() {
            by_app.entry(v.app.as_str()).or_default().push(v);
        }
        for (app, mut versions) in by_app {
            versions.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
            let active = self.apps.get(app).and_then(|a| a.active_version.as_ref());
            for (i, v) in versions.into_iter().enumerate() {
                let keep = i < self.cfg.keep_versions
                    || Some(&v.id) == active
                    || matches!(v.state, VersionState::Active | VersionState::Deploying);
                if keep {
                    r.versions.insert(v.id.clone());
                }
            }
        }
        for p in self.pools.values() {
            r.versions.extend(p.pool.versions.iter().cloned());
            if let CodeSource::Artifact(d) = &p.pool.spec.source {
                r.digests.insert(d.clone());
            }
        }
        for s in self.sandboxes.values() {
            if s.sb.is_live() || s.starting {
                r.versions.insert(s.sb.version.clone());
            }
        }
        for run in self.runs.values().filter(|r| r.is_live()) {
            r.versions.insert(run.run.version.clone());
        }
        for v in &r.versions {
            if let Some(v) = self.versions.get(v) {
                r.digests.insert(v.artifact_digest.clone());
            }
        }
        // A destroyed addon's disk goes once no pool mounts it (a rollback to a
        // version that ran it keeps it, until that is over too).
        for a in self.apps.values() {
            for disk in &a.retired_disks {
                let used = self.pools.values().any(|p| {
                    p.pool.app == a.name && p.pool.spec.disks.iter().any(|d| &d.name == disk)
                });
                if !used {
                    r.retired_disks.insert((a.name.clone(), disk.clone()));
                }
            }
        }
        r
    }
}

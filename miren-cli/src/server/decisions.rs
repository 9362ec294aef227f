//! What the controller decided about each pool's size, and why (the autoscaler's
//! reasons, `set-desired`, a deploy): the last few changes per app, kept from the
//! controller's events for `app status` and the dashboard.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use miren_core::controller::{Controller, Event};
use miren_core::runtime::now_millis;
use tokio::sync::broadcast::error::RecvError;

use crate::api::DecisionRow;

/// Changes kept per app.
const KEPT: usize = 20;

#[derive(Clone, Default)]
pub struct Decisions {
    by_app: Arc<Mutex<HashMap<String, Kept>>>,
}

/// An app's decisions: the latest, and how many per service since the server started.
#[derive(Default)]
struct Kept {
    latest: VecDeque<DecisionRow>,
    counts: BTreeMap<String, u64>,
}

impl Decisions {
    /// Starts keeping `controller`'s decisions.
    pub fn start(controller: &Controller) -> Self {
        let d = Self::default();
        let mut events = controller.subscribe();
        let kept = d.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::Pool {
                        id,
                        app,
                        service,
                        desired,
                        reason,
                        ..
                    }) => kept.saw(app, id.to_string(), service, desired, reason),
                    Ok(Event::Removed { key }) if key.starts_with("apps/") => {
                        // A deleted app's record goes with it.
                        if let Some(app) = key.strip_prefix("apps/").filter(|a| !a.contains('/')) {
                            kept.lock().remove(app);
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
        d
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.by_app
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A pool's counts changed: kept when its desired count or its reason did.
    fn saw(&self, app: String, pool: String, service: String, desired: u32, reason: String) {
        let mut all = self.lock();
        let kept = all.entry(app).or_default();
        let same = kept
            .latest
            .iter()
            .rev()
            .find(|d| d.pool == pool)
            .is_some_and(|d| d.desired == desired && d.reason == reason);
        if same {
            return;
        }
        if kept.latest.len() == KEPT {
            kept.latest.pop_front();
        }
        *kept.counts.entry(service.clone()).or_default() += 1;
        kept.latest.push_back(DecisionRow {
            at: now_millis(),
            pool,
            service,
            desired,
            reason,
        });
    }

    /// `app`'s decisions, newest first.
    pub fn of(&self, app: &str) -> Vec<DecisionRow> {
        self.lock()
            .get(app)
            .map(|d| d.latest.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Per app and service, how many decisions changed a pool's size or reason since
    /// the server started.
    pub fn counts(&self) -> Vec<(String, String, u64)> {
        let all = self.lock();
        let mut out: Vec<_> = all
            .iter()
            .flat_map(|(app, k)| {
                k.counts
                    .iter()
                    .map(move |(service, n)| (app.clone(), service.clone(), *n))
            })
            .collect();
        out.sort();
        out
    }
}

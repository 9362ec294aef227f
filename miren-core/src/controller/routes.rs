//! Routes: which app a host reaches. Written only here, like every other object; each
//! change is one transaction whose writes expect the revisions last seen, so a change
//! made meanwhile by anyone else (another server on the same store) is never
//! overwritten blindly: the routes are read again and the change is retried once.

use super::actor::{Actor, not_found};
use super::{ControllerError, Reply};
use crate::config::names::{self, DEFAULT_HOST};
use crate::model::Route;
use crate::store::{Expect, Op, Revision, StoreError, keys};

/// What one route change writes, and the routes it leaves.
struct Change {
    ops: Vec<Op>,
    /// Route by host after it; `None`: removed.
    after: Vec<(String, Option<Route>)>,
}

impl Actor {
    /// Routes `route.host` to `route.app`; a default route takes the flag from every
    /// other (the hostless `*` one goes).
    pub(super) async fn put_route(&mut self, route: Route, reply: Reply<Route>) {
        if let Err(e) = names::route_host(&route.host) {
            let _ = reply.send(Err(ControllerError::Invalid(format!(
                "`{}` is not a host name: {}",
                route.host, e.reason
            ))));
            return;
        }
        if !self.apps.contains_key(&route.app) {
            let _ = reply.send(Err(not_found("app", &route.app)));
            return;
        }
        let route = Route {
            default: route.default || route.host == DEFAULT_HOST,
            ..route
        };
        let answer = route.clone();
        let r = self
            .change_routes(move |a| a.put_change(&route))
            .await
            .map(|()| answer);
        let _ = reply.send(r);
    }

    /// Removes the route of `host`.
    pub(super) async fn remove_route(&mut self, host: String, reply: Reply<()>) {
        if !self.routes.contains_key(&host) {
            let _ = reply.send(Err(not_found("route", &host)));
            return;
        }
        let r = self
            .change_routes(move |a| {
                let rev = a.routes.get(&host).map(|(_, rev)| *rev)?;
                Some(Change {
                    ops: vec![Op::delete(keys::route(&host)).expecting(Expect::Revision(rev))],
                    after: vec![(host.clone(), None)],
                })
            })
            .await;
        let _ = reply.send(r);
    }

    /// Forgets the routes of a deleted app; they go in the next flush with the rest
    /// of the app.
    pub(super) fn drop_routes_of(&mut self, app: &str) {
        let hosts: Vec<String> = self
            .routes
            .iter()
            .filter(|(_, (r, _))| r.app == app)
            .map(|(h, _)| h.clone())
            .collect();
        for h in hosts {
            self.routes.remove(&h);
            self.dirty.deletes.insert(keys::route(&h));
        }
    }

    /// Reads every route and its revision from the store.
    pub(super) async fn load_routes(&mut self) -> Result<(), StoreError> {
        let (items, _) = self.store.list(keys::ROUTES).await?;
        self.routes.clear();
        for (key, v) in items {
            let r: Route = keys::decode(&key, &v.value)?;
            self.routes.insert(r.host.clone(), (r, v.revision));
        }
        Ok(())
    }

    /// The routes, by host.
    pub(super) fn route_list(&self, app: Option<&str>) -> Vec<Route> {
        self.routes
            .values()
            .filter(|(r, _)| app.is_none_or(|a| a == r.app))
            .map(|(r, _)| r.clone())
            .collect()
    }

    fn put_change(&self, route: &Route) -> Option<Change> {
        let expect = |host: &str| match self.routes.get(host) {
            Some((_, rev)) => Expect::Revision(*rev),
            None => Expect::Absent,
        };
        let mut ops = vec![
            Op::put(keys::route(&route.host), keys::encode(route)).expecting(expect(&route.host)),
        ];
        let mut after = vec![(route.host.clone(), Some(route.clone()))];
        if route.default {
            for (host, (r, rev)) in &self.routes {
                if *host == route.host || !r.default {
                    continue;
                }
                let guard = Expect::Revision(*rev);
                if host == DEFAULT_HOST {
                    ops.push(Op::delete(keys::route(host)).expecting(guard));
                    after.push((host.clone(), None));
                } else {
                    let plain = Route {
                        default: false,
                        ..r.clone()
                    };
                    ops.push(Op::put(keys::route(host), keys::encode(&plain)).expecting(guard));
                    after.push((host.clone(), Some(plain)));
                }
            }
        }
        Some(Change { ops, after })
    }

    /// Writes what `change` computes from the routes as known; on a conflict, reads
    /// them again and computes it once more.
    async fn change_routes(
        &mut self,
        change: impl Fn(&Actor) -> Option<Change>,
    ) -> Result<(), ControllerError> {
        for attempt in 0..2 {
            let Some(c) = change(self) else {
                return Ok(());
            };
            match self.store.txn(c.ops).await {
                Ok(rev) => {
                    self.apply_routes(c.after, rev);
                    return Ok(());
                }
                Err(StoreError::Conflict { key, .. }) if attempt == 0 => {
                    tracing::warn!(
                        "route `{key}` changed under the controller; reading routes again"
                    );
                    self.load_routes().await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControllerError::Invalid(
            "the routes kept changing while this change was made; try again".into(),
        ))
    }

    fn apply_routes(&mut self, after: Vec<(String, Option<Route>)>, rev: Revision) {
        for (host, r) in after {
            match r {
                Some(r) => self.routes.insert(host, (r, rev)),
                None => self.routes.remove(&host),
            };
        }
    }
}

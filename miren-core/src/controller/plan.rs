//! What a pool should do next, as a pure function of what it has (plain data in,
//! plain data out), so the rules are tested without a runtime or a clock.

use tokio::time::Instant;

use crate::model::{SandboxId, SandboxStatus};

/// One member of a pool, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id (ids sort by creation time).
    pub id: SandboxId,
    /// Its status (`Stopping`: a stop was already asked for).
    pub status: SandboxStatus,
}

/// A pool's situation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolView<'a> {
    /// How many it should have; 0 when draining or suspended.
    pub desired: u32,
    /// Its members, any status.
    pub members: &'a [Member],
    /// Whether another pool of the same service still holds its disks.
    pub blocked: bool,
    /// Backing off after crashes until then.
    pub not_before: Option<Instant>,
}

/// What to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolPlan {
    /// How many sandboxes to start now.
    pub start: u32,
    /// Which to stop.
    pub stop: Vec<SandboxId>,
    /// Come back then (backoff ends).
    pub wake_at: Option<Instant>,
}

/// Starts what is missing, stops what is extra: extra pending sandboxes first (they
/// serve nobody yet), then the newest.
pub fn plan_pool(pool: &PoolView<'_>, now: Instant) -> PoolPlan {
    let mut live: Vec<&Member> = pool
        .members
        .iter()
        .filter(|m| matches!(m.status, SandboxStatus::Pending | SandboxStatus::Running))
        .collect();
    let have = live.len() as u32;
    let mut plan = PoolPlan::default();
    if have > pool.desired {
        live.sort_by(|a, b| {
            let rank = |m: &Member| (m.status == SandboxStatus::Running) as u8;
            rank(a).cmp(&rank(b)).then_with(|| b.id.cmp(&a.id))
        });
        plan.stop = live
            .iter()
            .take((have - pool.desired) as usize)
            .map(|m| m.id.clone())
            .collect();
    } else if have < pool.desired && !pool.blocked {
        match pool.not_before {
            Some(t) if t > now => plan.wake_at = Some(t),
            _ => plan.start = pool.desired - have,
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn member(status: SandboxStatus) -> Member {
        Member {
            id: SandboxId::new("a", "web"),
            status,
        }
    }

    #[test]
    fn starts_the_missing_ones_and_ignores_stopping_and_dead() {
        let m = [
            member(SandboxStatus::Running),
            member(SandboxStatus::Stopping),
            member(SandboxStatus::Dead),
        ];
        let view = PoolView {
            desired: 3,
            members: &m,
            blocked: false,
            not_before: None,
        };
        assert_eq!(plan_pool(&view, Instant::now()).start, 2);
    }

    #[test]
    fn stops_pending_before_running_and_newest_first() {
        let m = [
            member(SandboxStatus::Running),
            member(SandboxStatus::Running),
            member(SandboxStatus::Pending),
        ];
        let view = PoolView {
            desired: 1,
            members: &m,
            blocked: false,
            not_before: None,
        };
        let plan = plan_pool(&view, Instant::now());
        assert_eq!(plan.stop, vec![m[2].id.clone(), m[1].id.clone()]);
    }

    #[test]
    fn waits_out_a_backoff_and_a_blocked_disk() {
        let now = Instant::now();
        let later = now + Duration::from_secs(4);
        let view = PoolView {
            desired: 1,
            members: &[],
            blocked: false,
            not_before: Some(later),
        };
        let plan = plan_pool(&view, now);
        assert_eq!((plan.start, plan.wake_at), (0, Some(later)));
        assert_eq!(plan_pool(&view, later).start, 1);
        let blocked = PoolView {
            blocked: true,
            not_before: None,
            ..view
        };
        assert_eq!(plan_pool(&blocked, now), PoolPlan::default());
    }
}

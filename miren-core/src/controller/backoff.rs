//! Crash backoff (SPEC §5), as a pure function of lifetimes.
//!
//! A sandbox that dies within `quick` of starting is a quick crash; the n-th
//! consecutive one delays the replacement by `base · 2^(n-1)`, capped at `cap`. The
//! count resets once a sandbox has stayed running for `reset_after`.

use std::time::Duration;

/// The backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// A death sooner than this after start is a quick crash.
    pub quick: Duration,
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
    /// Running this long resets the count.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            quick: Duration::from_secs(60),
            base: Duration::from_secs(1),
            cap: Duration::from_secs(5 * 60),
            reset_after: Duration::from_secs(2 * 60),
        }
    }
}

/// What to do after a sandbox died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterCrash {
    /// The pool's consecutive quick crashes now.
    pub quick_crashes: u32,
    /// How long to wait before starting the replacement.
    pub delay: Duration,
}

impl Backoff {
    /// The delay before the `n`-th consecutive quick crash's replacement (n ≥ 1).
    pub fn delay(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let factor = 1u64.checked_shl(n - 1).unwrap_or(u64::MAX);
        let nanos = (self.base.as_nanos() as u64).saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.cap)
    }

    /// The pool's state after a sandbox that lived `lifetime` died, given its count
    /// of consecutive quick crashes before.
    pub fn after_crash(&self, quick_crashes: u32, lifetime: Duration) -> AfterCrash {
        if lifetime < self.quick {
            let n = quick_crashes.saturating_add(1);
            AfterCrash {
                quick_crashes: n,
                delay: self.delay(n),
            }
        } else if lifetime >= self.reset_after {
            AfterCrash {
                quick_crashes: 0,
                delay: Duration::ZERO,
            }
        } else {
            // Lived long enough not to count, not long enough to clear the record.
            AfterCrash {
                quick_crashes,
                delay: Duration::ZERO,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_second_and_cap_at_five_minutes() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=12).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(b.delay(200), Duration::from_secs(300));
    }

    #[test]
    fn quick_crashes_count_up_and_long_runs_reset() {
        let b = Backoff::default();
        let a = b.after_crash(0, Duration::from_secs(2));
        assert_eq!((a.quick_crashes, a.delay), (1, Duration::from_secs(1)));
        let a = b.after_crash(3, Duration::from_secs(59));
        assert_eq!((a.quick_crashes, a.delay), (4, Duration::from_secs(8)));
        let a = b.after_crash(3, Duration::from_secs(90));
        assert_eq!((a.quick_crashes, a.delay), (3, Duration::ZERO));
        let a = b.after_crash(3, Duration::from_secs(120));
        assert_eq!((a.quick_crashes, a.delay), (0, Duration::ZERO));
    }
}

//! Queries answered, by response code, and how many were forwarded upstream or
//! answered from the UDP loop's cache (SPEC §16): relaxed atomics, one addition per
//! answer, shared by every listener of a server.

use std::sync::atomic::{AtomicU64, Ordering};

/// The response codes counted by name; anything else is `other`.
pub const CODES: [&str; 6] = [
    "noerror", "formerr", "servfail", "nxdomain", "notimp", "refused",
];

/// A server's query counts.
#[derive(Debug, Default)]
pub struct QueryStats {
    /// By response code (`CODES`), the last for any other.
    by_code: [AtomicU64; 7],
    forwarded: AtomicU64,
    cached: AtomicU64,
}

/// The counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryCounts {
    /// `(code, answers)` for each of [`CODES`] and `other`.
    pub by_code: Vec<(&'static str, u64)>,
    /// Questions sent upstream (for sandboxes, outside the zone).
    pub forwarded: u64,
    /// Answers the UDP loop sent from its cache, without decoding the question.
    pub cached: u64,
}

impl QueryStats {
    /// An answer with response code `rcode` went out.
    #[inline]
    pub(crate) fn answered(&self, rcode: u8) {
        let i = usize::from(rcode).min(self.by_code.len() - 1);
        self.by_code[i].fetch_add(1, Ordering::Relaxed);
    }

    /// An answer with the code in its header bytes went out.
    #[inline]
    pub(crate) fn answered_bytes(&self, answer: &[u8]) {
        if let Some(flags) = answer.get(3) {
            self.answered(flags & 0x0f);
        }
    }

    pub(crate) fn forwarded(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn cached(&self) {
        self.cached.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn counts(&self) -> QueryCounts {
        let names = CODES.iter().copied().chain(std::iter::once("other"));
        QueryCounts {
            by_code: names
                .zip(&self.by_code)
                .map(|(n, c)| (n, c.load(Ordering::Relaxed)))
                .collect(),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_count_under_their_names_and_the_rest_as_other() {
        let s = QueryStats::default();
        s.answered(0);
        s.answered(3);
        s.answered_bytes(&[0, 1, 0x81, 0x85]);
        s.answered(9);
        let c = s.counts();
        let of = |n: &str| c.by_code.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        assert_eq!(of("noerror"), Some(1));
        assert_eq!(of("nxdomain"), Some(1));
        assert_eq!(of("refused"), Some(1));
        assert_eq!(of("other"), Some(1));
    }
}

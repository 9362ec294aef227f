//! The answers a UDP loop sent, kept to send again: the response to a plain question
//! (`super::question`) depends only on the query's bytes after its id, on who asks and
//! on the zone, so the bytes sent once are the answer to the same bytes from the same
//! caller until the zone changes — with the new query's id in front. Nothing is
//! rendered twice and nothing is decoded on a hit: one hash of the query, one copy.

use std::collections::HashMap;
use std::sync::Arc;

use crate::zone::Zone;

/// Most answers kept per loop; a client asking for ever new names (a scan, an attack)
/// empties it, so it costs at most this many answers of memory and the full path.
const MAX_ENTRIES: usize = 4096;

/// Answers valid for one zone snapshot, by (caller, query after its id).
pub(crate) struct AnswerCache {
    answers: HashMap<Box<[u8]>, Box<[u8]>>,
    /// The key being looked up, reused so a hit allocates nothing.
    key: Vec<u8>,
}

impl AnswerCache {
    pub(crate) fn new() -> Self {
        Self {
            answers: HashMap::new(),
            key: Vec::with_capacity(128),
        }
    }

    /// Makes `*zone` the snapshot `now`, forgetting every answer when it is another
    /// one than the answers came from.
    pub(crate) fn follow(&mut self, zone: &mut Arc<Zone>, now: &Arc<Zone>) {
        if !Arc::ptr_eq(zone, now) {
            *zone = Arc::clone(now);
            self.answers.clear();
        }
    }

    /// The answer sent before to `query` (a whole message, id first) from `caller`.
    pub(crate) fn get(&mut self, caller: Option<&str>, query: &[u8]) -> Option<&[u8]> {
        self.set_key(caller, query);
        self.answers.get(self.key.as_slice()).map(|a| &**a)
    }

    /// Keeps `answer`, sent to `query` from `caller`.
    pub(crate) fn insert(&mut self, caller: Option<&str>, query: &[u8], answer: &[u8]) {
        if self.answers.len() >= MAX_ENTRIES {
            self.answers.clear();
        }
        self.set_key(caller, query);
        self.answers
            .insert(self.key.as_slice().into(), answer.into());
    }

    /// The caller's app name (never holds 0xFF: it is UTF-8), 0xFF, the query after
    /// its id.
    fn set_key(&mut self, caller: Option<&str>, query: &[u8]) {
        self.key.clear();
        self.key.extend_from_slice(caller.unwrap_or("").as_bytes());
        self.key.push(0xFF);
        self.key.extend_from_slice(query.get(2..).unwrap_or(&[]));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.answers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_for_the_same_question_caller_and_zone() {
        let mut zone = Arc::new(Zone::default());
        let mut c = AnswerCache::new();
        let q = [0xAA, 0xBB, 1, 2, 3];
        c.insert(Some("shop"), &q, b"answer");
        assert_eq!(
            c.get(Some("shop"), &[0x01, 0x02, 1, 2, 3]),
            Some(&b"answer"[..]),
            "any id"
        );
        assert_eq!(c.get(None, &q), None, "an outsider asks");
        assert_eq!(c.get(Some("blog"), &q), None, "another app asks");
        assert_eq!(c.get(Some("shop"), &[0xAA, 0xBB, 1, 2, 4]), None);
        let same = zone.clone();
        c.follow(&mut zone, &same);
        assert_eq!(c.len(), 1, "the same zone keeps its answers");
        c.follow(&mut zone, &Arc::new(Zone::default()));
        assert_eq!(c.get(Some("shop"), &q), None, "a new zone drops them");
    }

    #[test]
    fn it_never_holds_more_than_its_bound() {
        let mut c = AnswerCache::new();
        for i in 0..(MAX_ENTRIES as u32 * 2 + 5) {
            let q = [[0, 0].as_slice(), &i.to_be_bytes()].concat();
            c.insert(None, &q, b"a");
            assert!(c.len() <= MAX_ENTRIES);
        }
    }
}

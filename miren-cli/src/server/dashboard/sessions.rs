//! Who may see the dashboard: one-time login codes (`miren dashboard` asks the API for
//! one) become session ids kept in a cookie. Both live only in this server's memory: a
//! restart logs everyone out, and nothing about them is on disk.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a login code waits to be used.
pub const CODE_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Codes or sessions kept at most (the oldest go first): a flood of logins can't grow
/// the server.
const KEPT: usize = 1024;

#[derive(Default)]
pub struct Sessions {
    codes: Mutex<HashMap<String, Instant>>,
    sessions: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// A new login code, good once within [`CODE_TTL`].
    pub fn code(&self) -> std::io::Result<String> {
        let code = crate::server::random_hex()?;
        insert(&self.codes, code.clone(), CODE_TTL);
        Ok(code)
    }

    /// Trades a login code for a session id (`None`: no such code, used or expired).
    pub fn login(&self, code: &str) -> Option<std::io::Result<String>> {
        let until = lock(&self.codes).remove(code)?;
        if until < Instant::now() {
            return None;
        }
        Some(crate::server::random_hex().inspect(|id| {
            insert(&self.sessions, id.clone(), SESSION_TTL);
        }))
    }

    /// Whether `id` is a live session.
    pub fn valid(&self, id: &str) -> bool {
        lock(&self.sessions)
            .get(id)
            .is_some_and(|until| *until > Instant::now())
    }
}

fn lock(
    m: &Mutex<HashMap<String, Instant>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn insert(m: &Mutex<HashMap<String, Instant>>, key: String, ttl: Duration) {
    let now = Instant::now();
    let mut m = lock(m);
    m.retain(|_, until| *until > now);
    if m.len() >= KEPT
        && let Some(oldest) = m
            .iter()
            .min_by_key(|(_, until)| **until)
            .map(|(k, _)| k.clone())
    {
        m.remove(&oldest);
    }
    m.insert(key, now + ttl);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_logs_in_once_and_only_its_session_is_valid() {
        let s = Sessions::default();
        let code = s.code().unwrap_or_else(|e| panic!("{e}"));
        assert!(s.login("not-a-code").is_none());
        let id = s
            .login(&code)
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("the code did not log in"));
        assert!(s.valid(&id));
        assert!(!s.valid(&code));
        assert!(s.login(&code).is_none(), "a code works once");
    }
}

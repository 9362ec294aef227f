//! Waiting until what users see shows a change: a route, a rollout or a deletion is
//! in the proxy's routing and in service DNS before the API answers.

use std::time::Duration;

use miren_core::store::Progress;

/// How long to wait for a follower before answering anyway (and saying so in the log).
const CATCH_UP: Duration = Duration::from_secs(5);

/// The followers of the store whose views users see.
#[derive(Clone, Default)]
pub struct Visibility {
    followers: Vec<(&'static str, Progress)>,
}

impl Visibility {
    /// Adds a follower, named for the log.
    pub fn add(&mut self, name: &'static str, progress: Progress) {
        self.followers.push((name, progress));
    }

    /// Returns once every follower reflects the store as it is now (or the wait ran
    /// out: the change still shows, a little later, and the log says so).
    pub async fn sync(&self) {
        for (name, p) in &self.followers {
            match p.caught_up(CATCH_UP).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!("{name} is more than {CATCH_UP:?} behind the store"),
                Err(e) => tracing::warn!("reading the store's revision: {e}"),
            }
        }
    }
}

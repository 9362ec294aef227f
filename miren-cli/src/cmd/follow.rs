//! Following a rollout that isn't a deploy (config vars, restarts), told as `deploy`
//! tells its own.

use crate::Exit;
use crate::api::DeployLine;
use crate::cli::Format;
use crate::client::ClientError;

/// Follows a change's rollout like a deploy's; a change of an app that runs nothing
/// yet ends without one.
pub struct Follow {
    what: String,
    end: Option<Box<miren_core::model::Version>>,
    nothing_runs: bool,
}

impl Follow {
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            end: None,
            nothing_runs: false,
        }
    }

    /// One line of the rollout; always goes on reading.
    pub fn see(&mut self, l: DeployLine) -> bool {
        match l {
            DeployLine::Progress { message } => {
                self.nothing_runs |= message.contains("runs no version yet");
                eprintln!("{message}");
            }
            DeployLine::Created { version } => eprintln!("{}: rolling out {version}", self.what),
            DeployLine::Done { version } => self.end = Some(version),
        }
        true
    }

    /// How it ended, as `deploy` says it.
    pub fn finish(self, format: Format) -> Result<Exit, ClientError> {
        if self.end.is_none() && self.nothing_runs {
            if format == Format::Json {
                super::print_json(&serde_json::json!({ "version": null }))?;
            }
            return Ok(Exit::Ok);
        }
        super::deploy::finish(self.end, format)
    }
}

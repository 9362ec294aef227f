//! `miren env set|unset|list`: config vars and secrets over app.toml's env (SPEC §14).

use miren_core::model::ConfigVar;

use super::app::which;
use super::listing;
use crate::Exit;
use crate::api::{DeployLine, EnvChange};
use crate::cli::{EnvCommand, Format};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, cmd: EnvCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        EnvCommand::List { app } => {
            let vars = c.env(&which(app)?).await?;
            listing(format, &vars, &["KEY", "VALUE", "SERVICE"], |v| {
                vec![
                    v.key.clone(),
                    v.value.clone(),
                    v.service.clone().unwrap_or_else(|| "(all)".into()),
                ]
            })
        }
        EnvCommand::Set {
            app,
            service,
            secret,
            vars,
        } => {
            let app = which(app)?;
            let set = vars
                .iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Ok(ConfigVar {
                        key: k.to_string(),
                        value: v.to_string(),
                        secret,
                        service: service.clone(),
                    }),
                    // Never echo it: it may be a secret's value.
                    _ => Err(ClientError::Usage(
                        "each var is KEY=VALUE (for example LOG_LEVEL=debug)".into(),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let keys: Vec<String> = set.iter().map(|v| v.key.clone()).collect();
            let body = EnvChange {
                set,
                ..EnvChange::default()
            };
            let mut f = Follow::new(format!("set {}", keys.join(", ")));
            c.change_env(&app, &body, |l| f.see(l)).await?;
            f.finish(format)
        }
        EnvCommand::Unset { app, service, keys } => {
            let app = which(app)?;
            let body = EnvChange {
                unset: keys.clone(),
                service,
                ..EnvChange::default()
            };
            let mut f = Follow::new(format!("unset {}", keys.join(", ")));
            c.change_env(&app, &body, |l| f.see(l)).await?;
            f.finish(format)
        }
    }
}

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

//! `miren env set|unset|list`: config vars and secrets over app.toml's env (SPEC §14).

use miren_core::model::ConfigVar;

use super::follow::Follow;
use super::{listing, which};
use crate::Exit;
use crate::api::EnvChange;
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

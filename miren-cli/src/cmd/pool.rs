//! `miren sandbox-pool list|set-desired`.

use super::{listing, print_json};
use crate::Exit;
use crate::cli::{Format, PoolCommand};
use crate::client::{Client, ClientError};
use miren_core::config::Concurrency;

pub async fn run(c: &Client, cmd: PoolCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        PoolCommand::List { app } => {
            let app = app.or_else(|| crate::here::app(None).ok());
            let pools = c.pools(app.as_deref()).await?;
            listing(
                format,
                &pools,
                &["ID", "VERSION", "SERVICE", "DESIRED", "CURRENT", "READY"],
                |p| {
                    vec![
                        p.id.to_string(),
                        p.versions.last().map_or("-".into(), |v| v.to_string()),
                        p.service.clone(),
                        p.desired.to_string(),
                        p.current.to_string(),
                        p.ready.to_string(),
                    ]
                },
            )
        }
        PoolCommand::SetDesired {
            pool,
            desired,
            force,
            yes,
        } => {
            let desired = count(&desired)?;
            let pools = c.pools(None).await?;
            let fixed_many = desired > ASK_ABOVE
                && pools.iter().any(|p| {
                    (p.id.as_str() == pool
                        || p.id.as_str().ends_with(&pool)
                        || p.id.as_str().starts_with(&pool))
                        && matches!(p.scaling, Concurrency::Fixed { .. })
                });
            if fixed_many
                && !crate::ask::confirm(
                    &format!("Run {desired} instances of {pool} on this machine?"),
                    yes,
                )
                .map_err(|e| ClientError::Local(format!("asking: {e}")))?
            {
                eprintln!("nothing was changed");
                return Ok(Exit::Failed);
            }
            let p = c.set_desired(&pool, desired, force).await?;
            if format == Format::Json {
                print_json(&p)?;
            } else {
                eprintln!("{}: {} now wants {}", p.id, p.service, p.desired);
            }
            Ok(Exit::Ok)
        }
    }
}

/// More instances than this of a fixed pool are asked about on a terminal.
const ASK_ABOVE: u32 = 64;

/// A count of instances, said plainly when it isn't one.
fn count(s: &str) -> Result<u32, ClientError> {
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err(ClientError::Usage(format!(
            "a pool can't run {n} instances: give 0 or more"
        ))),
        Ok(n) => u32::try_from(n)
            .map_err(|_| ClientError::Usage(format!("{n} instances is more than anyone can run"))),
        Err(_) => Err(ClientError::Usage(format!(
            "`{s}` is not a number of instances (e.g. `3`)"
        ))),
    }
}

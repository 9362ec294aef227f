//! `miren sandbox-pool list|set-desired`.

use super::{listing, print_json};
use crate::Exit;
use crate::cli::{Format, PoolCommand};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, cmd: PoolCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        PoolCommand::List { app } => {
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
        PoolCommand::SetDesired { pool, desired } => {
            let p = c.set_desired(&pool, desired).await?;
            if format == Format::Json {
                print_json(&p)?;
            } else {
                eprintln!("{}: {} now wants {}", p.id, p.service, p.desired);
            }
            Ok(Exit::Ok)
        }
    }
}

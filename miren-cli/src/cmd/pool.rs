//! `miren sandbox-pool list|set-desired`.

use hyper::Method;
use miren_core::model::SandboxPool;

use super::{listing, print_json, q};
use crate::Exit;
use crate::api::DesiredBody;
use crate::cli::{Format, PoolCommand};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, cmd: PoolCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        PoolCommand::List { app } => {
            let path = match &app {
                Some(a) => format!("/v1/pools?app={}", q(a)),
                None => "/v1/pools".to_string(),
            };
            let pools: Vec<SandboxPool> = c.get(&path).await?;
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
            let p: SandboxPool = c
                .call(
                    Method::PUT,
                    &format!("/v1/pools/{}/desired", q(&pool)),
                    Some(&DesiredBody { desired }),
                )
                .await?;
            if format == Format::Json {
                print_json(&p)?;
            } else {
                eprintln!("{}: {} now wants {}", p.id, p.service, p.desired);
            }
            Ok(Exit::Ok)
        }
    }
}

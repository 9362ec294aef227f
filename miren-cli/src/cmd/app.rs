//! `miren app list|status|history|rollback|delete`.

use super::{listing, print_json};
use crate::Exit;
use crate::api::{DeployLine, RollbackBody};
use crate::cli::{AppCommand, Format};
use crate::client::{Client, ClientError};
use crate::table::{ago, or_dash, print};

pub async fn run(c: &Client, cmd: AppCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        AppCommand::List => {
            let apps = c.apps().await?;
            listing(
                format,
                &apps,
                &["NAME", "VERSION", "DEPLOYED", "COMMIT", "STATUS"],
                |a| {
                    vec![
                        a.name.clone(),
                        or_dash(a.version.as_deref()),
                        a.deployed.map_or("-".into(), ago),
                        or_dash(a.commit.as_deref().map(|c| &c[..c.len().min(8)])),
                        a.status.clone(),
                    ]
                },
            )
        }
        AppCommand::Status(a) => {
            let s = c.app_status(&a.app).await?;
            if format == Format::Json {
                print_json(&s)?;
                return Ok(Exit::Ok);
            }
            println!("app:     {}", s.app.name);
            println!("version: {}", or_dash(s.app.version.as_deref()));
            println!("status:  {}", s.app.status);
            println!();
            let rows: Vec<Vec<String>> = s
                .pools
                .iter()
                .map(|p| {
                    vec![
                        p.service.clone(),
                        p.id.to_string(),
                        s.runtimes
                            .get(p.id.as_str())
                            .cloned()
                            .unwrap_or_else(|| "-".into()),
                        p.desired.to_string(),
                        p.current.to_string(),
                        p.ready.to_string(),
                        if p.versions.is_empty() {
                            "draining".to_string()
                        } else {
                            p.desired_reason.clone()
                        },
                    ]
                })
                .collect();
            print(
                &[
                    "SERVICE", "POOL", "RUNTIME", "DESIRED", "CURRENT", "READY", "WHY",
                ],
                &rows,
            )
            .map_err(|e| ClientError::Local(format!("writing the table: {e}")))?;
            Ok(Exit::Ok)
        }
        AppCommand::History(a) => {
            let rows = c.history(&a.app).await?;
            listing(
                format,
                &rows,
                &["VERSION", "STATE", "CREATED", "COMMIT", "FAILURE"],
                |v| {
                    vec![
                        v.id.clone(),
                        v.state.clone(),
                        ago(v.created),
                        or_dash(v.commit.as_deref().map(|c| &c[..c.len().min(8)])),
                        or_dash(v.failure.as_deref().and_then(|f| f.lines().next())),
                    ]
                },
            )
        }
        AppCommand::Rollback { app, to } => {
            let body = RollbackBody { version: to };
            let mut end = None;
            c.rollback(&app, &body, |l| {
                match l {
                    DeployLine::Progress { message } => eprintln!("{message}"),
                    DeployLine::Created { version } => eprintln!("rolling back to {version}"),
                    DeployLine::Done { version } => end = Some(version),
                }
                true
            })
            .await?;
            super::deploy::finish(end, format)
        }
        AppCommand::Delete { app, purge_disks } => {
            c.delete_app(&app, purge_disks).await?;
            eprintln!(
                "deleted app {app}{}",
                if purge_disks {
                    " and its disks"
                } else {
                    " (its disks are kept; --purge-disks removes them)"
                }
            );
            Ok(Exit::Ok)
        }
    }
}

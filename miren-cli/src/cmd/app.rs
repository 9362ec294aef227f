//! `miren app list|status|history|rollback|delete`.

use std::io::Write;

use super::{listing, print_json, which};
use crate::Exit;
use crate::api::{DeployLine, RollbackBody};
use crate::cli::{AppCommand, Format};
use crate::client::{Client, ClientError};
use crate::table::{ago, or_dash};

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
                        a.number.map_or("-".into(), number),
                        a.deployed.map_or("-".into(), ago),
                        or_dash(a.commit.as_deref().map(|c| &c[..c.len().min(8)])),
                        a.status.clone(),
                    ]
                },
            )
        }
        AppCommand::Status(a) => {
            let s = c.app_status(&which(a.app)?).await?;
            if format == Format::Json {
                print_json(&s)?;
                return Ok(Exit::Ok);
            }
            let mut out = std::io::stdout().lock();
            out.write_all(super::status_view::app(&s).as_bytes())
                .map_err(|e| ClientError::Local(format!("writing the status: {e}")))?;
            Ok(Exit::Ok)
        }
        AppCommand::History(a) => {
            let rows = c.history(&which(a.app)?).await?;
            listing(
                format,
                &rows,
                &["VERSION", "ID", "STATE", "CREATED", "COMMIT", "FAILURE"],
                |v| {
                    vec![
                        number(v.number),
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
            let app = which(app)?;
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
        AppCommand::Run {
            app,
            service,
            attach,
        } => {
            let app = which(app)?;
            super::attach::run_in(c, &app, service, attach).await
        }
        AppCommand::Restart { app, service } => {
            let app = which(app)?;
            let body = crate::api::RestartBody { service };
            let mut f = super::follow::Follow::new("restart");
            c.restart(&app, &body, |l| f.see(l)).await?;
            f.finish(format)
        }
        AppCommand::Delete {
            name,
            app,
            purge_disks,
            yes,
        } => {
            let app = which(name.or(app))?;
            let plan = deletion(c, &app, purge_disks).await?;
            if !crate::ask::confirm(&format!("{plan}\nDelete app {app}?"), yes)
                .map_err(|e| ClientError::Local(format!("asking: {e}")))?
            {
                eprintln!("nothing was deleted");
                return Ok(Exit::Failed);
            }
            c.delete_app(&app, purge_disks).await?;
            if format == Format::Json {
                print_json(&serde_json::json!({"deleted": app, "purged_disks": purge_disks}))?;
            } else {
                eprintln!("deleted app {app}");
                if !crate::ask::interactive() {
                    eprintln!("{plan}");
                }
            }
            Ok(Exit::Ok)
        }
    }
}

/// `v3`, or `-` for versions from before numbers.
pub fn number(n: u32) -> String {
    if n == 0 { "-".into() } else { format!("v{n}") }
}

/// What deleting `app` removes and keeps, in words.
async fn deletion(c: &Client, app: &str, purge_disks: bool) -> Result<String, ClientError> {
    let status = c.app_status(app).await?;
    let routes = c.routes().await?;
    let mut services: Vec<&str> = status.pools.iter().map(|p| p.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    let mut disks: Vec<&str> = status
        .pools
        .iter()
        .flat_map(|p| p.spec.disks.iter().map(|d| d.name.as_str()))
        .collect();
    disks.sort_unstable();
    disks.dedup();
    let mut removes = vec![format!(
        "its {} ({})",
        if services.len() == 1 {
            "service"
        } else {
            "services"
        },
        services.join(", ")
    )];
    removes[0] = if services.is_empty() {
        "its versions".to_string()
    } else {
        format!("{}, its versions", removes[0])
    };
    let hosts: Vec<&str> = routes
        .iter()
        .filter(|r| r.app == app && r.host != miren_core::config::names::DEFAULT_HOST)
        .map(|r| r.host.as_str())
        .collect();
    if !hosts.is_empty() {
        removes.push(format!("its routes ({})", hosts.join(", ")));
    }
    if routes.iter().any(|r| r.app == app && r.default) {
        removes.push("the default route".into());
    }
    let mut plan = format!("removes {}", removes.join(", "));
    if !disks.is_empty() {
        if purge_disks {
            plan.push_str(&format!(", and its disks ({})", disks.join(", ")));
        } else {
            plan.push_str(&format!(
                "; keeps its disks ({}): --purge-disks removes them",
                disks.join(", ")
            ));
        }
    }
    Ok(plan)
}

//! `miren route add|set|list|remove|set-default`.

use super::listing;
use super::which;
use crate::Exit;
use crate::api::RouteBody;
use crate::cli::{Format, RouteCommand};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, cmd: RouteCommand, format: Format) -> Result<Exit, ClientError> {
    let put = |host: String, app: String, default: bool| async move {
        c.put_route(&host, &RouteBody { app, default }).await
    };
    match cmd {
        RouteCommand::Add { host, app } => add(c, &host, which(app)?, format).await,
        RouteCommand::Set { host, app } => add(c, &host, app, format).await,
        RouteCommand::SetDefault { app } => {
            let r = put("*".into(), which(app)?, true).await?;
            done(
                format,
                &r,
                format!("hosts without a route of their own → {}", r.app),
            )
        }
        RouteCommand::List => {
            let routes = c.routes().await?;
            listing(format, &routes, &["HOST", "APP", "DEFAULT"], |r| {
                vec![
                    r.host.clone(),
                    r.app.clone(),
                    if r.default { "yes" } else { "" }.to_string(),
                ]
            })
        }
        RouteCommand::Remove { host, yes } => {
            let host = checked(&host)?;
            let routes = c.routes().await?;
            if let Some(r) = routes.iter().find(|r| r.host == host && r.default)
                && !crate::ask::confirm(
                    &format!(
                        "{host} is the default route: hosts without a route of their own will get 404 instead of reaching {}. Remove it?",
                        r.app
                    ),
                    yes,
                )
                .map_err(|e| ClientError::Local(format!("asking: {e}")))?
            {
                eprintln!("nothing was removed");
                return Ok(Exit::Failed);
            }
            c.remove_route(&host).await?;
            if format == Format::Json {
                super::print_json(&serde_json::json!({"removed": host}))?;
            } else {
                eprintln!("removed the route for {host}");
            }
            Ok(Exit::Ok)
        }
    }
}

async fn add(c: &Client, host: &str, app: String, format: Format) -> Result<Exit, ClientError> {
    let host = checked(host)?;
    let r = c
        .put_route(
            &host,
            &RouteBody {
                app,
                default: false,
            },
        )
        .await?;
    done(format, &r, format!("{} → {}", r.host, r.app))
}

/// The route as JSON, or `said` on stderr.
fn done(format: Format, r: &miren_core::model::Route, said: String) -> Result<Exit, ClientError> {
    if format == Format::Json {
        super::print_json(r)?;
    } else {
        eprintln!("{said}");
    }
    Ok(Exit::Ok)
}

/// A host as routes take it, refused here (before any server is asked) when it is a
/// URL, has a path or a port.
fn checked(host: &str) -> Result<String, ClientError> {
    miren_core::config::names::route_host_from(host)
        .map_err(|p| ClientError::Usage(format!("`{host}` {}", p.reason)))
}

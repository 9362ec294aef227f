//! `miren route add|set|list|remove|set-default`.

use super::listing;
use crate::Exit;
use crate::api::RouteBody;
use crate::cli::{Format, RouteCommand};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, cmd: RouteCommand, format: Format) -> Result<Exit, ClientError> {
    let put = |host: String, app: String, default: bool| async move {
        c.put_route(&host, &RouteBody { app, default }).await
    };
    match cmd {
        RouteCommand::Add { host, app } | RouteCommand::Set { host, app } => {
            let r = put(host, app, false).await?;
            eprintln!("{} → {}", r.host, r.app);
            Ok(Exit::Ok)
        }
        RouteCommand::SetDefault { app } => {
            let r = put("*".into(), app, true).await?;
            eprintln!("hosts without a route of their own → {}", r.app);
            Ok(Exit::Ok)
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
        RouteCommand::Remove { host } => {
            c.remove_route(&host).await?;
            eprintln!("removed the route for {host}");
            Ok(Exit::Ok)
        }
    }
}
